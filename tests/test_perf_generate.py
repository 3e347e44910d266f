"""``python -m bench perf generate``: every arm timed beside stock, and SVD-XT's real VAE."""

from __future__ import annotations

import math

import pytest
import torch

from bench.__main__ import main
from bench.perf_generate import vae_of
from variants import list_variants

pytestmark = pytest.mark.usefixtures("one_thread")


def test_every_arm_prints_a_row_beside_stock(capsys):
    code = main(["perf", "generate", "--frames", "8", "--steps", "1", "--decode-chunk", "4"])
    out = capsys.readouterr().out
    assert code == 0
    rows = {line.split()[0]: line.split() for line in out.splitlines()
            if line.split()[:1] and line.split()[0] in list_variants()}
    assert list(rows) == list_variants()
    for fields in rows.values():
        seconds, stock, ratio = float(fields[1]), float(fields[2]), float(fields[3].rstrip("x"))
        assert math.isfinite(seconds) and seconds > 0 and stock > 0
        assert ratio == pytest.approx(seconds / stock, rel=0.1)  # printed values are rounded
        assert fields[4] == fields[5] == "n/a"  # no peak memory on CPU
        decode, steps25, steps50 = float(fields[6]), float(fields[7]), float(fields[8])
        assert 0 < decode < steps25 < steps50  # totals are printed to 0.1 s
        assert steps25 == pytest.approx(25 * seconds + decode, abs=0.1)
        assert steps50 == pytest.approx(50 * seconds + decode, abs=0.1)
    assert out.splitlines()[-1].startswith("slowest arm ")


def test_svd_xt_vae_is_svds_eight_times_downsampling_decoder():
    """The benchmark's memory figure needs SVD-XT's 97.7 M-param VAE decoding 8x latents to
    full size (the class's defaults are a one-level toy that leaves 64x64 latents at 64x64)."""
    vae = vae_of("svd-xt")
    assert sum(p.numel() for p in vae.parameters()) == pytest.approx(97.7e6, rel=0.01)
    with torch.inference_mode():
        frames = vae.decode(torch.randn(2, 4, 4, 4), num_frames=2).sample
    assert frames.shape == (2, 3, 32, 32)


def test_an_unknown_arm_fails_before_any_timing(capsys):
    assert main(["perf", "generate", "--arms", "exsvd,nope"]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""  # no header, no stock measurement
    assert "nope: unknown arm; registered: svd" in captured.err


@pytest.mark.parametrize(
    ("argv", "needle"),
    [
        (["generate", "--size", "40"], "--size 40: must be a multiple of 16 and >= 32"),
        (["generate", "--model", "svd-xt", "--size", "64"], "multiple of 64 and >= 128"),
        (["generate", "--frames", "0"], "--frames: must be >= 1, got 0"),
        (["tune", "--size", "8"], "--size 8: must be a multiple of 16"),
        (["tune", "--steps", "0"], "--steps: must be >= 1"),
        (["metrics", "--size", "16"], "--size: must be >= 32"),
        (["metrics", "--videos", "0"], "--videos: must be >= 1"),
        (["metrics", "--frames", "8", "--metrics", "fvd"], "8 is too few for every metric"),
    ],
)
def test_bad_perf_options_are_one_line_before_any_work(argv, needle, capsys):
    assert main(["perf", *argv]) == 2
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err.count("\n") == 1 and needle in captured.err


def test_perf_metrics_leaves_out_metrics_longer_than_its_clips(capsys):
    argv = ["perf", "metrics", "--videos", "1", "--frames", "3", "--size", "32", "--repeats", "1",
            "--metrics", "warping_error,flow_acceleration,motion_slowdown"]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "metrics timed (2): warping_error, flow_acceleration" in out
    assert "not timed: motion_slowdown (needs 4 frames" in out
