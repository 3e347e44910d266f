"""User-facing errors: each renders as one line naming the file (or thing) and the fix."""

from __future__ import annotations


class BenchError(Exception):
    """A problem caused by input or setup, not by a bug: the CLI prints it as one line."""

    def __init__(self, subject: str, problem: str, fix: str | None = None):
        self.subject = str(subject)
        self.problem = problem
        self.fix = fix
        super().__init__(self.subject, problem, fix)

    def __str__(self) -> str:
        line = f"{self.subject}: {self.problem}"
        return f"{line}; {self.fix}" if self.fix else line


class VideoInputError(BenchError):
    """A video file, frame folder or array that cannot be read as uint8 [T, H, W, 3]."""


class MetricInputError(BenchError):
    """A readable video that a metric cannot score (e.g. too few frames)."""


class WeightsNotFoundError(BenchError):
    """Pretrained weights that resolve nowhere; the message lists every place searched."""


def first_line(err: BaseException) -> str:
    """A library's exception as ``Type: message``, its first line only: the cause inside a
    one-line ``BenchError``."""
    text = str(err).strip()
    return f"{type(err).__name__}: {text.splitlines()[0]}" if text else type(err).__name__
