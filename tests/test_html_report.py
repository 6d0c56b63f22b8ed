"""The static HTML report: rendered from the committed notebooks and opened in headless Chromium.

The browser tests need Debian's chromium (/usr/bin/chromium) and the `playwright` package (driving that
browser, no `playwright install`). Without them they are skipped, unless IDAE_REQUIRE_BROWSER=1 (set by
.ci/run), where they fail.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import nbformat
import pytest
from browser import PAGE_PROBLEMS_JS, PIXEL, check_report, serve

from idae.errors import IdaeError
from idae.html import MATHJAX_URL, notebook_paths, render_report

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = ROOT / "notebooks"


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, str]]:
    """The committed notebooks rendered to HTML and served on localhost: (folder, base URL)."""
    html_dir = render_report(NOTEBOOKS, tmp_path_factory.mktemp("report") / "html", "idae report")
    server, url = serve(html_dir)
    try:
        yield html_dir, url
    finally:
        server.shutdown()


def test_render_writes_one_page_per_notebook_and_an_index(report):
    html_dir, _ = report
    stems = [p.stem for p in notebook_paths(NOTEBOOKS)]
    assert len(stems) == 5
    expected = [f"{s}.html" for s in stems] + ["index.html", "mathjax"]
    assert sorted(p.name for p in html_dir.iterdir()) == sorted(expected)
    assert not [p for p in html_dir.parent.iterdir() if p != html_dir], "temporary folders left beside the report"
    for stem in stems:
        page = (html_dir / f"{stem}.html").read_text()
        scripts = re.findall(r'<script[^>]*\bsrc="([^"]*)"', page)
        assert scripts == [MATHJAX_URL] and "cdnjs" not in page, f"{stem}.html loads {scripts}"
        assert (html_dir / MATHJAX_URL.split("?")[0]).is_file()


def test_every_page_shows_its_figures_and_no_error(browser, report):
    context, outside = browser
    check_report(context, report[1], NOTEBOOKS)
    assert outside == [], f"the report fetched from outside localhost: {outside}"


def test_formulas_render_offline(browser, report):
    """Every page whose notebook has TeX in its markdown shows it typeset by the local MathJax: rendered formulas,
    no MathJax error, nothing fetched from outside localhost."""
    context, outside = browser
    with_math = [p for p in notebook_paths(NOTEBOOKS) if "$" in "".join(
        c.source for c in nbformat.read(p, as_version=4).cells if c.cell_type == "markdown")]  # fmt: skip
    assert with_math, "no notebook has a formula to check"
    page = context.new_page()
    for path in with_math:
        page.goto(report[1] + f"{path.stem}.html")
        page.wait_for_function("() => window.MathJax && MathJax.Hub && MathJax.Hub.queue.pending === 0 "
                               "&& MathJax.Hub.queue.running === 0", timeout=60_000)  # fmt: skip
        typeset = page.evaluate("() => [document.querySelectorAll('.MathJax, .MathJax_CHTML').length, "
                                "document.querySelectorAll('.MathJax_Error, merror').length]")  # fmt: skip
        assert typeset[0] > 0 and typeset[1] == 0, (path.stem, typeset)
    page.close()
    assert outside == [], f"the report fetched from outside localhost: {outside}"


def test_browser_check_catches_a_missing_figure_and_an_error_output(browser, tmp_path):
    context, _ = browser
    (tmp_path / "page.html").write_text(
        f'<html><body><img src="data:image/png;base64,{PIXEL}"><img src="figures/missing.png">'
        '<div class="jp-OutputArea-output"><pre>Traceback (most recent call last)</pre></div></body></html>'
    )
    server, url = serve(tmp_path)
    try:
        page = context.new_page()
        page.goto(url + "page.html")
        problems = page.evaluate(PAGE_PROBLEMS_JS)
        page.close()
    finally:
        server.shutdown()
    assert problems["images"] == 2
    assert len(problems["broken"]) == 1 and problems["broken"][0].endswith("figures/missing.png")
    assert len(problems["errors"]) == 1


def test_a_notebook_with_an_error_output_is_refused_and_nothing_is_written(tmp_path):
    notebooks = tmp_path / "notebooks"
    notebooks.mkdir()
    good = nbformat.v4.new_notebook(cells=[nbformat.v4.new_markdown_cell("# 01 · Fine\n\nAll good.")])
    cells = [nbformat.v4.new_markdown_cell("# 02 · Broken"), nbformat.v4.new_code_cell("1/0")]
    bad = nbformat.v4.new_notebook(cells=cells)
    bad.cells[1].outputs = [nbformat.v4.new_output("error", ename="ZeroDivisionError", evalue="division by zero")]
    nbformat.write(good, notebooks / "01_fine.ipynb")
    nbformat.write(bad, notebooks / "02_broken.ipynb")

    with pytest.raises(IdaeError, match=r"02_broken\.ipynb: cell 1 .*ZeroDivisionError"):
        render_report(notebooks, tmp_path / "html", "t")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notebooks"]

    previous = tmp_path / "html"
    previous.mkdir()
    (previous / "index.html").write_text("the previous report")
    with pytest.raises(IdaeError, match="02_broken"):
        render_report(notebooks, previous, "t")
    assert (previous / "index.html").read_text() == "the previous report"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["html", "notebooks"]
