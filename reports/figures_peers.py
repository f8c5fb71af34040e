r"""The throughput of our kernels beside NumPy, JAX and PyTorch, with the ceiling.

Read from ``peers.parquet`` (``python -m bench peers --out DIR``: one row per
(work, K, implementation), with ``samples_per_s`` and, for every row, our
kernel's ceiling at that (work, K): ``ceiling_samples_per_s`` =
:math:`1 / \max_i (n_i / \rho_i)` -- n_i the kernel's irreducible count of
primitive i per sample, \rho_i the machine's peak rate of it
(``bench.peers.ceiling``) -- and ``sequential_samples_per_s`` =
:math:`1 / \sum_i n_i / \rho_i`).  Nothing is recomputed.

* ``throughput_vs_peers``  one panel per work (importance sampling on
  LinearGaussian, its reparam gradient, importance sampling on the Gaussian
  mixture): samples/s against K on log-log axes, ours in black, each peer
  beside it in its colour, the ceiling as a solid grey line (an upper bound)
  and the sequential estimate dotted; the legend gives each implementation's
  lead at the largest K.

``peers_specs(res)`` is the report's provider (``reports.report.FIGURE_SECTIONS``).
"""

from __future__ import annotations

import numpy as np
from matplotlib.figure import Figure

from .figures import OKABE_ITO

__all__ = ["throughput_vs_peers", "peers_specs", "OURS"]

OURS = "evidence-bench"
_TITLES = {
    "is_lg": "importance sampling",
    "grad_lg": "reparam ELBO gradient",
    "is_gm": "importance sampling",
}
_REQUIRED = ["work", "problem", "implementation", "K", "samples_per_s", "ceiling_samples_per_s"]


def throughput_vs_peers(peers_df):
    """The figure described in the module docstring, from ``peers.parquet``'s rows."""
    missing = [c for c in _REQUIRED if c not in peers_df.columns]
    if missing:
        raise ValueError(f"peers_df: missing columns {missing} (write it with `python -m bench peers --out DIR`)")
    if peers_df.empty:
        raise ValueError("peers_df: no rows to draw throughput_vs_peers")
    works = list(dict.fromkeys(peers_df["work"]))
    fig = Figure(figsize=(5.0 * len(works), 4.4), layout="constrained")
    axes = fig.subplots(1, len(works), squeeze=False)[0]
    impls = list(dict.fromkeys(peers_df["implementation"]))
    peers_only = [i for i in impls if i != OURS]
    colors = {name: OKABE_ITO[(j + 1) % len(OKABE_ITO)] for j, name in enumerate(peers_only)}
    for ax, work in zip(axes, works):
        wdf = peers_df[peers_df["work"] == work].sort_values("K")
        for name in impls:
            g = wdf[wdf["implementation"] == name]
            if g.empty:
                continue
            K, y = g["K"].to_numpy(float), g["samples_per_s"].to_numpy(float)
            label = name
            if name != OURS and "ratio" in g:
                ours = wdf[wdf["implementation"] == OURS].set_index("K")["samples_per_s"]
                lead = ours.get(g["K"].iloc[-1], np.nan) / y[-1]
                label = f"{name} (ours {lead:.1f}x at K={int(K[-1]):.0e})"
            style = dict(color="k", lw=2.2, marker="o", zorder=3) if name == OURS else \
                dict(color=colors[name], lw=1.4, marker="s", ms=4)
            ax.plot(K, y, label=label, gid=f"peers:{work}:{name}", **style)
        ceiling = wdf[wdf["implementation"] == OURS][["K", "ceiling_samples_per_s"]].dropna()
        if len(ceiling):
            ax.plot(ceiling["K"], ceiling["ceiling_samples_per_s"], color="0.45", lw=1.6, ls="-",
                    label="ceiling (upper bound)", gid=f"peers:{work}:ceiling")
        if "sequential_samples_per_s" in wdf:
            seq = wdf[wdf["implementation"] == OURS][["K", "sequential_samples_per_s"]].dropna()
            if len(seq):
                ax.plot(seq["K"], seq["sequential_samples_per_s"], color="0.45", lw=1.0, ls=":",
                        label="primitives in sequence", gid=f"peers:{work}:sequential")
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("K (samples per estimate)")
        ax.set_ylabel("samples per second")
        ax.set_title(f"{_TITLES.get(work, work)}\n{wdf['problem'].iloc[0]}", fontsize=10)
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=7, loc="lower right")
    load = ""
    if "load_before" in peers_df and np.isfinite(peers_df["load_before"].iloc[0]):
        load = f" (load average {peers_df['load_before'].iloc[0]:.1f} before, {peers_df['load_after'].iloc[0]:.1f} after)"
    fig.suptitle("Throughput: our kernels beside NumPy, JAX and PyTorch, under the ceiling" + load, fontsize=11)
    return fig


def peers_specs(res):
    """The report's provider: [] unless the results directory holds peers.parquet."""
    df = res.get("peers")
    if df is None or len(df) == 0:
        return []
    return [("throughput_vs_peers", "Throughput beside the peers",
             "Samples per second of our kernels (black) and of NumPy, JAX and PyTorch doing the same work "
             "(python -m bench peers, one run; each implementation's estimates agree with the exact answer), "
             "with the ceiling: 1 / max over the primitives (normal draws, multiply-adds, exps, categorical "
             "draws) of their count per sample over the machine's peak rate — an upper bound — and, dotted, the "
             "time of the primitives one after another.",
             lambda: throughput_vs_peers(df))]
