"""An interrupted bench stops the post-tuning launch it started: the launcher and its workers,
which run in sessions of their own (killing the launcher alone left them training on), and
without the launcher's traceback."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest
from torch.distributed.elastic.multiprocessing.errors import ChildFailedError, ProcessFailure

from bench import child
from bench.stages import tune

ROOT = Path(__file__).parent.parent

WORKER = """import os, pathlib, signal, sys, time
signal.signal(signal.SIGINT, lambda *_: sys.exit(130))  # quietly, as bench.stages.tune does
pathlib.Path(sys.argv[1], os.environ["RANK"]).write_text(str(os.getpid()))
time.sleep(600)
"""

STUCK_WORKER = """import os, pathlib, signal, sys, time
for signum in (signal.SIGINT, signal.SIGTERM):  # as if stuck in a collective
    signal.signal(signum, signal.SIG_IGN)
pathlib.Path(sys.argv[1], os.environ["RANK"]).write_text(str(os.getpid()))
time.sleep(600)
"""

PARENT = """import os, signal, sys
# as bench in a terminal has them, whatever the test runner inherited (a background job of a
# script ignores SIGINT, nohup SIGHUP)
signal.signal(signal.SIGINT, signal.default_int_handler)
signal.signal(signal.SIGHUP, signal.SIG_DFL)
from bench import child
from bench.__main__ import stop_as_interrupted
from bench.child import launch_command, run_child
stop_as_interrupted()
child.STOP_SECONDS = float(os.environ.get("STOP_SECONDS", child.STOP_SECONDS))
from bench.run_config import TuneSettings
command = launch_command(TuneSettings(processes=2), "cuda") + sys.argv[1:]  # no torch import
try:
    sys.exit(run_child(command, {**os.environ, "ACCELERATE_USE_CPU": "true"}))
except KeyboardInterrupt:  # as bench.__main__ ends
    sys.exit(130)
"""


def gone(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def wait_for(condition, seconds: float) -> bool:
    end = time.monotonic() + seconds
    while not condition() and time.monotonic() < end:
        time.sleep(0.1)
    return condition()


@pytest.mark.parametrize(
    "signum, worker, stop_seconds",
    [
        (signal.SIGINT, WORKER, 60),  # Ctrl-C
        (signal.SIGHUP, WORKER, 60),  # the terminal gone
        (signal.SIGINT, STUCK_WORKER, 2),  # killed, workers too, once the wait is over
    ],
)
def test_an_interrupted_bench_stops_the_launch_and_its_workers(tmp_path, signum, worker,
                                                               stop_seconds):
    (tmp_path / "worker.py").write_text(worker)
    (tmp_path / "parent.py").write_text(PARENT)
    ready = tmp_path / "ready"
    ready.mkdir()
    bench = subprocess.Popen([sys.executable, str(tmp_path / "parent.py"),
                              str(tmp_path / "worker.py"), str(ready)], cwd=ROOT,
                             stderr=subprocess.PIPE, text=True,
                             env={**os.environ, "STOP_SECONDS": str(stop_seconds)})
    try:
        assert wait_for(lambda: len(list(ready.iterdir())) == 2, 120), "the workers never ran"
        workers = [int(path.read_text()) for path in ready.iterdir()]
        launcher = psutil.Process(bench.pid).children()[0].pid
        assert not any(gone(pid) for pid in (*workers, launcher))
        bench.send_signal(signum)  # bench alone, as kill would
        err = bench.communicate(timeout=90)[1]
        assert bench.returncode == 130
        assert "Traceback" not in err and "SignalException" not in err, err
        assert wait_for(lambda: all(gone(pid) for pid in (*workers, launcher)), 10)
    finally:
        bench.kill()
        for pid in psutil.Process().children(recursive=True):
            pid.kill()


def test_a_hangup_ignored_from_the_start_stays_ignored():
    """``nohup python -m bench run ... &``: the run goes on when the terminal goes; SIGTERM
    still stops it as Ctrl-C does."""
    from bench.__main__ import interrupt, stop_as_interrupted

    saved = {signum: signal.getsignal(signum) for signum in (signal.SIGTERM, signal.SIGHUP)}
    try:
        signal.signal(signal.SIGHUP, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        stop_as_interrupted()
        assert signal.getsignal(signal.SIGHUP) is signal.SIG_IGN
        assert signal.getsignal(signal.SIGTERM) is interrupt
    finally:
        for signum, handler in saved.items():
            signal.signal(signum, handler)


def launch_ending(monkeypatch, error: BaseException) -> None:
    def launch():
        raise error

    monkeypatch.setattr("accelerate.commands.launch.main", launch)


@pytest.mark.parametrize("exitcode", [2, 130])
def test_a_worker_that_said_why_ends_the_launch_quietly(monkeypatch, exitcode):
    failure = ProcessFailure(local_rank=1, pid=1, exitcode=exitcode, error_file="")
    launch_ending(monkeypatch, ChildFailedError("bench.stages.tune", {1: failure}))
    assert child.main() == exitcode


def test_a_crashed_or_killed_worker_keeps_the_launchers_report(monkeypatch):
    failure = ProcessFailure(local_rank=0, pid=1, exitcode=-9, error_file="")  # the OOM killer
    launch_ending(monkeypatch, ChildFailedError("bench.stages.tune", {0: failure}))
    with pytest.raises(ChildFailedError):
        child.main()


def test_an_interrupt_while_starting_up_ends_quietly(monkeypatch, tmp_path):
    launch_ending(monkeypatch, KeyboardInterrupt())
    assert child.main() == 130

    def importing():
        raise KeyboardInterrupt

    monkeypatch.setattr("bench.stages.context.quiet_libraries", importing)
    assert tune.main([str(tmp_path), "exsvd"]) == 130
