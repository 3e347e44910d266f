"""The report's charts as matplotlib ``Figure`` objects (no pyplot, no global state), built from
the summary, paired and series tables; ``save`` writes each as PNG and SVG."""

from __future__ import annotations

import io
import textwrap
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib import rc_context
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.ticker import MaxNLocator

from metrics.atomic import atomic_path

STYLE = {
    "font.size": 8,
    "axes.titlesize": 9,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "svg.hashsalt": "exsvd-bench",  # stable ids: the same data gives the same SVG
    "svg.fonttype": "none",
}
BETTER, WORSE, NEUTRAL = "#1a7f37", "#cf222e", "#8c959f"
DIFFERENT = "#0072b2"
# significance in the delta charts: a shape for each, so colour is never the only signal
MARKERS = {"▲": ("^", BETTER, "better"), "▼": ("v", WORSE, "worse"),
           "◆": ("D", DIFFERENT, "different (descriptive)"), "": ("o", NEUTRAL, "n.s.")}
# arms: Okabe-Ito's colour-blind-safe palette, and a line style each as well
PALETTE = ("#0072b2", "#e69f00", "#56b4e9", "#009e73", "#d55e00", "#cc79a7", "#000000",
           "#f0e442")
LINESTYLES = ("-", "--", "-.", ":")


def arrow(higher_is_better) -> str:
    """↑ / ↓ for the metric's better direction, '' for descriptive metrics."""
    return "" if pd.isna(higher_is_better) else ("↑" if higher_is_better else "↓")


def mark(row) -> str:
    """▲ significantly better than the baseline, ▼ worse, ◆ different (descriptive), else ''."""
    if row is None or not bool(row["significant"]):
        return ""
    return "◆" if pd.isna(row["better"]) else ("▲" if row["better"] else "▼")


def arm_colours(arms: list[str]) -> dict[str, str]:
    return {arm: PALETTE[i % len(PALETTE)] for i, arm in enumerate(arms)}


def line_style(colours: dict[str, str], arm: str) -> str:
    """The arm's line style: with its colour, a pair no two of the first 8 arms share."""
    return LINESTYLES[list(colours).index(arm) % len(LINESTYLES)]


def save(fig: Figure, folder: Path, name: str) -> bytes:
    """Write ``name``.png and ``name``.svg atomically; return the PNG bytes (for embedding).
    Both keep the layout the PNG was drawn with (laying out again for the SVG took 15% of a
    report's time)."""
    buffer = io.BytesIO()
    with rc_context(STYLE):
        fig.savefig(buffer, format="png", dpi=150)
        fig.set_layout_engine("none")
        with atomic_path(folder / f"{name}.svg") as tmp:
            fig.savefig(tmp, format="svg", metadata={"Date": None})
    with atomic_path(folder / f"{name}.png") as tmp:
        tmp.write_bytes(buffer.getvalue())
    return buffer.getvalue()


def new_figure(width: float, height: float) -> Figure:
    with rc_context(STYLE):
        return Figure(figsize=(width, height), layout="constrained")


def axis_label(text: str, width: int = 38) -> str:
    """``text`` wrapped to lines of ``width`` characters (long units fit beside a small axis)."""
    return textwrap.fill(text, width)


def bar_chart(
    summary: pd.DataFrame, paired: pd.DataFrame, colours: dict, labels: dict, ylabel: str
) -> Figure:
    """One metric: mean per arm with its CI, marks for significant differences from baseline;
    arms named by their ``labels``, the value axis by ``ylabel``."""
    with rc_context(STYLE):
        fig = new_figure(3.4, 2.6)
        ax = fig.add_subplot()
        x = np.arange(len(summary))
        mean = summary["mean"].to_numpy(float)
        errors = np.nan_to_num([mean - summary["ci_low"], summary["ci_high"] - mean])
        ax.bar(x, mean, color=[colours[a] for a in summary["arm"]], yerr=errors, capsize=3)
        marks = paired.set_index("arm") if len(paired) else None
        for xi, (arm, top) in enumerate(zip(summary["arm"], summary["ci_high"], strict=True)):
            text = mark(marks.loc[arm]) if marks is not None and arm in marks.index else ""
            if text and np.isfinite(mean[xi]):
                ax.annotate(text, (xi, np.nanmax([top, mean[xi]])), xytext=(0, 2),
                            textcoords="offset points", ha="center", va="bottom")
        ax.set_xticks(x, [labels.get(a, a) for a in summary["arm"]], rotation=30, ha="right")
        ax.set_ylabel(axis_label(ylabel))
        first = summary.iloc[0]
        ax.set_title(f"{first['metric']} {arrow(first['higher_is_better'])}")
        ax.axhline(0, color="black", linewidth=0.6)
    return fig


def curve_chart(
    series: pd.DataFrame, colours: dict, base_length: int | None, title: str, ylabel: str = "",
    labels: dict | None = None,
) -> Figure:
    """One series metric over the frame index: mean over videos per arm (named by ``labels``),
    band mean ± 1.96 SE, and the base length L as a vertical line."""
    stats = series.groupby(["arm", "index"])["value"].agg(["mean", "std", "count"])
    stats["half"] = 1.96 * stats["std"].fillna(0) / np.sqrt(stats["count"])
    with rc_context(STYLE):
        fig = new_figure(4.2, 3.1)
        ax = fig.add_subplot()
        for arm in pd.unique(series["arm"]):
            curve = stats.loc[arm]
            ax.plot(curve.index, curve["mean"], color=colours[arm], linewidth=1.2,
                    label=(labels or {}).get(arm, arm), linestyle=line_style(colours, arm))
            low, high = curve["mean"] - curve["half"], curve["mean"] + curve["half"]
            ax.fill_between(curve.index, low, high, color=colours[arm], alpha=0.15, linewidth=0)
        if base_length is not None:
            ax.axvline(base_length, color="black", linestyle="--", linewidth=0.8)
            ax.annotate(
                f" L = {base_length}",
                (base_length, 1),
                xycoords=("data", "axes fraction"),
                va="top",
                fontsize=7,
            )
        ax.set_title(title)
        ax.set_xlabel("frame index (pairs and triples: their first frame)")
        ax.set_ylabel(axis_label(ylabel))
        fig.legend(fontsize=6, frameon=False, ncols=3, loc="outside lower center")
    return fig


def delta_chart(
    paired: pd.DataFrame, colours: dict, labels: dict | None = None, units: dict | None = None
) -> Figure:
    """One family: a panel per metric, each arm's (named by ``labels``) mean difference from
    the baseline with its paired-bootstrap CI, in the metric's ``units``; significance as a
    marker shape and colour (``MARKERS``), explained in a legend."""
    metrics = list(pd.unique(paired["metric"]))
    columns = min(3, len(metrics))
    rows = -(-len(metrics) // columns)
    arms = list(pd.unique(paired["arm"]))
    baseline = paired["baseline"].iloc[0]
    used: dict[str, tuple[str, str]] = {}
    with rc_context(STYLE):
        fig = new_figure(3.2 * columns, 0.8 + 0.28 * len(arms) * rows + 0.6 * rows)
        for i, metric in enumerate(metrics):
            ax = fig.add_subplot(rows, columns, i + 1)
            part = paired[paired["metric"] == metric].set_index("arm").reindex(arms)
            for y, (_, row) in enumerate(part.iterrows()):
                if pd.isna(row["delta_mean"]):
                    continue
                shape, colour, meaning = MARKERS[mark(row)]
                used[meaning] = (shape, colour)
                low, high = row["delta_mean"] - row["ci_low"], row["ci_high"] - row["delta_mean"]
                ax.errorbar(
                    row["delta_mean"],
                    y,
                    xerr=np.nan_to_num([[low], [high]]),
                    fmt=shape,
                    color=colour,
                    capsize=2,
                    markersize=5,
                )
            ax.axvline(0, color="black", linewidth=0.6)
            ax.xaxis.set_major_locator(MaxNLocator(4))  # long tick labels must not overlap
            names = [(labels or {}).get(arm, arm) for arm in arms]
            ax.set_yticks(range(len(arms)), names if i % columns == 0 else [""] * len(arms))
            unit = (units or {}).get(metric)
            ax.set_xlabel(axis_label(f"arm − {baseline}" + (f" ({unit})" if unit else ""), 44))
            ax.invert_yaxis()
            ax.set_title(
                f"{metric} {arrow(part['higher_is_better'].dropna().iloc[0])}"
                if part["higher_is_better"].notna().any()
                else metric
            )
        fig.suptitle(f"{paired['family'].iloc[0]}: difference from {baseline}")
        handles = [
            Line2D([], [], marker=shape, color=colour, linestyle="none", label=meaning)
            for meaning, (shape, colour) in used.items()
        ]
        fig.legend(handles=handles, title="Holm-corrected, p < 0.05", fontsize=6,
                   title_fontsize=6, frameon=False, ncols=len(handles), loc="outside lower center")
    return fig


def loss_chart(losses: dict[str, pd.DataFrame], colours: dict) -> Figure:
    """Post-tuning loss per step: raw (faint) and an exponential moving average."""
    with rc_context(STYLE):
        fig = new_figure(5.0, 3.0)
        ax = fig.add_subplot()
        for arm, loss in losses.items():
            span = max(5, len(loss) // 20)
            ax.plot(loss["step"], loss["loss"], color=colours[arm], alpha=0.25, linewidth=0.6)
            smooth = loss["loss"].ewm(span=span).mean()
            ax.plot(loss["step"], smooth, color=colours[arm], label=f"{arm} (EMA {span})",
                    linestyle=line_style(colours, arm))
        values = pd.concat([loss["loss"] for loss in losses.values()])
        if (values > 0).all() and values.max() > 10 * values.min():
            ax.set_yscale("log")
        ax.set_xlabel("step")
        ax.set_ylabel("training loss")
        ax.legend(fontsize=7, frameon=False)
    return fig
