"""``bench run`` configuration: TOML + --set + flags, budgets, and every setup mistake as one
line with exit 2 before any compute (no model is loaded here)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from bench.__main__ import main
from bench.run_checks import check_and_resolve
from bench.run_config import BUDGETS, RunConfig
from bench.run_settings import load_config
from metrics.errors import BenchError

CONFIGS = Path(__file__).parent.parent / "configs"


@pytest.fixture
def model_dir(tmp_path, monkeypatch):
    """A stand-in for the embedded tiny model's folder (nothing is loaded from it here)."""
    folder = tmp_path / "tiny-svd"
    folder.mkdir()
    monkeypatch.setattr("variants.tiny.SHIPPED", folder)
    return folder


def write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def test_default_toml_is_the_built_in_default(model_dir):
    assert load_config(CONFIGS / "default.toml") == check_and_resolve(RunConfig(), {})


def test_the_svd_xt_config_is_complete_and_typed(tmp_path):
    folder = tmp_path / "videos"
    folder.mkdir()
    (folder / "clip.mp4").touch()  # the check lists the folder, it does not decode
    sets = ["model.device=cpu", f"conditions.source={folder}", f"tune.data={folder}"]
    config = load_config(CONFIGS / "svd-xt-128.toml", sets)
    assert (config.model.base_length, config.model.extended_length, config.model.size) == (
        25,
        128,
        512,
    )
    assert config.tune.steps == 10000 and config.tune.lr == 1e-5
    assert "GPU-hours" in (CONFIGS / "svd-xt-128.toml").read_text()


def test_sets_and_flags_override_the_file_and_budgets_fill_the_rest(model_dir, tmp_path):
    toml = write(tmp_path / "c.toml", 'arms = "svd,exsvd"\n[tune]\nbudget = "full"\nlr = 3e-4\n')
    config = load_config(
        toml,
        ["generation.seeds=[3, 4]", "model.base=tiny", "tune.ema=0"],
        {("tune", "budget"): ("quick", "--budget")},
    )
    assert config.arms == ["svd", "exsvd"] and config.generation.seeds == [3, 4]
    assert config.tune.lr == 3e-4 and config.tune.ema == 0.0
    assert config.tune.steps == BUDGETS["quick"]["steps"]
    assert config.evaluate.device == "cpu"  # follows the model's
    assert load_config(None, ["arms=all"]).arms[:2] == ["svd", "svd-long"]


BAD = {
    "unknown arm": ('arms = ["svd", "exsvd-nope"]\n', "registered: svd, svd-long, exsvd"),
    "unknown metric": ('[evaluate]\nmetrics = ["warping_eror"]\n', "did you mean 'warping_error'"),
    "set-level metric": ('[evaluate]\nmetrics = ["fvd"]\n', "set-level"),
    "TOML syntax": ("[model]\nsize = 64\nbase_length = [1,\n[tune]\n", "c.toml:4: not valid TOML"),
    "unknown key": (
        "[model]\nsize = 64\n\n[tune]\nstepz = 3\n",
        "c.toml:5: unknown key 'tune.stepz'",
    ),
    "unknown section": ("[modle]\nsize = 64\n", "c.toml:2: unknown section [modle]"),
    "wrong type": ('[model]\nsize = "big"\n', "c.toml:2: model.size = 'big' is not an integer"),
    "bad value": ("[model]\nsize = 60\n", "not a positive multiple of the VAE factor 8"),
    "too small for the identity conv": (
        "[model]\nsize = 16\n",
        "size 16 leaves the identity conv under 2 latents at the UNet's deepest level",
    ),
    "lengths": ("[model]\nextended_length = 8\n", "base_length (8) < extended_length (8)"),
    "missing folder": ('[conditions]\nsource = "no/such/dir"\n', "no/such/dir: no such folder"),
    "texture scale": ("[conditions]\ntexture_scale = 0\n", "texture_scale must be > 0"),
    "repeated seed": ("[generation]\nseeds = [0, 0]\n", "repeat a seed"),
    "no metrics": ("[evaluate]\nmetrics = []\n", "evaluate.metrics is empty"),
    "empty folder name": ('[conditions]\nsource = ""\n', "conditions.source is empty"),
    "clip model without weights": (
        '[evaluate]\nclip_model = "ViT-L-14"\n',
        "ViT-L-14 has no weights the project resolves",
    ),
    "no processes": ("[tune]\nprocesses = 0\n", "c.toml:2: processes = 0 < 1"),
    "DeepSpeed on CPU": ("[tune]\ndeepspeed = true\n", "DeepSpeed post-tuning runs on GPUs"),
    "unknown clip model": (
        '[evaluate]\nclip_model = "ViT-Q-99"\nclip_weights = "c.toml"\n',
        "'ViT-Q-99' is not an open_clip model",
    ),
}


@pytest.mark.parametrize("case", BAD)
def test_bad_config_is_one_line_and_exit_2(case, model_dir, tmp_path, capsys):
    text, needle = BAD[case]
    code = main(
        ["run", "--config", str(write(tmp_path / "c.toml", text)), "--out", str(tmp_path / "run")]
    )
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("error: ") and err.count("\n") == 1, err
    assert needle in err and "Traceback" not in err
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize(
    ("argv", "needle"),
    [
        (["--variants", "svd,nope"], "--variants: unknown arm 'nope'"),
        (["--set", "model.size"], "not section.key=value"),
        (["--set", "generation.steps=many"], "--set generation.steps: generation.steps = 'many'"),
        (["--config", "missing.toml"], "missing.toml: cannot read the config"),
        (["--device", "mps"], "--device: mps: not a device the tools run on"),
        (["--variants", ""], "--variants"),
        (["--set", "generation.min_guidance=5.0"], "min_guidance 5.0 > max_guidance 3.0"),
        (["--set", "generation.noise_aug=-1.0"], "noise_aug = -1.0 < 0"),
        (["--set", "generation.motion_bucket=-5"], "motion_bucket = -5 < 0"),
    ],
)
def test_bad_flags_are_one_line_and_exit_2(argv, needle, model_dir, tmp_path, capsys):
    assert main(["run", "--out", str(tmp_path / "run"), *argv]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and needle in err, err


def test_a_numbered_gpu_under_a_multi_process_launch_is_refused(model_dir, tmp_path,
                                                                 monkeypatch, capsys):
    monkeypatch.setenv("WORLD_SIZE", "2")  # as accelerate launch sets it for each process
    argv = ["run", "--out", str(tmp_path / "run"), "--set", "model.device=cuda:1"]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "cuda:1 under a launch of 2 processes" in err, err


def test_data_parallel_tuning_under_a_multi_process_launch_is_refused(model_dir, tmp_path,
                                                                     monkeypatch, capsys):
    monkeypatch.setenv("WORLD_SIZE", "2")
    argv = ["run", "--out", str(tmp_path / "run"), "--set", "tune.processes=2"]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "run bench without accelerate launch" in err, err


def test_data_parallel_tuning_is_checked_against_the_gpus_and_deepspeed(model_dir, monkeypatch):
    import importlib.metadata

    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 8)
    cuda = ["model.device=cuda", "tune.deepspeed=true"]
    assert load_config(None, [*cuda, "tune.processes=8"]).tune.processes == 8
    with pytest.raises(BenchError, match="processes = 9, but 8 GPUs visible"):
        load_config(None, [*cuda, "tune.processes=9"])
    with pytest.raises(BenchError, match="on cuda:1; its processes take one GPU each"):
        load_config(None, ["model.device=cuda:1", "tune.processes=2"])
    monkeypatch.setattr(importlib.metadata, "version", lambda name: "0.18.2")
    assert load_config(None, cuda).tune.deepspeed  # nothing accumulated: any version
    with pytest.raises(BenchError, match=r"grad_accumulation.*DeepSpeed 0.18.2 .*>=0.18.3"):
        load_config(None, [*cuda, "tune.grad_accumulation=2"])


def test_an_arms_own_launch_reads_back_a_numbered_evaluation_gpu(model_dir, monkeypatch):
    import torch

    from bench.run_settings import config_from_dict

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    settings = ["model.device=cuda", "evaluate.device=cuda:1", "tune.processes=2"]
    config = load_config(None, settings)
    monkeypatch.setenv("WORLD_SIZE", "2")  # each process of the arm's launch reads run.json
    assert config_from_dict(config.to_dict(), "run.json") == config
    with pytest.raises(BenchError, match="cuda:1 under a launch of 2 processes"):
        load_config(None, settings)  # bench itself launched: refused


def test_missing_tiny_model_says_how_to_make_it(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr("variants.tiny.SHIPPED", tmp_path / "absent")
    assert main(["run", "--out", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err
    assert "python -m variants.tiny pretrain --out variants/weights/tiny-svd" in err
    assert err.count("\n") == 1


def test_a_folder_of_something_else_is_refused(model_dir, tmp_path, capsys):
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "notes.txt").write_text("mine")
    assert main(["run", "--out", str(tmp_path / "run")]) == 2
    assert "holds no run.json" in capsys.readouterr().err


def test_a_file_as_the_run_directory_is_refused(model_dir, tmp_path, capsys):
    (tmp_path / "run").write_text("mine")
    assert main(["run", "--out", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "run: is a file, not a run directory" in err, err


def test_a_training_folder_without_videos_fails_before_the_run_starts(
    model_dir, tmp_path, capsys
):
    data = tmp_path / "data"
    data.mkdir()
    (data / "notes.txt").write_text("no videos here")
    code = main(["run", "--out", str(tmp_path / "run"), "--set", f"tune.data='{data}'"])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1, err
    assert err.startswith("error: --set tune.data: ") and "data: no videos found" in err
    assert not (tmp_path / "run").exists()


def test_another_runs_directory_is_refused_unless_resumed(model_dir, tmp_path, capsys):
    run = tmp_path / "run"
    run.mkdir()
    other = check_and_resolve(RunConfig(), {})
    other.model.size = 32
    (run / "run.json").write_text(
        json.dumps({"config": other.to_dict(), "config_hash": other.digest()})
    )
    assert main(["run", "--out", str(run)]) == 2
    err = capsys.readouterr().err
    assert "holds a run with another config (model.size: 32 -> 64)" in err and "--resume" in err


def test_a_config_that_is_not_utf8_is_one_line(tmp_path, capsys):
    config = tmp_path / "latin1.toml"
    config.write_bytes(b"# caf\xe9\nseed = 1\n")
    assert main(["run", "--config", str(config), "--out", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "not UTF-8 text" in err


def test_home_is_expanded_in_folder_settings(tmp_path, monkeypatch):

    (tmp_path / "videos").mkdir()
    np.save(tmp_path / "videos" / "a.npy", np.zeros((40, 64, 64, 3), np.uint8))
    monkeypatch.setenv("HOME", str(tmp_path))
    config = load_config(None, ["conditions.source=~/videos"])
    assert config.conditions.source == str(tmp_path / "videos")


def test_a_run_json_without_a_config_is_not_a_traceback(tmp_path, capsys):
    run = tmp_path / "run"
    run.mkdir()
    (run / "run.json").write_text('{"finished": null}')
    assert main(["run", "--out", str(run), "--set", "model.size=40"]) == 2
    assert "Traceback" not in capsys.readouterr().err


def test_an_unreadable_run_json_says_how_to_go_on(model_dir, tmp_path, capsys):
    from bench.run_record import check_run_dir

    run = tmp_path / "run"
    run.mkdir()
    (run / "run.json").write_text("{cut sh")
    assert main(["run", "--out", str(run)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "run.json: unreadable; pass --resume" in err, err
    check_run_dir(run, load_config(None), resume=True, force=False)  # what it says works


def test_a_conditions_folder_without_videos_fails_before_the_run_starts(
    model_dir, tmp_path, capsys
):
    (tmp_path / "conditions").mkdir()
    source = f"conditions.source='{tmp_path / 'conditions'}'"
    assert main(["run", "--out", str(tmp_path / "run" / "a"), "--set", source]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "conditions: no videos found" in err, err
    assert not (tmp_path / "run").exists()  # no run.json pinning the mistaken config


def test_metrics_that_failed_on_some_videos_are_said_at_the_end(tmp_path):
    import pandas as pd

    from bench.run_cmd import failures

    table = pd.DataFrame({
        "metric": ["psnr", "psnr", "warping_error", "warping_error", "ssim"],
        "status": ["ok", "ok", "error", "error", "unavailable"],
        "detail": ["", "", "frames below 16 px", "frames below 16 px", "no weights"],
    })
    table.to_parquet(tmp_path / "per_video.parquet")
    assert failures(tmp_path / "per_video.parquet") == [
        "warping_error failed on 2 of 2 videos (frames below 16 px); see results/per_video.csv"]
