"""The headline results table: notebooks write their rows, the README and the HTML index show them."""

from pathlib import Path

import pandas as pd
import pytest
from hypothesis import given
from hypothesis import strategies as st

from idae import results
from idae.errors import IdaeError
from idae.html import results_html

ROOT = Path(__file__).resolve().parents[1]


def test_rows_round_trip_in_notebook_order_and_pipes_are_escaped(tmp_path):
    results.write_rows([("q | two", "0.93", "PCA 0.80", "≥ 0.90", "yes")], "05_inversion", tmp_path)
    results.write_rows([("first", "1 of 2", "—", "—", "—")], "04_identifiability", tmp_path)
    table = results.read_table(tmp_path)
    assert table.notebook.tolist() == ["04_identifiability", "05_inversion"]
    assert table.loc[1, "question"] == "q | two" and table.loc[0, "beside it"] == "—"
    lines = results.markdown(table).splitlines()
    assert lines[0] == "| question | idae | beside it | target | met | notebook |"
    assert lines[3] == "| q \\| two | 0.93 | PCA 0.80 | ≥ 0.90 | yes | 05_inversion |"
    assert "<td>q | two</td>" in results_html(table) and results_html(results.read_table(tmp_path / "none")) == ""


@given(value=st.floats(-1, 2), target=st.floats(-1, 2))
def test_a_verdict_is_met_above_its_target_missed_below_and_neither_at_the_threshold(value, target):
    word = results.verdict(value, target)
    if abs(value - target) < results.THRESHOLD_MARGIN:
        assert word == "at the threshold"
    else:
        assert word == ("yes" if value > target else "no")
    assert results.verdict(met=True) == "yes" and results.verdict(met=False) == "no" and results.verdict() == "—"


def test_update_readme_replaces_only_its_block_and_refuses_missing_markers(tmp_path):
    results.write_rows([("a", "1", "2", "3", "—")], "04_identifiability", tmp_path)
    readme = tmp_path / "README.md"
    readme.write_text(f"intro\n{results.BEGIN}\nold\n{results.END}\noutro\n")
    assert results.update_readme(readme, tmp_path)
    assert readme.read_text() == f"intro\n{results.readme_block(tmp_path)}\noutro\n"
    assert not results.update_readme(readme, tmp_path)  # already current
    readme.write_text("no markers\n")
    with pytest.raises(IdaeError, match="needs exactly one"):
        results.update_readme(readme, tmp_path)
    assert readme.read_text() == "no markers\n"
    with pytest.raises(IdaeError, match="no summary rows"):
        results.write_rows([], "05_inversion", tmp_path)


def test_the_readme_shows_the_committed_runs_results():
    """The README's table is the one the committed notebooks wrote (`python -m idae.results` regenerates it)."""
    table = results.read_table(ROOT)
    assert set(table.notebook) == {"04_identifiability", "05_inversion"}
    assert results.readme_block(ROOT) in (ROOT / "README.md").read_text(encoding="utf-8")


def test_the_committed_rows_are_the_ones_the_notebooks_display():
    """Each committed row appears in its notebook's stored summary output, so the table cannot drift from the run."""
    import nbformat

    table = results.read_table(ROOT)
    for notebook, rows in table.groupby("notebook"):
        nb = nbformat.read(ROOT / "notebooks" / f"{notebook}.ipynb", as_version=4)
        shown = "\n".join(str(o.get("data", {}).get("text/markdown", "")) for c in nb.cells if c.cell_type == "code"
                          for o in c.get("outputs", []))  # fmt: skip
        for value in pd.unique(rows[["idae"]].to_numpy().ravel()):
            assert value in shown, (notebook, value)


def test_a_notebooks_summary_table_has_a_row_per_result_and_the_met_column():
    text = results.summary_markdown([("q | two", "0.93", "PCA 0.80", "≥ 0.90", "yes"), ("r", "1", "—", "—", "—")])
    lines = text.splitlines()
    assert lines[0] == "## Summary (this run)" and lines[2] == "| question | idae | beside it | target | met |"
    assert lines[4] == "| q \\| two | 0.93 | PCA 0.80 | ≥ 0.90 | yes |" and len(lines) == 6
