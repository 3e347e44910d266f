"""``bench perf generate``: sampling cost of every arm beside stock diffusers SVD, same length."""

from __future__ import annotations

import argparse
import statistics
import time

from bench.help_format import HelpFormatter

# SVD-XT's vae/config.json (the constructor's defaults are a one-level toy VAE)
SVD_XT_VAE = {
    "block_out_channels": (128, 256, 512, 512),
    "down_block_types": ("DownEncoderBlock2D",) * 4,
    "layers_per_block": 2,
    "latent_channels": 4,
    "sample_size": 768,
    "scaling_factor": 0.18215,
}


def add_parser(targets) -> None:
    parser = targets.add_parser(
        "generate",
        formatter_class=HelpFormatter,
        help="seconds per CFG sampling step and peak memory per arm vs stock SVD",
        description="Random-weight UNets (SVD-XT size with --model svd-xt, the tiny config "
        "otherwise) run classifier-free-guided denoising steps at the given length; "
        "each arm is timed beside the stock diffusers UNet in one run, and the "
        "temporal VAE decodes the latents in chunks (timed, and part of the peak-memory "
        "figure, taken with one UNet and the VAE on the device). Totals for 25 and 50 steps "
        "are N x s/step + decode. The issue's GPU run: python -m bench perf generate --model "
        "svd-xt --frames 128 --size 512 --device cuda --dtype bfloat16 (targets: <= 1.15x "
        "stock, peak <= 24 GiB).",
    )
    add_unet_options(parser)
    parser.add_argument(
        "--steps", type=int, default=5, help="timed steps per arm (after 1 warm-up)"
    )
    parser.add_argument("--arms", default="all", help="comma-separated arm names or 'all'")
    parser.add_argument("--decode-chunk", type=int, default=8, help="frames per VAE decode")
    parser.set_defaults(run=run_generate)


def add_unet_options(parser) -> None:
    """The sampling-UNet benchmarks' shared options: which UNet, how long, how large, where."""
    parser.add_argument("--model", default="tiny", choices=("tiny", "svd-xt"),
                        help="the tests' tiny UNet or SVD-XT's (random weights either way)")
    parser.add_argument("--frames", type=int, default=32, help="video length")
    parser.add_argument("--size", type=int, default=64, help="pixels (latents are size / 8)")
    parser.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N")
    parser.add_argument("--dtype", default="float32", choices=("float32", "bfloat16", "float16"),
                        help="weights and activations")


def stock_unet(kind: str):
    """A random-weight stock UNet of ``kind`` and its base length L."""
    from diffusers import UNetSpatioTemporalConditionModel

    from variants.tiny import TINY_UNET

    if kind == "svd-xt":  # the UNet constructor's defaults are SVD-XT's UNet configuration
        return UNetSpatioTemporalConditionModel(), 25
    return UNetSpatioTemporalConditionModel(**TINY_UNET), 8


def check_size(kind: str, size: int) -> None:
    """--size must survive the VAE's 8x and each UNet level's halving, leaving >= 2 latents at
    the deepest level (the identity convolution's reflect padding needs two)."""
    import inspect

    from diffusers import UNetSpatioTemporalConditionModel

    from metrics.errors import BenchError
    from variants.tiny import TINY_UNET
    from variants.unet import size_fits, size_step

    defaults = inspect.signature(UNetSpatioTemporalConditionModel).parameters
    channels = defaults["block_out_channels"].default  # SVD-XT's, as in stock_unet
    levels = len(channels if kind == "svd-xt" else TINY_UNET["block_out_channels"])
    factor = size_step(levels)
    if not size_fits(size, levels):
        raise BenchError(f"--size {size}", f"must be a multiple of {factor} and >= {2 * factor} "
                         f"for the {kind} UNet", f"e.g. --size {max(2, size // factor) * factor}")


def vae_of(kind: str):
    """A random-weight temporal VAE of ``kind``'s configuration."""
    from diffusers import AutoencoderKLTemporalDecoder

    from variants.tiny import TINY_VAE

    return AutoencoderKLTemporalDecoder(**(SVD_XT_VAE if kind == "svd-xt" else TINY_VAE))


def _measure(unet, vae, args, dtype) -> tuple[float, float, float | None]:
    """Median seconds per CFG step, seconds of the chunked VAE decode, and peak GPU memory in
    GiB (None on CPU). Only ``unet`` and ``vae`` are on the device while it runs."""
    import torch

    from bench.perf_cmd import sync_device

    cuda = args.device.startswith("cuda")
    unet.to(args.device)
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
            sync_device(args.device)
            start = time.perf_counter()
            unet(sample, torch.tensor([10.0], device=args.device), context, time_ids)
            sync_device(args.device)
            if step:
                times.append(time.perf_counter() - start)
        latents = sample[:1, :, :4].flatten(0, 1)
        start = time.perf_counter()
        for i in range(0, args.frames, args.decode_chunk):
            chunk = latents[i : i + args.decode_chunk]
            vae.decode(chunk, num_frames=len(chunk))
        sync_device(args.device)
        decode = time.perf_counter() - start
    peak = torch.cuda.max_memory_allocated() / 2**30 if cuda else None
    del sample, context, latents
    unet.to("cpu")
    if cuda:
        torch.cuda.empty_cache()
    return statistics.median(times), decode, peak


def run_generate(args: argparse.Namespace) -> int:
    import torch

    from bench.common import check_at_least, use_device
    from variants import get_variant, list_variants

    use_device(args.device)
    check_size(args.model, args.size)
    for flag, value in (("--frames", args.frames), ("--steps", args.steps),
                        ("--decode-chunk", args.decode_chunk)):
        check_at_least(flag, value, 1)
    names = list_variants() if args.arms == "all" else [a.strip() for a in args.arms.split(",")]
    arms = {name: get_variant(name) for name in names}  # unknown names fail before any work
    dtype = getattr(torch, args.dtype)
    torch.manual_seed(0)
    stock, base_length = stock_unet(args.model)
    vae = vae_of(args.model)
    stock, vae = stock.eval(), vae.to(args.device).eval()
    if dtype != torch.float32:
        stock, vae = stock.to(dtype=dtype), vae.to(dtype=dtype)
    print(
        f"{args.model} UNet ({sum(p.numel() for p in stock.parameters()) / 1e6:.1f} M params, "
        "random weights), "
        f"{args.frames} frames at {args.size}x{args.size}, CFG batch 2, {args.dtype}, "
        f"{args.device}; median of {args.steps} steps after 1 warm-up; VAE decode "
        f"{args.decode_chunk} frames at a time"
    )
    if args.device.startswith("cuda"):
        print(f"GPU: {torch.cuda.get_device_name(args.device)}")
    print(
        f"{'arm':18s} {'s/step':>8s} {'stock s/step':>12s} {'ratio':>7s} {'peak GiB':>9s} "
        f"{'stock GiB':>9s} {'decode s':>8s} {'25 steps s':>10s} {'50 steps s':>10s}"
    )
    worst_ratio, worst_peak = 0.0, 0.0
    for name, variant in arms.items():
        base_time, _, base_peak = _measure(stock, vae, args, dtype)  # measured beside each arm
        unet = variant.build(
            stock, base_length=base_length, table_size=max(128, args.frames)
        )
        seconds, decode, peak = _measure(unet.eval(), vae, args, dtype)
        del unet
        worst_ratio = max(worst_ratio, seconds / base_time)
        worst_peak = max(worst_peak, peak or 0.0)
        print(
            f"{name:18s} {seconds:8.3f} {base_time:12.3f} {seconds / base_time:6.2f}x "
            f"{_gib(peak):>9s} {_gib(base_peak):>9s} {decode:8.2f} "
            f"{25 * seconds + decode:10.1f} {50 * seconds + decode:10.1f}"
        )
    print(
        "peak: max allocated with one UNet and the VAE on the device (the image encoder, "
        "used once per video before sampling, is not counted); N steps s = N x s/step + decode"
    )
    print(
        f"slowest arm {worst_ratio:.2f}x stock (target <= 1.15x)"
        + (f"; highest peak {worst_peak:.1f} GiB (target <= 24)" if worst_peak else "")
    )
    return 0


def _gib(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.1f}"
