"""Private numba kernels.  Called only by the public functions in
``estimators`` after they have validated their input: every array here is
float64, C-contiguous and finite unless a docstring says otherwise."""
