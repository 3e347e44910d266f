"""The ExVideo modules, as drop-in submodules of diffusers' ``TransformerSpatioTemporalModel``.

A temporal transformer computes ``time_pos_embed(time_proj(frame_index))`` and adds it to the
hidden states before each temporal block. The positional-embedding arms replace ``time_proj``
(frame index -> C-dim vector); the identity 3D convolution is a sibling module applied by a
forward pre-hook of each temporal block, i.e. to the hidden states right after the embedding is
added. Stock parameter names stay as they are, so stock SVD weights load unchanged.
"""

from __future__ import annotations

import torch
from diffusers.models.embeddings import Timesteps
from torch import nn

from metrics.errors import BenchError
from variants.positions import bounce_positions, cyclic_positions


def svd_sinusoid(channels: int) -> Timesteps:
    """SVD's own frame-index projection (``flip_sin_to_cos=True``, no frequency shift)."""
    return Timesteps(channels, flip_sin_to_cos=True, downscale_freq_shift=0)


class PositionTable(nn.Module):
    """A trainable [N, C] table replacing the sinusoid; row t is frame t's projection.

    Initialised with SVD's sinusoid at ExVideo's bounce-remapped positions, so it reproduces SVD
    on the first L frames and never shows the MLP an index SVD was not trained on.
    """

    def __init__(self, channels: int, size: int = 128, base_length: int = 25, low: int = 4):
        super().__init__()
        positions = bounce_positions(size, base_length, low)
        self.table = nn.Parameter(svd_sinusoid(channels)(positions))

    def forward(self, frame_index: torch.Tensor) -> torch.Tensor:
        if int(frame_index.max()) >= self.table.shape[0]:
            raise ValueError(f"frame {int(frame_index.max())} is beyond the positional table "
                             f"({self.table.shape[0]} rows); build the arm with a larger table")
        return self.table[frame_index]


class CyclicSinusoid(nn.Module):
    """SVD's sinusoid at ``t mod L`` (or a triangle wave over L): frozen, no parameters."""

    def __init__(self, channels: int, period: int, shape: str = "sawtooth"):
        super().__init__()
        self.sinusoid = svd_sinusoid(channels)
        self.period, self.shape = period, shape
        cyclic_positions(1, period, shape)  # validate the shape name now

    def forward(self, frame_index: torch.Tensor) -> torch.Tensor:
        positions = cyclic_positions(int(frame_index.max()) + 1, self.period, self.shape)
        return self.sinusoid(positions.to(frame_index.device)[frame_index])


def set_identity_(conv: nn.Conv3d) -> nn.Conv3d:
    """Set a C -> C Conv3d with odd kernel sizes to the identity in place: centre tap I, bias 0."""
    centre = tuple(k // 2 for k in conv.kernel_size)
    with torch.no_grad():
        conv.weight.zero_()
        conv.weight[(slice(None), slice(None), *centre)] = torch.eye(conv.out_channels)
        conv.bias.zero_()
    return conv


def identity_conv3d(channels: int) -> nn.Conv3d:
    """Conv3d(C, C, 3x3x3, reflect padding) initialised to the identity: centre tap I, bias 0."""
    return set_identity_(nn.Conv3d(channels, channels, 3, padding=1, padding_mode="reflect"))


def reflect_pad_by_copies(video: torch.Tensor) -> torch.Tensor:
    """``F.pad(video, (1,) * 6, mode="reflect")`` on [B, C, T, H, W] as concatenated slices: the
    same values, and a backward without atomic adds (repeatable on a GPU)."""
    for dim in (2, 3, 4):
        size = video.shape[dim]
        video = torch.cat([video.narrow(dim, 1, 1), video, video.narrow(dim, size - 2, 1)], dim)
    return video


class IdentityConv3d(nn.Module):
    """ExVideo's adaptive identity convolution on [B*T, H*W, C] temporal-block inputs.

    ``frame_size`` (H, W) is set by the owning transformer's forward pre-hook, because temporal
    blocks only see flattened frames (see ``variants.unet``).
    """

    def __init__(self, channels: int):
        super().__init__()
        self.conv = identity_conv3d(channels)
        self.frame_size: tuple[int, int] | None = None

    def forward(self, hidden_states: torch.Tensor, num_frames: int) -> torch.Tensor:
        height, width = self.frame_size
        if min(num_frames, height, width) < 2:
            raise BenchError(
                f"{num_frames} frames of {width}x{height} latents",
                "too small for the identity 3D convolution (its reflect padding needs 2 frames "
                "and 2 latent pixels a side at every UNet level)",
                "generate 2+ frames at a size that is a multiple of 8 x 2^(levels - 1) and at "
                "least twice that (64 for the tiny model, 128 for SVD-XT)",
            )
        batch_frames, _, channels = hidden_states.shape
        video = hidden_states.reshape(batch_frames // num_frames, num_frames, height, width,
                                      channels).permute(0, 4, 1, 2, 3)
        if video.is_cuda and torch.are_deterministic_algorithms_enabled():
            # CUDA's reflection-pad backward adds with atomics; copies sum in a fixed order
            video = nn.functional.conv3d(reflect_pad_by_copies(video), self.conv.weight,
                                         self.conv.bias)
        else:
            video = self.conv(video)
        return video.permute(0, 2, 3, 4, 1).reshape(batch_frames, height * width, channels)
