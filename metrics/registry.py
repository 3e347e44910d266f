"""A small named registry with wildcard listing and "did you mean" errors."""

from __future__ import annotations

import difflib
import fnmatch
from collections.abc import Callable, Iterable
from typing import Generic, TypeVar

from metrics.errors import BenchError

T = TypeVar("T")


class UnknownNameError(BenchError):
    """A name that is not registered; the message lists what is."""


class Registry(Generic[T]):
    """Maps names to objects; ``kind`` names the things in error messages ("metric", "arm")."""

    def __init__(self, kind: str):
        self.kind = kind
        self._items: dict[str, T] = {}

    def register(self, name: str) -> Callable[[T], T]:
        def add(obj: T) -> T:
            if name in self._items:
                raise ValueError(f"{self.kind} {name!r} is already registered")
            self._items[name] = obj
            return obj

        return add

    def __contains__(self, name: str) -> bool:
        return name in self._items

    def get(self, name: str) -> T:
        if name not in self._items:
            close = difflib.get_close_matches(name, self._items, n=1)
            hint = f"did you mean {close[0]!r}? " if close else ""
            raise UnknownNameError(
                name, f"unknown {self.kind}", f"{hint}registered: {', '.join(self.names())}"
            )
        return self._items[name]

    def names(self, pattern: str = "*") -> list[str]:
        """Registered names matching a wildcard pattern, in registration order."""
        return [n for n in self._items if fnmatch.fnmatchcase(n, pattern)]

    def select(self, patterns: Iterable[str]) -> list[str]:
        """Names matching any pattern, in registry order; a pattern matching nothing errs."""
        chosen: list[str] = []
        for pattern in patterns:
            matched = self.names(pattern) if any(c in pattern for c in "*?[") else [pattern]
            if not matched:
                raise UnknownNameError(
                    pattern, f"no {self.kind} matches", f"registered: {', '.join(self.names())}"
                )
            for name in matched:
                self.get(name)
                if name not in chosen:
                    chosen.append(name)
        return chosen
