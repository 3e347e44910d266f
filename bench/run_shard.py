"""Sharding units over the processes of ``accelerate launch`` (accelerate's ``PartialState``):
each process takes every n-th unit of a stage's sorted list; all meet between stages."""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import timedelta

# Env variables of a distributed launch; a child process without them runs on its own.
LAUNCH_ENV = (
    "RANK",
    "WORLD_SIZE",
    "LOCAL_RANK",
    "LOCAL_WORLD_SIZE",
    "GROUP_RANK",
    "ROLE_RANK",
    "ROLE_WORLD_SIZE",
    "MASTER_ADDR",
    "MASTER_PORT",
)


@dataclass(frozen=True)
class Shard:
    index: int = 0
    count: int = 1
    local_index: int = 0

    @classmethod
    def launched(cls, cpu: bool) -> Shard:
        """This process's place in the launch (a single process when not launched)."""
        from accelerate import PartialState

        # A stage can keep one process busy far longer than torch's 30-minute default.
        state = PartialState(cpu=cpu, timeout=timedelta(days=7))
        return cls(state.process_index, state.num_processes, state.local_process_index)

    @property
    def is_main(self) -> bool:
        return self.index == 0

    def mine(self, units: list) -> list:
        """Round-robin over the units sorted by name."""
        return sorted(units, key=lambda unit: unit.name)[self.index :: self.count]

    def barrier(self) -> None:
        if self.count > 1:
            from accelerate import PartialState

            PartialState().wait_for_everyone()

    def gather(self, value) -> list:
        """``value`` from every process, in process order."""
        if self.count == 1:
            return [value]
        from accelerate.utils import gather_object

        return gather_object([value])

    def device(self, device: str) -> str:
        """Each launched process uses its own GPU."""
        return f"cuda:{self.local_index}" if self.count > 1 and device == "cuda" else device

    def solo_env(self, device: str) -> dict[str, str]:
        """The environment of a child process that must run alone (e.g. post-tuning one arm,
        which under the launch's env would join the others' process group)."""
        env = {k: v for k, v in os.environ.items() if k not in LAUNCH_ENV}
        if device == "cpu":
            env["ACCELERATE_USE_CPU"] = "true"
            env.setdefault("DS_ACCELERATOR", "cpu")  # else DeepSpeed, if installed, warns
        elif self.count > 1 and device == "cuda":
            visible = os.environ.get("CUDA_VISIBLE_DEVICES")
            gpus = visible.split(",") if visible else [str(i) for i in range(64)]
            env["CUDA_VISIBLE_DEVICES"] = gpus[self.local_index]
        return env
