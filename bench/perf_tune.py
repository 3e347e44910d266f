"""``bench perf tune``: seconds and peak memory of one post-tuning step per memory setting.

ExVideo post-tuned SVD-XT at 128 frames with DeepSpeed ZeRO-2 across 8 GPUs; the target here is
one 80 GB GPU (peak <= 72 GiB). Each named ``Setting`` is a combination of the usual levers, and
one run measures them side by side at every requested length.

Levers considered and left out, and why:

* running the frozen spatial layers under ``torch.no_grad``: not possible, the gradient of the
  trainable temporal blocks of the first levels flows back through every later frozen layer
  (only what comes before the first trainable block is gradient-free, and autograd already skips
  it because nothing there requires grad);
* 8-bit AdamW (bitsandbytes) and CPU optimizer offload: extra dependencies, and they change the
  optimizer ExVideo used; fused AdamW already removes the optimizer's temporaries;
* fp16: SVD's activations overflow in fp16 without loss scaling; bf16 needs none;
* attention: diffusers' default processor is already ``AttnProcessor2_0``, i.e. torch's
  ``scaled_dot_product_attention``, which picks the flash or memory-efficient kernels on CUDA and
  never materialises the 4096 x 4096 spatial attention matrices at 512x512.

Forward chunking (``enable_forward_chunking``) does apply to the spatio-temporal UNet: both the
spatial ``BasicTransformerBlock`` and the ``TemporalBasicTransformerBlock`` implement
``set_chunk_feed_forward`` (the temporal one always chunks its dim 1, the frames). In training it
does not shrink what autograd saves (each chunk saves its own activations); it only bounds the
transient feed-forward tensors, at the cost of one feed-forward call per token (chunk size 1).
"""

from __future__ import annotations

import argparse
import gc
import statistics
import sys
import time
from dataclasses import dataclass, replace

from bench.help_format import HelpFormatter

TARGET_GIB = 72.0
CARD_GIB = 80.0  # "one 80 GB GPU"; --memory-limit 79 emulates one on a larger card
TARGET_FRAMES = 128
TARGET_SIZE = 512
GPU_COMMAND = "python -m bench perf tune --model svd-xt --size 512 --frames 25,64,128 --device cuda"


@dataclass(frozen=True)
class Setting:
    """One combination of memory levers for a post-tuning step.

    ``dtype``: autocast dtype ("float32" means no autocast). ``checkpointing``: one of
    ``variants.memory.CHECKPOINTING`` (the levers ``post_tune`` offers too). ``frozen_bf16``:
    frozen weights stored in bf16 (the trainable ones stay fp32 master weights). ``optimizer``:
    "adamw" (torch's default, foreach on CUDA), "adamw-foreach-off" (one parameter at a time: no
    full-size temporaries),
    "adamw-fused" (one fused kernel, no temporaries). ``chunking``: feed-forward chunking
    (chunk size 1 along dim 1). ``grads_to_none``: ``zero_grad(set_to_none=True)``, so no
    gradient buffers are held through the forward pass. ``deterministic``: kernels that sum in
    a fixed order (``variants.repeatable``, ``tune.deterministic``).
    """

    name: str
    description: str
    dtype: str = "float32"
    checkpointing: str = "none"
    frozen_bf16: bool = False
    optimizer: str = "adamw"
    chunking: bool = False
    grads_to_none: bool = False
    deterministic: bool = False


FULL_CKPT = Setting(
    "full-ckpt",
    "bf16, frozen in bf16, whole spatio-temporal transformers checkpointed (temporal blocks "
    "too) + ResNets, fused AdamW, zero_grad(set_to_none), no chunking",
    dtype="bfloat16",
    checkpointing="full",
    frozen_bf16=True,
    optimizer="adamw-fused",
    grads_to_none=True,
)
SETTINGS = {
    s.name: s
    for s in (
        Setting("fp32", "naive baseline: fp32, no checkpointing, AdamW"),
        Setting(
            "stock-ckpt",
            "diffusers' enable_gradient_checkpointing, fp32, AdamW",
            checkpointing="stock",
        ),
        Setting(
            "bf16-ckpt",
            "stock checkpointing + bf16 autocast, frozen weights in bf16, "
            "fp32 trainable master weights",
            dtype="bfloat16",
            checkpointing="stock",
            frozen_bf16=True,
        ),
        Setting(
            "lean",
            "bf16-ckpt + forward chunking (1, dim 1) + AdamW foreach=False + "
            "zero_grad(set_to_none)",
            dtype="bfloat16",
            checkpointing="stock",
            frozen_bf16=True,
            optimizer="adamw-foreach-off",
            chunking=True,
            grads_to_none=True,
        ),
        FULL_CKPT,
        replace(
            FULL_CKPT,
            name="full-ckpt-det",
            description="full-ckpt with deterministic kernels (bit-for-bit runs on GPUs)",
            deterministic=True,
        ),
    )
}


NAME_WIDTH = max(map(len, SETTINGS))  # the settings column of the table


def add_parser(targets) -> None:
    parser = targets.add_parser(
        "tune",
        formatter_class=HelpFormatter,
        help="seconds per post-tuning step and peak memory per memory setting and length",
        description="One post-tuning step (ExVideo's objective, forward + backward + optimizer "
        "step, batch 1) of an arm built from a random-weight UNet (SVD-XT size with --model "
        "svd-xt, the tiny config otherwise), timed for every memory setting (checkpointing, "
        "bf16, feed-forward chunking, optimizer) at every length; peak GPU memory per cell, "
        "'OOM' where it does not fit. Settings: "
        + "; ".join(f"{s.name}: {s.description}" for s in SETTINGS.values())
        + f". The issue's GPU run: {GPU_COMMAND} (on a GPU larger than 80 GB add "
        "--memory-limit 79 to behave like an 80 GB card; "
        "PYTORCH_CUDA_ALLOC_CONF=expandable_segments:True reduces fragmentation).",
    )
    parser.add_argument("--model", default="tiny", choices=("tiny", "svd-xt"),
                        help="the tests' tiny UNet or SVD-XT's (random weights either way)")
    parser.add_argument("--frames", default="8,32", help="comma-separated lengths")
    parser.add_argument("--size", type=int, default=64, help="pixels (latents are size / 8)")
    parser.add_argument("--steps", type=int, default=3, help="timed steps (after 1 warm-up)")
    parser.add_argument("--arm", default="exsvd", help="the arm whose step is timed")
    parser.add_argument(
        "--settings", default="all", help=f"comma-separated of {', '.join(SETTINGS)}, or 'all'"
    )
    parser.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N")
    parser.add_argument(
        "--memory-limit",
        type=float,
        metavar="GIB",
        help="cap this process's CUDA memory (e.g. 79 to emulate an 80 GB GPU on a larger one)",
    )
    parser.add_argument("--lr", type=float, default=1e-5, help="AdamW learning rate")
    parser.set_defaults(run=run_tune)


def apply_setting(unet, setting: Setting, lr: float = 1e-5):
    """Apply ``setting`` to an arm whose trainable parameters are already chosen
    (``set_trainable``); returns the optimizer over the trainable ones."""
    from variants.memory import apply_checkpointing, store_frozen_in

    if setting.frozen_bf16:
        store_frozen_in(unet, "bfloat16")
    apply_checkpointing(unet, setting.checkpointing)
    if setting.chunking:
        unet.enable_forward_chunking(chunk_size=1, dim=1)
    return make_optimizer(unet, setting, lr)


def make_optimizer(unet, setting: Setting, lr: float = 1e-5):
    """A fresh AdamW of ``setting``'s kind over the trainable parameters (gradients cleared)."""
    import torch

    params = [p for p in unet.parameters() if p.requires_grad]
    for param in params:
        param.grad = None
    options = {
        "adamw": {},
        "adamw-foreach-off": {"foreach": False},
        "adamw-fused": {"fused": True},
    }[setting.optimizer]
    return torch.optim.AdamW(params, lr=lr, **options)


def random_batch(unet, frames: int, size: int, device: str, seed: int = 0):
    """A batch of one pre-encoded clip at ``size`` pixels (latents size / 8)."""
    import torch

    from variants.objective import Batch

    generator = torch.Generator(device).manual_seed(seed)
    latent = size // 8
    options = {"generator": generator, "device": device}
    return Batch(
        latents=torch.randn(1, frames, 4, latent, latent, **options),
        condition_latent=torch.randn(1, 4, latent, latent, **options),
        image_embeds=torch.randn(1, 1, unet.config.cross_attention_dim, **options),
        added_time_ids=torch.tensor([[6.0, 127.0, 0.02]], device=device),
    )


def train_step(unet, optimizer, batch, setting: Setting, generator) -> float:
    """One post-tuning step: SVD's loss, backward, optimizer step; returns the loss."""
    import torch

    from variants.objective import ObjectiveConfig, edm_loss

    device_type = batch.latents.device.type
    optimizer.zero_grad(set_to_none=setting.grads_to_none)
    dtype = getattr(torch, setting.dtype)
    with torch.autocast(device_type, dtype=dtype, enabled=dtype != torch.float32):
        loss = edm_loss(unet, batch, ObjectiveConfig(), generator)
    loss.backward()
    optimizer.step()
    return loss.item()


def _is_oom(error: BaseException) -> bool:
    import torch

    if isinstance(error, torch.cuda.OutOfMemoryError):
        return True
    text = str(error)
    return isinstance(error, RuntimeError) and (
        "out of memory" in text or "can't allocate memory" in text
    )


def _free(device: str) -> None:
    import torch

    gc.collect()
    if device.startswith("cuda"):
        torch.cuda.empty_cache()


def _measure(unet, setting: Setting, frames: int, args) -> dict:
    """Median seconds per step and peak memory of one cell; ``{"oom": True}`` if it does not
    fit. The peak covers weights, gradients, optimizer states and activations."""
    import torch

    from bench.perf_cmd import sync_device
    from variants.repeatable import deterministic_kernels

    cuda = args.device.startswith("cuda")
    optimizer = None
    try:
        _free(args.device)
        if cuda:
            torch.cuda.reset_peak_memory_stats()
        optimizer = make_optimizer(unet, setting, args.lr)
        batch = random_batch(unet, frames, args.size, args.device)
        generator = torch.Generator(args.device).manual_seed(1)
        times = []
        for step in range(args.steps + 1):
            sync_device(args.device)
            start = time.perf_counter()
            with deterministic_kernels(setting.deterministic):
                train_step(unet, optimizer, batch, setting, generator)
            sync_device(args.device)
            if step:
                times.append(time.perf_counter() - start)
        result = {"oom": False, "seconds": statistics.median(times)}
        if cuda:
            result["peak"] = torch.cuda.max_memory_allocated() / 2**30
            result["reserved"] = torch.cuda.max_memory_reserved() / 2**30
        return result
    except RuntimeError as error:  # torch.cuda.OutOfMemoryError is a RuntimeError
        if not _is_oom(error):
            raise
    # out of the except block, so the traceback's frames (and their tensors) are released
    for param in unet.parameters():
        param.grad = None
    del optimizer
    _free(args.device)
    return {"oom": True}


def _parse_settings(text: str) -> list[Setting]:
    from metrics.errors import BenchError

    if text.strip() == "all":
        return list(SETTINGS.values())
    names = [n.strip() for n in text.split(",") if n.strip()]
    unknown = [n for n in names if n not in SETTINGS]
    if unknown or not names:
        raise BenchError(
            ", ".join(unknown) or repr(text),
            "unknown setting",
            f"use some of {', '.join(SETTINGS)}, or 'all'",
        )
    return [SETTINGS[n] for n in names]


def _parse_frames(text: str) -> list[int]:
    from metrics.errors import BenchError

    try:
        frames = sorted({int(f) for f in text.split(",") if f.strip()})
    except ValueError:
        frames = []
    if not frames or frames[0] < 1:
        raise BenchError(repr(text), "not a list of frame counts", "e.g. --frames 25,64,128")
    return frames


def run_tune(args: argparse.Namespace) -> int:
    import torch

    from bench.common import check_at_least, use_device
    from bench.perf_generate import check_size, stock_unet
    from variants import get_variant
    from variants.unet import set_trainable

    use_device(args.device)
    settings, frame_counts = _parse_settings(args.settings), _parse_frames(args.frames)
    check_size(args.model, args.size)
    check_at_least("--steps", args.steps, 1)
    variant = get_variant(args.arm)
    cuda = args.device.startswith("cuda")
    usable = 0.0  # GiB the run may use: the cap, else the whole GPU
    if cuda:
        total = torch.cuda.get_device_properties(torch.cuda.current_device()).total_memory / 2**30
        usable = min(total, args.memory_limit or total)
    if cuda and args.memory_limit:
        torch.cuda.set_per_process_memory_fraction(min(1.0, args.memory_limit / total))
    torch.manual_seed(0)
    stock, base_length = stock_unet(args.model)
    table_size = max(128, frame_counts[-1])
    print(
        f"{args.model} UNet ({sum(p.numel() for p in stock.parameters()) / 1e6:.1f} M params, "
        "random weights), "
        f"arm {args.arm}, batch 1, {','.join(map(str, frame_counts))} frames at "
        f"{args.size}x{args.size}, {args.device}; median of {args.steps} steps after 1 warm-up"
    )
    print(f"attention: {sorted({type(p).__name__ for p in stock.attn_processors.values()})}")
    if cuda:
        limit = f", capped at {args.memory_limit:g} GiB" if args.memory_limit else ""
        print(f"GPU: {torch.cuda.get_device_name(args.device)}{limit}")
    print("settings:")
    for setting in settings:
        print(f"  {setting.name:{NAME_WIDTH}s} {setting.description}")
    results: dict[tuple[int, str], dict] = {}
    trainable = 0
    for setting in settings:
        unet = variant.build(stock, base_length=base_length, table_size=table_size)
        trainable = set_trainable(unet, tuned=True)["trainable"]
        unet = unet.to(args.device).train()
        apply_setting(unet, setting, args.lr)  # the optimizer is made afresh per cell
        failed_at = None
        for frames in frame_counts:
            if failed_at is not None:
                results[frames, setting.name] = {"oom": True, "skipped": failed_at}
                continue
            cell = _measure(unet, setting, frames, args)
            results[frames, setting.name] = cell
            if cell["oom"]:
                failed_at = frames
            sys.stdout.flush()
            print(
                f"{setting.name} @ {frames} frames: " + _describe(cell), file=sys.stderr, flush=True
            )
        del unet
        _free(args.device)
    _print_table(results, settings, frame_counts, trainable)
    print(_target_line(results, settings, args, usable))
    return 0


def _describe(cell: dict) -> str:
    if cell["oom"]:
        return "OOM"
    peak = cell.get("peak")
    return f"{cell['seconds']:.3f} s/step" + ("" if peak is None else f", peak {peak:.1f} GiB")


def _print_table(results, settings, frame_counts, trainable: int) -> None:
    print(
        f"{'frames':>6s} {'setting':{NAME_WIDTH}s} {'s/step':>8s} {'ratio':>7s} {'peak GiB':>9s} "
        f"{'reserved':>9s} {'trainable M':>11s}"
    )
    skipped = False
    for frames in frame_counts:
        reference = None
        for setting in settings:
            cell = results[frames, setting.name]
            if cell["oom"]:
                skipped |= "skipped" in cell
                mark = "OOM*" if "skipped" in cell else "OOM"
                print(
                    f"{frames:6d} {setting.name:{NAME_WIDTH}s} {mark:>8s} {'':>7s} {'':>9s} "
                    f"{'':>9s} {trainable / 1e6:11.1f}"
                )
                continue
            reference = reference or cell["seconds"]
            print(
                f"{frames:6d} {setting.name:{NAME_WIDTH}s} {cell['seconds']:8.3f} "
                f"{cell['seconds'] / reference:6.2f}x {_gib(cell.get('peak')):>9s} "
                f"{_gib(cell.get('reserved')):>9s} {trainable / 1e6:11.1f}"
            )
    print("ratio: to the first setting that fits at that length; peak: max allocated")
    if skipped:
        print("* not run: out of memory at a shorter length")


def _target_line(results, settings, args, gpu_gib: float = 0.0) -> str:
    """Whether some setting met the target; ``gpu_gib``: the memory the run could use (the
    --memory-limit cap, else the GPU's), which must be that of an 80 GB card."""
    target = (
        f"target: a {TARGET_FRAMES}-frame {TARGET_SIZE}x{TARGET_SIZE} SVD-XT post-tuning step "
        f"on one 80 GB GPU with peak <= {TARGET_GIB:g} GiB"
    )
    if not args.device.startswith("cuda"):
        return f"{target}: not measured on cpu ({GPU_COMMAND})"
    if (
        args.model != "svd-xt"
        or args.arm != "exsvd"
        or args.size != TARGET_SIZE
        or (TARGET_FRAMES, settings[0].name) not in results
    ):
        return f"{target}: not measured by this run ({GPU_COMMAND})"
    if gpu_gib > CARD_GIB:
        return (f"{target}: not judged: this GPU has {gpu_gib:.0f} GiB and no --memory-limit "
                f"<= {CARD_GIB:g} made it behave like an 80 GB card (add --memory-limit 79)")
    met = [
        f"{s.name} ({cell['peak']:.1f} GiB, reserved {cell['reserved']:.1f})"
        for s in settings
        for cell in [results[TARGET_FRAMES, s.name]]
        if not cell["oom"] and cell["peak"] <= TARGET_GIB and cell["reserved"] <= gpu_gib
    ]
    return f"{target}: " + (f"met by {', '.join(met)}" if met else "not met by any setting")


def _gib(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.1f}"
