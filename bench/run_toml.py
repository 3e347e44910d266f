"""``bench run`` settings from a TOML file and ``--set section.key=value`` overrides, each value
kept with where it came from (``file:line``, ``--set section.key``, a flag) so errors can say."""

from __future__ import annotations

import re
import sys
from pathlib import Path

from metrics.errors import BenchError

if sys.version_info >= (3, 11):
    import tomllib
else:  # the same parser, from PyPI
    import tomli as tomllib

Name = tuple[str, str]  # (section, key); section "" for top-level keys
Settings = dict[Name, tuple[object, str]]  # name -> (value, origin)


def dotted(name: Name) -> str:
    return f"{name[0]}.{name[1]}" if name[0] else name[1]


def read_toml(path: Path) -> Settings:
    """Every ``section.key`` of a TOML file with its value and ``file:line``."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as err:
        problem = f"cannot read the config ({err.strerror})"
        raise BenchError(path, problem, "check the path") from None
    except UnicodeDecodeError as err:
        problem = f"not UTF-8 text (byte {err.start})"
        raise BenchError(path, problem, "save the config as UTF-8, as TOML requires") from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as err:
        line = getattr(err, "lineno", None) or _line_in_message(str(err), text)
        problem = re.sub(r" ?\(at line .*\)$", "", str(err))
        raise BenchError(
            f"{path}:{line}" if line else path,
            f"not valid TOML ({problem})",
            "fix the syntax there (strings need quotes, lists [a, b], one key = value a line)",
        ) from None
    settings: Settings = {}
    for outer, value in data.items():
        items = value.items() if isinstance(value, dict) else [(None, value)]
        for key, item in items:
            name = (outer, key) if key is not None else ("", outer)
            line = _line_of(text, dotted(name))
            settings[name] = (item, f"{path}:{line}" if line else str(path))
    return settings


def parse_set(item: str) -> tuple[Name, object, str]:
    """``section.key=value`` (value in TOML syntax, or a bare string) from ``--set``."""
    name, sep, raw = item.partition("=")
    parts = name.strip().split(".")
    if not sep or len(parts) > 2 or not all(parts):
        raise BenchError(f"--set {item}", "not section.key=value", "e.g. --set tune.steps=20")
    try:
        value = tomllib.loads(f"v = {raw}")["v"]
    except tomllib.TOMLDecodeError:
        value = raw.strip()  # bare strings need no quotes: --set model.base=/models/svd
    key = (parts[0], parts[1]) if len(parts) == 2 else ("", parts[0])
    return key, value, f"--set {name.strip()}"


def _line_in_message(message: str, text: str) -> int | None:
    if "end of document" in message:
        return len(text.splitlines())
    found = re.search(r"at line (\d+)", message)
    return int(found.group(1)) if found else None


def _line_of(text: str, name: str) -> int | None:
    """The line defining ``name`` (``section.key``), under a [section] header or dotted."""
    section = ""
    for number, line in enumerate(text.splitlines(), 1):
        stripped = line.split("#", 1)[0].strip()
        if header := re.fullmatch(r"\[\s*([^\]]+?)\s*\]", stripped):
            section = header.group(1).replace('"', "").replace(" ", "")
        elif key := re.match(r"([\w.\-\" ]+?)\s*=", stripped):
            full = key.group(1).replace('"', "").replace(" ", "")
            if (f"{section}.{full}" if section else full) == name:
                return number
    return None
