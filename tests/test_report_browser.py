"""The report in a real browser: Debian's chromium, headless, driven by
selenium through chromedriver.

A tiny sweep and one cheap claim are written into a temporary directory and
its report.html is loaded from disk (file://, nothing fetched).  The test
checks that every table-of-contents link resolves to an element, every
<img> decodes (naturalWidth > 0), a click on a header sorts its table (the
order changes and is sorted; a second click reverses it), the filter box
hides the rows that do not match, and the console logs no SEVERE entry.  It
saves screenshots of the top, a claim and a figure section into the
temporary directory and, when EVIDENCE_BENCH_SCREENSHOTS=DIR is set, into
DIR as well.

Skipped, with the reason, where chromium, chromedriver or selenium is
missing (``.ci/run`` installs them: apt-get install chromium chromium-driver;
selenium comes with the dev extra).
"""

import os
import shutil
from pathlib import Path

import pytest

webdriver = pytest.importorskip("selenium.webdriver", reason="selenium is not installed (pip install -e '.[dev]')")
from selenium.webdriver.common.by import By  # noqa: E402

_BROWSERS = ("chromium", "chromium-browser", "google-chrome", "chrome")


def _browser():
    for name in _BROWSERS:
        path = shutil.which(name)
        if path:
            return path
    return None


BROWSER, DRIVER = _browser(), shutil.which("chromedriver")
pytestmark = pytest.mark.skipif(
    BROWSER is None or DRIVER is None,
    reason=f"no {'chromium' if BROWSER is None else 'chromedriver'} on PATH "
           "(apt-get install chromium chromium-driver)")


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    import bench
    from bench import claims as CL
    from reports.report import build_report

    out = tmp_path_factory.mktemp("browser_report")
    problems = {"lg": {"family": "LinearGaussian", "D": 3, "d": 2, "seed": 1, "x_seed": 2}}
    bench.run(bench.Sweep(problems, q=["posterior", "prior", "shift:1", "scale:2"],
                          estimators=["importance_sampling", "elbo"], K=[1, 10, 100], R=30), out=out, progress=False)
    CL.compute_claims(out, mode="smoke", ids=["vae_learns"])
    paths = build_report(out)
    return out, paths


@pytest.fixture(scope="module")
def browser(report):
    from selenium.webdriver.chrome.service import Service

    opts = webdriver.ChromeOptions()
    opts.binary_location = BROWSER
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                "--window-size=1400,1000", "--allow-file-access-from-files"):
        opts.add_argument(arg)
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    try:
        drv = webdriver.Chrome(service=Service(DRIVER), options=opts)
    except Exception as exc:  # a browser that cannot start here is an environment problem, said so
        pytest.skip(f"chromium did not start under chromedriver: {type(exc).__name__}: {str(exc)[:300]}")
    drv.set_page_load_timeout(30)
    drv.get(Path(report[1]["html"]).resolve().as_uri())
    yield drv
    drv.quit()


def _shots_dirs(report):
    dirs = [report[0] / "screenshots"]
    extra = os.environ.get("EVIDENCE_BENCH_SCREENSHOTS")
    if extra:
        dirs.append(Path(extra))
    for d in dirs:
        d.mkdir(parents=True, exist_ok=True)
    return dirs


def _shoot(drv, report, name):
    for d in _shots_dirs(report):
        assert drv.save_screenshot(str(d / name)), f"screenshot {name} not written"


def test_toc_links_resolve(browser):
    hrefs = browser.execute_script(
        "return Array.from(document.querySelectorAll('nav#toc a')).map(a => a.getAttribute('href'))")
    assert len(hrefs) >= 10, hrefs
    assert len(set(hrefs)) == len(hrefs), "duplicate TOC entries"
    missing = [h for h in hrefs if not h.startswith("#")
               or browser.execute_script("return document.getElementById(arguments[0]) === null", h[1:])]
    assert not missing, f"TOC links with no element: {missing}"
    for must in ("#summary", "#claims", "#claim-vae_learns", "#figures", "#fig-variance_vs_K_log_p_hat",
                 "#tables", "#table-importance_sampling"):
        assert must in hrefs
    # every id in the page is unique, so every anchor names one element
    dup = browser.execute_script(
        "var s={},d=[];document.querySelectorAll('[id]').forEach(e=>{if(s[e.id])d.push(e.id);s[e.id]=1});return d")
    assert not dup, dup


def test_images_decode(browser):
    imgs = browser.execute_script(
        "return Array.from(document.images).map(i => [i.alt, i.complete, i.naturalWidth, i.naturalHeight])")
    assert len(imgs) >= 6
    bad = [i for i in imgs if not (i[1] and i[2] > 0 and i[3] > 0)]
    assert not bad, f"images that did not decode: {bad}"
    srcs = browser.execute_script("return Array.from(document.images).map(i => i.src.slice(0, 22))")
    assert all(s == "data:image/png;base64," for s in srcs)  # self-contained


def _column(drv, table, i):
    return drv.execute_script(
        "return Array.from(arguments[0].tBodies[0].rows).map(r => [r.cells[arguments[1]].dataset.v, "
        "r.cells[arguments[1]].textContent])", table, i)


def _rows(drv, table):
    return drv.execute_script(
        "return Array.from(arguments[0].tBodies[0].rows).map(r => Array.from(r.cells).map(c => c.textContent)"
        ".join('|'))", table)


def test_click_sorts_a_table(browser):
    table = browser.find_element(By.CSS_SELECTOR, "#table-importance_sampling table")
    browser.execute_script("arguments[0].closest('details') && (arguments[0].closest('details').open = true)",
                           table)
    heads = table.find_elements(By.CSS_SELECTOR, "thead th")
    labels = [h.text for h in heads]
    i = next(j for j, h in enumerate(heads) if h.get_attribute("title") == "variance")
    assert "num" in heads[i].get_attribute("class")
    rows_before = sorted(_rows(browser, table))
    before = [float(v) for v, _ in _column(browser, table, i)]
    assert before != sorted(before), "the table came sorted by variance already: the click would show nothing"
    heads[i].click()
    after = [float(v) for v, _ in _column(browser, table, i)]
    assert after == sorted(before) and after != before
    assert heads[i].get_attribute("aria-sort") == "ascending"
    heads[i].click()
    assert [float(v) for v, _ in _column(browser, table, i)] == sorted(before, reverse=True)
    # a text column sorts lexically
    j = labels.index("proposal q")
    heads[j].click()
    qs = [t for _, t in _column(browser, table, j)]
    assert qs == sorted(qs) and len(set(qs)) >= 3
    # whole rows moved: the multiset of rows is unchanged by sorting
    assert sorted(_rows(browser, table)) == rows_before


def test_filter_hides_rows(browser):
    table = browser.find_element(By.CSS_SELECTOR, "#table-importance_sampling table")
    box = browser.find_element(By.CSS_SELECTOR, "#table-importance_sampling input.filter")
    browser.execute_script("arguments[0].closest('details') && (arguments[0].closest('details').open = true)",
                           table)
    n = len(table.find_elements(By.CSS_SELECTOR, "tbody tr"))
    box.send_keys("shift:1")
    visible = browser.execute_script(
        "return Array.from(arguments[0].tBodies[0].rows).filter(r => !r.hidden).map(r => r.textContent)", table)
    assert 0 < len(visible) < n
    assert all("shift:1" in t for t in visible)
    box.clear()
    box.send_keys("no row has this text")
    assert browser.execute_script(
        "return Array.from(arguments[0].tBodies[0].rows).filter(r => !r.hidden).length", table) == 0
    browser.execute_script("arguments[0].value=''; arguments[0].dispatchEvent(new Event('input'))", box)
    assert browser.execute_script(
        "return Array.from(arguments[0].tBodies[0].rows).filter(r => !r.hidden).length", table) == n


def test_headers_carry_labels_and_keys(browser):
    th = browser.execute_script(
        "return Array.from(document.querySelectorAll('#table-importance_sampling th'))"
        ".map(h => [h.textContent, h.title, getComputedStyle(h).textAlign])")
    keys = {t[1]: t for t in th}
    assert keys["bias, bias_se"][0] == "bias ± SE [nats]"
    cells = browser.execute_script(
        "var r=document.querySelector('#table-importance_sampling tbody tr');"
        "return Array.from(r.cells).map(c => [c.className, getComputedStyle(c).textAlign])")
    for cls, align in cells:
        assert align == ("right" if cls == "num" else "left"), (cls, align)
    assert {"num", "text"} <= {c for c, _ in cells}


def test_screenshots_and_console(browser, report):
    browser.execute_script("window.scrollTo(0, 0)")
    _shoot(browser, report, "report_top.png")
    browser.execute_script("document.getElementById('claim-vae_learns').scrollIntoView()")
    _shoot(browser, report, "report_claim.png")
    browser.execute_script("document.getElementById('fig-variance_vs_K_log_p_hat').scrollIntoView()")
    _shoot(browser, report, "report_figure.png")
    browser.execute_script("document.getElementById('tables').scrollIntoView()")
    _shoot(browser, report, "report_tables.png")
    for d in _shots_dirs(report):
        for name in ("report_top.png", "report_claim.png", "report_figure.png"):
            assert (d / name).stat().st_size > 10_000
    severe = [e for e in browser.get_log("browser") if e.get("level") == "SEVERE"]
    assert not severe, f"console errors: {severe}"
