"""The post-tuning routine every ExSVD arm goes through: ExVideo's objective on the arm's trainable
parameters only, AdamW, EMA, atomic checkpoints and bit-for-bit resume, a loss curve on disk.

Fairness: the clips, their order and all training noise come from generators seeded by the
run's seed, the step and the process (of a data-parallel launch), never by the arm, so every arm
of one run sees the same data in the same order with the same noise; the saved arm records the
whole configuration. The saved arm does not depend on the training precision: its frozen
weights are saved as the base had them, its trained ones in float32 (DeepSpeed's masters).
"""

from __future__ import annotations

import contextlib
import csv
import functools
import hashlib
import json
import math
import os
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

import numpy as np
import torch
from diffusers.pipelines.stable_video_diffusion.pipeline_stable_video_diffusion import (
    _resize_with_antialiasing,
)

from metrics.atomic import atomic_path
from metrics.errors import BenchError
from variants.launch import (
    casts_frozen_weights,
    check_launch,
    full_precision,
    launch_of,
    prepare_deepspeed,
    sixteen_bit_inputs,
)
from variants.memory import apply_checkpointing, store_frozen_in
from variants.objective import Batch, ObjectiveConfig, edm_loss
from variants.repeatable import deterministic_kernels
from variants.tune_checkpoint import (
    TuneState,
    interrupt_at_step_end,
    load_checkpoint,
    save_checkpoint,
)
from variants.unet import set_trainable


@dataclass(frozen=True)
class TuneConfig:
    """Everything that determines a post-tuning run (recorded with the tuned arm)."""

    steps: int
    frames: int
    lr: float = 1e-5
    batch_size: int = 1
    grad_accumulation: int = 1
    seed: int = 0
    ema_decay: float = 0.999
    mixed_precision: str = "no"  # "fp16" or "bf16" on GPUs (accelerate)
    checkpointing: str = "none"  # "stock" or "full": variants.memory.CHECKPOINTING
    frozen_dtype: str = "float32"  # "bfloat16" (with mixed_precision "bf16"): frozen weights
    fused_adamw: bool = False  # torch's fused AdamW kernel (no optimizer temporaries)
    deterministic: bool = False  # the same bits on every GPU run: variants.repeatable
    checkpoint_every: int = 50
    warmup_steps: int = 0  # linear warm-up of the learning rate
    cosine: bool = False  # cosine decay to 0 after warm-up (ExVideo: constant)
    fps_id: int = 6  # the pipeline's fps argument minus one, as SVD was conditioned
    motion_bucket: int = 127
    noise_aug: float = 0.02
    objective: ObjectiveConfig = field(default_factory=ObjectiveConfig)

    def __post_init__(self):
        from variants.memory import AUTOCAST, CHECKPOINTING, FROZEN_DTYPES

        if self.checkpointing not in CHECKPOINTING:
            problem = f"checkpointing {self.checkpointing!r} is not one of {CHECKPOINTING}"
        elif self.frozen_dtype not in FROZEN_DTYPES:
            problem = f"frozen_dtype {self.frozen_dtype!r} is not one of {FROZEN_DTYPES}"
        elif AUTOCAST.get(self.frozen_dtype, self.mixed_precision) != self.mixed_precision:
            problem = (f"frozen_dtype {self.frozen_dtype} needs mixed_precision "
                       f"{AUTOCAST[self.frozen_dtype]!r}, not {self.mixed_precision!r}")
        else:
            return
        raise BenchError("post-tuning settings", problem, "see TuneConfig and variants.memory")


def clip_pixels(clips: np.ndarray, device="cpu") -> torch.Tensor:
    """uint8 clips [B, T, H, W, 3] -> float [B, T, 3, H, W] in [-1, 1], as the VAE takes them."""
    return torch.from_numpy(clips).to(device).permute(0, 1, 4, 2, 3).float() / 127.5 - 1


@torch.no_grad()
def condition_inputs(
    pipeline, first: torch.Tensor, noise_aug: float, generator: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor]:
    """The condition latent and image embedding of first frames [B, 3, H, W] in [-1, 1], made as
    the SVD pipeline makes them: VAE mode of the noise-augmented frame; CLIP embedding of the
    frame resized (antialiased) to 224, as the pipeline does for a PIL condition."""
    noisy_first = first + noise_aug * torch.randn(first.shape, generator=generator).to(first)
    condition = pipeline.vae.encode(noisy_first).latent_dist.mode()
    resized = _resize_with_antialiasing(first, (224, 224))
    embeds = pipeline._encode_image((resized + 1) / 2, first.device, 1, False)
    return condition, embeds


@torch.no_grad()
def encode_clips(
    pipeline, clips: np.ndarray, config: TuneConfig, generator: torch.Generator
) -> Batch:
    """uint8 clips [B, T, H, W, 3] -> a Batch, conditioned as the SVD pipeline does."""
    device = pipeline.vae.device
    video = clip_pixels(clips, device)
    size, frames = video.shape[:2]
    vae = pipeline.vae
    latents = vae.encode(video.flatten(0, 1)).latent_dist.sample(generator)
    latents = (latents * vae.config.scaling_factor).unflatten(0, (size, frames))
    condition, embeds = condition_inputs(pipeline, video[:, 0], config.noise_aug, generator)
    time_ids = torch.tensor([[config.fps_id, config.motion_bucket, config.noise_aug]] * size)
    return Batch(latents, condition, embeds, time_ids.to(device))


class EncodedClips:
    """A clip source for ``post_tune`` that keeps each step's encoded Batch for the next run it is
    given to. Every arm of one run draws the same clips and noise (same seed, same steps), so
    arms post-tuned one after another render and encode each step's clips once instead of once
    per arm. Kept by (step, generator state, conditioning) on the CPU, up to ``max_bytes``
    (encoded afresh beyond; by default ``ram_budget()``); a kept Batch comes back with the
    generator set where encoding left it, so everything drawn after is what encoding again
    would give, bit for bit. Given ``runs``, the number of runs that will read it, the last
    takes each kept Batch (no run after it needs it) and keeps nothing new."""

    def __init__(self, clips: Callable[[int, torch.Generator], np.ndarray],
                 max_bytes: int | None = None, runs: int | None = None):
        self.clips = clips
        self.max_bytes = ram_budget() if max_bytes is None else max_bytes
        self.kept_bytes = 0
        self.runs_left = runs
        self._kept: dict[tuple, tuple[Batch, torch.Tensor]] = {}
        self._encoders: tuple | None = None

    def begin_run(self) -> None:
        """``post_tune`` starts a run on these clips."""
        if self.runs_left is not None:
            self.runs_left -= 1

    def encode(self, pipeline, config: TuneConfig, step: int, generator: torch.Generator) -> Batch:
        """``encode_clips`` of this step's clips, or the Batch kept from an earlier run."""
        encoders = (pipeline.vae, pipeline.image_encoder)
        self._encoders = self._encoders or encoders
        if any(mine is not theirs for mine, theirs in zip(self._encoders, encoders, strict=True)):
            raise ValueError("an EncodedClips serves one pipeline's encoders; one per pipeline")
        last = self.runs_left is not None and self.runs_left <= 0
        state = hashlib.sha1(generator.get_state().numpy().tobytes()).hexdigest()
        key = (step, state, config.noise_aug, config.fps_id, config.motion_bucket)
        if key in self._kept:
            if last:
                batch, after = self._kept.pop(key)
                self.kept_bytes -= _nbytes(batch) + after.numel()
            else:
                batch, after = self._kept[key]
            generator.set_state(after)
            return Batch(*(t.to(pipeline.vae.device, copy=True) for t in _tensors(batch)))
        batch = encode_clips(pipeline, self.clips(step, generator), config, generator)
        after = generator.get_state()  # uint8: a byte an element
        size = _nbytes(batch) + after.numel()
        if not last and self.kept_bytes + size <= self.max_bytes:
            kept = Batch(*(t.to("cpu", copy=True) for t in _tensors(batch)))
            self._kept[key] = (kept, after)
            self.kept_bytes += size
        return batch


def ram_budget() -> int:
    """What ``EncodedClips`` keeps by default: a quarter of the RAM available now (SVD-XT's
    128-frame 512x512 steps are ~8 MiB each: thousands of steps on a 128 GiB machine)."""
    import psutil

    return psutil.virtual_memory().available // 4


def _tensors(batch: Batch) -> list[torch.Tensor]:
    return [getattr(batch, field.name) for field in fields(batch)]


def _nbytes(batch: Batch) -> int:
    return sum(t.numel() * t.element_size() for t in _tensors(batch))


def scheduled_lr(lr: float, step: int, steps: int, warmup: int, cosine: bool) -> float:
    """The learning rate of (0-based) ``step`` of ``steps``: linear warm-up over ``warmup``
    steps, then constant or cosine decay to 0."""
    scale = min(1.0, (step + 1) / warmup) if warmup else 1.0
    if cosine:
        progress = max(0, step - warmup) / max(1, steps - warmup)
        scale *= 0.5 * (1 + math.cos(math.pi * progress))
    return lr * scale


def learning_rate(config: TuneConfig, step: int) -> float:
    """The learning rate of (0-based) ``step`` of a post-tuning run."""
    return scheduled_lr(config.lr, step, config.steps, config.warmup_steps, config.cosine)


def post_tune(
    unet,
    pipeline,
    clips: Callable[[int, torch.Generator], np.ndarray] | None,
    config: TuneConfig,
    out_dir: Path,
    *,
    resume: bool = False,
    stop_after: int | None = None,
    progress: bool = True,
    train_all: bool = False,
    batches: Callable[[int, torch.Generator], Batch] | None = None,
) -> Path:
    """Post-tune ``unet`` (an arm's ExSVDUNet) and save it to ``out_dir`` (``save_pretrained``).

    ``train_all`` trains every UNet parameter instead of the arm's set (pretraining a base);
    ``batches(step, generator)``, if given, yields pre-encoded Batches instead of ``clips``.

    ``clips(step, generator)`` returns the uint8 clips [B, T, H, W, 3] of one step; an
    ``EncodedClips`` given to several runs encodes each step's clips once. Runs under
    accelerate (devices, mixed precision, DDP / DeepSpeed ZeRO with ``accelerate launch``):
    each process draws its own clips from (seed, step, process); the gradient and the loss curve
    are means over processes and accumulated micro-batches. Checkpoints go to
    ``out_dir/checkpoint.pt`` every ``checkpoint_every`` steps (atomically); ``resume``
    continues from there bit for bit (on a GPU under ``config.deterministic``: see
    ``variants.repeatable``). Ctrl-C in a run of one process stops it at the end of the step
    under way, checkpointed (KeyboardInterrupt). ``stop_after`` ends early (as if killed).
    """
    from tqdm import tqdm

    single = int(os.environ.get("WORLD_SIZE", "1")) == 1  # not a process of a launch
    with (deterministic_kernels(config.deterministic),
          interrupt_at_step_end(single) as interrupt):
        run = _Training.prepare(unet, config, train_all)
        out_dir.mkdir(parents=True, exist_ok=True)
        if batches is None:
            batches = _encoded_batches(clips, pipeline, config, run.accelerator.device)
        checkpoint = out_dir / "checkpoint.pt"
        made_by = {"config": asdict(config), "arm": _arm_config(unet), "trainable": run.names,
                   "launch": run.launch}
        kept = run.model, run.params, run.optimizer, run.ema  # what a checkpoint holds
        state = TuneState()
        if resume and checkpoint.is_file():
            state = load_checkpoint(checkpoint, *kept, run.accelerator, made_by)
        shown = progress and run.accelerator.is_main_process
        with tqdm(total=config.steps, initial=state.step, desc="post-tune", unit="step",
                  disable=not shown) as bar:
            for step in range(state.step, config.steps):
                loss = run.step(batches, config, step)
                state.step, state.losses = step + 1, [*state.losses, loss]
                bar.set_postfix(loss=f"{loss:.4f}")  # tqdm shows it/s itself
                bar.update()
                done = state.step == config.steps
                if state.step % config.checkpoint_every == 0 or done or interrupt.requested:
                    save_checkpoint(checkpoint, *kept, state, run.accelerator, made_by)
                if interrupt.requested:
                    raise KeyboardInterrupt
                if stop_after is not None and state.step >= stop_after:
                    return checkpoint
        run.save(state, config, out_dir)
        return out_dir


def _encoded_batches(clips, pipeline, config: TuneConfig, device) -> Callable:
    """``batches(step, generator)`` from ``clips`` through ``pipeline``'s encoders, moved to
    ``device`` (the base UNet stays where it is)."""
    pipeline.vae.to(device)
    pipeline.image_encoder.to(device)
    source = clips if isinstance(clips, EncodedClips) else EncodedClips(clips, max_bytes=0)
    source.begin_run()
    return functools.partial(source.encode, pipeline, config)


@dataclass
class _Training:
    """A UNet prepared for post-tuning by accelerate, with its optimizer and EMA."""

    accelerator: object
    unet: torch.nn.Module
    model: torch.nn.Module  # as prepared: the UNet, or DDP or DeepSpeed's engine around it
    forward: Callable  # the model, given 16-bit inputs where DeepSpeed holds 16-bit weights
    optimizer: torch.optim.Optimizer
    names: list[str]  # the trained parameters'
    params: list[torch.nn.Parameter]
    ema: list[torch.Tensor]
    counts: dict[str, int]
    launch: dict
    base_frozen: dict[str, torch.Tensor]  # saved as they were, not as they trained (as svd and
    # svd-long load them): a CPU copy where training casts them, else empty

    @classmethod
    def prepare(cls, unet, config: TuneConfig, train_all: bool) -> _Training:
        """Mark what trains (the arm's set, or everything), apply the memory levers, and
        prepare the UNet and AdamW (refused before any compute if the launch cannot train)."""
        from accelerate import Accelerator

        accelerator = Accelerator(
            mixed_precision=config.mixed_precision,
            gradient_accumulation_steps=config.grad_accumulation,
        )
        check_launch(accelerator, config.grad_accumulation)
        counts = set_trainable(unet, True)
        if train_all:
            unet.requires_grad_(True)
            counts["trainable"] = sum(p.numel() for p in unet.parameters())
        apply_checkpointing(unet, config.checkpointing)
        base_frozen = {}
        if accelerator.is_main_process and casts_frozen_weights(accelerator, config.frozen_dtype):
            base_frozen = {n: p.detach().to("cpu", copy=True)
                           for n, p in unet.named_parameters() if not p.requires_grad}
        store_frozen_in(unet, config.frozen_dtype)
        unet.train()
        names = [name for name, p in unet.named_parameters() if p.requires_grad]
        params = [p for p in unet.parameters() if p.requires_grad]
        fused = {"fused": True} if config.fused_adamw else {}
        optimizer = torch.optim.AdamW(params, lr=config.lr, **fused)
        prepare_deepspeed(accelerator, config.batch_size)
        model, optimizer = accelerator.prepare(unet, optimizer)
        # after prepare: on the parameters' device; float32 where DeepSpeed holds them in 16 bits.
        # There it averages the 16-bit weights the model computes with: averaging the fp32 masters
        # would gather every trainable weight from the partitions at every step
        ema = [p.detach().float().clone() for p in params]
        return cls(accelerator, unet, model, sixteen_bit_inputs(model, accelerator), optimizer,
                   names, params, ema, counts, launch_of(accelerator), base_frozen)

    def step(self, batches: Callable[[int, torch.Generator], Batch], config: TuneConfig,
             step: int) -> float:
        """One optimizer step on ``grad_accumulation`` micro-batches of ``batches``, drawn with
        the generator of (seed, step, process), then the EMA; the loss, a mean over the
        micro-batches and the processes."""
        accelerator = self.accelerator
        seed = (config.seed * 1_000_003 + step) * 1_009 + accelerator.process_index
        generator = torch.Generator().manual_seed(seed)
        self.optimizer.zero_grad(set_to_none=True)
        for group in self.optimizer.param_groups:
            group["lr"] = learning_rate(config, step)
        total = 0.0
        for _ in range(config.grad_accumulation):
            batch = batches(step, generator)
            # gradients are synced (and DeepSpeed steps) after the last micro-batch only;
            # backward divides the loss by grad_accumulation (DeepSpeed's engine does it itself)
            with accelerator.accumulate(self.model):
                with accelerator.autocast():
                    loss = edm_loss(self.forward, batch, config.objective, generator)
                accelerator.backward(loss)
            total += loss.item() / config.grad_accumulation
        self.optimizer.step()  # a no-op under DeepSpeed, whose engine stepped in backward
        if accelerator.num_processes > 1:  # the loss of the gradient: the mean over processes
            total = torch.tensor(total, dtype=torch.float64, device=accelerator.device)
            total = accelerator.reduce(total, "mean").item()
        with torch.no_grad():
            for average, param in zip(self.ema, self.params, strict=True):
                average.lerp_(param.detach().float().to(average.dtype), 1 - config.ema_decay)
        return total

    def save(self, state: TuneState, config: TuneConfig, out_dir: Path) -> None:
        """The tuned arm, its EMA, loss curve and record, written by the main process."""
        trained = full_precision(self.params, self.accelerator)
        if self.accelerator.is_main_process:
            tuned = {**self.base_frozen, **dict(zip(self.names, trained, strict=True))}
            averaged = {**self.base_frozen, **dict(zip(self.names, self.ema, strict=True))}
            # the UNet itself, not accelerate's unwrap_model, which imports DeepSpeed where it
            # is installed (its "Setting accelerator to CPU" warning on CPUs)
            _write_outputs(self.unet, tuned, averaged, state, config, self.counts, self.launch,
                           out_dir)
        self.accelerator.wait_for_everyone()


@contextlib.contextmanager
def holding(module, weights: dict[str, torch.Tensor]):
    """``module`` with the named parameters holding ``weights`` (any dtype), restored after."""
    named = dict(module.named_parameters())
    before = {name: named[name].data for name in weights}
    try:
        for name, value in weights.items():
            named[name].data = value.to(named[name].device)
        yield module
    finally:
        for name, value in before.items():
            named[name].data = value


def _arm_config(unet) -> dict:
    """The model's ``exsvd_*`` options (the arm), JSON-safe."""
    config = getattr(unet, "config", {})
    return {k: v for k, v in dict(config).items() if k.startswith("exsvd_")}


def _write_outputs(unet, tuned: dict, averaged: dict, state, config, counts, launch,
                   out_dir: Path) -> None:
    """The tuned arm (raw weights and EMA: ``unet`` holding ``tuned`` or ``averaged``, float32
    weights by parameter name), its loss curve and its training record."""
    for folder, weights in (("unet", tuned), ("unet_ema", averaged)):
        with holding(unet, weights):
            unet.save_pretrained(out_dir / folder)
    with atomic_path(out_dir / "loss.csv") as tmp, open(tmp, "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["step", "loss"])
        writer.writerows(enumerate(state.losses, start=1))
    record = {"config": asdict(config), "parameters": counts, "steps_done": state.step,
              "launch": launch}
    with atomic_path(out_dir / "training.json") as tmp:
        tmp.write_text(json.dumps(record, indent=2))


def synthetic_clips(
    frames: int, size: int, batch_size: int
) -> Callable[[int, torch.Generator], np.ndarray]:
    """Clips of the tiny model's training distribution (``variants.tiny_data``), chosen by the
    step's generator alone."""
    from variants.tiny_data import render_clips

    def clips(step: int, generator: torch.Generator) -> np.ndarray:
        picks = torch.randint(0, 2**31 - 1, (batch_size,), generator=generator).tolist()
        return render_clips(picks, frames=frames, size=size)

    return clips
