"""Produce the golden values of every weight-free metric on a fixed synthetic set.

Run once, review the numbers for plausibility, commit the JSON:

    python tests/golden/make_golden.py

It evaluates ``golden_set()`` (seeded synthetic clips, DIS flow, CPU) and writes
``tests/golden/temporal_metrics.json`` with the versions that produced it. ``test_golden.py``
recomputes the same set and compares within the tolerances recorded in the file.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

from metrics import Evaluator
from metrics.distortions import duplicate_frames, flicker
from metrics.synthetic import make_video

GOLDEN = Path(__file__).with_name("temporal_metrics.json")
RTOL, ATOL = 0.02, 1e-6


def golden_set() -> dict[str, np.ndarray]:
    """Fixed clips, 12 frames of 96x96: each motion kind plus two distorted pans."""
    kw = {"frames": 12, "size": (96, 96)}
    clips = {
        kind: make_video(kind, seed=i, **kw).frames
        for i, kind in enumerate(("pan", "zoom", "rotate", "sprites", "static"))
    }
    clips["pan_flicker"] = flicker(clips["pan"], 0.05, seed=0)
    clips["pan_duplicated"] = duplicate_frames(clips["pan"], 3)
    return clips


def compute() -> tuple[dict[str, dict[str, float]], dict[str, str]]:
    evaluator = Evaluator(None, flow="dis")
    values = {name: evaluator(frames).scalars for name, frames in golden_set().items()}
    return values, evaluator.provenance


def main() -> None:
    values, provenance = compute()
    payload = {
        "produced_by": "python tests/golden/make_golden.py",
        "provenance": provenance,
        "rtol": RTOL,
        "atol": ATOL,
        "values": {
            clip: {k: (None if np.isnan(v) else v) for k, v in scores.items()}
            for clip, scores in values.items()
        },
    }
    GOLDEN.write_text(json.dumps(payload, indent=2) + "\n")
    json.dump(payload["values"], sys.stdout, indent=1)
    print(f"\nwrote {GOLDEN}")


if __name__ == "__main__":
    main()
