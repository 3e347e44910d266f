"""``python -m bench``: outputs and every bad-input case, with message and exit code."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from bench.__main__ import main
from metrics.synthetic import make_video
from metrics.video_io import write_video


@pytest.fixture(scope="module")
def clip() -> np.ndarray:
    return make_video("pan", frames=8, size=(64, 64), seed=0).frames


def run_cli(capsys, *argv):
    code = main(["eval", "--flow", "dis", *map(str, argv)])
    out, err = capsys.readouterr()
    return code, out, err


def error_lines(err: str) -> list[str]:
    return [line for line in err.splitlines() if line.startswith("error:")]


def test_eval_writes_one_row_per_video_with_provenance(tmp_path, clip, capsys):
    write_video(tmp_path / "a.mp4", clip)
    np.save(tmp_path / "b.npy", clip)
    out = tmp_path / "res" / "table.parquet"
    series = tmp_path / "series.csv"
    code, stdout, err = run_cli(capsys, tmp_path, "--out", out, "--series-out", series)
    assert code == 0, err
    table = pd.read_parquet(out)
    assert sorted(table["video"].map(lambda p: p.rsplit("/", 1)[-1])) == ["a.mp4", "b.npy"]
    assert (table["flow_backend"] == "dis").all() and table["version_torch"].notna().all()
    assert table["warping_error"].notna().all() and "warping_error" in stdout
    long = pd.read_csv(series)
    per_video = long[long.metric == "warping_error"].groupby("video").size()
    assert (per_video == 7).all()
    assert not list(tmp_path.glob("res/.*tmp-*"))  # atomic write leaves no temp file


def test_metric_selection_with_wildcards(tmp_path, clip, capsys):
    np.save(tmp_path / "v.npy", clip)
    out = tmp_path / "t.csv"
    code, _, _ = run_cli(
        capsys, tmp_path / "v.npy", "--metrics", "motion_*,warping_error", "--out", out
    )
    assert code == 0
    columns = set(pd.read_csv(out).columns)
    assert {"motion_magnitude", "warping_error"} <= columns
    assert "frame_diff_flicker" not in columns


def corrupt_mp4(path):
    path.write_bytes(b"\x00\x00\x00\x18ftypmp42" + bytes(range(256)) * 4)


def truncated_mp4(tmp_path, clip):
    good = write_video(tmp_path / "good_for_trunc.mp4", clip)
    bad = tmp_path / "truncated.mp4"
    bad.write_bytes(good.read_bytes()[: good.stat().st_size // 3])
    good.unlink()
    return bad


def frames_of_different_sizes(tmp_path):
    folder = tmp_path / "frames"
    folder.mkdir()
    for i, size in enumerate([(32, 32), (32, 32), (40, 32)]):
        Image.new("RGB", size, (i * 40, 0, 0)).save(folder / f"frame_{i}.png")
    return folder


BAD_INPUTS = {
    "missing file": (lambda tmp, clip: tmp / "nope.mp4", "no such file"),
    "corrupt file": (
        lambda tmp, clip: (corrupt_mp4(tmp / "corrupt.mp4"), tmp / "corrupt.mp4")[1],
        "corrupt.mp4",
    ),
    "truncated file": (truncated_mp4, "truncated.mp4"),
    "zero frames": (
        lambda tmp, clip: (np.save(tmp / "z.npy", clip[:0]), tmp / "z.npy")[1],
        "zero frames",
    ),
    "one frame": (
        lambda tmp, clip: (np.save(tmp / "one.npy", clip[:1]), tmp / "one.npy")[1],
        "1 frame, too few for some metrics (warping_error",
    ),
    "two frames, triple metrics": (
        lambda tmp, clip: (np.save(tmp / "two.npy", clip[:2]), tmp / "two.npy")[1],
        "2 frames, too few for some metrics (flow_acceleration, interpolation_score",
    ),
    "different sizes": (lambda tmp, clip: frames_of_different_sizes(tmp), "frame_2.png"),
    "transparent RGBA": (
        lambda tmp, clip: (
            np.save(
                tmp / "rgba.npy",
                np.concatenate([clip, np.full((*clip.shape[:3], 1), 7, np.uint8)], -1),
            ),
            tmp / "rgba.npy",
        )[1],
        "transparency",
    ),
    "NaN in float array": (
        lambda tmp, clip: (
            np.save(tmp / "nan.npy", np.where(clip > 250, np.nan, clip / 255.0)),
            tmp / "nan.npy",
        )[1],
        "NaN",
    ),
    "float out of range": (
        lambda tmp, clip: (np.save(tmp / "big.npy", clip.astype(np.float32)), tmp / "big.npy")[1],
        "[0, 1]",
    ),
    "channel-first array": (
        lambda tmp, clip: (np.save(tmp / "chw.npy", clip.transpose(0, 3, 1, 2)), tmp / "chw.npy")[
            1
        ],
        "transpose",
    ),
    "frames too small": (
        lambda tmp, clip: (np.save(tmp / "tiny.npy", clip[:, :8, :8]), tmp / "tiny.npy")[1],
        "8x8 frames are too small for dis optical flow",
    ),
    "unsupported file type": (
        lambda tmp, clip: ((tmp / "notes.txt").write_text("hi"), tmp / "notes.txt")[1],
        "unsupported",
    ),
}


@pytest.mark.parametrize("case", sorted(BAD_INPUTS))
def test_bad_input_is_one_line_and_nonzero_exit_while_others_still_run(
    case, tmp_path, clip, capsys
):
    make, needle = BAD_INPUTS[case]
    bad = make(tmp_path, clip)
    good = tmp_path / "good.npy"
    np.save(good, clip)
    out = tmp_path / "out.csv"
    code, _, err = run_cli(capsys, bad, good, "--out", out)
    assert code == 1
    assert "Traceback" not in err
    lines = error_lines(err)
    assert lines and any(needle in line for line in lines), err
    assert any(bad.name in line for line in lines), err
    table = pd.read_csv(out)
    good_row = table[table.video.str.endswith("good.npy")].iloc[0]
    assert np.isfinite(good_row["warping_error"]) and np.isfinite(good_row["flow_acceleration"])


def test_a_short_video_is_one_error_line_naming_every_metric_it_stops(tmp_path, clip, capsys):
    np.save(tmp_path / "one.npy", clip[:1])
    out = tmp_path / "out.csv"
    code, _, err = run_cli(capsys, tmp_path / "one.npy", "--out", out)
    assert code == 1
    (line,) = error_lines(err)
    assert "need 2+" in line and "motion_slowdown needs 4+" in line, line
    row = pd.read_csv(out).iloc[0]
    stopped = [c for c in ("warping_error", "flow_acceleration", "motion_slowdown") if c in row]
    assert stopped and all(np.isnan(row[c]) for c in stopped)
    assert f"{tmp_path / 'one.npy'}: 1 frame" in row["error"] and row["error"].count("1 frame") == 1


def test_grey_input_is_converted_and_said_so(tmp_path, clip, capsys):
    np.save(tmp_path / "grey.npy", clip[..., 0])
    out = tmp_path / "g.csv"
    code, _, err = run_cli(capsys, tmp_path / "grey.npy", "--out", out)
    assert code == 0, err
    assert "grey" in pd.read_csv(out)["notes"].iloc[0]


@pytest.mark.parametrize(
    ("argv", "needle"),
    [
        (["--metrics", "warping_eror"], "did you mean 'warping_error'"),
        (["--out", "table.xlsx"], "use a .csv or .parquet"),
        (["--device", "cuda"], "use --device cpu"),
        (["--batch-size", "0"], "must be >= 1"),
        (["--metrics", ","], "--metrics: names no metric"),
        (["--flow-weights", "raft.pth"], "--flow-weights: is for RAFT"),
        (["--metrics", "clip_condition"], "clip_condition: unavailable: clip_vit_b32"),
    ],
)
def test_setup_mistakes_fail_before_compute(tmp_path, clip, capsys, argv, needle):
    np.save(tmp_path / "v.npy", clip)
    code, _, err = run_cli(capsys, tmp_path / "v.npy", *argv)
    if "cuda" in argv and "use --device cpu" not in err and code == 0:
        pytest.skip("this machine has CUDA")
    assert code == 2
    assert needle in err and "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert "still run" not in err  # nothing runs


def test_raft_without_weights_is_a_clear_setup_error(tmp_path, clip, capsys):
    np.save(tmp_path / "v.npy", clip)
    code = main(["eval", "--flow", "raft_large", str(tmp_path / "v.npy")])
    err = capsys.readouterr().err
    assert code == 2 and "EXSVD_WEIGHTS_RAFT_LARGE" in err and "--flow dis" in err


def test_real_entry_point_help_and_exit_codes(tmp_path):
    def bench(*argv):
        return subprocess.run(
            [sys.executable, "-m", "bench", *argv], capture_output=True, text=True, timeout=120
        )

    help_run = bench("--help")
    assert help_run.returncode == 0 and "eval" in help_run.stdout and "perf" in help_run.stdout
    loaded = subprocess.run(  # --help answers at once: the parsers load neither torch nor diffusers
        [sys.executable, "-c", "import sys, bench.__main__; "
         "print(sorted({'torch', 'diffusers'} & set(sys.modules)))"],
        capture_output=True, text=True, timeout=120,
    )
    assert loaded.stdout.strip() == "[]", loaded.stdout + loaded.stderr
    missing = bench("eval", "--flow", "dis", str(tmp_path / "missing.mp4"))
    assert missing.returncode == 1
    assert "Traceback" not in missing.stderr and "missing.mp4: no such file" in missing.stderr


def test_nothing_to_score_is_said_in_one_line_before_any_weights(tmp_path, capsys):
    empty = tmp_path / "empty"
    empty.mkdir()
    for paths, needle in (([tmp_path / "typo.mp4"], "typo.mp4: no such file"),
                          ([empty], "no videos found")):
        code = main(["eval", *map(str, paths)])  # default metrics: CLIP's weights unresolved
        err = capsys.readouterr().err
        assert code == 1 and err.count("\n") == 1 and needle in err, err


def test_videos_a_folder_level_down_are_named_not_skipped_silently(tmp_path, clip, capsys):
    np.save(tmp_path / "top.npy", clip)
    (tmp_path / "arm").mkdir()
    np.save(tmp_path / "arm" / "deep.npy", clip)
    code = main(["eval", "--flow", "dis", "--metrics", "warping_error", str(tmp_path)])
    out, err = capsys.readouterr()
    assert code == 0 and "top" in out and "deep" not in out
    assert f"note: {tmp_path}: the videos in its sub-folders arm are not read" in err, err


def test_a_condition_file_that_is_no_image_fails_once_before_compute(tmp_path, clip, capsys):
    for name in ("a.npy", "b.npy"):
        np.save(tmp_path / name, clip)
    notes = tmp_path / "cond.txt"
    notes.write_text("not an image")
    for condition, needle in ((notes, "cond.txt: --condition is not an image"),
                              (tmp_path / "a.npy", "a.npy: --condition is not an image")):
        code = main(["eval", "--flow", "dis", "--condition", str(condition),
                     str(tmp_path / "a.npy"), str(tmp_path / "b.npy")])
        err = capsys.readouterr().err
        assert code == 2 and err.count("\n") == 1, err
        assert needle in err and ".png or .jpg" in err
    broken = tmp_path / "cond.png"
    broken.write_text("not an image either")
    code = main(["eval", "--flow", "dis", "--condition", str(broken), str(tmp_path / "a.npy")])
    err = capsys.readouterr().err
    assert code == 2 and "cond.png: --condition: " in err, err
    see_through = np.zeros((16, 16, 4), np.uint8)  # a PNG already: the fix is the reader's own
    Image.fromarray(see_through).save(broken)
    code = main(["eval", "--flow", "dis", "--condition", str(broken), str(tmp_path / "a.npy")])
    err = capsys.readouterr().err
    assert code == 2 and "has transparency" in err and "flatten onto a background first" in err
    assert ".png or .jpg" not in err, err


def test_one_condition_image_serves_every_video(tmp_path, clip, capsys):
    np.save(tmp_path / "a.npy", clip)
    np.save(tmp_path / "b.npy", clip[::-1])  # its own first frame is not the image
    Image.fromarray(clip[0]).save(tmp_path / "cond.png")
    scores = {}
    for condition in ("first-frame", tmp_path / "cond.png"):
        out = tmp_path / "t.csv"
        args = ["--condition", condition, "--metrics", "ssim_condition", "--out", out]
        code, _, err = run_cli(capsys, tmp_path / "a.npy", tmp_path / "b.npy", *args)
        assert code == 0, err
        scores[str(condition)] = pd.read_csv(out).ssim_condition.tolist()
    given, own = scores[str(tmp_path / "cond.png")], scores["first-frame"]
    # the mean over frames is order-free: b against clip[0] scores as a does, not as against
    # its own first frame (clip[-1])
    assert given[0] == pytest.approx(own[0]) and given[1] == pytest.approx(given[0]), scores
    assert abs(own[1] - own[0]) > 1e-3, scores


def test_condition_and_reference_folders_are_matched_by_name(tmp_path, clip, capsys):
    videos, conditions, references = (tmp_path / d for d in ("videos", "cond", "ref"))
    for folder in (videos, conditions, references):
        folder.mkdir()
    for name, shift in (("a", 0), ("b", 40)):
        np.save(videos / f"{name}.npy", clip)
        Image.fromarray(np.roll(clip[0], shift, axis=1)).save(conditions / f"{name}.png")
        np.save(references / f"{name}.npy", clip)
    Image.fromarray(clip[0, ..., 0]).save(conditions / "c.png")  # grey: the reader's note
    np.save(videos / "c.npy", clip)
    np.save(references / "c.npy", clip)
    out = tmp_path / "t.csv"
    code, _, err = run_cli(
        capsys,
        videos,
        "--condition",
        conditions,
        "--reference",
        references,
        "--metrics",
        "ssim_condition,psnr,ssim",
        "--out",
        out,
    )
    assert code == 0, err
    table = pd.read_csv(out).set_index(pd.read_csv(out).video.str[-5:])
    assert table.loc["a.npy", "ssim_condition"] > table.loc["b.npy", "ssim_condition"] + 0.2
    assert np.allclose(table["psnr"], 100, atol=1e-3)  # reference == video
    assert table["reference"].str.endswith(".npy").all()
    # each row names the files it was scored against, and the reader's notes on them
    assert [Path(p).name for p in table["condition"]] == ["a.png", "b.png", "c.png"]
    assert "condition: " in table.loc["c.npy", "notes"] and "grey" in table.loc["c.npy", "notes"]
    Image.fromarray(clip[0]).save(conditions / "a.jpg")  # which one is a's?
    code, _, err = run_cli(capsys, videos / "a.npy", "--condition", conditions, "--metrics",
                           "ssim_condition,warping_error", "--out", out)
    assert code == 1 and "2 condition images named like it" in err and "a.jpg" in err, err
    assert pd.read_csv(out)["warping_error"].notna().all()


def test_a_reference_folder_of_frame_folders_is_matched_by_name(tmp_path, clip, capsys):
    for root in ("videos", "ref"):
        frames = tmp_path / root / "a"
        frames.mkdir(parents=True)
        for i, frame in enumerate(clip):
            Image.fromarray(frame).save(frames / f"frame_{i:03d}.png")
    out = tmp_path / "t.csv"
    code, _, err = run_cli(capsys, tmp_path / "videos", "--reference", tmp_path / "ref",
                           "--metrics", "psnr", "--out", out)
    assert code == 0, err
    row = pd.read_csv(out).iloc[0]
    assert row["psnr"] == 100 and row["reference"] == str(tmp_path / "ref" / "a")


def test_missing_condition_for_one_video_reports_it_and_scores_the_rest(tmp_path, clip, capsys):
    (tmp_path / "cond").mkdir()
    np.save(tmp_path / "a.npy", clip)
    np.save(tmp_path / "b.npy", clip)
    Image.fromarray(clip[0]).save(tmp_path / "cond" / "a.png")
    out = tmp_path / "t.csv"
    code, _, err = run_cli(
        capsys,
        tmp_path / "a.npy",
        tmp_path / "b.npy",
        "--condition",
        tmp_path / "cond",
        "--metrics",
        "ssim_condition,motion_magnitude",
        "--out",
        out,
    )
    assert code == 1
    lines = [line for line in error_lines(err) if "no condition image named b" in line]
    assert len(lines) == 1 and "b.npy" in lines[0], err
    rows = pd.read_csv(out).set_index("video").rename(index=lambda v: v.rsplit("/", 1)[-1])
    assert 0 < rows.loc["a.npy", "ssim_condition"] <= 1
    assert np.isnan(rows.loc["b.npy", "ssim_condition"])  # not the first frame in its stead
    assert "no condition image named b" in rows.loc["b.npy", "error"]
    assert rows.loc["b.npy", "condition"] == str(tmp_path / "cond")  # where it was looked for
    assert rows.loc["a.npy", "condition"] == str(tmp_path / "cond" / "a.png")
    # only the metric that needs the missing file goes without
    assert rows.loc["b.npy", "motion_magnitude"] == rows.loc["a.npy", "motion_magnitude"] > 0


def test_missing_reference_for_one_video_leaves_out_only_reference_metrics(tmp_path, clip,
                                                                            capsys):
    (tmp_path / "videos").mkdir()
    (tmp_path / "ref").mkdir()
    for name in ("a", "b"):
        np.save(tmp_path / "videos" / f"{name}.npy", clip)
    np.save(tmp_path / "ref" / "a.npy", clip)
    out = tmp_path / "t.csv"
    code, _, err = run_cli(capsys, tmp_path / "videos", "--reference", tmp_path / "ref",
                           "--metrics", "psnr,motion_magnitude", "--out", out)
    assert code == 1
    assert any("b.npy" in line and "no reference named b" in line for line in error_lines(err))
    rows = pd.read_csv(out, keep_default_na=False).set_index("video")
    a, b = (rows.loc[str(tmp_path / "videos" / f"{n}.npy")] for n in "ab")
    assert float(a["psnr"]) == 100 and b["psnr"] == "" and b["reference"] == ""
    assert float(b["motion_magnitude"]) == float(a["motion_magnitude"]) > 0


def test_unavailable_weights_column_says_so_and_the_rest_run(tmp_path, clip, capsys):
    np.save(tmp_path / "v.npy", clip)
    out = tmp_path / "t.csv"
    code, stdout, err = run_cli(
        capsys, tmp_path / "v.npy", "--metrics", "clip_cond*,warping_error", "--out", out
    )
    assert code == 0, err
    assert "warning: clip_condition, clip_condition_min" in err and "EXSVD_WEIGHTS_CLIP" in err
    assert "unavailable" in stdout
    row = pd.read_csv(out).iloc[0]
    assert np.isnan(row["clip_condition"]) and np.isfinite(row["warping_error"])
    assert row["unavailable"].startswith("clip_condition: ")


def test_a_metric_named_without_its_weights_is_a_setup_error(tmp_path, clip, capsys):
    np.save(tmp_path / "v.npy", clip)
    code, _, err = run_cli(capsys, tmp_path / "v.npy", "--metrics", "clip_condition,warping_error")
    assert code == 2 and err.count("\n") == 1, err
    assert err.startswith("error: clip_condition: unavailable: ") and "EXSVD_WEIGHTS_CLIP" in err


def test_random_weights_are_labelled_in_every_row(tmp_path, clip, capsys):
    np.save(tmp_path / "v.npy", clip)
    out = tmp_path / "t.csv"
    code, _, err = run_cli(
        capsys,
        tmp_path / "v.npy",
        "--metrics",
        "lpips_condition",
        "--allow-random-weights",
        "--out",
        out,
    )
    assert code == 0, err
    assert pd.read_csv(out)["lpips_weights"].str.contains("RANDOM INIT").all()


def test_explicit_reference_metric_without_reference_is_a_setup_error(tmp_path, clip, capsys):
    np.save(tmp_path / "v.npy", clip)
    code, _, err = run_cli(capsys, tmp_path / "v.npy", "--metrics", "psnr")
    assert code == 2 and "psnr: needs a reference; pass --reference" in err


def test_weights_list_and_fetch(capsys, monkeypatch, tmp_path):
    assert main(["weights", "list"]) == 0
    listing = capsys.readouterr().out
    for name in ("raft_large", "clip_vit_b32", "lpips_alex", "i3d_k400"):
        assert name in listing
    assert "missing" in listing
    assert main(["weights", "fetch", "nonsense"]) == 2
    assert "unknown weights" in capsys.readouterr().err
    from metrics import weights

    def no_network(url, dest):
        raise OSError("Name or service not known")

    monkeypatch.setattr(weights, "_download", no_network)
    assert main(["weights", "fetch", "raft_small"]) == 1
    err = capsys.readouterr().err
    assert "download failed (Name or service not known)" in err and len(err.splitlines()) == 1
    # The fix names where the fetch would get them: CLIP's from Hugging Face only, not PyPI.
    assert "weights fetch raft_small' where download.pytorch.org is reachable" in err
    assert main(["weights", "fetch", "clip_vit_b32"]) == 1
    assert "weights fetch clip_vit_b32' where huggingface.co is reachable" in (
        capsys.readouterr().err
    )


def test_weights_fetch_replaces_a_corrupt_copy_and_keeps_it_aside(capsys, monkeypatch):
    import hashlib
    from dataclasses import replace

    from metrics import weights

    spec = weights.get_spec("raft_small")
    pinned = replace(spec.files[0], sha256=hashlib.sha256(b"good").hexdigest(),
                     url="http://example.invalid/w")
    monkeypatch.setitem(weights.WEIGHTS, "raft_small", replace(spec, files=(pinned,)))
    monkeypatch.setattr(weights, "_download", lambda url, dest: dest.write_bytes(b"good"))
    copy = weights.weights_dir() / pinned.filename
    copy.parent.mkdir(parents=True, exist_ok=True)
    copy.write_bytes(b"bad")
    assert main(["weights", "list"]) == 0 and "checksum mismatch" in capsys.readouterr().out
    assert main(["weights", "fetch", "raft_small"]) == 0
    out, err = capsys.readouterr()
    assert copy.read_bytes() == b"good" and "verified, download" in out
    assert copy.with_name(f"{copy.name}.corrupt").read_bytes() == b"bad"  # kept, not deleted
    assert err.splitlines() == [f"warning: {copy}: checksum mismatch; kept as "
                                f"{copy.name}.corrupt, fetching it again"]


def test_perf_commands_print_side_by_side_ratios(capsys):
    """Smoke run of both benchmarks on tiny inputs (figures are not asserted: no timing tests)."""
    assert main(["perf", "metrics", "--videos", "1", "--frames", "6", "--size", "32",
                 "--metrics", "warping_error,psnr", "--repeats", "1"]) == 0
    out = capsys.readouterr().out
    assert "speed-up:" in out and "largest score difference between the ways: 0.00e+00" in out
    assert main(["perf", "generate", "--frames", "10", "--steps", "1", "--arms", "exsvd"]) == 0
    out = capsys.readouterr().out
    assert "exsvd" in out and "x" in out.splitlines()[-1]


def stop_on_third(monkeypatch, tmp_path, clip, exception):
    from metrics import Evaluator

    for name in ("a", "b", "c"):
        np.save(tmp_path / f"{name}.npy", clip)
    calls = []
    original = Evaluator.__call__

    def fail_on_third(self, video, **kwargs):
        calls.append(video.source)
        if len(calls) == 3:
            raise exception
        return original(self, video, **kwargs)

    monkeypatch.setattr(Evaluator, "__call__", fail_on_third)


def test_ctrl_c_keeps_the_videos_already_scored_beside_the_table(
    tmp_path, clip, capsys, monkeypatch
):
    stop_on_third(monkeypatch, tmp_path, clip, KeyboardInterrupt)
    out, partial = tmp_path / "t.csv", tmp_path / "t.partial.csv"
    out.write_text("video\nof an earlier, complete run\n")  # never replaced by a partial table
    code, _, err = run_cli(capsys, tmp_path, "--metrics", "warping_error", "--out", out)
    assert code == 130 and "interrupted after 2 of 3 videos" in err
    assert len(pd.read_csv(partial)) == 2 and "earlier, complete" in out.read_text()
    monkeypatch.undo()
    code, _, _ = run_cli(capsys, tmp_path, "--metrics", "warping_error", "--out", out)
    assert code == 0 and len(pd.read_csv(out)) == 3 and not partial.exists()


def test_a_crash_keeps_the_videos_already_scored_and_shows_the_bug(
    tmp_path, clip, capsys, monkeypatch
):
    stop_on_third(monkeypatch, tmp_path, clip, RuntimeError("a bug"))
    out = tmp_path / "t.csv"
    with pytest.raises(RuntimeError, match="a bug"):
        run_cli(capsys, tmp_path, "--metrics", "warping_error", "--out", out)
    assert "failure after 2 of 3 videos" in capsys.readouterr().err
    assert len(pd.read_csv(tmp_path / "t.partial.csv")) == 2 and not out.exists()


def test_an_output_that_cannot_be_written_fails_before_any_video_is_scored(
    tmp_path, clip, capsys, monkeypatch
):
    from metrics import Evaluator

    np.save(tmp_path / "v.npy", clip)
    (tmp_path / "afile").write_text("a file, not a folder")
    monkeypatch.setattr(Evaluator, "__call__", lambda *a, **k: pytest.fail("scored first"))
    for flag in ("--out", "--series-out", "--set-out"):
        code, _, err = run_cli(capsys, tmp_path / "v.npy", flag, tmp_path / "afile" / "t.csv")
        assert code == 2 and error_lines(err) == [f"error: {tmp_path / 'afile'}: cannot be "
                                                  "written (File exists); choose a folder you "
                                                  "can write to"], err


def test_set_out_without_a_set_level_metric_says_so(tmp_path, clip, capsys):
    np.save(tmp_path / "v.npy", clip)
    series = tmp_path / "s.csv"
    code, out, err = run_cli(capsys, tmp_path / "v.npy", "--metrics", "warping_error",
                             "--series-out", series, "--set-out", tmp_path / "set.csv")
    assert code == 0 and f"wrote {series}" in out
    assert "no set-level metric was computed" in err and not (tmp_path / "set.csv").exists()


@pytest.mark.parametrize(
    "argv, needle",
    [
        (["eval", "x.npy", "--device", "foo"], "foo: not a device the tools run on"),
        (["weights", "fetch", "all", "nope"], "nope: unknown weights"),
    ],
)
def test_a_typo_beside_valid_arguments_is_an_error(argv, needle, capsys):
    assert main(argv) == 2
    assert needle in capsys.readouterr().err


def test_files_a_folder_holds_that_are_not_videos_are_named(tmp_path, clip, capsys):
    np.save(tmp_path / "v.npy", clip)
    for name in ("cover.webp", "b.xyz"):
        (tmp_path / name).write_bytes(b"not read")
    (tmp_path / "scores.csv").write_text("a sidecar, not worth a note")
    code, _, err = run_cli(capsys, tmp_path, "--metrics", "frame_diff_flicker")
    assert code == 0
    assert (f"note: {tmp_path}: skipped 2 files that are not videos or frame folders: b.xyz, "
            "cover.webp") in err, err


def test_a_video_named_twice_is_scored_once(tmp_path, clip, capsys):
    np.save(tmp_path / "v.npy", clip)
    out = tmp_path / "t.csv"
    code, _, err = run_cli(capsys, tmp_path / "v.npy", tmp_path, "--metrics",
                           "frame_diff_flicker", "--out", out)
    assert code == 0 and len(pd.read_csv(out)) == 1
    assert "note: 1 video given more than once; scored once" in err


def test_resume_scores_only_the_videos_an_interrupted_run_did_not_finish(
    tmp_path, clip, capsys, monkeypatch
):
    from metrics import Evaluator

    data = tmp_path / "videos"
    data.mkdir()
    stop_on_third(monkeypatch, data, clip, KeyboardInterrupt)
    out, series = tmp_path / "t.csv", tmp_path / "s.parquet"
    args = [data, "--metrics", "warping_error,motion_*", "--out", out, "--series-out", series]
    assert run_cli(capsys, *args)[0] == 130
    monkeypatch.undo()
    code, _, err = run_cli(capsys, *args, "--resume", "--batch-size", "4")
    assert code == 2 and "batch_size differ" in err  # other settings than the partial table's
    scored, real = [], Evaluator.__call__

    def counted(self, video, **kwargs):
        scored.append(video.source)
        return real(self, video, **kwargs)

    monkeypatch.setattr(Evaluator, "__call__", counted)
    code, _, err = run_cli(capsys, *args, "--resume")
    assert code == 0 and "resuming: 2 videos scored before, 1 to go" in err
    assert [Path(s).name for s in scored] == ["c.npy"]
    assert not list(tmp_path.glob("*.partial.*"))
    monkeypatch.undo()
    fresh = [tmp_path / "fresh.csv", tmp_path / "fresh.parquet"]
    assert run_cli(capsys, *args[:3], "--out", fresh[0], "--series-out", fresh[1])[0] == 0
    columns = ["video", "frames", "warping_error", "motion_magnitude"]
    pd.testing.assert_frame_equal(pd.read_csv(out)[columns], pd.read_csv(fresh[0])[columns])
    pd.testing.assert_frame_equal(pd.read_parquet(series), pd.read_parquet(fresh[1]))


def test_a_run_killed_outright_resumes_from_the_rows_it_saved_as_it_went(
    tmp_path, clip, capsys, monkeypatch
):
    from bench import eval_partial

    monkeypatch.setattr(eval_partial, "SAVE_EVERY_S", 0.0)  # save after every video
    data = tmp_path / "videos"
    data.mkdir()
    stop_on_third(monkeypatch, data, clip, SystemExit(137))  # caught nowhere, like a SIGKILL
    out, series = tmp_path / "t.csv", tmp_path / "s.csv"
    with pytest.raises(SystemExit):
        run_cli(capsys, data, "--metrics", "warping_error,motion_magnitude", "--out", out,
                "--series-out", series)
    saved = pd.read_csv(tmp_path / "t.partial.csv")["video"]
    assert [Path(v).name for v in saved] == ["a.npy", "b.npy"] and not out.exists()
    assert set(pd.read_csv(tmp_path / "s.partial.csv")["video"]) == set(saved)
    monkeypatch.undo()
    monkeypatch.chdir(tmp_path)  # the same videos, spelled otherwise; the same metrics reordered
    code, _, err = run_cli(capsys, "./videos", "--metrics", "motion_magnitude, warping_error",
                           "--out", out, "--series-out", series, "--resume")
    assert code == 0 and "resuming: 2 videos scored before, 1 to go" in err, err
    table = pd.read_csv(out)
    assert list(table["video"]) == [f"videos/{n}.npy" for n in "abc"]
    assert table["warping_error"].notna().all()
    assert set(pd.read_csv(series)["video"]) == set(table["video"])


def test_one_file_given_for_two_outputs_is_refused(tmp_path, clip, capsys):
    np.save(tmp_path / "v.npy", clip)
    out = tmp_path / "t.csv"
    for flag, path in (("--series-out", out), ("--set-out", tmp_path / "t.partial.csv")):
        code, _, err = run_cli(capsys, tmp_path / "v.npy", "--out", out, flag, path)
        assert code == 2 and f"is written by both --out and {flag}" in err, err
    assert not out.exists()


def test_an_upper_case_table_suffix_is_written_as_that_format(tmp_path, clip, capsys):
    np.save(tmp_path / "v.npy", clip)
    for name, read in (("T.CSV", pd.read_csv), ("T.PARQUET", pd.read_parquet)):
        code, _, err = run_cli(capsys, tmp_path / "v.npy", "--metrics", "warping_error",
                               "--out", tmp_path / name)
        assert code == 0 and len(read(tmp_path / name)) == 1, err


def test_resume_is_refused_for_set_level_metrics(tmp_path, clip, capsys, monkeypatch):
    data, references = tmp_path / "videos", tmp_path / "references"
    data.mkdir()
    stop_on_third(monkeypatch, data, clip, KeyboardInterrupt)
    shutil.copytree(data, references)
    out = tmp_path / "t.csv"
    args = [data, "--metrics", "fvd,warping_error", "--reference", references,
            "--allow-random-weights", "--out", out]
    assert run_cli(capsys, *args)[0] == 130
    code, _, err = run_cli(capsys, *args, "--resume")
    assert code == 2 and "--resume: fvd need every video's features" in err, err


def test_perf_metrics_with_only_unavailable_metrics_times_nothing_and_says_why(capsys):
    code = main(["perf", "metrics", "--videos", "1", "--frames", "6", "--size", "32",
                 "--metrics", "clip_*", "--repeats", "1"])
    out, err = capsys.readouterr()
    assert code == 2 and "speed-up" not in out and error_lines(err) == [err.strip()], err
    assert err.startswith("error: clip_condition, clip_condition_min, ") and "clip_iqa" in err
    assert "unavailable, so nothing to time: clip_vit_b32: " in err
    assert "EXSVD_WEIGHTS_CLIP_VIT_B32" in err and "--allow-random-weights" in err


@pytest.mark.parametrize("command", ["perf metrics", "perf tune", "perf generate",
                                     "perf idconv", "perf budget", "eval"])
def test_help_explains_every_option_and_states_each_default_once(command, capsys):
    import re

    with pytest.raises(SystemExit):
        main([*command.split(), "--help"])
    out = capsys.readouterr().out
    said = " ".join(out.split())
    assert "(default: None)" not in said and "None means" not in said  # "no default"
    assert "(default: False)" not in said  # a flag is off unless given
    options = out.split("\noptions:\n")[1].strip("\n")
    for entry in re.split(r"\n(?=  -)", options):
        flag, *text = re.split(r"\s{2,}", entry.strip(), maxsplit=1)
        help_text = " ".join(" ".join(text).split())
        assert help_text and not help_text.startswith("(default:"), flag
        assert help_text.count("(default:") <= 1, help_text
