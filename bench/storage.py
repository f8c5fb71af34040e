"""Results on disk: one Parquet file per finished cell, written atomically.

Layout of a results directory ``out``::

    out/cells/<cell_id>.parquet    one row per finished cell (the resume state)
    out/benchmarks.parquet         the tidy table of the sweep, in sweep order
    out/jensen.parquet             derived: Jensen gap vs KL per (problem, q)
    out/jensen_fit.parquet         derived: weighted fit of gap on KL
    out/sweep.json                 the sweep that produced the table
    out/skipped.json               cells the estimators refused, with the reason

Every file is written to a temporary name in the same directory, flushed and
fsync'ed, then moved into place with ``os.replace`` (atomic on POSIX), so a
process killed at any moment leaves either the old file, the new file or a
stray ``*.tmp`` (ignored, and removed by a later run) -- never a truncated
Parquet file.  A cell file's presence means the cell is finished.

Several runs may share one results directory at the same time (two sweeps,
or the same sweep started twice):

* a temporary's name carries the host and process id of its writer
  (``.<file>~<host>~<pid>~<random>.tmp``), and ``clean_temporaries`` removes
  only those whose writer is gone (same host, process no longer alive) or
  that are older than ``STALE_SECONDS`` -- never a file another live run is
  about to move into place;
* a cell computed by both runs is written twice, atomically each time, with
  the same numbers (the seed is the cell's own); whichever lands last stays;
* the derived files (``benchmarks.parquet``, ``jensen*.parquet``,
  ``sweep.json``, ``skipped.json``) are written as one set under an exclusive
  lock on ``out/.lock`` (``results_lock``), so they always come from the same
  run -- the one that finished last.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import tempfile
import time
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

try:
    import fcntl as _fcntl
except ImportError:  # pragma: no cover - Windows: msvcrt's byte-range lock instead
    _fcntl = None
    import msvcrt as _msvcrt

__all__ = [
    "CELLS",
    "TABLE",
    "cell_path",
    "write_cell",
    "read_cells",
    "finished_ids",
    "write_table",
    "read_table",
    "write_json",
    "clean_temporaries",
    "results_lock",
    "STALE_SECONDS",
]

CELLS = "cells"
TABLE = "benchmarks.parquet"
_TMP_SUFFIX = ".tmp"
_LOCK = ".lock"
STALE_SECONDS = 24 * 3600  # a temporary this old is removed whoever wrote it


def _host():
    return socket.gethostname().replace("~", "-")


def _file_mode():
    """0o666 minus the process umask: what open() would give a new file
    (mkstemp creates 0o600)."""
    mask = os.umask(0)
    os.umask(mask)
    return 0o666 & ~mask


def _atomic_write(path: Path, write_fn):
    """Call ``write_fn(tmp_path)`` then ``os.replace(tmp_path, path)``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    prefix = f".{path.name}~{_host()}~{os.getpid()}~"
    fd, tmp = tempfile.mkstemp(prefix=prefix, suffix=_TMP_SUFFIX, dir=path.parent)
    os.close(fd)
    os.chmod(tmp, _file_mode())
    try:
        write_fn(tmp)
        with open(tmp, "rb") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise


def cell_path(out, cell_id) -> Path:
    return Path(out) / CELLS / f"{cell_id}.parquet"


def write_cell(out, cell_id, row: dict, schema: pa.Schema):
    """Write one finished cell's row atomically (types fixed by ``schema``)."""
    table = pa.Table.from_pylist([row], schema=schema)
    _atomic_write(cell_path(out, cell_id), lambda tmp: pq.write_table(table, tmp))


def finished_ids(out) -> set:
    """Ids of the cells with a finished file in ``out/cells``."""
    d = Path(out) / CELLS
    if not d.is_dir():
        return set()
    return {f.name[: -len(".parquet")] for f in d.iterdir() if f.name.endswith(".parquet") and not f.name.startswith(".")}


def read_cells(out, cell_ids) -> pd.DataFrame:
    """The rows of ``cell_ids`` (in that order) as one DataFrame."""
    tables = [pq.read_table(cell_path(out, cid)) for cid in cell_ids]
    if not tables:
        raise ValueError(f"cell_ids: no cells to read in {out}")
    return pa.concat_tables(tables).to_pandas()


def write_table(path, df: pd.DataFrame):
    """Write a DataFrame to Parquet atomically."""
    table = pa.Table.from_pandas(df, preserve_index=False)
    _atomic_write(Path(path), lambda tmp: pq.write_table(table, tmp))


def read_table(path) -> pd.DataFrame:
    return pq.read_table(path).to_pandas()


def write_json(path, obj):
    def _write(tmp):
        with open(tmp, "w") as fh:
            json.dump(obj, fh, indent=2, sort_keys=True)
            fh.write("\n")

    _atomic_write(Path(path), _write)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, owned by someone else
        return True
    return True


def _is_stale(f: Path, now: float) -> bool:
    """A temporary is stale when its writer is a dead process on this host,
    when it is older than STALE_SECONDS, or when its name has no writer in it
    (written by an older version of this module)."""
    parts = f.name[1 : -len(_TMP_SUFFIX)].rsplit("~", 3)
    try:
        age = now - f.stat().st_mtime
    except FileNotFoundError:  # its writer just moved it into place
        return False
    if age > STALE_SECONDS:
        return True
    if len(parts) != 4 or not parts[2].isdigit():
        return True
    _, host, pid, _ = parts
    return host == _host() and not _pid_alive(int(pid))


def clean_temporaries(out):
    """Remove stray temporaries that killed runs left in ``out`` and
    ``out/cells`` -- only stale ones (see ``_is_stale``): a temporary of a
    run that is still writing into the same directory is left alone."""
    now = time.time()
    for d in (Path(out), Path(out) / CELLS):
        if d.is_dir():
            for f in d.iterdir():
                if f.name.startswith(".") and f.name.endswith(_TMP_SUFFIX) and _is_stale(f, now):
                    f.unlink(missing_ok=True)


@contextlib.contextmanager
def results_lock(out):
    """Hold an exclusive lock on ``out/.lock`` (created if missing; never
    removed) for the duration of the ``with`` block.  Blocks until the lock is
    free; released when the block ends or the process dies."""
    path = Path(out) / _LOCK
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, _file_mode())
    try:
        if _fcntl is not None:
            _fcntl.flock(fd, _fcntl.LOCK_EX)
        else:  # pragma: no cover - Windows
            while True:
                try:
                    _msvcrt.locking(fd, _msvcrt.LK_LOCK, 1)
                    break
                except OSError:  # LK_LOCK gives up after ~10 s; keep waiting
                    continue
        yield
    finally:
        os.close(fd)  # closing the descriptor releases the lock
