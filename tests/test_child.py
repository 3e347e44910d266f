"""An interrupted bench stops the post-tuning launch it started: the launcher and its workers,
which run in sessions of their own (killing the launcher alone left them training on), and
without the launcher's traceback."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil

ROOT = Path(__file__).parent.parent

WORKER = """import os, pathlib, signal, sys, time
signal.signal(signal.SIGINT, lambda *_: sys.exit(130))  # quietly, as bench.stages.tune does
pathlib.Path(sys.argv[1], os.environ["RANK"]).write_text(str(os.getpid()))
time.sleep(600)
"""

PARENT = """import os, sys
from bench.child import launch_command, run_child
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


def test_an_interrupted_bench_stops_the_launch_and_its_workers(tmp_path):
    (tmp_path / "worker.py").write_text(WORKER)
    (tmp_path / "parent.py").write_text(PARENT)
    ready = tmp_path / "ready"
    ready.mkdir()
    bench = subprocess.Popen([sys.executable, str(tmp_path / "parent.py"),
                              str(tmp_path / "worker.py"), str(ready)], cwd=ROOT,
                             stderr=subprocess.PIPE, text=True)
    try:
        assert wait_for(lambda: len(list(ready.iterdir())) == 2, 120), "the workers never ran"
        workers = [int(path.read_text()) for path in ready.iterdir()]
        launcher = psutil.Process(bench.pid).children()[0].pid
        assert not any(gone(pid) for pid in (*workers, launcher))
        bench.send_signal(signal.SIGINT)  # bench alone, as kill -INT would
        err = bench.communicate(timeout=90)[1]
        assert bench.returncode != 0
        assert "Traceback" not in err and "SignalException" not in err, err
        assert wait_for(lambda: all(gone(pid) for pid in (*workers, launcher)), 10)
    finally:
        bench.kill()
        for pid in psutil.Process().children(recursive=True):
            pid.kill()
