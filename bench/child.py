"""Child processes of bench: an arm's post-tuning alone, or as an ``accelerate launch`` of its
own. An interrupted bench (Ctrl-C, SIGTERM) stops them before it exits: a launch's workers run
in sessions of their own, and killing the launcher alone would leave them training on.

``python -m bench.child ARGS`` is ``accelerate launch ARGS`` that ends quietly (exit 130) when
interrupted, once its agent has stopped the workers, rather than with torch elastic's
SignalException traceback; and quietly with a worker's exit code when the worker printed its own
one-line error (exit 2), rather than with the ChildFailedError traceback and report."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

DEEPSPEED_CONFIG = Path(__file__).parents[1] / "variants" / "configs" / "deepspeed_zero2.json"
STOP_SECONDS = 60  # for a launch to stop its workers when interrupted


def launch_command(tune, device: str) -> list[str]:
    """``accelerate launch`` of ``tune.processes`` (DDP, or DeepSpeed ZeRO-2) on a free port;
    ``-m MODULE ARGS`` follow. CPU processes share this process's threads."""
    if tune.deepspeed:
        how = ["--use_deepspeed", "--deepspeed_config_file", str(DEEPSPEED_CONFIG)]
    else:  # DDP over processes > 1
        how = ["--multi_gpu"]
    if device == "cpu":
        import torch

        threads = max(1, torch.get_num_threads() // tune.processes)
        how += ["--num_cpu_threads_per_process", str(threads)]
    with socket.socket() as probe:  # another run on this machine may hold accelerate's default
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return [sys.executable, "-m", "bench.child", *how,
            "--num_processes", str(tune.processes), "--num_machines", "1",
            "--main_process_port", str(port), "--mixed_precision", tune.mixed_precision,
            "--dynamo_backend", "no"]


def run_child(command: list[str], env: dict[str, str]) -> int:
    """Run ``command`` to its end and return its exit code; if bench is interrupted meanwhile,
    interrupt it (the whole process group: Ctrl-C reaches bench only, as the child has a
    session of its own) and wait for it to stop, then re-raise."""
    process = subprocess.Popen(command, env=env, start_new_session=True)
    try:
        return process.wait()
    except BaseException:
        stop(process)
        raise


def stop(process: subprocess.Popen) -> None:
    """SIGINT, up to ``STOP_SECONDS`` to stop (a launch's agent stops its workers), then
    SIGKILL to it and every process under it (the workers too, in sessions of their own); a
    second Ctrl-C skips the wait."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGINT)
    try:
        process.wait(timeout=STOP_SECONDS)
    except (subprocess.TimeoutExpired, KeyboardInterrupt):
        import psutil

        try:
            under = psutil.Process(process.pid).children(recursive=True)
        except psutil.NoSuchProcess:
            under = []
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        for child in under:
            with contextlib.suppress(psutil.NoSuchProcess):
                child.kill()
        process.wait()


QUIET_EXITS = (2, 130)  # a worker's one-line error (BenchError), an interrupted worker


def main() -> int:
    try:
        from accelerate.commands.launch import main as accelerate_launch
        from torch.distributed.elastic.multiprocessing.api import SignalException
        from torch.distributed.elastic.multiprocessing.errors import ChildFailedError

        accelerate_launch()
    except (SignalException, KeyboardInterrupt):  # once the agent has stopped its workers,
        return 130  # or before it started them
    except ChildFailedError as err:  # not for a worker that said why itself
        exitcode = err.get_first_failure()[1].exitcode
        if exitcode in QUIET_EXITS:
            return exitcode
        raise  # a crash or a signal (the OOM killer's): the launcher's report says which
    return 0


if __name__ == "__main__":
    sys.exit(main())
