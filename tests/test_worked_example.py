"""The README's worked example, run as a newcomer would: GSE4335 written out as two CSV tables, then the whole
report on them with the quick profile. `make example` runs it (part of `make test`); it takes minutes, so a
plain `pytest tests` skips it unless IDAE_RUN_EXAMPLE=1.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
from browser import check_report, serve

ROOT = Path(__file__).resolve().parent.parent
PARAMS = ROOT / "notebooks" / "params" / "gse4335.yaml"
OUT = ROOT / "build" / "gse4335_quick"
TABLES = ROOT / "build" / "tables" / "gse4335"

pytestmark = pytest.mark.skipif(
    os.environ.get("IDAE_RUN_EXAMPLE") != "1", reason="runs the whole report for minutes: `make example`"
)


def snapshot() -> dict[str, str]:
    """SHA-256 of every file of the default report: the committed notebooks, data/ and figures/."""
    files = [*(ROOT / "notebooks").glob("*.ipynb"), *(ROOT / "data").rglob("*"), *(ROOT / "figures").rglob("*")]
    return {str(p.relative_to(ROOT)): hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(files) if p.is_file()}


@pytest.fixture(scope="module")
def example() -> dict:
    """Run the README's two commands; return their output and the default report's files before and after."""
    before = snapshot()
    export = subprocess.run(
        [sys.executable, "-m", "idae.datasets", "gse4335", str(TABLES)], cwd=ROOT, capture_output=True, text=True
    )
    assert export.returncode == 0, export.stderr
    run = subprocess.run(
        [sys.executable, "-m", "idae.report", "--profile", "quick", "--params", str(PARAMS)],
        cwd=ROOT, capture_output=True, text=True,
    )  # fmt: skip
    return {"run": run, "before": before, "after": snapshot()}


def outputs_text(path: Path) -> str:
    nb = nbformat.read(path, as_version=4)
    return "\n".join(
        out.get("text", "") + out.get("data", {}).get("text/plain", "")
        for cell in nb.cells for out in cell.get("outputs", [])
    )  # fmt: skip


def test_the_run_succeeds_into_its_own_folder(example):
    run = example["run"]
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    assert f"done: {OUT.relative_to(ROOT)}" in run.stdout
    assert sorted(p.name for p in OUT.iterdir()) == ["data", "figures", "html", "notebooks", "run.json"]
    assert not list(OUT.parent.glob("gse4335_quick.*")), "a .previous or .failed folder was left behind"


def test_the_default_report_is_not_touched(example):
    assert example["after"] == example["before"]


def test_every_notebook_ran_on_the_csv_tables_without_an_error(example):
    notebooks = sorted((OUT / "notebooks").glob("0[1-5]_*.ipynb"))
    assert [p.name[:2] for p in notebooks] == ["01", "02", "03", "04", "05"]
    for path in notebooks:
        nb = nbformat.read(path, as_version=4)
        errors = [o for c in nb.cells for o in c.get("outputs", []) if o.get("output_type") == "error"]
        assert not errors, f"{path.name}: {errors[0]['ename']}"
    manifest = json.loads((OUT / "data" / "processed" / "manifest.json").read_text())
    assert manifest["parameters"]["clinical_path"] == str(TABLES / "clinical.csv")
    assert manifest["counts"]["patients"] == 115 and manifest["counts"]["genes"] == 500
    assert sorted(p.name for p in (OUT / "data" / "models").iterdir()) == [
        "dsm_seed0", "dsm_seed1", "ivae_seed0", "ivae_seed1",
    ]  # fmt: skip


def test_notebook_04_shows_the_committed_synthetic_results_instead_of_recomputing_them(example):
    """The synthetic benchmarks do not depend on the user's tables: the run shows the committed report's, with
    their provenance, and writes none of its own."""
    text = outputs_text(OUT / "notebooks" / "04_identifiability.ipynb")
    assert "sections 3-4: the committed report's results (commit" in text
    assert not (OUT / "data" / "synthetic").exists()


def test_the_case_studies_use_the_named_columns_and_say_what_they_skip(example):
    text = outputs_text(OUT / "notebooks" / "05_inversion.ipynb")
    assert "'er: neg → pos'" in text and "'grade: 1 → 3'" in text and "'node: 0 → 2'" in text
    assert "genes in the gene list" in text  # the signature check reports how many signature genes exist
    assert "gse1992: " in text and "genes shared" in text  # replicated in the other cohort
    assert "the claims are asserted on the default run only" in text
    figures = {p.name for p in (OUT / "figures").iterdir()}
    assert {"05_er_volcano.png", "05_er_top_genes.png", "05_er_replication.png", "01_pca.png"} <= figures


def test_the_html_report_shows_every_figure(example, browser):
    context, outside = browser
    server, url = serve(OUT / "html")
    try:
        check_report(context, url, OUT / "notebooks")
    finally:
        server.shutdown()
    assert outside == []
