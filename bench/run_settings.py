"""Building a ``RunConfig``: defaults, then the TOML file, then ``--set`` items, then flags.
Unknown sections or keys and values of the wrong type are one-line errors naming their origin."""

from __future__ import annotations

import difflib
import types
import typing
from dataclasses import fields
from pathlib import Path

from bench.run_checks import check_and_resolve
from bench.run_config import SECTIONS, RunConfig
from bench.run_toml import Name, Settings, dotted, parse_set, read_toml
from metrics.errors import BenchError


def load_config(
    path: Path | None = None, sets: list[str] = (), flags: Settings | None = None
) -> RunConfig:
    """The checked, resolved config of a run."""
    settings: Settings = dict(read_toml(path)) if path else {}
    for item in sets:
        name, value, origin = parse_set(item)
        settings[name] = (value, origin)
    settings.update(flags or {})
    return config_from_settings(settings)


def config_from_dict(data: dict, origin: str) -> RunConfig:
    """A config as ``RunConfig.to_dict`` wrote it (run.json), checked again, except for the
    devices against a launch: bench checked those against its own when it wrote run.json, and an
    arm's own launch (``tune.processes``) reading it places its processes itself."""
    settings: Settings = {}
    for outer, value in data.items():
        if isinstance(value, dict):
            settings.update({(outer, k): (v, origin) for k, v in value.items()})
        else:
            settings[("", outer)] = (value, origin)
    return config_from_settings(settings, launched=1)


def config_from_settings(settings: Settings, launched: int | None = None) -> RunConfig:
    values: dict[str, dict] = {"": {}, **{name: {} for name in SECTIONS}}
    for name, (value, origin) in settings.items():
        hint = _hint(name, origin)
        values[name[0]][name[1]] = _coerced(name, value, hint, origin)
    sections = {name: _section_class(name)(**values[name]) for name in SECTIONS}
    origins = {name: origin for name, (_, origin) in settings.items()}
    return check_and_resolve(RunConfig(**values[""], **sections), origins, launched)


def _section_class(section: str) -> type:
    return typing.get_type_hints(RunConfig)[section]


def _keys(section: str) -> dict[str, object]:
    cls = _section_class(section) if section else RunConfig
    hints = typing.get_type_hints(cls)
    return {f.name: hints[f.name] for f in fields(cls) if f.name not in SECTIONS}


def _hint(name: Name, origin: str):
    """The type of setting ``name``; unknown sections and keys are errors."""
    section, key = name
    if not section and key in SECTIONS:
        raise BenchError(origin, f"'{key}' is a section", f"put its keys under [{key}]")
    if section and section not in SECTIONS:
        raise BenchError(origin, f"unknown section [{section}]", f"sections: {', '.join(SECTIONS)}")
    known = _keys(section)
    if key not in known:
        close = difflib.get_close_matches(key, known, n=1)
        hint = f"did you mean '{close[0]}'? " if close else ""
        where = f"[{section}]" if section else "the top level"
        raise BenchError(
            origin, f"unknown key '{dotted(name)}'", f"{hint}keys of {where}: {', '.join(known)}"
        )
    return known[key]


def _coerced(name: Name, value, hint, origin: str):
    try:
        return _coerce(value, hint)
    except TypeError:
        wanted = _describe(hint)
        problem = f"{dotted(name)} = {value!r} is not {wanted}"
        raise BenchError(origin, problem, f"give {wanted}") from None


def _coerce(value, hint):
    """``value`` as ``hint`` (int, float, str, bool, list, optional) or TypeError; a string
    stands for a comma-separated list, an integer for a float."""
    if isinstance(hint, types.UnionType):
        (hint,) = (option for option in typing.get_args(hint) if option is not type(None))
    if typing.get_origin(hint) is list:
        (item,) = typing.get_args(hint)
        if isinstance(value, str):
            value = [part.strip() for part in value.split(",") if part.strip()]
        if not isinstance(value, list):
            raise TypeError
        return [_coerce(v, item) for v in value]
    if hint is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if (isinstance(value, bool) and hint is not bool) or not isinstance(value, hint):
        raise TypeError
    return value


def _describe(hint) -> str:
    if isinstance(hint, types.UnionType):
        (hint,) = (option for option in typing.get_args(hint) if option is not type(None))
    if typing.get_origin(hint) is list:
        return "a list of " + {int: "integers", str: "strings"}[typing.get_args(hint)[0]]
    return {int: "an integer", float: "a number", str: "a string", bool: "true or false"}[hint]
