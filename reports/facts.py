"""What was run, from the stored records: config, seeds, per-arm models and weight checksums,
metric backends and weights, versions, hardware and time per stage."""

from __future__ import annotations

import json

import pandas as pd

from reports.rundir import Run


def flatten(data: dict, prefix: str = "") -> list[tuple[str, str]]:
    """Nested dict as ('section.key', 'value') pairs, lists written inline."""
    pairs = []
    for key, value in data.items():
        if isinstance(value, dict):
            pairs += flatten(value, f"{prefix}{key}.")
        else:
            pairs.append(
                (prefix + str(key), json.dumps(value) if not isinstance(value, str) else value)
            )
    return pairs


def provenance(per_video: pd.DataFrame) -> tuple[dict[str, str], dict[str, str]]:
    """(backends, versions) recorded by the evaluator: each key with its distinct values."""
    values: dict[str, set[str]] = {}
    for text in pd.unique(per_video["provenance"].fillna("{}")):
        try:
            record = json.loads(text)
        except json.JSONDecodeError:
            continue
        for key, value in record.items():
            values.setdefault(key, set()).add(str(value))
    joined = {key: " | ".join(sorted(found)) for key, found in sorted(values.items())}
    versions = {
        k.removeprefix("version_"): v for k, v in joined.items() if k.startswith("version_")
    }
    backends = {k: v for k, v in joined.items() if not k.startswith("version_")}
    return backends, versions


# the evaluator's names (it runs without a run.json too) for packages run.json lists by
# distribution name; cv2.__version__ is the distribution's version without its build number
EVALUATOR_NAMES = {"exsvd_bench": "exsvd-bench", "opencv": "opencv-python-headless"}


def merged_versions(run_versions: dict[str, str], evaluator: dict[str, str]) -> dict[str, str]:
    """run.json's versions and the evaluator's, a package once where both name it alike."""
    merged = dict(run_versions)
    for name, value in evaluator.items():
        twin = merged.get(EVALUATOR_NAMES.get(name, name))
        if twin is None or not (twin == value or str(twin).startswith(f"{value}.")):
            merged[name] = value
    return merged


LOSS_WEIGHTS = {"exvideo": "sqrt(σ²+1)/σ (ExVideo)", "edm": "(σ²+1)/σ² (SVD)"}


def objective_text(training: dict) -> str:
    """The post-tuning objective an arm's ``training.json`` records; records from before the
    loss weight was recorded were all trained with SVD's."""
    objective = training.get("config", {}).get("objective")
    if not objective:
        return "–"
    weight = objective.get("loss_weight", "edm")
    return (f"x0 error × {LOSS_WEIGHTS.get(weight, weight)}, "
            f"log σ ~ N({objective.get('p_mean')}, {objective.get('p_std')})")


def steps_text(training: dict, loss: pd.DataFrame | None) -> str:
    """Post-tuning steps, and the launch when each step took the clips of several processes
    (or DeepSpeed's)."""
    steps = training.get("steps_done", "–" if loss is None else len(loss))
    launch = {"processes": 1, "distributed": "NO", **training.get("launch", {})}
    if launch["processes"] == 1 and launch["distributed"] == "NO":
        return str(steps)
    return f"{steps} ({launch['processes']} processes, {launch['distributed']})"


def arm_rows(run: Run) -> list[dict]:
    """Per arm: frames generated, videos, weight checksums, post-tuning steps, objective and
    parameters."""
    rows = []
    for arm in run.arms:
        manifest = run.manifests.get(arm, {})
        training = run.training.get(arm, {})
        loss = run.losses.get(arm)
        trainable = training.get("parameters", {})
        rows.append(
            {
                "arm": arm,
                "frames": manifest.get("generation", {}).get("frames", "–"),
                "videos": len(run.videos.get(arm, {})),
                "weights": manifest.get("weights_sha256", {}),
                "steps": steps_text(training, loss),
                "objective": objective_text(training),
                "parameters": ", ".join(f"{k} {v:,}" for k, v in trainable.items()) or "–",
                "final_loss": f"{loss['loss'].tail(20).mean():.4g}" if loss is not None else "–",
            }
        )
    return rows


def seeds(run: Run) -> dict[str, str]:
    config = run.record.get("config", {})
    conditions = config.get("conditions", {})
    table = run.per_video
    source = str(conditions.get("source", "–"))
    if source == "synthetic" and "texture_scale" in conditions:
        source += f" (texture scale {conditions['texture_scale']})"
    return {
        "run seed (tuning data and noise)": str(config.get("seed", "–")),
        "generation noise seeds": ", ".join(map(str, sorted(pd.unique(table["seed"])))),
        "conditions": f"{table['sample'].nunique()}: "
        + ", ".join(map(str, pd.unique(table["sample"]))),
        "condition source": source,
        "condition seed": str(conditions.get("seed", "–")),
    }


def timings(run: Run, in_run: bool = False) -> dict:
    """Seconds per stage, share of the total, and units computed / taken from the cache."""
    stages = {k: v for k, v in run.timings.get("stages", {}).items() if isinstance(v, int | float)}
    units = run.timings.get("units", {})
    total = sum(stages.values())
    return {
        "stages": [
            (
                name,
                f"{seconds:.1f} s",
                f"{100 * seconds / total:.0f}%" if total else "",
                ", ".join(f"{n} {k}" for k, n in units.get(name, {}).items()),
            )
            for name, seconds in stages.items()
        ],
        "total": f"{total:.1f} s ({total / 60:.1f} min)" if stages else "",
        "started": run.timings.get("started", ""),
        "finished": run.timings.get("finished")
        or ("with this report (its own build time is not in the table)" if in_run else ""),
    }


def count(n: int, noun: str) -> str:
    return f"{n} {noun}" + ("" if n == 1 else "s")


def model_text(run: Run) -> str:
    """One line on what was post-tuned and how far: model, size, lengths, budget, videos."""
    config = run.record.get("config", {})
    model, tune = config.get("model", {}), config.get("tune", {})
    base = model.get("base")
    parts = [
        "the tiny embedded model" if base == "tiny" else base or "model not recorded",
        f"{model['size']} × {model['size']} px" if "size" in model else "",
        f"base length L = {model['base_length']}" if "base_length" in model else "",
        f"extended to {model['extended_length']} frames" if "extended_length" in model else "",
        f"tune budget {tune['budget']}" + (f" ({tune['steps']} steps)" if "steps" in tune else "")
        if "budget" in tune else "",
        f"{count(run.per_video['sample'].nunique(), 'condition')} × "
        f"{count(run.per_video['seed'].nunique(), 'seed')}",
    ]
    return ", ".join(filter(None, parts))


def run_facts(run: Run, in_run: bool = False) -> dict:
    backends, versions = provenance(run.per_video)
    hardware = {
        k: (", ".join(map(str, v)) or "none") if isinstance(v, list) else str(v)
        for k, v in run.record.get("hardware", {}).items()
    }
    return {
        "created": run.record.get("created", ""),
        "model": model_text(run),
        "config_hash": run.record.get("config_hash", ""),
        "config": flatten(run.record.get("config", {})),
        "arms": arm_rows(run),
        "backends": backends,
        "versions": merged_versions(run.record.get("versions", {}), versions),
        "hardware": hardware,
        "seeds": seeds(run),
        "timings": timings(run, in_run),
    }
