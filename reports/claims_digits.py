r"""The figures of the claims on the real digits (``bench/claims/vae_digits.py``,
``analytic_kl.py``, ``beta_vae.py``), drawn from their tables only.

* ``digits_vae_figure``     the exact gap to the PPCA maximum over the steps per run; PPCA's
  directions beside the VAE's as 8 x 8 images; the d = 2 latent means of the
  held-out images coloured by label; held-out images and their reconstructions;
* ``analytic_kl_figure``    the exact variance ratio analytic-KL / all-MC against q's width,
  with the measured ratios;
* ``beta_vae_figure``       the beta-optimum's decoder log-likelihood and active dimensions
  against beta, and the trained fit's exact objective below its optimum;
* ``principal_axes_figure`` the spectrum with the threshold beta sigma^2, the column norms
  beside the optimum's, and each column beside its eigenvector as 8 x 8 images.

``FIGURES`` maps a claim's ``figure`` kind to ``f(tables, numbers) -> Figure``;
``reports.claims.claim_figure`` looks kinds up there.
"""

from __future__ import annotations

import numpy as np
from matplotlib.figure import Figure

__all__ = ["FIGURES", "digits_vae_figure", "analytic_kl_figure", "beta_vae_figure", "principal_axes_figure"]

_PIX = [f"p{i:02d}" for i in range(64)]


def _require(df, columns, what):
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise ValueError(f"{what}: the table lacks the columns {missing}")


def _image(ax, row, title=None, signed=False):
    img = np.asarray(row[_PIX], dtype=float).reshape(8, 8)
    if signed:
        v = float(np.max(np.abs(img))) or 1.0
        ax.imshow(img, cmap="RdBu_r", vmin=-v, vmax=v)
    else:
        ax.imshow(img, cmap="gray_r", vmin=0.0, vmax=1.0)
    ax.set_xticks([])
    ax.set_yticks([])
    if title:
        ax.set_title(title, fontsize=7)


def digits_vae_figure(tables, numbers=None):
    """Four panels: curves, directions, latent means, reconstructions (see the module docstring)."""
    curves, dirs, latent, rec = (tables[k] for k in ("curves", "directions", "latent", "reconstructions"))
    _require(curves, ["run", "step", "ll_below_max"], "digits_vae_figure")
    _require(latent, ["z1", "z2", "label"], "digits_vae_figure")
    numbers = numbers or {}
    fig = Figure(figsize=(13, 9.5), layout="constrained")
    top, bottom = fig.subfigures(2, 1, height_ratios=[1.0, 1.0])
    left, right = top.subfigures(1, 2, width_ratios=[1.1, 1.0])
    ax = left.subplots()
    for run, g in curves.groupby("run", sort=False):
        g = g.sort_values("step")
        ax.semilogy(g["step"], np.maximum(g["ll_below_max"], 1e-4), marker="o", ms=3, label=run,
                    gid=f"gap:{run}")
    if "eps" in numbers:
        ax.axhline(numbers["eps"], color="k", ls="--", lw=1, label=f"rule: {numbers['eps']:g} nats / image")
    ax.set_xlabel("step")
    ax.set_ylabel("PPCA max − exact avg log p(x)  (nats / image)")
    ax.set_title(f"Training images, d = {numbers.get('d_fit', '?')}: exact gap to the PPCA maximum")
    ax.legend(fontsize=7)
    ax = right.subplots()
    for lab in sorted(latent["label"].unique()):
        g = latent[latent["label"] == lab]
        ax.scatter(g["z1"], g["z2"], s=7, color=f"C{int(lab) % 10}", label=str(int(lab)), gid=f"latent:{int(lab)}")
        ax.annotate(str(int(lab)), (g["z1"].median(), g["z2"].median()), fontsize=12, weight="bold",
                    color=f"C{int(lab) % 10}")
    ax.set_xlabel("E[z₁ | x]")
    ax.set_ylabel("E[z₂ | x]")
    ax.set_title("d = 2: exact posterior means of the held-out images, by label")
    ax.legend(fontsize=7, ncol=2, markerscale=2, title="label")
    dl, rr = bottom.subfigures(1, 2, width_ratios=[0.8, 1.2])
    panels = list(dict.fromkeys(dirs["panel"]))
    ncol = int(dirs.groupby("panel").size().max())
    axes = np.atleast_2d(dl.subplots(len(panels), ncol))
    for i, panel in enumerate(panels):
        g = dirs[dirs["panel"] == panel].sort_values("index")
        for j in range(ncol):
            a = axes[i, j]
            if j < len(g):
                _image(a, g.iloc[j], f"{panel} {j + 1}", signed=True)
            else:
                a.axis("off")
    dl.suptitle("Directions: PPCA's columns of W beside the VAE's (by norm)", fontsize=9)
    panels = list(dict.fromkeys(rec["panel"]))
    n = int(rec["sample"].max()) + 1
    axes = np.atleast_2d(rr.subplots(len(panels), n))
    for i, panel in enumerate(panels):
        g = rec[rec["panel"] == panel].sort_values("sample")
        for j in range(n):
            _image(axes[i, j], g.iloc[j], panel if j == 0 else None)
    rr.suptitle("Held-out images and their reconstructions W E[z|x] + b", fontsize=9)
    return fig


def analytic_kl_figure(tables, numbers=None):
    """Exact variance ratio analytic / all-MC per image against the width c of q (log-log), measured ratios as
    markers, and the two variances themselves."""
    t = tables["variance"]
    _require(t, ["image", "c", "var_mc", "var_analytic", "var_mc_hat", "var_analytic_hat"], "analytic_kl_figure")
    fig = Figure(figsize=(12, 4.6), layout="constrained")
    a, b = fig.subplots(1, 2)
    for k, (img, g) in enumerate(t.groupby("image")):
        g = g.sort_values("c")
        a.loglog(g["c"], g["var_analytic"] / g["var_mc"], color=f"C{k % 10}", lw=1, gid=f"ratio:{img}")
        a.loglog(g["c"], g["var_analytic_hat"] / g["var_mc_hat"], "o", ms=3, color=f"C{k % 10}")
        b.loglog(g["c"], g["var_mc"], color=f"C{k % 10}", lw=1)
        b.loglog(g["c"], g["var_analytic"], color=f"C{k % 10}", lw=1, ls="--")
    a.axhline(1.0, color="k", lw=1)
    a.set_xlabel("width c of q = N(μ, c² diag Σ)  (c = 1: the posterior)")
    a.set_ylabel("Var[analytic-KL ELBO] / Var[all-MC ELBO]")
    a.set_title("Exact ratio (lines) and measured (dots), one colour per held-out image")
    b.set_xlabel("width c")
    b.set_ylabel("variance per draw")
    b.set_title("Exact variances: all-MC (solid), analytic KL (dashed)")
    return fig


def beta_vae_figure(tables, numbers=None):
    opt, curves = tables["optima"], tables["curves"]
    _require(opt, ["beta", "train_ll_minus_ppca", "active", "heldout_ll"], "beta_vae_figure")
    _require(curves, ["step", "objective_below_optimum"], "beta_vae_figure")
    numbers = numbers or {}
    fig = Figure(figsize=(13, 4.4), layout="constrained")
    a, b, c = fig.subplots(1, 3)
    o = opt.sort_values("beta")
    a.plot(o["beta"], o["train_ll_minus_ppca"], "o-", label="training images", gid="ll:train")
    if "ppca_heldout_ll" in numbers:
        a.plot(o["beta"], o["heldout_ll"] - numbers["ppca_heldout_ll"], "s--", label="held-out images",
               gid="ll:heldout")
    a.axvline(1.0, color="0.6", lw=1)
    for ax in (a, b):
        ax.set_xscale("log")
        ax.set_xticks(list(o["beta"]), [f"{v:g}" for v in o["beta"]])
        ax.minorticks_off()
    a.set_xlabel("β")
    a.set_ylabel("decoder's exact avg log p(x) − PPCA's (nats / image)")
    a.set_title("The β-optimum's decoder against the PPCA maximum")
    a.legend(fontsize=8)
    b.step(o["beta"], o["active"], where="mid", marker="o", gid="active")
    b.set_xlabel("β")
    b.set_ylabel("active latent dimensions (eigenvalue > β σ²)")
    b.set_title(f"d = {numbers.get('d', '?')}: dimensions kept at the optimum")
    g = curves.sort_values("step")
    c.semilogy(g["step"], np.maximum(g["objective_below_optimum"], 1e-4), "o-", ms=3, gid="fit")
    if "fit_beta" in numbers:
        c.set_title(f"Trained β-VAE (β = {numbers['fit_beta']:g}, d = {numbers.get('fit_d', '?')}):\n"
                    "exact objective below its optimum", fontsize=9)
    c.set_xlabel("step")
    c.set_ylabel("optimum − exact avg objective (nats / image)")
    return fig


def principal_axes_figure(tables, numbers=None):
    cols, spec, imgs = tables["columns"], tables["spectrum"], tables["images"]
    _require(cols, ["column", "norm", "optimal_norm", "angle_deg", "kl", "active"], "principal_axes_figure")
    numbers = numbers or {}
    fig = Figure(figsize=(13, 7.5), layout="constrained")
    top, bottom = fig.subfigures(2, 1)
    a, b = top.subplots(1, 2)
    k = min(len(spec), 3 * len(cols))
    a.semilogy(spec["index"][:k] + 1, spec["eigenvalue"][:k], "o-", ms=3, gid="spectrum")
    a.axhline(float(spec["threshold"].iloc[0]), color="tab:red", ls="--",
              label=f"β σ² = {float(spec['threshold'].iloc[0]):.3g}")
    a.set_xlabel("principal component")
    a.set_ylabel("eigenvalue of the data covariance")
    a.set_title("Components above β σ² are kept, the rest collapse")
    a.legend(fontsize=8)
    x = cols["column"].to_numpy()
    b.bar(x - 0.2, cols["norm"], width=0.4, label="learned ‖w_j‖", gid="norms")
    b.bar(x + 0.2, cols["optimal_norm"], width=0.4, label="optimum √(λ − βσ²)")
    for j, r in cols.iterrows():
        txt = f"{r['angle_deg']:.1f}°\nKL {r['kl']:.2g}" if np.isfinite(r["angle_deg"]) else f"KL {r['kl']:.2g}"
        b.annotate(txt, (r["column"], max(r["norm"], r["optimal_norm"])), ha="center", va="bottom", fontsize=7)
    b.set_xlabel("latent dimension j")
    b.set_ylabel("column norm")
    b.set_title(f"β = {numbers.get('beta', '?')}: norms, angle to the matched eigenvector, KL(q_j ‖ N(0,1))")
    b.legend(fontsize=8)
    panels = list(dict.fromkeys(imgs["panel"]))
    n = int(imgs["index"].max()) + 1
    axes = np.atleast_2d(bottom.subplots(len(panels), n))
    for i, panel in enumerate(panels):
        g = imgs[imgs["panel"] == panel].sort_values("index")
        for j in range(n):
            _image(axes[i, j], g.iloc[j], f"{panel} {j + 1}", signed=True)
    bottom.suptitle("Each learned column beside the eigenvector it matches (sign aligned)", fontsize=9)
    return fig


FIGURES = {
    "digits_vae": digits_vae_figure,
    "analytic_kl": analytic_kl_figure,
    "beta_vae": beta_vae_figure,
    "principal_axes": principal_axes_figure,
}
