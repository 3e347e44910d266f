"""Optical flow for every consecutive pair of a video, computed once and shared by all metrics.

Backends: torchvision RAFT (large / small) and OpenCV DIS (weight-free). Flows follow the
torchvision / OpenCV convention: ``flow[:, 0]`` is the x (column) displacement and
``flow[:, 1]`` the y (row) displacement, in pixels of the input video.
"""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from metrics.errors import BenchError, MetricInputError, WeightsNotFoundError
from metrics.weights import named_by_user, resolve

FLOW_BACKENDS = ("auto", "raft_large", "raft_small", "dis")
RAFT_MIN_SIDE = 128  # torchvision RAFT needs H, W >= 128 for its correlation pyramid
RAFT_CORR_BUDGET = 2 * 2**30  # bytes of correlation volume per model call (pairs are chunked)


@dataclass(frozen=True)
class FlowField:
    """Forward and backward flow of all P = T-1 consecutive pairs of one video.

    ``forward[t]`` maps frame t to t+1 (defined on frame t's grid); ``backward[t]`` maps
    frame t+1 to t (defined on frame t+1's grid). Both float32 [P, 2, H, W].
    """

    forward: torch.Tensor
    backward: torch.Tensor
    backend: str
    weights: str


class DISFlow:
    """OpenCV's Dense Inverse Search flow on grey uint8 frames; pairs run in a thread pool."""

    name = "dis"
    weights = "none (weight-free)"
    min_sides = (8, 12)  # (shorter, longer) side: OpenCV's DIS refuses anything smaller

    def __init__(self, preset: int | None = None, threads: int | None = None):
        import cv2

        self._cv2 = cv2
        self.preset = cv2.DISOPTICAL_FLOW_PRESET_MEDIUM if preset is None else preset
        self.threads = threads or max(1, torch.get_num_threads())
        self._local = threading.local()
        self._pool = ThreadPoolExecutor(self.threads)  # long-lived: each thread keeps its DIS

    def _pair(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        if not hasattr(self._local, "dis"):
            self._local.dis = self._cv2.DISOpticalFlow_create(self.preset)
        height, width = a.shape
        if height < 16 < width:  # OpenCV's DIS crashes (SIGSEGV) on these; transposed they work
            flow = self._local.dis.calc(np.ascontiguousarray(a.T), np.ascontiguousarray(b.T), None)
            return np.ascontiguousarray(flow.transpose(1, 0, 2)[..., ::-1])
        return self._local.dis.calc(a, b, None)

    def __call__(self, src: torch.Tensor, dst: torch.Tensor) -> torch.Tensor:
        """Flow from each ``src`` to ``dst`` frame; both float [N, 3, H, W] in [0, 1]."""
        grey_src, grey_dst = _to_grey_uint8(src), _to_grey_uint8(dst)
        flows = list(self._pool.map(self._pair, grey_src, grey_dst))
        return torch.from_numpy(np.stack(flows)).permute(0, 3, 1, 2).to(src.device)


def _to_grey_uint8(frames: torch.Tensor) -> np.ndarray:
    weights = frames.new_tensor([0.299, 0.587, 0.114]).view(1, 3, 1, 1)
    grey = (frames * weights).sum(1).mul(255).round().clamp(0, 255)
    return grey.to(torch.uint8).cpu().numpy()


def raft_corr_bytes(height: int, width: int, element_size: int = 4) -> int:
    """RAFT's all-pairs correlation pyramid for one pair of (padded) ``height`` x ``width``
    frames: every 1/8-resolution cell against every other, then 3 levels pooled 2x2 from it. It
    grows with the square of the pixel count (1024x576: 0.45 GB, 1920x1080: 5.6 GB)."""
    cells = (height // 8) * (width // 8)
    return cells * cells * element_size * 85 // 64  # 1 + 1/4 + 1/16 + 1/64


def free_memory(device: torch.device) -> int:
    """Bytes free for tensors on ``device`` (CUDA: the driver's count; else available RAM)."""
    if device.type == "cuda":
        return torch.cuda.mem_get_info(device)[0]
    import psutil

    return psutil.virtual_memory().available


class RAFTFlow:
    """torchvision RAFT: inputs in [-1, 1], upsampled below 128 px, padded to multiples of 8;
    pairs run in chunks whose correlation volumes fit ``corr_budget`` bytes (results do not
    depend on the chunking), and a pair whose volume alone exceeds free memory is refused."""

    min_sides = (1, 1)  # small frames are upsampled

    def __init__(
        self,
        size: str = "large",
        device: str | torch.device = "cpu",
        weights_path: str | None = None,
        allow_random_weights: bool = False,
        num_flow_updates: int = 12,
        autocast_dtype: torch.dtype | None = None,
        corr_budget: int = RAFT_CORR_BUDGET,
    ):
        from torchvision.models.optical_flow import raft_large, raft_small

        self.name = f"raft_{size}"
        build = {"large": raft_large, "small": raft_small}[size]
        with torch.random.fork_rng(devices=[]):  # the same random init every time (smoke tests)
            torch.manual_seed(0)
            model = build(weights=None, progress=False)
        try:
            resolved = resolve(self.name, weights_path)
        except WeightsNotFoundError:
            if not allow_random_weights:
                raise
            self.weights = "RANDOM INIT (smoke test only, flows are meaningless)"
        else:
            model.load_state_dict(torch.load(resolved.path, map_location="cpu", weights_only=True))
            self.weights = resolved.label
        self.model = model.eval().to(device)
        self.num_flow_updates = num_flow_updates
        self.autocast_dtype = autocast_dtype
        self.corr_budget = corr_budget

    @torch.inference_mode()
    def __call__(self, src: torch.Tensor, dst: torch.Tensor) -> torch.Tensor:
        """Flow from each ``src`` to ``dst`` frame; both float [N, 3, H, W] in [0, 1]."""
        height, width = src.shape[-2:]
        scale = max(1.0, RAFT_MIN_SIDE / min(height, width))
        size = (round(height * scale), round(width * scale))
        pair = torch.cat([src, dst]).to(next(self.model.parameters()).device) * 2 - 1
        if size != (height, width):
            pair = F.interpolate(pair, size=size, mode="bilinear", align_corners=False)
        pad_h, pad_w = (-size[0]) % 8, (-size[1]) % 8
        pads = (pad_w // 2, pad_w - pad_w // 2, pad_h // 2, pad_h - pad_h // 2)
        pair = F.pad(pair, pads, mode="replicate")
        image1, image2 = pair.chunk(2)
        chunk = self._pairs_per_call(*pair.shape[-2:], pair.device, (width, height))
        with torch.autocast(
            pair.device.type,
            dtype=self.autocast_dtype or torch.float32,
            enabled=self.autocast_dtype is not None,
        ):
            flow = torch.cat([
                self.model(a, b, num_flow_updates=self.num_flow_updates)[-1].float()
                for a, b in zip(image1.split(chunk), image2.split(chunk), strict=True)
            ])
        flow = flow[..., pads[2] : pads[2] + size[0], pads[0] : pads[0] + size[1]]
        if size != (height, width):
            flow = F.interpolate(flow, size=(height, width), mode="bilinear", align_corners=False)
            flow = flow * flow.new_tensor([width / size[1], height / size[0]]).view(1, 2, 1, 1)
        return flow.to(src.device)

    def _pairs_per_call(self, height: int, width: int, device, frame_size) -> int:
        element = 2 if self.autocast_dtype in (torch.float16, torch.bfloat16) else 4
        one = raft_corr_bytes(height, width, element)
        free = free_memory(device)
        if one > free:
            raise MetricInputError(
                f"{frame_size[0]}x{frame_size[1]} frames",
                f"RAFT's correlation volume for one pair needs {one / 2**30:.1f} GiB, more than "
                f"the {free / 2**30:.1f} GiB free on {device}",
                "use the weight-free DIS flow (--flow dis; evaluate.flow = \"dis\" in a run "
                "config) or downscale the videos",
            )
        return max(1, self.corr_budget // one)


def create_flow_backend(
    name: str = "auto",
    device: str | torch.device = "cpu",
    weights_path: str | None = None,
    allow_random_weights: bool = False,
):
    """Build a flow backend; ``auto`` is RAFT-large when its weights resolve, else DIS."""
    if name not in FLOW_BACKENDS:
        raise BenchError(name, "unknown flow backend", f"choose one of {', '.join(FLOW_BACKENDS)}")
    if name == "dis":
        return DISFlow()
    if name == "auto":
        try:
            return RAFTFlow("large", device, weights_path)
        except WeightsNotFoundError:
            if named_by_user("raft_large", weights_path):
                raise
            return DISFlow()
    return RAFTFlow(name.removeprefix("raft_"), device, weights_path, allow_random_weights)


def compute_flows(frames: torch.Tensor, backend, batch_size: int = 16) -> FlowField:
    """Forward and backward flow of all consecutive pairs, batched over pairs.

    ``frames``: float [T, 3, H, W] in [0, 1], T >= 2. The 2(T-1) directed pairs are run in
    chunks of ``batch_size``.
    """
    if frames.shape[0] < 2:
        raise ValueError("optical flow needs at least 2 frames")
    src = torch.cat([frames[:-1], frames[1:]])
    dst = torch.cat([frames[1:], frames[:-1]])
    chunks = [
        backend(src[i : i + batch_size], dst[i : i + batch_size])
        for i in range(0, src.shape[0], batch_size)
    ]
    flow = torch.cat(chunks).float()
    forward, backward = flow.chunk(2)
    return FlowField(forward, backward, backend.name, backend.weights)
