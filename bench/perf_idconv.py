"""``bench perf idconv``: ExVideo's identity 3D convolutions alone, as the arms run them and
laid out otherwise, side by side.

All of exsvd's time over stock SVD is these convolutions (``bench perf generate``:
``exsvd-no-idconv`` runs at 1.00x). This times one CFG UNet evaluation's worth of them (one per
temporal transformer, at that transformer's width and latent size) several ways on the same
weights and inputs, and checks every way computes what the arms compute:
- ``shipped``: ``variants.modules.IdentityConv3d`` ([B*T, H*W, C] -> NCDHW view -> reflect pad
  -> Conv3d -> back to [B*T, H*W, C]);
- ``channels-last``: the same weights on the NDHWC memory the input already is: the reflect pad
  written into one NDHWC buffer, Conv3d without padding on its channels-last-3d view, the output
  read back as [B*T, H*W, C] without a copy;
- ``cudnn-benchmark`` (CUDA only): ``shipped`` with ``torch.backends.cudnn.benchmark`` on;
- ``compiled`` (``--compile``): ``torch.compile`` of ``shipped``.
"""

from __future__ import annotations

import argparse
import re
import statistics
import time
from collections import Counter
from functools import partial

from bench.help_format import HelpFormatter


def add_parser(targets) -> None:
    from bench.perf_generate import add_unet_options

    parser = targets.add_parser(
        "idconv",
        formatter_class=HelpFormatter,
        help="the identity 3D convolutions alone: as shipped vs other layouts, side by side",
        description="Times one CFG UNet evaluation's worth of ExVideo's identity 3D convolutions "
        "(one per temporal transformer, at its width and latent size; all of exsvd's time over "
        "stock) on the same weights and inputs: 'shipped' (the arms' IdentityConv3d: NCDHW view, "
        "reflect pad, Conv3d, back), 'channels-last' (the pad written into one NDHWC buffer, "
        "Conv3d on its channels-last-3d view, no copy back), 'cudnn-benchmark' (CUDA only) and "
        "'compiled' (--compile), with each way's largest difference from 'shipped' relative to "
        "the output's largest value. The issue's GPU run: python -m bench perf idconv --model "
        "svd-xt --frames 128 --size 512 --device cuda --dtype bfloat16 --compile.",
    )
    add_unet_options(parser)
    parser.add_argument("--repeats", type=int, default=5, help="timed calls per way (median)")
    parser.add_argument("--compile", action="store_true", help="also time torch.compile")
    parser.set_defaults(run=run_idconv)


def conv_shapes(unet, size: int) -> Counter:
    """{(channels, latent height = width): how many} of the UNet's temporal transformers, for
    ``size`` x ``size`` pixels (each UNet level halves the VAE's size / 8)."""
    from diffusers.models.transformers.transformer_temporal import (
        TransformerSpatioTemporalModel,
    )

    last = len(unet.config.block_out_channels) - 1
    shapes = Counter()
    for name, module in unet.named_modules():
        if isinstance(module, TransformerSpatioTemporalModel):
            kind, index = re.match(r"(down|up|mid)_blocks?\.?(\d*)", name).groups()
            level = last if kind == "mid" else int(index) if kind == "down" else last - int(index)
            shapes[(module.proj_in.in_features, size // 8 // 2**level)] += 1
    return shapes


def channels_last(conv, hidden_states, num_frames: int, height: int, width: int):
    """``IdentityConv3d``'s result computed on the NDHWC memory of its [B*T, H*W, C] input."""
    import torch.nn.functional as F
    from torch import channels_last_3d

    batch_frames, _, channels = hidden_states.shape
    video = hidden_states.view(batch_frames // num_frames, num_frames, height, width, channels)
    batch = len(video)
    padded = video.new_empty(batch, num_frames + 2, height + 2, width + 2, channels)
    padded[:, 1:-1, 1:-1, 1:-1] = video  # reflect by one along W, then H, then T
    padded[:, 1:-1, 1:-1, 0], padded[:, 1:-1, 1:-1, -1] = video[:, :, :, 1], video[:, :, :, -2]
    padded[:, 1:-1, 0], padded[:, 1:-1, -1] = padded[:, 1:-1, 2], padded[:, 1:-1, -3]
    padded[:, 0], padded[:, -1] = padded[:, 2], padded[:, -3]
    weight = conv.weight.to(memory_format=channels_last_3d)
    out = F.conv3d(padded.permute(0, 4, 1, 2, 3), weight, conv.bias)
    return out.permute(0, 2, 3, 4, 1).reshape(batch_frames, height * width, channels)


def _median_seconds(fn, repeats: int, device: str) -> float:
    from bench.perf_cmd import sync_device

    fn()  # warm-up (and cuDNN's search, where it searches)
    times = []
    for _ in range(repeats):
        sync_device(device)
        start = time.perf_counter()
        fn()
        sync_device(device)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def run_idconv(args: argparse.Namespace) -> int:
    import torch

    from bench.common import check_at_least, use_device
    from bench.perf_generate import check_size, stock_unet
    from variants.modules import IdentityConv3d

    use_device(args.device)
    check_size(args.model, args.size)
    for flag, value in (("--frames", args.frames), ("--repeats", args.repeats)):
        check_at_least(flag, value, 1)
    with torch.device("meta"):  # only the configuration is read
        unet, _ = stock_unet(args.model)
    shapes = conv_shapes(unet, args.size)
    dtype = getattr(torch, args.dtype)
    cuda = args.device.startswith("cuda")
    ways = ["shipped", "channels-last"] + ["cudnn-benchmark"] * cuda + ["compiled"] * args.compile
    totals = dict.fromkeys(ways, 0.0)
    print(f"{args.model}: {sum(shapes.values())} identity convs per UNet evaluation, "
          f"{args.frames} frames at {args.size}x{args.size}, CFG batch 2, {args.dtype}, "
          f"{args.device}; median of {args.repeats} calls after 1 warm-up, random weights")
    print(f"{'C':>5s} {'latent':>6s} {'convs':>5s} " +
          " ".join(f"{way + ' ms':>18s}" for way in ways) + f" {'rel. diff':>10s}")
    torch.manual_seed(0)
    for (channels, side), count in sorted(shapes.items()):
        module = IdentityConv3d(channels).to(args.device, dtype)
        with torch.no_grad():
            module.conv.weight.add_(torch.randn_like(module.conv.weight) * 0.02)
        module.frame_size = (side, side)
        hidden = torch.randn(2 * args.frames, side * side, channels, device=args.device,
                             dtype=dtype)
        calls = {
            "shipped": partial(module, hidden, args.frames),
            "channels-last": partial(channels_last, module.conv, hidden, args.frames, side, side),
            "cudnn-benchmark": partial(_with_cudnn_benchmark, module, hidden, args.frames),
            "compiled": partial(torch.compile(module), hidden, args.frames) if args.compile
            else None,
        }
        row, outputs = {}, {}
        with torch.inference_mode():
            for way in ways:
                outputs[way] = calls[way]()
                row[way] = _median_seconds(calls[way], args.repeats, args.device) * count
                totals[way] += row[way]
        shipped = outputs["shipped"].float()
        diff = max(float((out.float() - shipped).abs().max() / shipped.abs().max())
                   for out in outputs.values())
        print(f"{channels:5d} {side:>3d}x{side:<2d} {count:5d} " +
              " ".join(f"{1e3 * row[way]:18.2f}" for way in ways) + f" {diff:10.2e}")
    print(f"{'all':>5s} {'':6s} {sum(shapes.values()):5d} " +
          " ".join(f"{1e3 * totals[way]:18.2f}" for way in ways))
    print("ratio to shipped: " + ", ".join(
        f"{way} {totals[way] / totals['shipped']:.2f}x" for way in ways[1:]))
    return 0


def _with_cudnn_benchmark(module, hidden, frames: int):
    import torch

    previous = torch.backends.cudnn.benchmark
    torch.backends.cudnn.benchmark = True
    try:
        return module(hidden, frames)
    finally:
        torch.backends.cudnn.benchmark = previous
