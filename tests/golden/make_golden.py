"""Produce the golden values of every weight-free metric on a fixed synthetic set.

Run once, review the numbers for plausibility, commit the JSON:

    python tests/golden/make_golden.py

It evaluates ``golden_set()`` (seeded synthetic clips, DIS flow, CPU, condition = first frame,
reference = the undistorted clip for the distorted ones) and writes
``tests/golden/temporal_metrics.json`` with the versions that produced it. ``test_golden.py``
recomputes the same set and compares within the tolerances recorded in the file.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

from metrics import Evaluator, list_metrics
from metrics.distortions import duplicate_frames, flicker
from metrics.evaluator import METRICS
from metrics.synthetic import make_video
from metrics.video_io import Video

GOLDEN = Path(__file__).with_name("temporal_metrics.json")
# measured across two machines and torch versions: at most 2.1e-6 apart (80 of 84 values
# bit-identical; tests/golden/README.md); 1e-3 leaves room for other CPUs' float sums and still
# tells 0.999 from 0.99
RTOL, ATOL = 1e-3, 1e-6


def weight_free_metrics() -> list[str]:
    return [n for n in list_metrics() if METRICS.get(n).info.backbone is None]


def golden_set() -> dict[str, tuple[np.ndarray, np.ndarray | None]]:
    """Fixed clips, 12 frames of 96x96: each motion kind, plus distorted pans with the clean pan
    as their reference."""
    kw = {"frames": 12, "size": (96, 96)}
    clips = {
        kind: (make_video(kind, seed=i, **kw).frames, None)
        for i, kind in enumerate(("pan", "zoom", "rotate", "sprites", "static"))
    }
    pan = clips["pan"][0]
    clips["pan_flicker"] = (flicker(pan, 0.05, seed=0), pan)
    clips["pan_duplicated"] = (duplicate_frames(pan, 3), pan)
    return clips


def compute() -> tuple[dict[str, dict[str, float]], dict[str, str]]:
    names = weight_free_metrics()
    plain = Evaluator([n for n in names if not METRICS.get(n).info.needs_reference], flow="dis")
    paired = Evaluator(names, flow="dis", with_reference=True)
    values = {}
    for name, (frames, reference) in golden_set().items():
        if reference is None:
            values[name] = plain(frames).scalars
        else:
            values[name] = paired(frames, reference=Video(reference, None, "clean")).scalars
    return values, plain.provenance


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
