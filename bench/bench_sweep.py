"""The suite's sweep: run it (timed as one round) and check the tidy table."""

import numpy as np
import pandas as pd
import pytest

from bench import storage
from bench.runner import SCHEMA, plan


@pytest.mark.suite_first
def test_sweep(benchmark, suite):
    """Runs the whole sweep of the session's config (one timed round) and
    checks the table: one row per planned cell, every column of the schema,
    finite estimates, and the stored Parquet equal to the returned table."""
    df = benchmark.pedantic(suite.run, rounds=1, iterations=1, warmup_rounds=0)
    cells, skipped = plan(suite.sweeps)
    benchmark.extra_info.update(cells=len(cells), skipped=len(skipped), mode=suite.mode, out=str(suite.out))
    assert len(df) == len(cells)
    assert list(df["cell_id"]) == [c.cell_id for c in cells]
    assert set(SCHEMA.names) <= set(df.columns)
    assert (df["n_nonfinite"] == 0).all(), df.loc[df["n_nonfinite"] > 0, ["problem", "q", "estimator", "K"]]
    scalar = df["estimator"] != "gradient"
    for col in ("truth", "mean", "mean_se", "variance", "variance_se", "mse", "seconds"):
        assert np.isfinite(df.loc[scalar, col]).all(), col
    weighted = df["estimator"].isin(["importance_sampling", "elbo"])  # the ESS of their own draws
    assert np.isfinite(df.loc[weighted, "ess"]).all(), "ess"
    for col in ("truth", "mean", "variance", "variance_se", "mse", "snr_median", "bias_t_max", "seconds"):
        assert np.isfinite(df.loc[~scalar, col]).all(), col
    stored = storage.read_table(suite.out / storage.TABLE)
    pd.testing.assert_frame_equal(stored, df.reset_index(drop=True))
    # Every skip is a refusal the estimators document (discrete q / K = 1 for LOO).
    for s in skipped:
        assert "reparameterizable" in s["reason"] or "K >= 2" in s["reason"], s
