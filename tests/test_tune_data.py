"""Training data from a folder: skipped files reported, bad input caught before compute."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from metrics.errors import BenchError
from metrics.synthetic import make_video
from metrics.video_io import write_video
from variants.data import VideoFolderClips


def test_clips_from_a_folder_skip_bad_and_short_files(tmp_path):
    write_video(tmp_path / "long.mp4", make_video("pan", frames=12, size=(48, 80)).frames)
    write_video(tmp_path / "short.mp4", make_video("pan", frames=4, size=(48, 80)).frames)
    (tmp_path / "broken.mp4").write_bytes(b"not a video")
    (tmp_path / "cover.webp").write_bytes(b"an image, not read")
    (tmp_path / "notes.txt").write_text("a sidecar: not worth a word")
    clips = VideoFolderClips(tmp_path, frames=8, size=32, batch_size=2)
    assert set(clips.skipped) == {str(tmp_path / n) for n in ("short.mp4", "broken.mp4",
                                                               "cover.webp")}
    assert "shorter than 8" in clips.skipped[str(tmp_path / "short.mp4")]
    assert "not a video" in clips.skipped[str(tmp_path / "cover.webp")]
    batch = clips(0, torch.Generator().manual_seed(0))
    assert batch.shape == (2, 8, 32, 32, 3) and batch.dtype == np.uint8
    again = clips(0, torch.Generator().manual_seed(0))
    assert (batch == again).all()


@pytest.mark.parametrize(
    ("setup", "kwargs", "needle"),
    [
        ("empty", {"frames": 8, "size": 32}, "no videos found"),
        ("short", {"frames": 8, "size": 32}, "no usable training video"),
        ("short", {"frames": 2, "size": 30}, "multiple of the VAE factor 8"),
    ],
)
def test_bad_training_input_fails_up_front(tmp_path, setup, kwargs, needle):
    if setup == "short":
        write_video(tmp_path / "short.mp4", make_video("pan", frames=4, size=(32, 32)).frames)
    with pytest.raises(BenchError, match=needle) as info:
        VideoFolderClips(tmp_path, **kwargs)
    assert "\n" not in str(info.value)


def test_a_step_decodes_its_own_clip_and_nothing_is_held(tmp_path):
    from metrics.video_io import read_video
    from variants.data import _square

    write_video(tmp_path / "a.mp4", make_video("pan", frames=20, size=(48, 80), seed=1).frames)
    np.save(tmp_path / "b.npy", make_video("zoom", frames=10, size=(48, 48), seed=2).frames)
    clips = VideoFolderClips(tmp_path, frames=8, size=32, batch_size=3)
    assert [(p.name, n) for p, n in clips._videos] == [("a.mp4", 20), ("b.npy", 10)]  # no frames
    batch = clips(5, torch.Generator().manual_seed(7))
    draws = torch.Generator().manual_seed(7)  # the same draws, checked against a full decode
    for clip in batch:
        path, length = clips._videos[int(torch.randint(2, (1,), generator=draws))]
        start = int(torch.randint(length - 8 + 1, (1,), generator=draws))
        expected = _square(read_video(path).frames[start : start + 8], 32)
        np.testing.assert_array_equal(clip, expected)


def test_the_runs_clips_keep_ram_only_for_a_process_with_later_arms(tmp_path, monkeypatch):
    """Arms tuned one after another in a process share kept clips in a quarter of the RAM
    available; a process tuning one arm (a child of a launch, perf budget's per-arm way)
    keeps nothing."""
    import types

    import psutil

    from bench.run_config import RunConfig
    from bench.stages.tune import training_clips

    monkeypatch.setattr(psutil, "virtual_memory", lambda: types.SimpleNamespace(available=8000))
    write_video(tmp_path / "a.mp4", make_video("pan", frames=40, size=(64, 64)).frames)
    for data in ("synthetic", str(tmp_path)):
        config = RunConfig()
        config.tune.data = data
        shared = training_clips(config, runs=3)
        assert (shared.max_bytes, shared.runs_left) == (2000, 3)
        assert training_clips(config).max_bytes == 0


def test_a_video_damaged_past_the_up_front_check_is_skipped_when_drawn(tmp_path, capsys):
    write_video(tmp_path / "ok.mp4", make_video("pan", frames=16, size=(64, 64), seed=1).frames)
    write_video(tmp_path / "bad.mp4", make_video("pan", frames=16, size=(64, 64), seed=2).frames)
    data = bytearray((tmp_path / "bad.mp4").read_bytes())
    middle = int(len(data) * 0.7)  # packets intact, their payload not: decoding fails
    data[middle : middle + 200] = np.random.default_rng(0).integers(0, 256, 200, np.uint8).tobytes()
    (tmp_path / "bad.mp4").write_bytes(bytes(data))
    clips = VideoFolderClips(tmp_path, frames=8, size=32, batch_size=2)
    assert clips.skipped == {}  # its packets are all there
    batches = [clips(step, torch.Generator().manual_seed(step)) for step in range(4)]
    assert list(clips.skipped) == [str(tmp_path / "bad.mp4")]
    assert capsys.readouterr().err.count("training video skipped") == 1
    again = VideoFolderClips(tmp_path, frames=8, size=32, batch_size=2)  # a resume draws alike
    for step, batch in enumerate(batches):
        assert (again(step, torch.Generator().manual_seed(step)) == batch).all()
    (tmp_path / "ok.mp4").unlink()
    with pytest.raises(BenchError, match="every usable training video failed to decode"):
        VideoFolderClips(tmp_path, frames=8, size=32)(0, torch.Generator().manual_seed(0))


def test_lengths_are_scanned_once_and_kept_in_the_index(tmp_path, monkeypatch):
    """A launch's processes and a resumed run read the lengths from the index; a changed or
    new file is read again; a damaged index is rebuilt."""
    import variants.data

    data, index = tmp_path / "data", tmp_path / "run" / ".data-index.json"
    data.mkdir()
    write_video(data / "a.mp4", make_video("pan", frames=12, size=(32, 32)).frames)
    write_video(data / "short.mp4", make_video("pan", frames=4, size=(32, 32)).frames)
    (data / "broken.mp4").write_bytes(b"not a video")
    first = VideoFolderClips(data, frames=8, size=32, index=index)
    read, counting = [], variants.data.frame_count

    def count(path):
        read.append(path.name)
        return counting(path)

    monkeypatch.setattr(variants.data, "frame_count", count)
    again = VideoFolderClips(data, frames=8, size=32, index=index)
    assert read == [] and again._videos == first._videos and again.skipped == first.skipped
    write_video(data / "short.mp4", make_video("pan", frames=9, size=(32, 32)).frames)
    write_video(data / "new.mp4", make_video("pan", frames=10, size=(32, 32)).frames)
    grown = VideoFolderClips(data, frames=8, size=32, index=index)
    assert sorted(read) == ["new.mp4", "short.mp4"]
    assert [(p.name, n) for p, n in grown._videos] == [("a.mp4", 12), ("new.mp4", 10),
                                                       ("short.mp4", 9)]
    index.write_text('{"x": 1}')
    read.clear()
    rebuilt = VideoFolderClips(data, frames=8, size=32, index=index)
    assert sorted(read) == ["a.mp4", "broken.mp4", "new.mp4", "short.mp4"]
    assert rebuilt._videos == grown._videos and "broken.mp4" in " ".join(rebuilt.skipped)


def child_run(tmp_path, monkeypatch, data: Path) -> Path:
    """A run folder for ``bench.stages.tune.main`` (an arm's child process), data from ``data``;
    the base model is never loaded."""
    import json
    from dataclasses import asdict, replace

    import variants.generate
    from bench.run_config import RunConfig

    config = RunConfig()
    config.tune = replace(config.tune, data=str(data), steps=1, lr=1e-5, batch_size=1, ema=0.9,
                          checkpoint_every=1)
    run = tmp_path / "run"
    run.mkdir()
    (run / "run.json").write_text(json.dumps({"config": asdict(config)}))
    monkeypatch.setattr(variants.generate, "load_base_pipeline", lambda folder: None)
    return run


@pytest.mark.parametrize("launched", [False, True])
def test_the_skipped_videos_are_said_once_not_by_each_process_of_a_launch(
    tmp_path, monkeypatch, capsys, launched
):
    """bench scans the training videos before an arm's launch and warns; its processes read
    the lengths from the index and stay quiet. A plain child process warns itself."""
    from bench.stages import tune

    data = tmp_path / "data"
    data.mkdir()
    write_video(data / "a.mp4", make_video("pan", frames=40, size=(64, 64)).frames)
    (data / "broken.mp4").write_bytes(b"not a video")
    run = child_run(tmp_path, monkeypatch, data)
    scanned = []
    monkeypatch.setattr(tune, "train", lambda *args: scanned.append(args[-1]().clips))
    if launched:
        monkeypatch.setenv("RANK", "1")
    assert tune.main([str(run), "exsvd"]) == 0
    assert [s.folder for s in scanned] == [data] and (run / "tune" / tune.DATA_INDEX).is_file()
    said = "warning: 1 training files skipped" in capsys.readouterr().err
    assert said != launched


def test_each_different_error_of_a_launchs_processes_is_printed_once(tmp_path, monkeypatch,
                                                                      capsys):
    """A process of a launch leaves its one-line error for bench, which prints each different
    one once: the same failure in every process is one line, one process's own is not lost."""
    from bench.stages import tune

    (tmp_path / "data").mkdir()
    np.save(tmp_path / "data" / "a.npy", make_video("pan", frames=40, size=(64, 64)).frames)
    run = child_run(tmp_path, monkeypatch, tmp_path / "data")
    folder = run / "tune" / "exsvd"
    for rank, problem in (("0", "same"), ("1", "same"), ("2", "its own")):
        def fail(*args, problem=problem):
            raise BenchError("tune", problem, "fix it")

        monkeypatch.setattr(tune, "train", fail)
        monkeypatch.setenv("RANK", rank)
        assert tune.main([str(run), "exsvd"]) == 2
    assert capsys.readouterr().err == ""
    tune.print_launch_errors(folder)
    assert capsys.readouterr().err == "error: tune: same; fix it\nerror: tune: its own; fix it\n"
    assert not list(folder.glob(tune.ERRORS))
    monkeypatch.delenv("RANK")
    assert tune.main([str(run), "exsvd"]) == 2  # a plain child process prints its own
    assert capsys.readouterr().err == "error: tune: its own; fix it\n"


def test_a_training_clip_is_read_upright_as_its_display_matrix_asks(tmp_path):
    """A phone's portrait video: landscape frames and a matrix that turns them a quarter."""
    from tests.test_video_io import with_display_matrix
    from variants.data import read_clip

    frames = np.zeros((8, 32, 64, 3), np.uint8)
    frames[:, :16, :32] = 255  # the top-left quarter white: any turn or mirror moves it
    path = write_video(tmp_path / "portrait.mp4", frames, lossless=True)
    with_display_matrix(path, (0, 65536, 0, -65536, 0, 0, 0, 0, 1 << 30))
    np.testing.assert_array_equal(read_clip(path, 2, 4), np.rot90(frames[2:6], -1, axes=(1, 2)))
