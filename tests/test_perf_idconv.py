"""``python -m bench perf idconv``: the identity convolutions alone, per layout, side by side."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from bench.__main__ import main
from bench.perf_idconv import channels_last, conv_shapes
from variants.modules import IdentityConv3d

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.mark.parametrize("frames,height,width", [(3, 2, 5), (5, 4, 4), (2, 6, 3)])
def test_the_channels_last_way_computes_the_arms_convolution(frames, height, width):
    torch.manual_seed(0)
    module = IdentityConv3d(8)
    with torch.no_grad():
        module.conv.weight.add_(torch.randn_like(module.conv.weight))
        module.conv.bias.normal_()
    module.frame_size = (height, width)
    hidden = torch.randn(2 * frames, height * width, 8)
    video = hidden.reshape(2, frames, height, width, 8).permute(0, 4, 1, 2, 3)
    # reference: torch's own reflect padding, then an unpadded Conv3d
    padded = F.pad(video, (1, 1, 1, 1, 1, 1), mode="reflect")
    expected = F.conv3d(padded, module.conv.weight, module.conv.bias)
    expected = expected.permute(0, 2, 3, 4, 1).reshape(2 * frames, height * width, 8)
    torch.testing.assert_close(module(hidden, frames), expected)
    torch.testing.assert_close(channels_last(module.conv, hidden, frames, height, width),
                               expected)


def test_svd_xt_has_sixteen_identity_convs_at_its_four_levels():
    from diffusers import UNetSpatioTemporalConditionModel

    with torch.device("meta"):
        unet = UNetSpatioTemporalConditionModel()  # SVD-XT's configuration
    # 2 down + 3 up temporal transformers at each of the first three levels, 1 in the mid block
    assert conv_shapes(unet, 512) == {(320, 64): 5, (640, 32): 5, (1280, 16): 5, (1280, 8): 1}


def test_every_way_prints_its_time_and_the_ratio(capsys):
    assert main(["perf", "idconv", "--frames", "4", "--repeats", "1"]) == 0
    out = capsys.readouterr().out
    rows = [line.split() for line in out.splitlines() if line.split()[:1] in (["32"], ["64"])]
    assert [row[:3] for row in rows] == [["32", "8x8", "3"], ["64", "4x4", "1"]]
    assert all(float(row[3]) > 0 and float(row[4]) > 0 and float(row[5]) < 1e-5 for row in rows)
    assert "ratio to shipped: channels-last" in out
