"""Private numba kernels.  Called only by the public functions in
``estimators`` after they have validated their input: every array here is
float64, C-contiguous and finite unless a docstring says otherwise.

Kernels are compiled with ``cache=True``.  numba keys a cached function on its
own file only, so editing a helper in another file (the RNG, say) would leave
callers running stale machine code.  On import we therefore hash every kernel
source file (and the numba version) and clear this package's cache when the
hash changes.
"""

import hashlib
import os
import tempfile
from pathlib import Path


def _clear_stale_cache():
    here = Path(__file__).resolve().parent
    cache = here / "__pycache__"
    try:
        import numba

        digest = hashlib.sha256(numba.__version__.encode())
        for path in sorted(here.glob("*.py")):
            digest.update(path.name.encode())
            digest.update(path.read_bytes())
        stamp = cache / "kernels.sha256"
        want = digest.hexdigest()
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
