"""The typed configuration of ``bench run``; its defaults are the default run
(``configs/default.toml``). Reading and checking: ``bench.run_settings``."""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field, fields, replace

from variants.tiny_data import TEXTURE_SCALE

# Post-tuning budgets; tune.steps / lr / batch_size / ema / checkpoint_every override them.
# quick: the four tuned arms together <= 5 min on 2 CPU cores (embedded tiny model, 32 frames;
# `bench perf budget` measures it: 186 s on the slower machine); full: <= 60 min for the four
# (24.9-25.7 min measured before the arms shared their encoded clips).
BUDGETS = {
    "quick": {"steps": 60, "lr": 2e-4, "batch_size": 1, "ema": 0.95, "checkpoint_every": 20},
    "full": {"steps": 1000, "lr": 1e-4, "batch_size": 1, "ema": 0.99, "checkpoint_every": 100},
}
DTYPES = ("float32", "bfloat16", "float16")
FLOWS = ("auto", "dis", "raft_large", "raft_small")


@dataclass
class ModelSettings:
    """``base``: "tiny" (the embedded model), a diffusers SVD pipeline folder or a Hugging Face
    id in the local cache; the arms generate ``base_length`` (svd) or ``extended_length``
    frames of ``size`` x ``size``; ``table_size`` / ``bounce_low``: the trainable PE tables."""

    base: str = "tiny"
    base_length: int = 8
    extended_length: int = 32
    size: int = 64
    dtype: str = "float32"
    device: str = "cpu"
    table_size: int = 128
    bounce_low: int = 4


@dataclass
class ConditionSettings:
    """``source`` "synthetic": ``count`` rendered clips (``kinds`` in turn, seeds ``seed``,
    ``seed + 1``, ...; ``texture_scale`` as coarse as the embedded model's training textures);
    or a folder of videos: each one's first frame is the condition, the video (cropped,
    resized, ``extended_length`` frames) the reference."""

    source: str = "synthetic"
    kinds: list[str] = field(default_factory=lambda: ["pan", "zoom", "rotate", "sprites"])
    count: int = 8
    seed: int = 1000
    texture_scale: float = TEXTURE_SCALE


@dataclass
class TuneSettings:
    """Post-tuning of the tuned arms; unset numbers come from ``budget``. ``data``: "synthetic"
    or a folder of training videos. ``exsvd_weights`` "released" loads ExVideo's checkpoint
    (``released_weights``: DiffSynth's model.fp16.safetensors) into exsvd instead of tuning.
    ``processes`` > 1 post-tunes each arm data-parallel (``accelerate launch``, one GPU each, or
    CPU processes over gloo); each process draws its own clips, so the batch grows that many
    times. ``deepspeed``: under DeepSpeed ZeRO-2 (``variants/configs/deepspeed_zero2.json``,
    GPUs) instead of DDP. ``deterministic``: the same weights bit for bit on every GPU run and
    resume (``variants.repeatable``; CPUs always give them)."""

    budget: str = "quick"
    steps: int | None = None
    lr: float | None = None
    batch_size: int | None = None
    ema: float | None = None
    checkpoint_every: int | None = None
    grad_accumulation: int = 1
    mixed_precision: str = "no"
    checkpointing: str = "none"
    frozen_dtype: str = "float32"
    fused_adamw: bool = False
    deterministic: bool = False
    processes: int = 1
    deepspeed: bool = False
    data: str = "synthetic"
    exsvd_weights: str = "own"
    released_weights: str = ""

    @property
    def launched(self) -> bool:
        """Whether each tuned arm trains in an ``accelerate launch`` of its own."""
        return self.processes > 1 or self.deepspeed


@dataclass
class GenerationSettings:
    """Sampling (``variants.generate.GenerationConfig`` fields) and the noise seeds per
    condition."""

    seeds: list[int] = field(default_factory=lambda: [0])
    steps: int = 15  # SVD uses 25; 15 keeps the default run under 10 CPU minutes
    min_guidance: float = 1.0
    max_guidance: float = 3.0
    fps_id: int = 7
    motion_bucket: int = 127
    noise_aug: float = 0.02
    decode_chunk: int = 8
    output_fps: float = 8.0
    cpu_offload: bool = False


@dataclass
class EvaluateSettings:
    """Metrics (names or wildcards; set-level ones such as FVD are left out) and the options of
    ``bench eval``; an empty path means "resolve as usual", an empty device the model's."""

    metrics: list[str] = field(default_factory=lambda: ["*"])
    flow: str = "auto"
    flow_weights: str = ""
    clip_weights: str = ""
    clip_model: str = "ViT-B-32"
    lpips_net: str = "alex"
    allow_random_weights: bool = False
    device: str = ""
    batch_size: int = 16


@dataclass
class RunConfig:
    """One ablation run; ``seed`` drives the tuning data and noise, the same for every arm."""

    seed: int = 0
    arms: list[str] = field(default_factory=lambda: ["all"])
    model: ModelSettings = field(default_factory=ModelSettings)
    conditions: ConditionSettings = field(default_factory=ConditionSettings)
    tune: TuneSettings = field(default_factory=TuneSettings)
    generation: GenerationSettings = field(default_factory=GenerationSettings)
    evaluate: EvaluateSettings = field(default_factory=EvaluateSettings)

    def to_dict(self) -> dict:
        return asdict(self)

    def digest(self) -> str:
        return hashlib.sha256(json.dumps(self.to_dict(), sort_keys=True).encode()).hexdigest()


SECTIONS = tuple(f.name for f in fields(RunConfig) if f.name not in ("seed", "arms"))


def with_budget(tune: TuneSettings) -> TuneSettings:
    """``tune`` with its unset numbers taken from its budget."""
    preset = BUDGETS[tune.budget]
    return replace(tune, **{k: v for k, v in preset.items() if getattr(tune, k) is None})
