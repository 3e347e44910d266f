"""``bench perf generate``: sampling cost of every arm beside stock diffusers SVD, same length."""

from __future__ import annotations

import argparse
import statistics
import time


def add_parser(targets) -> None:
    parser = targets.add_parser(
        "generate",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
        help="seconds per CFG sampling step and peak memory per arm vs stock SVD",
        description="Random-weight UNets (SVD-XT size with --model svd-xt, the tiny config "
        "otherwise) run classifier-free-guided denoising steps at the given length; "
        "each arm is timed beside the stock diffusers UNet in one run, and the "
        "temporal VAE decodes the latents in chunks for the peak-memory figure.",
    )
    parser.add_argument("--model", default="tiny", choices=("tiny", "svd-xt"))
    parser.add_argument("--frames", type=int, default=32)
    parser.add_argument("--size", type=int, default=64, help="pixels (latents are size / 8)")
    parser.add_argument(
        "--steps", type=int, default=5, help="timed steps per arm (after 1 warm-up)"
    )
    parser.add_argument("--arms", default="all", help="comma-separated arm names or 'all'")
    parser.add_argument("--decode-chunk", type=int, default=8)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--dtype", default="float32", choices=("float32", "bfloat16", "float16"))
    parser.set_defaults(run=run_generate)


def _models(kind: str):
    from diffusers import AutoencoderKLTemporalDecoder, UNetSpatioTemporalConditionModel

    from variants.tiny import TINY_UNET, TINY_VAE

    if kind == "svd-xt":  # the stock constructors' defaults are SVD's configuration
        return UNetSpatioTemporalConditionModel(), AutoencoderKLTemporalDecoder(), 25
    return (
        UNetSpatioTemporalConditionModel(**TINY_UNET),
        AutoencoderKLTemporalDecoder(**TINY_VAE),
        8,
    )


def _measure(unet, vae, args, dtype) -> tuple[float, float | None]:
    """Median seconds per CFG step, and peak GPU memory in GiB (None on CPU)."""
    import torch

    cuda = args.device.startswith("cuda")
    latent = args.size // 8
    channels = unet.config.in_channels
    sample = torch.randn(2, args.frames, channels, latent, latent, device=args.device, dtype=dtype)
    context = torch.randn(2, 1, unet.config.cross_attention_dim, device=args.device, dtype=dtype)
    time_ids = torch.tensor([[6.0, 127.0, 0.02]] * 2, device=args.device, dtype=dtype)
    if cuda:
        torch.cuda.reset_peak_memory_stats()
    times = []
    with torch.inference_mode():
        for step in range(args.steps + 1):
            if cuda:
                torch.cuda.synchronize()
            start = time.perf_counter()
            unet(sample, torch.tensor([10.0], device=args.device), context, time_ids)
            if cuda:
                torch.cuda.synchronize()
            if step:
                times.append(time.perf_counter() - start)
        latents = sample[:1, :, :4].flatten(0, 1)
        for i in range(0, args.frames, args.decode_chunk):
            chunk = latents[i : i + args.decode_chunk]
            vae.decode(chunk, num_frames=len(chunk))
    peak = torch.cuda.max_memory_allocated() / 2**30 if cuda else None
    return statistics.median(times), peak


def run_generate(args: argparse.Namespace) -> int:
    import torch

    from bench.common import check_device
    from variants import get_variant, list_variants

    check_device(args.device)
    dtype = getattr(torch, args.dtype)
    torch.manual_seed(0)
    stock, vae, base_length = _models(args.model)
    stock, vae = stock.to(args.device).eval(), vae.to(args.device).eval()
    if dtype != torch.float32:
        stock, vae = stock.to(dtype=dtype), vae.to(dtype=dtype)
    arms = list_variants() if args.arms == "all" else [a.strip() for a in args.arms.split(",")]
    print(
        f"{args.model} UNet ({sum(p.numel() for p in stock.parameters()) / 1e6:.1f} M params), "
        f"{args.frames} frames at {args.size}x{args.size}, CFG batch 2, {args.dtype}, "
        f"{args.device}; median of {args.steps} steps"
    )
    print(
        f"{'arm':18s} {'s/step':>8s} {'stock s/step':>12s} {'ratio':>7s} {'peak GiB':>9s} "
        f"{'stock GiB':>9s}"
    )
    for name in arms:
        unet = (
            get_variant(name)
            .build(stock, base_length=base_length, table_size=max(128, args.frames))
            .eval()
        )
        base_time, base_peak = _measure(stock, vae, args, dtype)  # measured beside each arm
        seconds, peak = _measure(unet, vae, args, dtype)
        print(
            f"{name:18s} {seconds:8.3f} {base_time:12.3f} {seconds / base_time:6.2f}x "
            f"{_gib(peak):>9s} {_gib(base_peak):>9s}"
        )
        del unet
    return 0


def _gib(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.1f}"
