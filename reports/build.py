"""``build_report``: run directory in, ``report/`` out. Reads the stored results, recomputes the
statistics, draws every figure, writes the tables and renders one self-contained HTML page."""

from __future__ import annotations

import base64
import re
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image

from metrics.atomic import atomic_path
from metrics.errors import BenchError
from reports import figures, media, tables
from reports.facts import provenance, run_facts
from reports.html import render
from reports.metadata import flow_metrics, metric_infos, series_label, series_title, value_label
from reports.rundir import Run, load_run
from reports.stats import compare, summarize

BASELINE = "exsvd"
N_BOOT, SEED, LEVEL = 2000, 0, 0.95
MAX_STRIPS = 4  # conditions shown as frame strips and previews
FOLDERS = ("report", "report/figures", "report/tables")
FILES = ("results/summary.csv", "results/paired.csv", "report/index.html",
         *(f"report/tables/{name}.csv" for name in ("summary", "paired", "main", "unavailable")))
FIGURE_SUFFIXES = (".png", ".svg", ".gif")  # of the files written in report/figures/


@dataclass(frozen=True)
class Naming:
    """What every chart names alike: arm colours and labels, and metric metadata."""

    colours: dict[str, str]
    labels: dict[str, str]
    infos: dict


@dataclass(frozen=True)
class Shown:
    """A figure as the page shows it."""

    name: str
    title: str
    uri: str


class Output:
    """The files written under ``report/``; anything else in its figures/ and tables/ folders
    is a leftover of an earlier build and is removed at the end."""

    def __init__(self, root: Path):
        self.root, self.written = root, set()

    def figure(self, fig, name: str, title: str) -> Shown:
        png = figures.save(fig, self.root / "figures", name)
        self.written |= {f"figures/{name}.png", f"figures/{name}.svg"}
        return Shown(name, title, data_uri(png, "image/png"))

    def animation(self, gif: bytes, name: str, title: str) -> Shown:
        with atomic_path(self.root / "figures" / f"{name}.gif") as tmp:
            tmp.write_bytes(gif)
        self.written.add(f"figures/{name}.gif")
        return Shown(name, title, data_uri(gif, "image/gif"))

    def table(self, frame: pd.DataFrame, name: str) -> None:
        write_csv(frame, self.root / "tables" / f"{name}.csv")
        self.written.add(f"tables/{name}.csv")

    def prune(self) -> None:
        for folder in ("figures", "tables"):
            for path in (self.root / folder).glob("*"):
                if path.is_file() and f"{folder}/{path.name}" not in self.written:
                    path.unlink()


def data_uri(data: bytes, mime: str) -> str:
    return f"data:{mime};base64,{base64.b64encode(data).decode()}"


def record_notes(run, in_run: bool) -> list[str]:
    """What run.json says about how far the results can be trusted to match it."""
    notes = []
    if not in_run and "finished" in run.record and run.record["finished"] is None:
        notes.append(
            "the last bench run into this directory did not finish: the config shown is its "
            "own, but results of an earlier config may remain; finish it with bench run "
            "--resume (same settings) before relying on this report"
        )
    current = run.record.get("versions", {})
    for earlier in run.record.get("earlier_environments", []):
        changed = [
            f"{name} {version}"
            for name, version in (earlier.get("versions") or {}).items()
            if current.get(name) != version
        ]
        if earlier.get("hardware") != run.record.get("hardware"):
            changed.append("other hardware")
        notes.append(
            "some results were computed in an earlier environment ("
            + ", ".join(changed) + "; run.json earlier_environments)"
        )
    return notes


def metric_notes(run: Run, infos: dict, unavailable: set[str]) -> list[str]:
    """What readers must know of the metrics that ran: backbones whose weights were not found
    (``unavailable``: those metrics), and the flow backend ``auto`` fell back to."""
    backbones = sorted(
        {infos[m].backbone for m in unavailable if m in infos and infos[m].backbone}
    )
    notes = [f"{b.upper()} metrics not computed: weights not found (see Unavailable)"
             for b in backbones]
    chosen = run.record.get("config", {}).get("evaluate", {}).get("flow")
    used = provenance(run.per_video)[0].get("flow_backend")
    if chosen == "auto" and used == "dis":
        notes.append(
            "flow: auto resolved to DIS (RAFT weights not found); "
            f"{', '.join(flow_metrics(infos))} depend on the flow backend"
        )
    return notes


def check_outputs(root: Path) -> None:
    """A one-line error, before any work, when a file stands where the report writes a folder
    or a folder where it writes a file (in report/figures/: any named as a figure file)."""
    for relative in FOLDERS:
        if (root / relative).exists() and not (root / relative).is_dir():
            raise BenchError(root / relative, "is a file, not a folder",
                             "move or remove it: the report writes a folder there")
    figures = [p for p in (root / "report" / "figures").glob("*") if p.suffix in FIGURE_SUFFIXES]
    for path in [*(root / relative for relative in FILES), *sorted(figures)]:
        if path.is_dir():
            raise BenchError(path, "is a folder, not a file",
                             "move or remove it: the report writes a file there")


def write_csv(frame: pd.DataFrame, path: Path) -> None:
    with atomic_path(path) as tmp:
        frame.to_csv(tmp, index=False)


def slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", str(text))


def build_report(run_dir: Path, in_run: bool = False) -> Path:
    """Rewrite ``results/summary.csv``, ``results/paired.csv`` and ``report/`` of ``run_dir``
    from its stored files alone; return the path of ``report/index.html``. ``in_run``: built as
    the last stage of ``bench run`` (every earlier stage done, the run about to finish)."""
    started = time.perf_counter()
    run = load_run(Path(run_dir))
    check_outputs(run.root)
    frames = {
        arm: run.manifests.get(arm, {}).get("generation", {}).get("frames") for arm in run.arms
    }
    frames = {arm: count for arm, count in frames.items() if count is not None}
    untested = tables.other_length(frames, BASELINE)
    summary = summarize(run.per_video, n_boot=N_BOOT, seed=SEED, level=LEVEL)
    paired = compare(run.per_video, baseline=BASELINE, n_boot=N_BOOT, seed=SEED, level=LEVEL,
                     exclude=untested)
    infos = metric_infos(pd.unique(run.per_video["metric"]))
    unavailable = set(run.unavailable["metric"]) if run.unavailable is not None else set()
    notes = [*run.notes, *filter(None, [paired.attrs.get("note")]), *record_notes(run, in_run),
             *metric_notes(run, infos, unavailable)]
    write_csv(summary, run.root / "results" / "summary.csv")
    write_csv(paired, run.root / "results" / "paired.csv")
    out = Output(run.root / "report")
    out.table(summary, "summary")
    out.table(paired, "paired")
    labels = tables.arm_labels(frames, BASELINE)
    names = Naming(figures.arm_colours(run.arms), labels, infos)
    out.table(tables.main_csv(summary, paired, run.arms, labels), "main")
    problems = tables.problems(run.per_video, run.unavailable)
    out.table(
        pd.DataFrame(problems, columns=["metric", "arms", "status", "count", "reason"]),
        "unavailable",
    )
    context = {
        "title": f"exsvd-bench report: {run.root.resolve().name}",
        "baseline": BASELINE,
        "arms": run.arms,
        "facts": run_facts(run, in_run),
        "main": tables.main_blocks(summary, paired, run.arms, BASELINE, labels, unavailable),
        "deltas": tables.delta_blocks(paired, [a for a in run.arms if a != BASELINE], labels),
        "untested": tables.untested_text(frames, BASELINE),
        "problems": tables.shared_problems(problems),
        "bars": bar_figures(out, summary, paired, names),
        "delta_figures": delta_figures(out, paired, names),
        "curves": curve_figures(out, run, names, notes),
        "strips": strip_figures(out, run, notes),
        "loss": loss_figure(out, run, names.colours),
        "untuned": [arm for arm in run.arms if arm not in run.losses],
        "base_length": run.base_length,
        "n_boot": N_BOOT,
        "level": round(LEVEL * 100),
        "notes": notes,
    }
    context["build_seconds"] = f"{time.perf_counter() - started:.1f}"
    index = out.root / "index.html"
    with atomic_path(index) as tmp:
        tmp.write_text(render(context), encoding="utf-8")
    out.prune()
    return index


def bar_figures(out: Output, summary, paired, names: Naming) -> list[tuple[str, list[Shown]]]:
    shown = []
    for family in tables.families(summary):
        part = summary[summary["family"] == family]
        row = []
        for metric in pd.unique(part.dropna(subset=["mean"])["metric"]):
            versus = paired[paired["metric"] == metric] if len(paired) else paired
            label = value_label(names.infos.get(metric))
            fig = figures.bar_chart(
                part[part["metric"] == metric], versus, names.colours, names.labels, label
            )
            row.append(out.figure(fig, f"bars_{slug(metric)}", metric))
        if row:
            shown.append((family, row))
    return shown


def delta_figures(out: Output, paired, names: Naming) -> list[Shown]:
    paired = paired[paired["n_pairs"] > 0]
    units = {metric: value_label(info) for metric, info in names.infos.items()}
    return [
        out.figure(
            figures.delta_chart(
                paired[paired["family"] == family], names.colours, names.labels, units
            ),
            f"deltas_{slug(family)}",
            family,
        )
        for family in (tables.families(paired) if len(paired) else [])
    ]


def curve_figures(out: Output, run: Run, names: Naming, notes) -> list[tuple[str, list[Shown]]]:
    """Per family, one chart per distinct series (metrics sharing one series, such as a metric
    and its slope, share a chart), titled by what it plots."""
    if run.series is None or run.series.empty:
        return []
    if run.base_length is None:
        notes.append("the base length L is not recorded in run.json: curves have no L line")
    family_of = dict(zip(run.per_video["metric"], run.per_video["family"], strict=True))
    keys = ["arm", "sample", "seed", "index"]
    same: dict[int, list[str]] = {}
    for metric, part in run.series.groupby("metric", sort=False):
        content = part.sort_values(keys)[[*keys, "value"]]
        same.setdefault(int(pd.util.hash_pandas_object(content, index=False).sum()), []).append(
            metric
        )
    shown: dict[str, list[Shown]] = {}
    for group in same.values():
        part = run.series[run.series["metric"] == group[0]]
        title = series_title(group, names.infos)
        label = series_label(names.infos.get(group[0]))
        fig = figures.curve_chart(
            part, names.colours, run.base_length, title, label, names.labels
        )
        family = family_of.get(group[0], "other")
        shown.setdefault(family, []).append(
            out.figure(fig, f"curve_{slug(group[0])}", title.replace("\n", " "))
        )
    order = tables.families(pd.DataFrame({"family": list(shown)}))
    return [(family, shown[family]) for family in order]


def strip_figures(out: Output, run: Run, notes) -> list[dict]:
    """Per condition (up to MAX_STRIPS, its lowest seed): a frame strip and an animated preview
    of every arm."""
    from metrics.video_io import read_video

    stored = {key for videos in run.videos.values() for key in videos}
    samples = [s for s in pd.unique(run.per_video["sample"]) if any(k[0] == s for k in stored)]
    if len(samples) > MAX_STRIPS:
        notes.append(f"frame strips and previews show {MAX_STRIPS} of {len(samples)} conditions")
    shown = []
    for sample in samples[:MAX_STRIPS]:
        seed = min(k[1] for k in stored if k[0] == sample)
        frames, fps = {}, 8.0
        for arm in run.arms:
            path = run.videos.get(arm, {}).get((sample, seed))
            try:
                video = read_video(path) if path else None
            except BenchError as err:
                notes.append(f"left out of the strips: {err}")
                continue
            if video is not None:
                frames[arm], fps = video.frames, video.fps or fps
        if not frames:
            continue
        image = read_image(run.conditions.get(sample), notes)
        indices = media.frame_indices(max(len(f) for f in frames.values()), run.base_length)
        title = f"{sample}, seed {seed}"
        gif = media.preview_gif(frames, fps, run.base_length)
        shown.append(
            {
                "sample": sample,
                "strip": out.figure(
                    media.strip_chart(frames, image, indices, title), f"strip_{slug(sample)}", title
                ),
                "preview": out.animation(gif, f"preview_{slug(sample)}", title),
            }
        )
    return shown


def read_image(path: Path | None, notes: list[str]) -> np.ndarray | None:
    if path is None:
        return None
    try:
        return np.asarray(Image.open(path).convert("RGB"))
    except OSError as err:
        notes.append(f"{path}: unreadable condition image ({err}); strips shown without it")
        return None


def loss_figure(out: Output, run: Run, colours) -> Shown | None:
    losses = {arm: loss for arm, loss in run.losses.items() if loss is not None and len(loss)}
    if not losses:
        return None
    return out.figure(figures.loss_chart(losses, colours), "loss", "post-tuning loss")
