"""The report: figures and report.html / report.md in the suite's results
directory (results/ under --benchmark-only).  Runs last."""

import base64
import re

import pytest

from reports.report import build_report


@pytest.mark.suite_last
def test_report(benchmark, suite, mark_report_built):
    """Builds every figure and both documents (one timed round) and checks
    them: non-empty PNGs, the HTML self-contained with every figure embedded
    and the tables inline, the Markdown linking the figures."""
    suite.table()
    paths = benchmark.pedantic(build_report, args=(suite.out,), rounds=1, iterations=1, warmup_rounds=0)
    mark_report_built()
    figs = paths["figures"]
    names = {f.name for f in figs}
    for required in ("variance_vs_K_log_p_hat.png", "variance_vs_K_elbo.png", "bias_vs_K_log_p_hat.png",
                     "jensen_gap_vs_KL.png", "throughput_vs_K.png"):
        assert required in names
    assert any(n.startswith("gradient_variance_vs_K_") for n in names)
    assert any(n.startswith("gradient_snr_vs_K_") for n in names)
    for f in figs:
        data = f.read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 10_000, f
    html = paths["html"].read_text()
    embedded = re.findall(r"src='data:image/png;base64,([A-Za-z0-9+/=]+)'", html)
    assert len(embedded) == len(figs)
    assert all(base64.b64decode(e)[:4] == b"\x89PNG" for e in embedded)
    assert html.count("<table") >= 4 and "Jensen gap vs KL" in html
    md = paths["markdown"].read_text()
    assert all(f"](figures/{n})" in md for n in names)
    benchmark.extra_info.update(figures=len(figs), html_bytes=len(html))
