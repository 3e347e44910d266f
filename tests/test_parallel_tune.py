"""Post-tuning one arm over 2 processes (``accelerate launch`` on CPUs): DDP and DeepSpeed ZeRO-2,
with gradient accumulation, train what an independent single-process reference computes from
the same per-process micro-batches (DeepSpeed in bf16 too, within bf16's rounding), resume bit
for bit, and record the launch; a launch that would not train as asked is refused before any
compute."""

from __future__ import annotations

import csv
import importlib.util
import json
import os
import subprocess
import sys
import types
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from metrics.errors import BenchError
from tests.parallel_tune import CONFIG, FRAMES, SIZE, arm, trainable
from variants.objective import edm_loss
from variants.posttune import EncodedClips, learning_rate, post_tune, synthetic_clips
from variants.tiny import tiny_pipeline
from variants.unet import set_trainable

ROOT = Path(__file__).parent.parent
PROCESSES = 2
DEEPSPEED_CONFIG = ROOT / "variants" / "configs" / "deepspeed_zero2.json"
WEIGHTS = "diffusion_pytorch_model.safetensors"
has_deepspeed = importlib.util.find_spec("deepspeed") is not None


@pytest.fixture(scope="module")
def reference() -> tuple[dict[str, torch.Tensor], list[float]]:
    """Data-parallel post-tuning written out in one process: each step averages the loss over
    every process's micro-batches, drawn with the generator that process seeds, then one AdamW
    step."""
    base = tiny_pipeline(seed=0)
    unet = arm(base)
    set_trainable(unet, True)
    unet.train()
    params = [p for p in unet.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=CONFIG.lr)
    source = EncodedClips(synthetic_clips(FRAMES, SIZE, CONFIG.batch_size), max_bytes=0)
    micro_batches = PROCESSES * CONFIG.grad_accumulation
    losses = []
    for step in range(CONFIG.steps):
        optimizer.zero_grad()
        for group in optimizer.param_groups:
            group["lr"] = learning_rate(CONFIG, step)
        total = 0.0
        for process in range(PROCESSES):
            seed = (CONFIG.seed * 1_000_003 + step) * 1_009 + process
            generator = torch.Generator().manual_seed(seed)
            for _ in range(CONFIG.grad_accumulation):
                batch = source.encode(base, CONFIG, step, generator)
                loss = edm_loss(unet, batch, CONFIG.objective, generator)
                (loss / micro_batches).backward()
                total += loss.item() / micro_batches
        optimizer.step()
        losses.append(total)
    return trainable(unet), losses


def launch(out: Path, *how: str, **env: str) -> None:
    command = [str(Path(sys.executable).parent / "accelerate"), "launch", *how,
               "--num_processes", str(PROCESSES), "--num_machines", "1",
               "--mixed_precision", "no", "--dynamo_backend", "no",
               str(ROOT / "tests" / "parallel_tune.py"), str(out)]
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": "", "OMP_NUM_THREADS": "1", **env}
    done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]


def check_against_reference(out: Path, reference, distributed: str) -> None:
    expected, expected_losses = reference
    runs = torch.load(out / "trainable.pt")
    for name, value in runs["straight"].items():
        assert torch.equal(value, runs["resumed"][name]), f"resume differs at {name}"
    for output in ("unet_ema/" + WEIGHTS, "training.json"):  # generation loads the EMA
        assert (out / "straight" / output).read_bytes() == (out / "resumed" / output).read_bytes()
    # AdamW divides by the gradient's running RMS, so float rounding in the all-reduce moves
    # a few near-zero-gradient weights by up to ~1e-4; a lost micro-batch moves ~95% of them
    # by more than 1e-5 (up to 6e-3), and so does every process training the same batch
    drift = torch.cat([(runs["straight"][n] - v).abs().flatten() for n, v in expected.items()])
    assert drift.max() < 1e-3 and (drift > 1e-5).float().mean() < 0.01, drift.max()
    for folder in ("straight", "resumed"):
        rows = list(csv.DictReader((out / folder / "loss.csv").read_text().splitlines()))
        torch.testing.assert_close([float(r["loss"]) for r in rows], expected_losses,
                                   rtol=1e-5, atol=0)
        record = json.loads((out / folder / "training.json").read_text())
        assert record["launch"] == {"processes": PROCESSES, "distributed": distributed}
        assert record["config"]["deterministic"] == (distributed == "MULTI_CPU")


@pytest.mark.slow
def test_ddp_over_two_processes_trains_the_data_parallel_reference(reference, tmp_path):
    launch(tmp_path, "--multi_gpu", ACCELERATE_USE_CPU="true")
    check_against_reference(tmp_path, reference, "MULTI_CPU")


@pytest.mark.slow
@pytest.mark.skipif(not has_deepspeed, reason="deepspeed not installed (pip install -e '.[test]')")
def test_deepspeed_zero2_trains_the_reference_and_resumes_from_its_partitions(
    reference, tmp_path
):
    kernels = tmp_path / "torch_extensions"  # empty: a cache elsewhere cannot hide a build
    launch(tmp_path, "--use_deepspeed", "--deepspeed_config_file", str(DEEPSPEED_CONFIG),
           TORCH_EXTENSIONS_DIR=str(kernels))
    assert not kernels.exists() or not any(kernels.iterdir()), "a DeepSpeed kernel was built"
    check_against_reference(tmp_path, reference, "DEEPSPEED")
    # every process saved its optimizer partition; only the committed step is kept
    assert [p.name for p in (tmp_path / "resumed" / "deepspeed").glob("step-*")] == ["step-3"]
    # in bf16 the engine holds the weights in 16 bits and the inputs are cast to them
    rows = list(csv.DictReader((tmp_path / "bf16" / "loss.csv").read_text().splitlines()))
    torch.testing.assert_close([float(r["loss"]) for r in rows], reference[1][:2], rtol=1e-2,
                               atol=0)
    # saved in float32 all the same: the trained weights from the fp32 masters (values bf16
    # cannot hold), the frozen ones as the base had them (as svd and svd-long load them)
    stock = arm(tiny_pipeline(seed=0))
    set_trainable(stock, True)
    frozen = {n: not p.requires_grad for n, p in stock.named_parameters()}
    for folder in ("unet", "unet_ema"):
        saved = load_file(tmp_path / "bf16" / folder / WEIGHTS)
        assert {t.dtype for t in saved.values()} == {torch.float32}
        assert all(torch.equal(saved[n], stock.state_dict()[n]) for n in frozen if frozen[n])
        if folder == "unet":
            trained = [saved[n] for n in frozen if not frozen[n]]
            assert any(not torch.equal(t, t.bfloat16().float()) for t in trained)


def test_processes_that_each_run_alone_are_refused_before_any_compute(tmp_path, monkeypatch):
    monkeypatch.setenv("WORLD_SIZE", "2")  # launched, but accelerate found no GPU to join
    base = tiny_pipeline(seed=0)
    with pytest.raises(BenchError, match=r"runs each on its own.*ACCELERATE_USE_CPU=true"):
        post_tune(arm(base), base, synthetic_clips(FRAMES, SIZE, 1), CONFIG, tmp_path / "out",
                  progress=False)
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("version, refused", [("0.18.2", True), ("0.18.3", False)])
def test_deepspeed_that_drops_accumulated_gradients_is_refused(version, refused, monkeypatch):
    from accelerate.utils import DistributedType

    from variants.launch import check_launch

    monkeypatch.setitem(sys.modules, "deepspeed", types.SimpleNamespace(__version__=version))
    deepspeed = types.SimpleNamespace(num_processes=2, distributed_type=DistributedType.DEEPSPEED)
    check_launch(deepspeed, grad_accumulation=1)  # nothing accumulated: any version trains right
    if refused:
        with pytest.raises(BenchError, match=r"DeepSpeed 0.18.2 .*deepspeed>=0.18.3"):
            check_launch(deepspeed, grad_accumulation=2)
    else:
        check_launch(deepspeed, grad_accumulation=2)


def test_a_checkpoint_of_another_launch_is_refused(tmp_path):
    from variants.tune_checkpoint import not_resumable

    base = tiny_pipeline(seed=0)
    post_tune(arm(base), base, synthetic_clips(FRAMES, SIZE, 1), CONFIG, tmp_path, stop_after=1,
              progress=False)
    saved = torch.load(tmp_path / "checkpoint.pt", weights_only=True)
    made_by = json.loads(saved["made_by"])
    assert not_resumable(saved, made_by) is None
    made_by["launch"] = {"processes": 2, "distributed": "DEEPSPEED"}
    assert not_resumable(saved, made_by) == (
        "was written by another launch (1 process, NO, this one is 2 processes, DEEPSPEED)")
