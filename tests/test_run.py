"""``bench run`` end to end on a random-init tiny pipeline (4 -> 8 frames, 2 conditions, 4 arms,
3 tuning steps): the run-directory contract, caching, --force, corrupt files, a killed run
resumed, and two accelerate processes merging to the single-process results."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image

from bench.__main__ import main
from metrics.video_io import read_video

ARMS = ["svd", "svd-long", "exsvd", "exsvd-cyclic-pe"]
VIDEOS = len(ARMS) * 2  # 2 conditions x 1 seed
ROOT = Path(__file__).parent.parent

try:  # the report stage needs the reports package (issue 8, built beside bench run)
    from reports import build_report  # noqa: F401
    from reports.stats import compare, summarize  # noqa: F401
except ImportError as err:
    pytestmark = pytest.mark.skip(reason=f"reports package not importable yet ({err})")


@pytest.fixture(scope="session")
def config_file(tmp_path_factory) -> Path:
    from variants.tiny import tiny_pipeline

    folder = tmp_path_factory.mktemp("bench-run")
    tiny_pipeline(0).save_pretrained(folder / "tiny-svd")
    config = folder / "tiny.toml"
    config.write_text(f"""
arms = {json.dumps(ARMS)}
[model]
base = "{folder / "tiny-svd"}"
base_length = 4
extended_length = 8
bounce_low = 2
[conditions]
count = 2
[tune]
steps = 3
checkpoint_every = 1
[generation]
steps = 4
decode_chunk = 4
[evaluate]
metrics = ["warping_error", "frame_diff_flicker", "motion_magnitude", "ssim_condition", "psnr"]
flow = "dis"
""")
    return config


@pytest.fixture(scope="session")
def baseline(config_file, tmp_path_factory) -> Path:
    """One uninterrupted single-process run that the other tests copy or compare with."""
    run = tmp_path_factory.mktemp("baseline") / "run"
    assert main(["run", "--config", str(config_file), "--out", str(run)]) == 0
    return run


def bench(config: Path, run: Path, *argv: str) -> int:
    return main(["run", "--config", str(config), "--out", str(run), *argv])


def computed(run: Path) -> dict[str, int]:
    units = json.loads((run / "timings.json").read_text())["units"]
    return {stage: counts["computed"] for stage, counts in units.items()}


def copy(run: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(run, tmp_path / "run"))


def per_video(run: Path) -> pd.DataFrame:
    return pd.read_parquet(run / "results" / "per_video.parquet")


def subprocess_env() -> dict[str, str]:
    """CPU results are bitwise equal only at the same thread count as this process. Two such
    processes oversubscribe the cores, where OpenMP threads spinning in wait for a descheduled
    one made the two-process run ~10x slower: waiting threads sleep instead."""
    threads = str(torch.get_num_threads())
    return {**os.environ, "OMP_NUM_THREADS": threads, "MKL_NUM_THREADS": threads,
            "OMP_WAIT_POLICY": "PASSIVE"}


def test_a_run_writes_the_run_directory_contract(baseline):
    record = json.loads((baseline / "run.json").read_text())
    assert set(record) == {"config", "config_hash", "created", "finished", "versions", "hardware"}
    assert record["config"]["arms"] == ARMS and record["config"]["model"]["base_length"] == 4
    timings = json.loads((baseline / "timings.json").read_text())
    assert {"tune", "generate", "evaluate", "aggregate", "report"} <= set(timings["stages"])
    assert timings["started"] and timings["finished"]
    for sample in ("pan-00", "zoom-01"):
        assert read_video(baseline / "conditions" / f"{sample}.mp4").num_frames == 8
        assert (baseline / "conditions" / f"{sample}.png").is_file()
    for arm in ("exsvd", "exsvd-cyclic-pe"):
        tuned = baseline / "tune" / arm
        assert (tuned / "unet" / "config.json").is_file() and (tuned / "unet_ema").is_dir()
        assert json.loads((tuned / "training.json").read_text())["steps_done"] == 3
        assert (tuned / "loss.csv").read_text().startswith("step,loss")
        assert not (tuned / "checkpoint.pt").exists()
    assert not (baseline / "tune" / "svd").exists()
    for arm in ARMS:
        manifest = json.loads((baseline / "generate" / arm / "manifest.json").read_text())
        assert set(manifest) == {"arm", "generation", "weights_sha256", "videos"}
        assert manifest["generation"]["frames"] == (4 if arm == "svd" else 8)
        assert [(v["condition"], v["seed"]) for v in manifest["videos"]] == [
            ("pan-00", 0),
            ("zoom-01", 0),
        ]
        for video in manifest["videos"]:
            frames = read_video(baseline / "generate" / arm / video["file"]).num_frames
            assert frames == manifest["generation"]["frames"]
            assert (baseline / "evaluate" / arm / video["file"].replace(".mp4", ".json")).is_file()
    table = per_video(baseline)
    assert list(table.columns) == [
        "arm",
        "sample",
        "seed",
        "metric",
        "family",
        "value",
        "higher_is_better",
        "status",
        "detail",
        "provenance",
    ]
    assert len(table) == VIDEOS * 5 and set(table.status) == {"ok"}
    assert table.value.notna().all() and json.loads(table.provenance[0])["flow_backend"] == "dis"
    assert pd.read_csv(baseline / "results" / "per_video.csv").shape == table.shape
    series = pd.read_parquet(baseline / "results" / "series.parquet")
    assert list(series.columns) == ["arm", "sample", "seed", "metric", "index", "value"]
    for name in ("unavailable.csv", "summary.csv", "paired.csv"):
        assert (baseline / "results" / name).is_file()
    assert (baseline / "report" / "index.html").is_file()


def test_aggregate_tests_no_arm_of_another_length_against_exsvd(baseline, tmp_path):
    """svd runs at the base length: its means are over other frames, so the aggregate stage's
    paired.csv (what a run stopped before its report keeps) leaves it out, as the report does."""
    from types import SimpleNamespace

    from bench.stages.aggregate import write_results

    evaluated = [SimpleNamespace(outputs=(path,))
                 for path in sorted(baseline.glob("evaluate/*/[!.]*.json"))]
    write_results(SimpleNamespace(record=tmp_path / ".done.json"), evaluated)
    tested = set(pd.read_csv(tmp_path / "paired.csv")["arm"])
    assert tested == set(ARMS) - {"svd", "exsvd"}
    assert tested == set(pd.read_csv(baseline / "results" / "paired.csv")["arm"])


def test_a_rerun_recomputes_nothing(baseline, config_file, tmp_path):
    run = copy(baseline, tmp_path)
    videos = sorted(run.glob("generate/*/*.mp4"))
    stamps = [path.stat().st_mtime_ns for path in videos]
    assert bench(config_file, run) == 0
    assert set(computed(run).values()) == {0}
    assert [path.stat().st_mtime_ns for path in videos] == stamps


def test_a_changed_setting_recomputes_only_what_depends_on_it(baseline, config_file, tmp_path):
    run = copy(baseline, tmp_path)
    assert bench(config_file, run, "--resume", "--set", "generation.steps=3") == 0
    assert computed(run) == {
        "conditions": 0,
        "tune": 0,
        "generate": VIDEOS,
        "evaluate": VIDEOS,
        "aggregate": 1,
        "report": 1,
    }


def test_settings_that_leave_the_weights_alone_do_not_retune(baseline, config_file, tmp_path):
    run = copy(baseline, tmp_path)
    settings = ["tune.checkpoint_every=2", "tune.checkpointing='full'", "tune.deterministic=true"]
    assert bench(config_file, run, "--resume", *[f"--set={s}" for s in settings]) == 0
    assert computed(run)["tune"] == 0 and computed(run)["generate"] == 0


def test_a_hand_built_report_is_not_rebuilt_by_the_next_run(baseline, config_file, tmp_path):
    run = copy(baseline, tmp_path)
    assert main(["report", str(run)]) == 0
    assert bench(config_file, run) == 0
    assert computed(run)["report"] == 0


def test_run_json_keeps_the_environment_that_computed_the_results(
    baseline, config_file, tmp_path
):
    run = copy(baseline, tmp_path)
    record = json.loads((run / "run.json").read_text())
    assert record["finished"] and "exsvd-bench commit" in record["versions"]
    record["versions"]["diffusers"] = "0.0.1"  # as if computed under another diffusers
    (run / "run.json").write_text(json.dumps(record))
    assert bench(config_file, run) == 0  # all cached: the results are still 0.0.1's
    assert json.loads((run / "run.json").read_text())["versions"]["diffusers"] == "0.0.1"
    assert bench(config_file, run, "--force", "aggregate") == 0  # computes: today's versions
    after = json.loads((run / "run.json").read_text())
    assert after["versions"]["diffusers"] != "0.0.1"
    assert after["earlier_environments"][0]["versions"]["diffusers"] == "0.0.1"


def test_force_redoes_the_stage_and_what_follows(baseline, config_file, tmp_path):
    run = copy(baseline, tmp_path)
    assert bench(config_file, run, "--force", "generate") == 0
    assert computed(run) == {
        "conditions": 0,
        "tune": 0,
        "generate": VIDEOS,
        "evaluate": VIDEOS,
        "aggregate": 1,
        "report": 1,
    }
    pd.testing.assert_frame_equal(per_video(run), per_video(baseline))


def test_a_truncated_video_is_detected_and_regenerated(baseline, config_file, tmp_path):
    run = copy(baseline, tmp_path)
    video = run / "generate" / "exsvd" / "pan-00_seed0.mp4"
    video.write_bytes(video.read_bytes()[: video.stat().st_size // 2])
    assert bench(config_file, run) == 0
    assert computed(run)["generate"] == 1 and computed(run)["tune"] == 0
    assert video.read_bytes() == (baseline / video.relative_to(run)).read_bytes()


def test_results_recomputed_to_other_bytes_are_aggregated_and_reported_again(
    baseline, config_file, tmp_path, monkeypatch
):
    """As on a GPU, where a recompute under the same key need not repeat itself bit for bit."""
    from bench.stages import evaluate

    run, scored = copy(baseline, tmp_path), evaluate.Scorer.__call__
    result = run / "evaluate" / "exsvd" / "pan-00_seed0.json"

    def rescored(self, unit):
        extra = scored(self, unit)
        payload = json.loads(unit.outputs[0].read_text())
        payload["scalars"]["psnr"] += 1.0
        unit.outputs[0].write_text(json.dumps(payload))
        return extra

    monkeypatch.setattr(evaluate.Scorer, "__call__", rescored)
    result.unlink()
    assert bench(config_file, run) == 0
    assert computed(run)["evaluate"] == 1
    assert computed(run)["aggregate"] == 1 and computed(run)["report"] == 1
    rows = [per_video(r).set_index(["arm", "sample", "metric"]) for r in (run, baseline)]
    row = ("exsvd", "pan-00", "psnr")
    assert rows[0].loc[row, "value"] == pytest.approx(rows[1].loc[row, "value"] + 1.0)


def test_ctrl_c_stops_cleanly_and_nothing_half_done_is_kept(
    baseline, config_file, tmp_path, monkeypatch
):
    import variants.generate

    run, real, calls = copy(baseline, tmp_path), variants.generate.generate, []

    def interrupted(*args, **kwargs):
        calls.append(args)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(variants.generate, "generate", interrupted)
    assert bench(config_file, run, "--force", "generate") == 130
    monkeypatch.setattr(variants.generate, "generate", real)
    assert bench(config_file, run) == 0
    assert computed(run) == {
        "conditions": 0,
        "tune": 0,
        "generate": 1,  # the video interrupted mid-way; the others are done and intact
        "evaluate": 0,  # same videos, same checksums
        "aggregate": 0,
        "report": 0,
    }
    pd.testing.assert_frame_equal(per_video(run), per_video(baseline))


def test_conditions_and_references_from_a_video_folder(baseline, config_file, tmp_path, capsys):
    from metrics.synthetic import make_video
    from metrics.video_io import write_video

    folder = tmp_path / "videos"
    folder.mkdir()
    for name, kind in (("street", "pan"), ("garden", "zoom")):
        frames = make_video(kind, frames=10, size=(72, 96), seed=7).frames
        write_video(folder / f"{name}.mp4", frames, lossless=True)
    (folder / "street.webp").write_bytes(b"a poster, not read")
    run = copy(baseline, tmp_path)
    assert bench(config_file, run, "--resume", "--set", f"conditions.source={folder}") == 0
    assert computed(run)["conditions"] == 2 and computed(run)["tune"] == 0
    err = capsys.readouterr().err
    assert "skipped 1 file that is not a video or frame folder: street.webp" in err, err
    truth = read_video(run / "conditions" / "street.mp4")
    assert truth.frames.shape == (8, 64, 64, 3)  # centre-cropped, resized, extended length
    table = per_video(run)
    assert set(table["sample"]) == {"street", "garden"} and set(table.status) == {"ok"}
    moved = Path(shutil.copytree(folder, tmp_path / "moved"))  # the same videos elsewhere
    assert bench(config_file, run, "--resume", "--set", f"conditions.source={moved}") == 0
    assert set(computed(run).values()) <= {0, 1} and computed(run)["generate"] == 0
    frames = moved / "garden"  # a folder of numbered frames is a video too
    frames.mkdir()
    for i, frame in enumerate(make_video("zoom", frames=10, size=(64, 64), seed=7).frames):
        Image.fromarray(frame).save(frames / f"{i:04d}.png")
    (moved / "garden.mp4").unlink()
    assert bench(config_file, run, "--resume", "--set", f"conditions.source={moved}") == 0
    assert computed(run)["conditions"] == 1
    write_video(folder / "short.mp4", make_video("pan", frames=5, size=(64, 64)).frames)
    assert bench(config_file, run, "--resume", "--set", f"conditions.source={folder}") == 2
    err = capsys.readouterr().err.splitlines()
    assert "short.mp4: 5 frames, fewer than extended_length 8" in err[-1]


def test_tuning_ignores_what_it_does_not_use(baseline, config_file, tmp_path, monkeypatch):
    """Tuning runs in float32 whatever model.dtype; a recompute starts from a clean folder; a
    hidden file in a data folder changes nothing."""
    from bench.run_cache import folder_stamp
    from bench.stages import tune

    run = copy(baseline, tmp_path)
    # one arm: generating in bfloat16 on a CPU is slow (70 s for all four)
    dtype = ("--variants", "exsvd", "--set", "model.dtype='bfloat16'")
    assert bench(config_file, run, "--resume", *dtype) == 0
    assert computed(run)["tune"] == 0 and computed(run)["generate"] == 2
    stale = run / "tune" / "exsvd" / "loss.csv"

    def stop(*args):  # what the recompute finds when it starts training
        assert not stale.exists()  # a released-weights recompute writes no curve of its own
        raise KeyboardInterrupt

    monkeypatch.setattr(tune, "train", stop)
    assert stale.exists() and bench(config_file, run, "--force", "tune") == 130
    data = tmp_path / "data"
    data.mkdir()
    np.save(data / "a.npy", np.zeros((9, 8, 8, 3), np.uint8))
    before = folder_stamp(data)
    (data / ".DS_Store").write_text("x")
    (data / "notes.txt").write_text("x")
    assert folder_stamp(data) == before


def test_the_arms_a_process_tunes_share_their_clips_until_the_last(
    baseline, config_file, tmp_path, monkeypatch
):
    from bench.stages import tune

    run, sources = copy(baseline, tmp_path), []

    def stop(config, pipeline, arm, folder, progress, data):
        sources.append(data())
        raise KeyboardInterrupt

    monkeypatch.setattr(tune, "train", stop)
    assert bench(config_file, run, "--force", "tune") == 130  # both tuned arms to train
    assert bench(config_file, run) == 130  # the first arm's record went: only it to train
    assert [(clips.runs_left, clips.max_bytes > 0) for clips in sources] == [(2, True), (1, False)]


def test_a_run_killed_before_an_arms_record_resumes_its_tuning(
    baseline, config_file, tmp_path, monkeypatch
):
    from bench.stages import context, tune

    run, resumed, real = copy(baseline, tmp_path), [], tune.train
    folder = run / "tune" / "exsvd"

    def killed(*args, **kwargs):  # between the arm's outputs and its done record
        raise KeyboardInterrupt

    monkeypatch.setattr(context, "write_record", killed)
    assert bench(config_file, run, "--force", "tune") == 130
    assert (folder / "checkpoint.pt").is_file() and (folder / ".pending.json").is_file()
    monkeypatch.undo()

    def train(config, pipeline, arm, folder, *args):
        resumed.append((folder / "checkpoint.pt").is_file())
        return real(config, pipeline, arm, folder, *args)

    monkeypatch.setattr(tune, "train", train)
    assert bench(config_file, run) == 0
    assert resumed == [True] and computed(run)["tune"] == 1 and computed(run)["generate"] == 0
    assert not (folder / "checkpoint.pt").exists() and not (folder / ".pending.json").exists()
    loss = (baseline / "tune" / "exsvd" / "loss.csv").read_text()
    assert (folder / "loss.csv").read_text() == loss


def test_missing_weights_are_announced_and_recorded_as_unavailable(
    baseline, config_file, tmp_path, capsys
):
    run = copy(baseline, tmp_path)
    metrics = '["warping_error", "lpips_condition"]'
    assert bench(config_file, run, "--resume", "--set", f"evaluate.metrics={metrics}") == 0
    err = capsys.readouterr().err
    assert "warning: lpips_condition unavailable" in err and "bench weights fetch" in err
    assert computed(run)["generate"] == 0
    table = per_video(run).set_index("metric")
    assert set(table.loc["lpips_condition", "status"]) == {"unavailable"}
    assert set(table.loc["warping_error", "status"]) == {"ok"}
    missing = pd.read_csv(run / "results" / "unavailable.csv")
    assert list(missing.metric) == ["lpips_condition"]


def test_a_killed_run_resumes_to_the_same_results(baseline, config_file, tmp_path):
    run = tmp_path / "run"
    command = [
        sys.executable,
        "-m",
        "bench",
        "run",
        "--config",
        str(config_file),
        "--out",
        str(run),
    ]
    with open(tmp_path / "output.txt", "w") as output:
        process = subprocess.Popen(
            command, cwd=ROOT, env=subprocess_env(), stdout=output, stderr=subprocess.STDOUT
        )
        deadline = time.monotonic() + 120
        while not list(run.glob("generate/*/.*.done.json")) and time.monotonic() < deadline:
            assert process.poll() is None, "the run ended before it could be killed"
            time.sleep(0.05)
        process.send_signal(signal.SIGKILL)
        assert process.wait() == -signal.SIGKILL
    # its arm post-tuned in this process: no DeepSpeed import (its "no GPU" warning on CPUs)
    assert "WARNING" not in (tmp_path / "output.txt").read_text()
    assert not (run / "results").exists()
    assert bench(config_file, run) == 0
    assert computed(run)["tune"] == 0 and computed(run)["generate"] < VIDEOS
    pd.testing.assert_frame_equal(per_video(run), per_video(baseline))


def test_an_arm_post_tunes_data_parallel_over_two_processes(baseline, config_file, tmp_path,
                                                             capfd):
    run = copy(baseline, tmp_path)
    argv = ("--variants", "exsvd", "--set", "tune.processes=2")
    assert bench(config_file, run, "--resume", *argv) == 0
    assert "WARNING" not in "".join(capfd.readouterr())  # e.g. DeepSpeed's "no GPU" on CPUs
    assert computed(run)["tune"] == 1 and computed(run)["generate"] == 2
    tuned, alone = run / "tune" / "exsvd", baseline / "tune" / "exsvd"
    record = json.loads((tuned / "training.json").read_text())
    assert record["launch"] == {"processes": 2, "distributed": "MULTI_CPU"}
    losses = [pd.read_csv(folder / "loss.csv").loss for folder in (tuned, alone)]
    # step 1 starts from the same weights, but process 1 adds clips of its own
    assert len(losses[0]) == 3 and abs(losses[0][0] - losses[1][0]) > 1e-4
    assert not (tuned / "checkpoint.pt").exists() and not (tuned / "deepspeed").exists()
    assert bench(config_file, run, *argv) == 0 and computed(run)["tune"] == 0


def test_unusable_training_videos_fail_in_one_line_before_the_launch(config_file, tmp_path,
                                                                      capsys):
    from metrics.synthetic import make_video
    from metrics.video_io import write_video

    (tmp_path / "short").mkdir()
    write_video(tmp_path / "short" / "a.mp4", make_video("pan", frames=4, size=(64, 64)).frames)
    argv = ("--variants", "exsvd", "--set", "tune.processes=2",
            "--set", f'tune.data="{tmp_path / "short"}"')
    assert bench(config_file, tmp_path / "run", *argv) == 2
    err = capsys.readouterr().err
    assert err.count("error: ") == 1 and "no usable training video" in err, err
    assert "Traceback" not in err and "FAILED" not in err  # no launcher's report
    index = json.loads((tmp_path / "run" / "tune" / ".data-index.json").read_text())
    assert [entry[1] for entry in index.values()] == [4]  # the lengths, kept for the next scan


def test_an_edited_deepspeed_config_retunes(tmp_path, monkeypatch):
    from bench.run_cache import Checksums
    from bench.run_config import RunConfig, TuneSettings
    from bench.run_shard import Shard
    from bench.stages import tune
    from bench.stages.context import Context

    config = tmp_path / "zero2.json"
    config.write_text(tune.DEEPSPEED_CONFIG.read_text())
    monkeypatch.setattr(tune, "DEEPSPEED_CONFIG", config)
    run = RunConfig(arms=["exsvd", "exsvd-static-pe"], tune=TuneSettings(deepspeed=True))

    def keys(memo: str) -> list[str]:
        ctx = Context(tmp_path, run, Shard(), Checksums(tmp_path / memo))
        return [unit.key for unit in tune.tune_units(ctx)]

    before, again = keys("a"), keys("b")
    config.write_text(config.read_text().replace('"stage": 2', '"stage": 1'))
    assert before == again and not set(before) & set(keys("c"))


def test_the_deepspeed_launch_names_its_shipped_config():
    from bench.run_config import TuneSettings
    from bench.stages.tune import launch_command

    settings = TuneSettings(processes=8, deepspeed=True, mixed_precision="bf16")
    command = launch_command(settings, "cuda")
    config = Path(command[command.index("--deepspeed_config_file") + 1])
    assert json.loads(config.read_text())["zero_optimization"]["stage"] == 2
    assert "--use_deepspeed" in command and "--multi_gpu" not in command
    assert command[command.index("--num_processes") + 1] == "8"
    assert command[command.index("--mixed_precision") + 1] == "bf16"


def test_two_accelerate_processes_merge_to_the_single_process_results(
    baseline, config_file, tmp_path
):
    run = tmp_path / "run"
    command = [
        str(Path(sys.executable).parent / "accelerate"),
        "launch",
        "--multi_gpu",
        "--num_processes",
        "2",
        "--num_machines",
        "1",
        "--mixed_precision",
        "no",
        "--dynamo_backend",
        "no",
        "-m",
        "bench",
        "run",
        "--config",
        str(config_file),
        "--out",
        str(run),
    ]
    done = subprocess.run(
        command, cwd=ROOT, env=subprocess_env(), capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert json.loads((run / "timings.json").read_text())["processes"] == 2
    pd.testing.assert_frame_equal(per_video(run), per_video(baseline))
    series = [pd.read_parquet(r / "results" / "series.parquet") for r in (run, baseline)]
    pd.testing.assert_frame_equal(*series)
    for arm in ARMS:
        manifests = [(r / "generate" / arm / "manifest.json").read_text() for r in (run, baseline)]
        assert manifests[0] == manifests[1]


def test_a_damaged_done_record_counts_as_not_done(tmp_path):
    """Any JSON that is not an object (a record cut or overwritten by hand) is no record: the
    unit is recomputed, and bench report's refresh of its own record leaves it alone."""
    from bench.run_cache import read_record
    from bench.stages.report import refresh_record

    record = tmp_path / "report" / ".done.json"
    record.parent.mkdir()
    for text in ('["key"]', '"key"', "3", "null", "{"):
        record.write_text(text)
        assert read_record(record) is None
        refresh_record(tmp_path)
        assert record.read_text() == text
