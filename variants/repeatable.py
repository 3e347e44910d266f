"""Kernels that give the same bits on every run, GPUs included (``tune.deterministic``).

CPU kernels already do. On CUDA, attention backward, cuDNN and cuBLAS may sum in another order
from run to run: two straight post-tuning runs of the tiny model on an H200 differed by up to
1.8e-3 in the trained weights (AdamW turns each step's rounding into an lr-sized move), as much
as a resume that lost its optimizer state would. Under ``deterministic_kernels`` they matched
bit for bit, resumes too (the identity convs then pad by copies: ``variants.modules``). torch's
filling of new buffers under deterministic algorithms stays on, as measured.
"""

from __future__ import annotations

import contextlib
import os

import torch

from metrics.errors import BenchError

CUBLAS_WORKSPACE = ":4096:8"  # cuBLAS's fixed-order reductions need a workspace of its own


@contextlib.contextmanager
def deterministic_kernels(enabled: bool = True):
    """Within: torch's deterministic algorithms and cuDNN's, or a one-line error naming an op
    that has none; the previous settings after. Not enabled: nothing changes."""
    if not enabled:
        yield
        return
    before = torch.are_deterministic_algorithms_enabled(), torch.backends.cudnn.deterministic
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", CUBLAS_WORKSPACE)
    torch.use_deterministic_algorithms(True)
    torch.backends.cudnn.deterministic = True
    try:
        yield
    except RuntimeError as err:
        op, missing, _ = str(err).partition(" does not have a deterministic implementation")
        if not missing:
            raise
        raise BenchError("tune.deterministic", f"{op} has no deterministic kernel here",
                         "set tune.deterministic = false (results then differ in rounding "
                         "from run to run)") from None
    finally:
        torch.use_deterministic_algorithms(before[0])
        torch.backends.cudnn.deterministic = before[1]
