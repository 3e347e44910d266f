"""What every stage gets: the run directory, the config, this process's shard and the cache;
and the loop that computes a stage's units, skipping the ones done and valid."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from bench.run_cache import Checksums, Unit, read_record, valid_record, write_record
from bench.run_config import RunConfig
from bench.run_shard import Shard
from metrics.errors import BenchError


@dataclass
class Context:
    run_dir: Path
    config: RunConfig
    shard: Shard
    checksums: Checksums
    forced: frozenset[str] = frozenset()  # stages recomputed whatever their cache says
    model_key: str = ""  # base model files + how arms are built from it (bench.stages.inputs)
    counts: dict[str, dict[str, int]] = field(default_factory=dict)
    _pipelines: dict = field(default_factory=dict, repr=False)

    def path(self, *parts: str) -> Path:
        return self.run_dir.joinpath(*parts)

    def upstream(self, record: Path) -> dict:
        """A done record of an earlier stage (every one exists once that stage is over)."""
        found = read_record(record)
        if found is None:
            raise BenchError(
                record,
                "missing or unreadable done record of an earlier stage",
                "rerun; the stage that writes it recomputes it",
            )
        return found

    def pipeline(self, dtype: str):
        """The base SVD pipeline in ``dtype``, loaded once per process."""
        if dtype not in self._pipelines:
            import torch

            from bench.stages.inputs import base_folder
            from variants.generate import load_base_pipeline

            quiet_libraries()
            self._pipelines.clear()
            folder = base_folder(self.config.model)
            self._pipelines[dtype] = load_base_pipeline(str(folder), getattr(torch, dtype))
        return self._pipelines[dtype]


def quiet_libraries() -> None:
    """No loading bars or notices from diffusers / transformers: stage bars and errors only."""
    from diffusers.utils import logging as diffusers_logging
    from transformers.utils import logging as transformers_logging

    for logging in (diffusers_logging, transformers_logging):
        logging.set_verbosity_error()
        logging.disable_progress_bar()


def made_from(ctx: Context, units: list[Unit]) -> list:
    """What a later unit is made from: each done unit's key and output checksums, so that a
    unit recomputed to other bytes under the same key (a GPU need not repeat itself bit for
    bit) makes what reads it recompute too."""
    done = [(unit.key, ctx.upstream(unit.record)["outputs"]) for unit in units]
    return sorted(done, key=lambda pair: pair[0])


def pending_units(ctx: Context, stage: str, units: list[Unit]) -> list[Unit]:
    """This process's share of ``units`` that are not done (all of it when the stage is forced)."""
    mine = ctx.shard.mine(units)
    return [u for u in mine if stage in ctx.forced or not valid_record(u, ctx.checksums)]


def run_units(ctx: Context, stage: str, units: list[Unit], compute: Callable[[Unit], dict],
              recorded: Callable[[Unit], None] | None = None):
    """Compute this process's share of ``units`` that are not done (all of them when the stage
    is forced), recording each as done after its outputs; then wait for the other processes.
    ``compute`` returns extra fields for the record; ``recorded(unit)``, if given, follows the
    record (to drop what a resume of the unit would have needed)."""
    from tqdm import tqdm

    mine, todo = ctx.shard.mine(units), pending_units(ctx, stage, units)
    bar = tqdm(
        total=len(mine),
        initial=len(mine) - len(todo),
        desc=stage,
        unit="unit",
        file=sys.stderr,
        disable=None if ctx.shard.is_main else True,
        dynamic_ncols=True,
    )
    with bar:
        for unit in todo:
            bar.set_description(f"{stage} {unit.arm}".strip())
            unit.record.unlink(missing_ok=True)
            start = time.perf_counter()
            extra = compute(unit)
            write_record(unit, ctx.checksums, seconds=time.perf_counter() - start, **extra)
            if recorded:
                recorded(unit)
            bar.update()
    ctx.checksums.save()
    counts = ctx.shard.gather({"computed": len(todo), "cached": len(mine) - len(todo)})
    ctx.counts[stage] = {k: sum(c[k] for c in counts) for k in ("computed", "cached")}
    ctx.shard.barrier()
