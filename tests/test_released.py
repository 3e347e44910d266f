"""The released-checkpoint converter on a synthetic DiffSynth-named state dict (tiny config)."""

from __future__ import annotations

import pytest
import torch
from diffusers import UNetSpatioTemporalConditionModel

from metrics.errors import BenchError
from variants import get_variant
from variants.released import SVD_XT_BLOCK_IDS, from_diffsynth, load_released, to_diffsynth
from variants.tiny import TINY_UNET

TINY_IDS = (7, 17, 83, 113)  # DiffSynth numbering for the tiny model's 4 temporal blocks
ARM = {"base_length": 8, "table_size": 32, "bounce_low": 2}


def exsvd():
    torch.manual_seed(0)
    return get_variant("exsvd").build(UNetSpatioTemporalConditionModel(**TINY_UNET), **ARM)


def synthetic_release(model) -> dict[str, torch.Tensor]:
    """What DiffSynth would save for this model: its key names, our shapes, new values."""
    generator = torch.Generator().manual_seed(5)
    names = to_diffsynth(model, TINY_IDS)
    return {k: torch.randn(v.shape, generator=generator).half() for k, v in names.items()}


def test_key_names_follow_diffsynth():
    names = set(to_diffsynth(exsvd(), TINY_IDS))
    assert "blocks.7.positional_embedding.embeddings" in names
    assert "blocks.7.positional_conv.weight" in names and "blocks.195.norm_in.weight" not in names
    assert {
        "blocks.113.positional_embedding_proj.0.weight",
        "blocks.113.act_fn_in.proj.weight",
        "blocks.113.attn1.to_out.weight",
        "blocks.113.norm_out.bias",
        "blocks.113.ff_out.weight",
    } <= names
    assert len(SVD_XT_BLOCK_IDS) == 16


def test_every_tensor_lands_and_the_identity_convs_leave_their_init():
    model = exsvd()
    release = synthetic_release(model)
    report = load_released(model, release, TINY_IDS)
    assert report["tensors"] == len(release)
    state = model.state_dict()
    converted = from_diffsynth(release, model, TINY_IDS)
    for key, value in converted.items():
        torch.testing.assert_close(state[key], value.float())
    convs = [k for k in state if k.endswith("exvideo_convs.0.conv.weight")]
    assert len(convs) == 4
    for key in convs:
        centre = state[key][:, :, 1, 1, 1]
        assert not torch.equal(centre, torch.eye(centre.shape[0]))


def test_round_trip_and_strictness():
    model = exsvd()
    release = synthetic_release(model)
    load_released(model, release, TINY_IDS)
    back = to_diffsynth(model, TINY_IDS)
    assert set(back) == set(release)
    for key, value in release.items():
        torch.testing.assert_close(back[key].half(), value)
    with pytest.raises(BenchError, match="no place in the model"):
        load_released(exsvd(), {**release, "blocks.7.unexpected.weight": torch.zeros(1)}, TINY_IDS)
    incomplete = {k: v for k, v in release.items() if "positional_conv" not in k}
    with pytest.raises(BenchError, match="would stay at their init"):
        load_released(exsvd(), incomplete, TINY_IDS)
    with pytest.raises(BenchError, match="4 temporal transformers"):
        load_released(exsvd(), release)  # SVD-XT's 16-block map on the tiny model


def test_svd_xt_block_map_matches_diffsynth_channel_order():
    """DiffSynth lists the channels of its 16 ExVideo convs in this order; diffusers' SVD-XT
    temporal transformers (built on the meta device, no memory) must line up with it."""
    from variants.released import _transformer_prefixes

    with torch.device("meta"):
        unet = UNetSpatioTemporalConditionModel()
    modules = dict(unet.named_modules())
    channels = [modules[p].in_channels for p in _transformer_prefixes(unet)]
    assert channels == [320, 320, 640, 640, 1280, 1280, 1280, 1280, 1280, 1280,
                        640, 640, 640, 320, 320, 320]


def test_a_damaged_released_checkpoint_is_a_one_line_error(tmp_path):
    from bench.stages.tune import save_released

    damaged = tmp_path / "ExVideo-SVD-128f-v1.safetensors"
    damaged.write_bytes(b"not safetensors")
    with pytest.raises(BenchError, match=r"cannot be read as safetensors .*download ExVideo"):
        save_released(None, damaged, tmp_path / "tune")
