"""How post-tuning is launched: one process, or several under ``accelerate launch`` (DDP, or
DeepSpeed ZeRO with ``variants/configs/deepspeed_zero2.json``), checked before any compute."""

from __future__ import annotations

import os
from types import SimpleNamespace

import torch

from metrics.errors import BenchError

SINGLE_PROCESS = {"processes": 1, "distributed": "NO"}  # checkpoints before the launch
# DeepSpeed 0.17.x-0.18.2's ZeRO-1/2 keep only the last micro-batch's gradients when
# accumulating (measured with 0.18.2: the result equals training on the last micro-batch alone)
DEEPSPEED_ACCUMULATES_FROM = "0.18.3"


def distributed_type(accelerator) -> str:
    """``DEEPSPEED``, ``MULTI_GPU`` / ``MULTI_CPU`` (DDP) or ``NO``."""
    return accelerator.distributed_type.value


def launch_of(accelerator) -> dict:
    """The launch, as far as the maths depends on it: each process trains on clips of its own,
    so the process count sets the batch; DeepSpeed (on one GPU too) keeps the optimizer state in
    partitions of its own format."""
    return {"processes": accelerator.num_processes, "distributed": distributed_type(accelerator)}


def check_launch(accelerator, grad_accumulation: int) -> None:
    """Refuse a launch that would not train as asked, before any compute."""
    launched = int(os.environ.get("WORLD_SIZE") or 1)
    if launched > 1 and accelerator.num_processes == 1:
        raise BenchError(
            "post-tuning",
            f"launched as {launched} processes, but accelerate runs each on its own (it found "
            "no GPU), so they would all train the same batch and write the same files",
            "on CPUs launch DDP with ACCELERATE_USE_CPU=true accelerate launch --multi_gpu ...",
        )
    if distributed_type(accelerator) == "DEEPSPEED":
        import deepspeed

        check_deepspeed(deepspeed.__version__, grad_accumulation)


def check_deepspeed(version: str, grad_accumulation: int) -> None:
    """Refuse a DeepSpeed whose ZeRO-2 would drop accumulated micro-batches."""
    from packaging.version import Version

    if grad_accumulation > 1 and Version(version) < Version(DEEPSPEED_ACCUMULATES_FROM):
        raise BenchError(
            "post-tuning",
            f"DeepSpeed {version} with grad_accumulation = {grad_accumulation}: "
            "its ZeRO-2 keeps only the last micro-batch's gradients",
            f"install deepspeed>={DEEPSPEED_ACCUMULATES_FROM} (pip install -e '.[deepspeed]') "
            "or set grad_accumulation = 1",
        )


def prepare_deepspeed(accelerator, batch_size: int) -> None:
    """Fill the DeepSpeed config's ``"auto"`` micro-batch, which accelerate otherwise takes from
    a DataLoader (post-tuning has none); its ``"auto"`` accumulation steps come from the
    Accelerator's ``gradient_accumulation_steps``."""
    if distributed_type(accelerator) != "DEEPSPEED":
        return
    plugin = accelerator.state.deepspeed_plugin
    if plugin.is_auto("train_micro_batch_size_per_gpu"):
        plugin.deepspeed_config["train_micro_batch_size_per_gpu"] = batch_size


def sixteen_bit_inputs(model, accelerator):
    """The UNet call ``edm_loss`` makes. Under DeepSpeed fp16 / bf16 the engine holds the weights
    in 16 bits and leaves the inputs to the loop (accelerate's autocast is off), so the float32
    inputs are cast to them and the output back, as Lightning's DeepSpeed precision does in
    ExVideo's run; everywhere else the model itself."""
    half = {"fp16": torch.float16, "bf16": torch.bfloat16}.get(accelerator.mixed_precision)
    if distributed_type(accelerator) != "DEEPSPEED" or half is None:
        return model

    def forward(sample, timestep, encoder_hidden_states, added_time_ids):
        output = model(sample.to(half), timestep, encoder_hidden_states.to(half), added_time_ids)
        return SimpleNamespace(sample=output.sample.float())

    return forward


def casts_frozen_weights(accelerator, frozen_dtype: str) -> bool:
    """Whether the frozen weights train in another dtype than the base's: ``frozen_dtype``, or
    DeepSpeed fp16 / bf16, whose engine holds the whole model in 16 bits."""
    deepspeed = distributed_type(accelerator) == "DEEPSPEED"
    return frozen_dtype != "float32" or (deepspeed and accelerator.mixed_precision != "no")


def full_precision(params, accelerator) -> list[torch.Tensor]:
    """The trainable weights in float32: the parameters themselves, or under DeepSpeed fp16 /
    bf16 the fp32 master weights from its optimizer's partitions (every process must call it:
    they are gathered)."""
    if distributed_type(accelerator) != "DEEPSPEED" or accelerator.mixed_precision == "no":
        return [p.detach() for p in params]
    from deepspeed.utils import safe_get_full_fp32_param

    return [safe_get_full_fp32_param(p) for p in params]
