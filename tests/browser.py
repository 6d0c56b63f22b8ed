"""Headless-Chromium checks shared by the HTML report tests and the worked example.

They need Debian's chromium (/usr/bin/chromium) and the `playwright` package (driving that browser, no
`playwright install`). Without them the tests are skipped, unless IDAE_REQUIRE_BROWSER=1 (set by .ci/run),
where they fail.
"""

from __future__ import annotations

import functools
import os
import shutil
import threading
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import nbformat
import pytest

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
# Without these, Chromium on a machine with no outside network hangs on background connections.
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
# A 1x1 PNG, to stand in for a figure that loads.
PIXEL = (
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg=="
)
# Everything in a page the check reports: images that did not load, outputs that hold an error.
PAGE_PROBLEMS_JS = """async () => {
  const images = [...document.images];
  await Promise.all(images.map((img) => img.decode().catch(() => null)));
  const broken = images.filter((img) => !(img.complete && img.naturalWidth > 0)).map((img) => img.src.slice(0, 80));
  const outputs = [...document.querySelectorAll(".jp-OutputArea-output, .output_error, .output_subarea")];
  const errors = outputs.filter((el) => /Traceback|An Exception was encountered/.test(el.textContent))
    .map((el) => el.textContent.trim().slice(0, 200));
  if (/An Exception was encountered/.test(document.body.textContent)) errors.push("papermill error marker");
  return {images: images.length, broken, errors};
}"""


def require_browser() -> None:
    """Skip (or fail, when IDAE_REQUIRE_BROWSER=1) unless chromium and playwright are installed."""
    missing = []
    if not os.access(CHROMIUM, os.X_OK):
        missing.append("chromium (apt-get install chromium)")
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        missing.append("the playwright package (requirements.lock)")
    if missing:
        reason = f"browser test needs {' and '.join(missing)}"
        if os.environ.get("IDAE_REQUIRE_BROWSER") == "1":
            pytest.fail(f"{reason}; IDAE_REQUIRE_BROWSER=1 forbids skipping")
        pytest.skip(reason)


def serve(folder: Path) -> tuple[ThreadingHTTPServer, str]:
    """A quiet http server on localhost for folder, in a daemon thread; returns it and its base URL."""

    class Quiet(SimpleHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Quiet, directory=str(folder)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_address[1]}/"


def png_outputs(path: Path) -> int:
    nb = nbformat.read(path, as_version=4)
    return sum("image/png" in out.get("data", {}) for cell in nb.cells for out in cell.get("outputs", []))


def check_report(context, url: str, notebook_dir: Path) -> None:
    """Open index.html at `url` and every page it links: each must load, show every figure of its notebook
    (one image per image/png output), hold no error output, and link back to the index."""
    from idae.html import notebook_paths

    page = context.new_page()
    assert page.goto(url + "index.html").ok
    hrefs = page.eval_on_selector_all("ol a[href]", "links => links.map(a => a.href)")
    expected = {url + f"{p.stem}.html": p for p in notebook_paths(notebook_dir)}
    assert len(expected) == 5 and sorted(hrefs) == sorted(expected), "index must link the five notebook pages"
    assert page.evaluate(PAGE_PROBLEMS_JS) == {"images": 0, "broken": [], "errors": []}
    for href in hrefs:
        response = page.goto(href)
        assert response is not None and response.ok, href
        problems = page.evaluate(PAGE_PROBLEMS_JS)
        assert problems == {"images": png_outputs(expected[href]), "broken": [], "errors": []}, href
        assert page.eval_on_selector("nav a", "a => a.href") == url + "index.html", f"{href}: no link back"
    page.close()
