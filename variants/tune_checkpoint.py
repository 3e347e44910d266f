"""Post-tuning checkpoints: written atomically, resumed bit for bit, refused when they were made
by another arm, other settings or another launch (process count, DDP or DeepSpeed).

``checkpoint.pt`` is the commit record: the trainable weights, their EMA, the step, the loss
curve and the optimizer state. Under DeepSpeed ZeRO each process holds only its partition of
the optimizer state, so every process first writes its part with the engine's own
``save_checkpoint`` into ``deepspeed/step-N/`` and ``checkpoint.pt`` then names that folder; a
run killed in between leaves the previous ``checkpoint.pt`` and its folder intact.

Ctrl-C in a run of one process ends it at the end of the step under way, with a checkpoint of
that step (``interrupt_at_step_end``); a second Ctrl-C ends it at once.
"""

from __future__ import annotations

import contextlib
import json
import pickle
import shutil
import signal
import sys
import threading
from dataclasses import dataclass, field
from pathlib import Path

import torch

from metrics.atomic import atomic_path
from metrics.errors import BenchError
from variants.launch import SINGLE_PROCESS, distributed_type

# settings a resumed run may change: they leave the maths of the remaining steps alone (steps
# too, unless the learning rate decays over them: cosine)
RESUMABLE_CHANGES = ("steps", "checkpoint_every", "checkpointing", "deterministic")


@dataclass
class Interrupt:
    requested: bool = False


@contextlib.contextmanager
def interrupt_at_step_end(enabled: bool = True):
    """Within: a first SIGINT (Ctrl-C) only sets ``requested``, for the loop to checkpoint the
    step under way and stop; a second raises KeyboardInterrupt at once. Not enabled (the
    processes of a launch would stop at different steps), off the main thread, or SIGINT
    ignored (a script's background job): unchanged."""
    interrupt = Interrupt()
    if (not enabled or threading.current_thread() is not threading.main_thread()
            or signal.getsignal(signal.SIGINT) is signal.SIG_IGN):
        yield interrupt
        return

    def defer(signum, frame):
        if interrupt.requested:
            raise KeyboardInterrupt
        interrupt.requested = True
        print("\ninterrupted: stopping after this step's checkpoint (Ctrl-C again: at once)",
              file=sys.stderr)

    previous = signal.signal(signal.SIGINT, defer)
    try:
        yield interrupt
    finally:
        signal.signal(signal.SIGINT, previous)


@dataclass
class TuneState:
    """What a checkpoint holds besides the trainable weights."""

    step: int = 0
    losses: list[float] = field(default_factory=list)


def not_resumable(saved: dict, made_by: dict) -> str | None:
    """Why a checkpoint cannot continue this run (another arm, settings or launch), or None."""
    if "made_by" not in saved:
        return "was written by an older exsvd-bench that did not record its settings"
    theirs = json.loads(saved["made_by"])
    launch = theirs.get("launch", SINGLE_PROCESS)
    if launch != made_by["launch"]:
        return (f"was written by another launch ({describe(launch)}, this one is "
                f"{describe(made_by['launch'])})")
    changed = [k for k in ("arm", "trainable") if theirs[k] != made_by[k]]
    changed += [
        f"config.{k}"
        for k, v in made_by["config"].items()
        if k not in RESUMABLE_CHANGES and theirs["config"].get(k) != v
    ]
    if made_by["config"]["cosine"] and theirs["config"]["steps"] != made_by["config"]["steps"]:
        changed.append("config.steps, which the cosine schedule spans,")
    if changed:
        return f"was written by another arm or other settings ({', '.join(changed)} differ)"
    if saved["step"] > made_by["config"]["steps"]:
        return f"has {saved['step']} steps done, more than steps = {made_by['config']['steps']}"
    return None


def describe(launch: dict) -> str:
    processes = launch["processes"]
    return f"{processes} process{'es' if processes > 1 else ''}, {launch['distributed']}"


def save_checkpoint(path: Path, model, params, optimizer, ema, state: TuneState, accelerator,
                    made_by: dict) -> None:
    """Every process calls it (DeepSpeed's partitions are saved collectively)."""
    deepspeed = distributed_type(accelerator) == "DEEPSPEED"
    folder = path.parent / "deepspeed"
    tag = f"step-{state.step}"
    if deepspeed:
        model.save_checkpoint(str(folder), tag=tag, save_latest=False,
                              exclude_frozen_parameters=True)
        accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        scaler = accelerator.scaler  # fp16 on GPUs: the loss scale is part of the state
        saved = {
            "params": [p.detach() for p in params],
            "optimizer": None if deepspeed else optimizer.state_dict(),
            "deepspeed_tag": tag if deepspeed else None,
            "scaler": scaler.state_dict() if scaler is not None else None,
            "ema": ema,
            "step": state.step,
            "losses": state.losses,
            "made_by": json.dumps(made_by, sort_keys=True),
        }
        with atomic_path(path) as tmp:  # straight to the file: no second copy in memory
            torch.save(saved, tmp)
        if deepspeed:  # the committed step's partitions only
            for old in folder.glob("step-*"):
                if old.name != tag:
                    shutil.rmtree(old, ignore_errors=True)
    accelerator.wait_for_everyone()


def load_checkpoint(path: Path, model, params, optimizer, ema, accelerator,
                    made_by: dict) -> TuneState:
    try:
        saved = torch.load(path, map_location="cpu", weights_only=True)
    except (RuntimeError, EOFError, pickle.UnpicklingError) as err:
        raise BenchError(path, f"cannot be read ({str(err).splitlines()[0]})",
                         "delete it to start over") from None
    problem = not_resumable(saved, made_by)
    if problem:
        raise BenchError(path, problem, "delete it to start over, or resume with its settings")
    with torch.no_grad():
        for target, source in zip(params, saved["params"], strict=True):
            target.copy_(source)
        for target, source in zip(ema, saved["ema"], strict=True):
            target.copy_(source)
    if saved.get("deepspeed_tag"):
        folder = path.parent / "deepspeed"
        if not (folder / saved["deepspeed_tag"]).is_dir():
            raise BenchError(path, f"its DeepSpeed state {folder / saved['deepspeed_tag']} is "
                             "missing", "delete checkpoint.pt to start over")
        model.load_checkpoint(str(folder), tag=saved["deepspeed_tag"], load_module_strict=False,
                              load_optimizer_states=True, load_lr_scheduler_states=False)
    else:
        optimizer.load_state_dict(saved["optimizer"])
    if accelerator.scaler is not None and saved.get("scaler") is not None:
        accelerator.scaler.load_state_dict(saved["scaler"])
    return TuneState(saved["step"], list(saved["losses"]))
