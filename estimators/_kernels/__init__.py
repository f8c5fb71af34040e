"""Private numba kernels.  Called only by the public functions in
``estimators`` after they have validated their input: every array here is
float64, C-contiguous and finite unless a docstring says otherwise.

Kernels are compiled with ``cache=True``.  numba keys a cached function on its
own file only, so editing a helper in another file (the RNG, say) would leave
callers running stale machine code.  On import we therefore hash every kernel
source file (and the numba version) and clear this package's cache when the
hash changes.  A kernel subpackage (a folder here with an ``__init__.py``)
has a cache of its own, cleared when its files or the files up here change,
so adding to one family does not recompile every other.
"""

import hashlib
import os
import tempfile
from pathlib import Path


def _clear_stale_cache():
    here = Path(__file__).resolve().parent
    try:
        import numba
    except ImportError:  # pragma: no cover - numba is a dependency
        return
    shared = hashlib.sha256(numba.__version__.encode())
    for path in sorted(here.glob("*.py")):
        shared.update(path.name.encode())
        shared.update(path.read_bytes())
    # This folder's cache depends on its own files; a kernel subpackage's cache
    # on those and on its own (it may call any helper up here).
    _refresh(here / "__pycache__", shared.hexdigest())
    for sub in sorted(d for d in here.iterdir() if d.is_dir() and (d / "__init__.py").exists()):
        digest = shared.copy()
        for path in sorted(sub.glob("*.py")):
            digest.update(path.name.encode())
            digest.update(path.read_bytes())
        _refresh(sub / "__pycache__", digest.hexdigest())


def _refresh(cache, want):
    """Clear numba's cache files in ``cache`` unless its stamp equals ``want``."""
    try:
        stamp = cache / "kernels.sha256"
        if stamp.exists() and stamp.read_text() == want:
            return
        cache.mkdir(exist_ok=True)
        for pattern in ("*.nbi", "*.nbc"):
            for stale in cache.glob(pattern):
                try:
                    stale.unlink()
                except FileNotFoundError:
                    pass
        fd, tmp = tempfile.mkstemp(dir=cache, prefix=".stamp-")
        with os.fdopen(fd, "w") as fh:
            fh.write(want)
        os.replace(tmp, stamp)
    except OSError:
        # A read-only install: numba then caches in its user-wide directory,
        # and an installed package's sources do not change under it.
        return


_clear_stale_cache()
