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
stray ``*.tmp`` (ignored and removed by the next run) -- never a truncated
Parquet file.  A cell file's presence means the cell is finished.  One run per
results directory at a time.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

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
]

CELLS = "cells"
TABLE = "benchmarks.parquet"
_TMP_SUFFIX = ".tmp"


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
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=_TMP_SUFFIX, dir=path.parent)
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


def clean_temporaries(out):
    """Remove stray temporaries a killed run left in ``out`` and ``out/cells``."""
    for d in (Path(out), Path(out) / CELLS):
        if d.is_dir():
            for f in d.iterdir():
                if f.name.startswith(".") and f.name.endswith(_TMP_SUFFIX):
                    f.unlink(missing_ok=True)
