"""``build_report`` and ``bench report`` on a realistic run directory: files written, a
self-contained page whose tables agree with the statistics, figures that show what they claim,
graceful degradation when optional pieces are missing, one-line errors."""

from __future__ import annotations

import io
import json
import re
import shutil
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from bench.__main__ import main
from reports import build_report
from reports.figures import arm_colours, curve_chart
from reports.media import frame_indices, preview_gif
from reports.stats import compare, summarize
from tests.fake_run import ARMS, BASE_LENGTH, CLIP_REASON, LENGTH, SAMPLES, make_run_dir


class Page(HTMLParser):
    """Every element's attributes, and the main table's cells by (arm, metric)."""

    def __init__(self, text: str):
        super().__init__()
        self.elements, self.cells, self.arm, self.cell, self.in_main = [], {}, None, None, False
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        self.elements.append((tag, attrs))
        if tag == "table":
            self.in_main = "main" in attrs.get("class", "").split()
        elif tag == "tr" and self.in_main:
            self.arm = attrs.get("data-arm")
        elif tag == "td" and self.in_main and self.arm:
            self.cell = {"class": attrs.get("class", ""), "text": ""}
            self.cells[self.arm, attrs["data-metric"]] = self.cell

    def handle_endtag(self, tag):
        if tag == "td":
            self.cell = None
        elif tag == "table":
            self.in_main = False

    def handle_data(self, data):
        if self.cell is not None:
            self.cell["text"] += data


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    return make_run_dir(tmp_path_factory.mktemp("run"))


@pytest.fixture(scope="module")
def index(run_dir):
    return build_report(run_dir)


@pytest.fixture(scope="module")
def page(index):
    return Page(index.read_text(encoding="utf-8"))


def test_writes_statistics_tables_and_figures(run_dir, index):
    assert index == run_dir / "report" / "index.html"
    per_video = pd.read_parquet(run_dir / "results" / "per_video.parquet")
    summary = pd.read_csv(run_dir / "results" / "summary.csv")
    np.testing.assert_allclose(summary["ci_low"], summarize(per_video)["ci_low"], rtol=1e-12)
    paired = pd.read_csv(run_dir / "results" / "paired.csv")
    expected = compare(per_video, exclude=["svd"])  # svd runs at L: not like for like
    np.testing.assert_allclose(paired["p_holm"], expected["p_holm"], rtol=1e-12)
    assert "svd" not in set(paired["arm"])
    main_csv = pd.read_csv(run_dir / "report" / "tables" / "main.csv")
    assert list(main_csv["arm"]) == [f"svd ({BASE_LENGTH} frames)", *ARMS[1:]]  # run at L
    assert "warping_error ↓" in main_csv.columns and "motion_magnitude" in main_csv.columns
    figures = run_dir / "report" / "figures"
    for png in figures.glob("*.png"):
        assert png.with_suffix(".svg").is_file(), png.name
        assert png.with_suffix(".svg").read_text().lstrip().startswith("<?xml")
    previews = {p.stem for p in figures.glob("preview_*.gif")}
    assert len(previews) == 4 and previews <= {f"preview_{s}" for s in SAMPLES}  # MAX_STRIPS
    assert (figures / "loss.png").is_file() and (figures / "curve_psnr.png").is_file()
    assert not (figures / "curve_ssim_condition_slope.png").exists()  # same series, one chart
    assert not (figures / "bars_clip_condition.png").exists()  # no value to draw


def test_page_is_self_contained(index, page):
    links = [a.get(k) for _, a in page.elements for k in ("src", "href") if a.get(k)]
    assert links and all(link.startswith(("data:", "#")) for link in links)
    assert not any(tag in ("script", "iframe", "object") for tag, _ in page.elements)
    text = index.read_text(encoding="utf-8")
    assert "http://" not in text and "https://" not in text and "@media print" in text


def test_main_table_best_per_column_and_marks_against_the_baseline(run_dir, page):
    assert {arm for arm, _ in page.cells} == set(ARMS)
    summary = pd.read_csv(run_dir / "results" / "summary.csv")
    errors = summary[summary["metric"] == "warping_error"].set_index("arm")["mean"]
    best = {
        arm
        for (arm, metric), c in page.cells.items()
        if metric == "warping_error" and "best" in c["class"].split()
    }
    assert best == {errors.drop("svd").idxmin()}  # lower is better; svd ran at L, not compared
    assert not any("best" in c["class"] for (arm, _), c in page.cells.items() if arm == "svd")
    assert not any(
        "best" in c["class"] for (_, m), c in page.cells.items() if m == "motion_magnitude"
    )
    assert "▼" in page.cells["exsvd-static-pe", "warping_error"]["text"]  # planted, worse
    assert "▼" not in page.cells["exsvd-no-idconv", "warping_error"]["text"]  # planted null
    assert "[" in page.cells["exsvd", "psnr"]["text"]  # the CI is shown


def test_an_arm_of_another_length_is_shown_not_tested(run_dir, index, page):
    text = index.read_text(encoding="utf-8")
    untested = f"svd runs at {BASE_LENGTH} frames: it is shown, not tested against exsvd."
    assert text.count(untested) == 2  # in the legends of the table and of the deltas
    assert not any(m in c["text"] for (arm, _), c in page.cells.items() if arm == "svd"
                   for m in "▲▼◆")
    row = re.search(r'<tr data-delta-arm="svd">(.*?)</tr>', text, re.S)[1]
    assert re.findall(r"<td[^>]*>([^<]*)</td>", row) == ["–"] * row.count("<td")
    assert f"svd ({BASE_LENGTH} frames)</th>" in row
    figures = run_dir / "report" / "figures"
    for chart in ("bars_psnr.svg", "curve_psnr.svg"):
        assert f">svd ({BASE_LENGTH} frames)</text>" in (figures / chart).read_text(), chart


def test_charts_name_their_axes_by_the_metrics_units(run_dir, index):
    figures = run_dir / "report" / "figures"
    assert ">dB (data range 1)</text>" in (figures / "bars_psnr.svg").read_text()
    curve = (figures / "curve_ssim_condition.svg").read_text()
    assert ">SSIM to the condition per frame</text>" in curve and ">SSIM</text>" in curve
    deltas = (figures / "deltas_flicker.svg").read_text()
    assert ">arm − exsvd (squared RGB distance, pixels in</text>" in deltas


def test_curves_of_slopes_are_titled_by_what_they_plot():
    from reports.metadata import metric_infos, series_label, series_title

    infos = metric_infos(["sharpness_drift", "ssim_condition", "ssim_condition_slope", "x"])
    assert set(infos) == {"sharpness_drift", "ssim_condition", "ssim_condition_slope"}
    drift = series_title(["sharpness_drift"], infos)
    assert drift == "sharpness relative to frame 0 per frame\n(sharpness_drift)"
    assert series_label(infos["sharpness_drift"]) == "change relative to frame 0"
    pair = series_title(["ssim_condition", "ssim_condition_slope"], infos)
    assert pair.startswith("SSIM to the condition per frame\n")
    assert series_label(infos["ssim_condition_slope"]) == "SSIM"
    assert series_title(["ssim_condition", "x"], infos) == "ssim_condition = x"


def test_columns_without_any_value_are_left_out_and_named_below(index, page):
    text = index.read_text(encoding="utf-8")
    assert 'data-metric="clip_condition"' not in text  # neither in the main nor deltas table
    assert {metric for _, metric in page.cells} >= {"ssim_condition", "psnr"}
    note = "not computed: clip_condition (weights unavailable; see Unavailable)"
    assert f'<p class="muted" data-empty="consistency">{note}</p>' in text
    from reports.tables import empty_text

    assert empty_text(["a", "b"], {"a"}) == "not computed: a, b (see Unavailable)"
    assert empty_text([], {"a"}) == ""


@pytest.mark.parametrize(
    ("value", "signed", "text"),
    [(0.0000185, True, "+0.0000185"), (2, False, "2.00"), (1.0017, False, "1.00"),
     (21.61, False, "21.6"), (1234.6, False, "1235"), (0.9996, False, "1.00"),
     (-0.00123, True, "-0.00123"), (0.0, True, "+0.00"), (2.5e-7, False, "2.50e-07"),
     (3.21e7, True, "+3.21e+07"), (np.nan, False, "–")],
)
def test_numbers_keep_three_significant_digits_without_exponents(value, signed, text):
    from reports.tables import ci_text, fmt

    assert fmt(value, signed) == text
    assert ci_text(0.892, 2) == "[0.892, 2.00]"


def test_main_csv_cells_are_the_pages_numbers(run_dir, page):
    table = pd.read_csv(run_dir / "report" / "tables" / "main.csv").set_index("arm")
    cell = page.cells["exsvd", "psnr"]["text"]
    assert table.loc["exsvd", "psnr ↑"] == cell.replace("[", " [")
    numbers = re.findall(r"[\d.e+-]+", table.loc["exsvd", "psnr ↑"])
    assert len(numbers) == 3 and all(len(n.replace(".", "").lstrip("0")) == 3 for n in numbers)


def test_notes_say_which_weights_were_missing_and_what_flow_ran(run_dir, index):
    from reports.build import metric_notes
    from reports.metadata import metric_infos
    from reports.rundir import load_run

    text = index.read_text(encoding="utf-8")
    assert "<li>CLIP metrics not computed: weights not found (see Unavailable)</li>" in text
    assert "flow: auto" not in text  # the run records no flow setting
    run = load_run(run_dir)
    infos = metric_infos(pd.unique(run.per_video["metric"]))
    unavailable = set(run.unavailable["metric"])
    run.record["config"]["evaluate"] = {"flow": "auto"}
    assert metric_notes(run, infos, unavailable)[1] == (
        "flow: auto resolved to DIS (RAFT weights not found); warping_error, "
        "interpolation_score, motion_magnitude depend on the flow backend"
    )
    run.record["config"]["evaluate"] = {"flow": "dis"}  # chosen, not a fallback
    assert len(metric_notes(run, infos, unavailable)) == 1


def test_the_header_says_which_model_and_budget(run_dir, index):
    from reports.facts import model_text
    from reports.rundir import load_run

    assert (
        "Model: the tiny embedded model, 32 × 32 px, base length L = 8, extended to 32 frames, "
        "8 conditions × 2 seeds." in index.read_text(encoding="utf-8")
    )
    run = load_run(run_dir)
    run.record["config"]["tune"] = {"budget": "quick", "steps": 60}
    run.record["config"]["model"]["base"] = "models/svd-xt"
    assert model_text(run).startswith("models/svd-xt, 32 × 32 px")
    assert "tune budget quick (60 steps), 8 conditions" in model_text(run)


def test_headers_have_scopes_and_legends_the_marks_drawn(index, page):
    headers = [attrs for tag, attrs in page.elements if tag == "th"]
    assert headers and all(attrs.get("scope") in ("col", "row") for attrs in headers)
    text = index.read_text(encoding="utf-8")
    assert "◇" not in text and "◆ significantly different" in text  # drawn as a diamond "D"
    assert text.count('<div class="scroll"><table') == text.count("<table")  # all scroll alike


def test_what_was_run_and_what_did_not(index):
    text = index.read_text(encoding="utf-8")
    for expected in (
        "290.5 s",
        "2026-11-02T10:00:00",
        "c" * 64,
        f"{1:064x}",
        "dis",
        "base_length",
        "pan_0, zoom_1",
        "synthetic (texture scale 2.0)",
        "x0 error × sqrt(σ²+1)/σ (ExVideo), log σ ~ N(0.7, 1.6)",
        "150 (2 processes, MULTI_GPU)",  # one arm tuned data-parallel
        "8 of 96 videos",
        "flow failed: NaN in the flow field",
    ):
        assert expected in text, expected


def test_metrics_unavailable_alike_share_one_row(run_dir, index):
    text = index.read_text(encoding="utf-8")
    assert text.count(CLIP_REASON.replace("'", "&#39;")) == 1
    assert '<tr data-problem="clip_condition clip_iqa"><td>clip_condition, clip_iqa</td>' in text
    table = pd.read_csv(run_dir / "report" / "tables" / "unavailable.csv")  # one row per metric
    assert list(table["metric"]) == ["clip_condition", "clip_iqa", "interpolation_score"]


def test_curve_chart_marks_the_base_length():
    rows = [
        {"arm": arm, "sample": "s", "seed": 0, "metric": "psnr", "index": i, "value": i * 1.0}
        for arm in ARMS[:2]
        for i in range(LENGTH)
    ]
    fig = curve_chart(pd.DataFrame(rows), arm_colours(list(ARMS)), BASE_LENGTH, "psnr")
    ax = fig.axes[0]
    verticals = [line for line in ax.lines if len(set(line.get_xdata())) == 1]
    assert [line.get_xdata()[0] for line in verticals] == [BASE_LENGTH]
    assert len(ax.lines) == 3 and len(ax.collections) == 2  # a curve and a band per arm


def test_frame_indices_straddle_the_base_length():
    assert frame_indices(32, 8) == [0, 7, 8, 16, 23, 31]
    assert frame_indices(8, 8) == [0, 1, 3, 4, 6, 7]
    assert frame_indices(3, None) == [0, 1, 2]


def test_preview_plays_every_arm_to_the_longest_length():
    short = np.zeros((4, 32, 32, 3), np.uint8)
    long = np.full((10, 32, 32, 3), 200, np.uint8)
    long[:, :, :, 0] = np.arange(10)[:, None, None] * 20  # every frame differs
    gif = Image.open(io.BytesIO(preview_gif({"a": short, "b": long}, 8.0, 4)))
    assert gif.n_frames == 10 and gif.width == 2 * 128 + 2
    gif.seek(9)
    frame = np.asarray(gif.convert("RGB"))
    assert 150 < frame[40:100, 20:100].mean() < 180  # the short arm holds its last frame, faded
    big = Image.open(io.BytesIO(preview_gif({"a": np.zeros((2, 512, 384, 3), np.uint8)}, 8, 4)))
    assert big.size == (96, 128 + 2 * 14)  # large videos shrink, keeping their aspect


def test_degrades_gracefully_and_drops_stale_figures(run_dir, index, tmp_path):
    run = shutil.copytree(run_dir, tmp_path / "run")
    for piece in ("tune", "generate/svd", "timings.json", "results/series.parquet"):
        path = run / piece
        shutil.rmtree(path) if path.is_dir() else path.unlink()
    per_video = pd.read_parquet(run / "results" / "per_video.parquet")
    per_video[per_video["arm"] != "exsvd"].to_parquet(run / "results" / "per_video.parquet")
    text = build_report(run).read_text(encoding="utf-8")
    for note in (
        "timings.json is missing",
        "series.parquet is missing",
        "baseline arm &#39;exsvd&#39; is missing",
        "No post-tuning loss curve",
    ):
        assert note in text, note
    paired = pd.read_csv(run / "results" / "paired.csv")
    assert paired.empty and "p_holm" in paired.columns
    left = {p.name for p in (run / "report" / "figures").iterdir()}
    assert not any(name.startswith(("loss", "curve_", "deltas_")) for name in left)
    assert "strip_pan_0.png" in left


def test_cli_rebuilds_and_reports_errors_in_one_line(index, run_dir, tmp_path, capsys):
    assert main(["report", str(run_dir)]) == 0
    assert str(index) in capsys.readouterr().out
    (tmp_path / "results").mkdir()
    assert main(["report", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and err.startswith("error:") and "per_video.parquet" in err
    (tmp_path / "results" / "per_video.parquet").write_bytes(b"not parquet")
    assert main(["report", str(tmp_path)]) == 2
    assert "unreadable" in capsys.readouterr().err


def test_videos_the_results_are_not_about_stay_out_of_the_report(run_dir, tmp_path):
    from reports.rundir import load_run

    copy = Path(shutil.copytree(run_dir, tmp_path / "run"))
    stray = copy / "generate" / "exsvd" / f"{SAMPLES[0]}_seed9.mp4"  # an earlier config's seed
    shutil.copy(next((copy / "generate" / "exsvd").glob("*.mp4")), stray)
    run = load_run(copy)
    scored = set(zip(run.per_video["sample"], run.per_video["seed"], strict=True))
    assert (SAMPLES[0], 9) not in run.videos["exsvd"] and set(run.videos["exsvd"]) <= scored


def test_the_report_says_when_run_json_may_not_match_the_results(run_dir):
    from reports.build import record_notes
    from reports.facts import timings
    from reports.rundir import load_run

    run = load_run(run_dir)
    assert not record_notes(run, in_run=False)
    run.record = {**run.record, "finished": None, "versions": {"diffusers": "0.42.1"}}
    (unfinished,) = record_notes(run, in_run=False)
    assert "did not finish" in unfinished and "--resume" in unfinished
    assert not record_notes(run, in_run=True)  # the report of the run itself: all stages done
    run.record["earlier_environments"] = [{"versions": {"diffusers": "0.40.0"}, "hardware": {}}]
    assert "earlier environment (diffusers 0.40.0, other hardware" in record_notes(run, True)[0]
    run.timings = {k: v for k, v in run.timings.items() if k != "finished"}
    assert timings(run, in_run=True)["finished"].startswith("with this report")


def test_charts_never_use_colour_alone():
    from matplotlib.legend import Legend

    from reports.figures import delta_chart, line_style

    rows = [
        {"arm": arm, "metric": metric, "family": "motion", "higher_is_better": higher,
         "baseline": "exsvd", "delta_mean": 1.0, "ci_low": 0.5, "ci_high": 1.5,
         "significant": significant, "better": better}
        for arm, metric, higher, significant, better in (
            ("a", "m1", True, True, True),
            ("b", "m1", True, False, False),
            ("a", "m2", pd.NA, True, pd.NA),
        )
    ]
    fig = delta_chart(pd.DataFrame(rows), arm_colours(["a", "b"]))
    shapes = {line.get_marker() for ax in fig.axes for line in ax.lines if line.get_marker()}
    assert {"^", "o", "D"} <= shapes  # better, n.s., different (descriptive): three shapes
    (legend,) = [child for child in fig.get_children() if isinstance(child, Legend)]
    texts = {t.get_text() for t in legend.get_texts()}
    assert texts == {"better", "n.s.", "different (descriptive)"}
    colours = arm_colours(list(ARMS))
    pairs = {(colours[arm], line_style(colours, arm)) for arm in ARMS}
    assert len(pairs) == len(ARMS) and len(set(colours.values())) == len(ARMS)


def test_damaged_optional_files_are_left_out_with_a_note(run_dir, tmp_path):
    run = Path(shutil.copytree(run_dir, tmp_path / "run"))  # one build for all four: 15 s each
    (run / "results" / "unavailable.csv").write_text("{garbage")
    (run / "timings.json").write_text("[1, 2]")
    (run / "generate" / "exsvd" / "manifest.json").write_text('"x"')
    pd.DataFrame({"a": [1]}).to_parquet(run / "results" / "series.parquet")
    text = build_report(run).read_text(encoding="utf-8")
    for note in ("results/unavailable.csv lacks columns", "timings.json is not a JSON object",
                 "generate/exsvd/manifest.json is not a JSON object",
                 "results/series.parquet lacks columns"):
        assert note in text, note


def edit_json(relative: str, change):
    """A damage to ``relative``: ``change`` applied to its parsed JSON in place."""

    def damage(run: Path) -> None:
        data = json.loads((run / relative).read_text())
        change(data)
        (run / relative).write_text(json.dumps(data))

    return damage


def edit_table(relative: str, change):
    """A damage to the table ``relative`` (parquet or CSV): ``change`` of its frame."""

    def damage(run: Path) -> None:
        if relative.endswith(".parquet"):
            change(pd.read_parquet(run / relative)).to_parquet(run / relative)
        else:
            change(pd.read_csv(run / relative)).to_csv(run / relative, index=False)

    return damage


# damage inside optional files that parse: each crashed the build before
INNER_DAMAGE = {
    "timings.json has stages of the wrong type (list)": edit_json(
        "timings.json", lambda d: d.update(stages=[1])
    ),
    "run.json has config.model.base_length of the wrong type (string)": edit_json(
        "run.json", lambda d: d["config"]["model"].update(base_length="eight")
    ),
    "run.json has earlier_environments[0] of the wrong type (list)": edit_json(
        "run.json", lambda d: d.update(earlier_environments=[["torch"]])
    ),
    "generate/exsvd/manifest.json has generation of the wrong type (null)": edit_json(
        "generate/exsvd/manifest.json", lambda d: d.update(generation=None)
    ),
    "generate/svd/manifest.json has weights_sha256.unet of the wrong type (number)": edit_json(
        "generate/svd/manifest.json", lambda d: d["weights_sha256"].update(unet=7)
    ),
    "tune/exsvd/training.json has launch of the wrong type (list)": edit_json(
        "tune/exsvd/training.json", lambda d: d.update(launch=[2])
    ),
    "tune/exsvd-cyclic-pe/training.json has parameters.pe of the wrong type (string)": edit_json(
        "tune/exsvd-cyclic-pe/training.json", lambda d: d["parameters"].update(pe="many")
    ),
    "tune/exsvd-static-pe/loss.csv has non-numeric columns ['loss']": edit_table(
        "tune/exsvd-static-pe/loss.csv", lambda t: t.assign(loss=t["loss"].astype(str) + "?")
    ),
    "results/series.parquet has non-numeric columns ['value']": edit_table(
        "results/series.parquet", lambda t: t.assign(value=t["value"].astype(str))
    ),
    "results/series.parquet has arms the per-video results lack ['ghost']": edit_table(
        "results/series.parquet", lambda t: t.replace({"arm": {"svd": "ghost"}})
    ),
}


@pytest.mark.parametrize("note", INNER_DAMAGE)
def test_damage_inside_an_optional_file_leaves_the_file_out(run_dir, tmp_path, note):
    from reports.rundir import load_run

    run = Path(shutil.copytree(run_dir, tmp_path / "run", ignore=shutil.ignore_patterns("*.mp4")))
    INNER_DAMAGE[note](run)
    assert f"{note}; left out" in load_run(run).notes


def test_the_report_builds_around_damage_inside_optional_files(run_dir, tmp_path):
    run = Path(shutil.copytree(run_dir, tmp_path / "run"))  # one build for all: 15 s each
    for damage in INNER_DAMAGE.values():
        damage(run)
    assert main(["report", str(run)]) == 0
    text = (run / "report" / "index.html").read_text(encoding="utf-8")
    for note in INNER_DAMAGE:  # a file's first damage found is the one its note names
        assert re.search(rf"{re.escape(note.split()[0])} has [^<]*; left out", text), note
    assert "290.5 s" not in text and "2026-11-02T10:00:00" not in text  # left out, not shown


@pytest.mark.parametrize(
    ("piece", "make"),
    [("report", Path.touch), ("results/summary.csv", Path.mkdir), ("report/tables", Path.touch),
     ("report/figures/loss.png", Path.mkdir), ("report/figures/preview_pan_0.gif", Path.mkdir)],
)
def test_output_paths_in_the_way_are_one_line_errors(run_dir, tmp_path, capsys, piece, make):
    run = Path(shutil.copytree(run_dir, tmp_path / "run"))
    shutil.rmtree(run / "report", ignore_errors=True)
    (run / piece).unlink(missing_ok=True)
    (run / piece).parent.mkdir(parents=True, exist_ok=True)
    make(run / piece)
    assert main(["report", str(run)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and err.startswith(f"error: {run / piece}: ")
    assert "move or remove it" in err


def test_versions_name_a_package_once_where_run_json_and_the_evaluator_agree():
    from reports.facts import merged_versions

    run = {"exsvd-bench": "0.1.0", "opencv-python-headless": "5.0.10.93", "torch": "2.14.1"}
    same = {"exsvd_bench": "0.1.0", "opencv": "5.0.10", "torch": "2.14.1", "python": "3.11.7"}
    assert merged_versions(run, same) == {**run, "python": "3.11.7"}
    other = {"exsvd_bench": "0.2.0", "opencv": "5.0.1", "torch": "2.13.0 | 2.14.1"}
    assert merged_versions(run, other) == {**run, **other}  # evaluated elsewhere: both shown
    assert merged_versions({}, same) == same  # no run.json: the evaluator's own
