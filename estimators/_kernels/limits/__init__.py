"""Compiled limit kernels: each runs one primitive of the estimator kernels
alone, in their layout, so ``estimators.machine`` can measure the machine's
peak rate of it (``python -m bench peers`` builds its ceilings from them).

A kernel subpackage: its numba cache is its own and is cleared when these
files or the kernels up there change (see ``estimators._kernels``), so the
rates always follow the kernels' current sources.
"""
