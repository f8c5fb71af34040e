"""Ctrl-C during a sweep, on every executor: a short message saying what is
saved and how to resume, no traceback (not from the workers, not from inside a
numba call), and a re-run that says it resumes.  A terminal's Ctrl-C is a
SIGINT to the whole foreground process group; the end-to-end tests send
exactly that."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import threading
import time

import pytest

from bench.executors import LocalExecutor, was_interrupted

CELLS = 48


def _numba_style_interrupt():
    """What a Ctrl-C inside a numba call looks like: a SystemError chained to it."""
    try:
        raise KeyboardInterrupt
    except KeyboardInterrupt as ki:
        raise SystemError("CPUDispatcher(...) returned a result with an exception set") from ki


def test_was_interrupted_follows_the_chain():
    with pytest.raises(SystemError) as info:
        _numba_style_interrupt()
    assert was_interrupted(info.value)
    assert was_interrupted(KeyboardInterrupt())
    assert not was_interrupted(SystemError("a real one"))
    try:
        try:
            raise KeyboardInterrupt
        except KeyboardInterrupt:
            raise SystemError("implicitly chained")  # noqa: B904 - the context is the point
    except SystemError as exc:
        assert was_interrupted(exc)


def _task(i):
    if i == 1:
        _numba_style_interrupt()
    return i


def test_sequential_executor_turns_an_interrupted_numba_call_into_keyboardinterrupt():
    it = LocalExecutor(1).map_unordered(_task, [0, 1, 2])
    assert next(it) == (0, 0)
    with pytest.raises(KeyboardInterrupt):
        next(it)
    it = LocalExecutor(1).map_unordered(lambda i: (_ for _ in ()).throw(SystemError("not an interrupt")), [0])
    with pytest.raises(SystemError, match="not an interrupt"):
        next(it)


def test_pool_workers_are_born_ignoring_ctrl_c():
    before = signal.getsignal(signal.SIGINT)
    got = dict(LocalExecutor(2).map_unordered(signal.getsignal, [signal.SIGINT] * 2))
    assert got == {0: signal.SIG_IGN, 1: signal.SIG_IGN}
    assert signal.getsignal(signal.SIGINT) is before  # the parent's own handler is back


# --------------------------------------------------------------------------- end to end


@pytest.fixture()
def config(tmp_path):
    cfg = tmp_path / "interrupt.toml"
    cfg.write_text(textwrap.dedent(f'''
        name = "interrupt"
        [problems.lg]
        family = "LinearGaussian"
        D = 5
        d = 2
        [[sweep]]
        estimators = ["importance_sampling", "elbo"]
        q = ["posterior", "prior", "meanfield", "shift:1", "scale:0.8", "scale:2"]
        K = [5000, 10000, 20000, 40000]
        R = 1000
    '''))
    assert 2 * 6 * 4 == CELLS
    return cfg


def _start(cmd):
    """The command in a process group of its own, SIGINT at its default (a
    background shell would have it ignored)."""
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True, env={**os.environ, "PYTHONWARNINGS": "ignore"},
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))


def _ctrl_c_after_cells(cmd, out, n=1, timeout=240):
    """Start ``cmd``, Ctrl-C its process group once ``n`` cells are stored; (rc, stdout, stderr)."""
    proc = _start(cmd)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and proc.poll() is None:
        if (out / "cells").is_dir() and len(list((out / "cells").glob("*.parquet"))) >= n:
            break
        time.sleep(0.1)
    if proc.poll() is not None:
        stdout, stderr = proc.communicate()
        raise AssertionError(f"the sweep ended (status {proc.returncode}) before it could be interrupted:\n"
                             f"{stdout}\n{stderr}")
    os.killpg(proc.pid, signal.SIGINT)
    try:
        stdout, stderr = proc.communicate(timeout=120)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
        raise AssertionError("the interrupted sweep did not stop within 120 s") from None
    return proc.returncode, stdout, stderr


def _assert_short_message(rc, stdout, stderr, out):
    saved = len(list((out / "cells").glob("*.parquet")))
    assert rc == 130, stderr
    text = stdout + stderr
    assert "Traceback" not in text and "ERROR" not in text and "WARNING" not in text, text
    assert stderr.strip().splitlines()[-1] == (
        f"interrupted: {saved} of {CELLS} cells are saved in {out}; run the same command again to resume "
        "(saved cells are not recomputed)"
    ), stderr
    return saved


def _resumes(cmd, out, saved):
    """Re-run ``cmd``; it must say it resumes from ``saved`` cells (then it is stopped)."""
    proc = _start(cmd)
    lines = []
    reader = threading.Thread(target=lambda: lines.extend(proc.stderr), daemon=True)
    reader.start()
    want = f"resuming: {saved} of {CELLS} cells are already stored in {out}; computing the other {CELLS - saved}"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and not any(want in line for line in lines) and proc.poll() is None:
        time.sleep(0.1)
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGINT)
    proc.wait(timeout=120)
    reader.join(timeout=10)
    assert any(want in line for line in lines), "".join(lines)


def test_ctrl_c_with_worker_processes(config, tmp_path):
    out = tmp_path / "workers"
    cmd = [sys.executable, "-m", "bench", "run", str(config), "--out", str(out), "--workers", "2"]
    saved = _assert_short_message(*_ctrl_c_after_cells(cmd, out), out)
    assert saved >= 1
    _resumes([sys.executable, "-m", "bench", "run", str(config), "--out", str(out)], out, saved)


def test_ctrl_c_on_dask(config, tmp_path):
    pytest.importorskip("distributed", reason="the [distributed] extra is not installed")
    out = tmp_path / "dask"
    cmd = [sys.executable, "-m", "bench", "run", str(config), "--out", str(out), "--scheduler", "local:2"]
    saved = _assert_short_message(*_ctrl_c_after_cells(cmd, out), out)
    assert saved >= 1
