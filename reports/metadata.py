"""The registered metrics' public metadata (``metrics.MetricInfo``) as the report reads it: axis
labels, what a per-frame curve plots, and which metrics depend on the flow backend. Metrics the
registry does not know (renamed, or from another version) fall back to their names."""

from __future__ import annotations

import re

SLOPE = " per video length"  # a slope metric's unit: its series is the quantity it is fitted to


def metric_infos(names) -> dict:
    """``MetricInfo`` of each registered metric among ``names`` (imports the registry: torch)."""
    from metrics.evaluator import METRICS

    return {name: METRICS.get(name).info for name in names if name in METRICS}


def value_label(info) -> str:
    """A metric's axis label: its unit, or its description where it has none."""
    return (info.unit or info.description) if info is not None else ""


def series_label(info) -> str:
    """The axis label of a metric's per-frame series: a slope's series is in the unit of what
    it is fitted to."""
    return value_label(info).removesuffix(SLOPE)


def series_title(names: list[str], infos: dict) -> str:
    """What a curve of the series shared by ``names`` plots: for a slope, the quantity it is
    fitted to per frame/pair (e.g. 'SSIM to the condition per frame'), else the names."""
    for name in names:
        info = infos.get(name)
        found = info and info.unit.endswith(SLOPE) and re.match(
            r"drift of (.+?) over normalised time", info.description
        )
        if found:
            return f"{_plain(found[1])} per {info.series_axis or 'frame'}\n({' = '.join(names)})"
    return " = ".join(names)


def _plain(text: str) -> str:
    """Asides dropped, 'relative to' kept: 'sharpness (Laplacian variance) (relative to
    frame 0)' -> 'sharpness relative to frame 0'."""

    def keep(aside: re.Match) -> str:
        return f" {aside[1]}" if aside[1].startswith("relative") else ""

    return re.sub(r" \(([^)]*)\)", keep, text)


def flow_metrics(infos: dict) -> list[str]:
    """The metrics whose values depend on the optical-flow backend."""
    return [name for name, info in infos.items() if info.needs_flow]
