"""The report runner: parameters checked before any work, paths resolved, failed or killed runs undone.

The notebooks themselves are not executed here (the worked example and nbval do that): `_execute` and the
HTML rendering are replaced by stand-ins that write into the run folder the way the real ones do.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

import idae.html
from idae import report
from idae.errors import IdaeError


@pytest.fixture
def tables(tmp_path: Path) -> Path:
    folder = tmp_path / "mine"
    folder.mkdir()
    (folder / "clinical.csv").write_text("patient,er,age\np1,pos,50\n")
    (folder / "genomic.csv").write_text("patient,G1\np1,1.0\n")
    return folder


@pytest.fixture
def build(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Runs write under tmp_path/build; notebooks are 'executed' by writing one file per notebook."""
    folder = tmp_path / "build"
    monkeypatch.setattr(report, "BUILD", folder)
    monkeypatch.setattr(report, "ROOT", tmp_path)

    def fake_execute(paths, params, nb_dir, kernel):
        nb_dir.mkdir(parents=True, exist_ok=True)
        for path in paths:
            (nb_dir / path.name).write_text(repr(sorted(params)))
            if params.get("n_seeds") == 99:  # stands for a notebook that fails half way through the run
                raise IdaeError(f"{path.name} failed in cell 3: ValueError: boom")

    def fake_render(notebook_dir, html_dir, title):
        html_dir.mkdir()
        (html_dir / "index.html").write_text(title)
        return html_dir

    monkeypatch.setattr(report, "_execute", fake_execute)
    monkeypatch.setattr(idae.html, "render_report", fake_render)
    return folder


def write_params(folder: Path, **params) -> Path:
    path = folder / "params.yaml"
    path.write_text(yaml.safe_dump(params))
    return path


def test_table_paths_resolve_against_the_params_file_and_the_name_carries_the_profile(tables, tmp_path, monkeypatch):
    path = write_params(tables, name="mine", clinical_path="clinical.csv", genomic_path="genomic.csv")
    monkeypatch.chdir(tmp_path)
    name, params = report.load_params("quick", path)
    assert name == "mine_quick"
    assert params["clinical_path"] == str(tables / "clinical.csv") and params["n_genes"] == 500
    name, params = report.load_params("default", None, {"clinical_path": "mine/clinical.csv", "name": "x"})
    assert name == "x" and params["clinical_path"] == str(tables / "clinical.csv")


@pytest.mark.parametrize("name", ["../up", "a b", "html", ".hidden", "x/y"])
def test_run_names_that_are_not_plain_folder_names_are_refused(name):
    with pytest.raises(IdaeError, match="run name"):
        report.load_params("default", None, {"name": name})


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"n_seeds": "3"}, "'n_seeds' must look like its default 5: got '3'"),
        ({"noise_level": 1}, "unknown parameter 'noise_level'"),
        ({"val_fraction": "1e-1"}, "write floats with a dot"),
        ({"clinical_columns": "er"}, "'clinical_columns' must look like"),
        ({"flips": {"er": "pos"}}, "'flips' must look like"),
        ({"flips": {"er": [1, 2]}}, "'flips' must look like"),
        ({"resamples": True}, "'resamples' must look like its default 5"),
        ({"clinical_columns": ["er", "age"]}, "flips: column 'grade' is not in clinical_columns"),
        ({"stratify": "stage"}, "name ['stage'], which are not in clinical_columns"),
        ({"categorical_columns": ["stage"]}, "name ['stage'], which are not in clinical_columns"),
        ({"flips": {"er": ["neg"]}}, "flips: 'er' needs [from, to]"),
        ({"clinical_path": "/nonexistent/c.csv", "name": "x"}, "set both clinical_path and genomic_path"),
    ],
)
def test_bad_parameters_are_refused_before_any_notebook_runs(build, overrides, message):
    with pytest.raises(IdaeError) as err:
        report.run(overrides=overrides)
    assert message in str(err.value)
    assert not build.exists(), "nothing may be written before the parameters are checked"


def test_a_missing_table_is_named(build, tmp_path):
    with pytest.raises(IdaeError, match="clinical_path: file not found: .*absent.csv"):
        report.run(overrides={"clinical_path": str(tmp_path / "absent.csv"), "genomic_path": str(tmp_path / "g.csv"),
                              "name": "x"})  # fmt: skip


def test_a_run_writes_only_into_its_folder(build, tables):
    paths = {"clinical_path": str(tables / "clinical.csv"), "genomic_path": str(tables / "genomic.csv")}
    out = report.run(overrides=paths | {"name": "mine"})
    assert out == build / "mine"
    assert sorted(p.name for p in out.iterdir()) == ["html", "notebooks", "run.json"]
    record = json.loads((out / "run.json").read_text())
    assert record["name"] == "mine" and record["parameters"]["clinical_path"] == paths["clinical_path"]
    assert len(list((out / "notebooks").iterdir())) == 5
    assert "'out_dir'" in (out / "notebooks" / "01_data_alignment.ipynb").read_text()
    assert (out / "html" / "index.html").read_text() == "idae report: mine"


def test_a_failed_run_puts_the_last_good_run_back(build):
    good = report.run(overrides={"name": "mine", "n_seeds": 3})
    marker = (good / "notebooks" / "05_inversion.ipynb").read_text()
    with pytest.raises(IdaeError, match="boom"):
        report.run(overrides={"name": "mine", "n_seeds": 99})
    assert (good / "notebooks" / "05_inversion.ipynb").read_text() == marker
    assert (good / "html" / "index.html").exists()
    failed = build / "mine.failed"
    assert sorted(p.name for p in (failed / "notebooks").iterdir()) == ["01_data_alignment.ipynb"]
    assert not (build / "mine.previous").exists()
    report.run(overrides={"name": "mine", "n_seeds": 3})
    assert not failed.exists(), "a good run supersedes the older failure"


def test_a_killed_run_is_undone_by_the_next_one(build):
    good = report.run(overrides={"name": "mine", "n_seeds": 3})
    # What a kill half way through leaves: the good run set aside, a partial folder in its place.
    (build / "mine").rename(build / "mine.previous")
    (build / "mine").mkdir()
    (build / "mine" / "partial").write_text("")
    with pytest.raises(IdaeError, match="boom"):
        report.run(overrides={"name": "mine", "n_seeds": 99})
    assert (good / "html" / "index.html").exists() and not (good / "partial").exists()


def test_a_partial_folder_from_a_killed_first_run_is_never_taken_for_a_good_one(build):
    (build / "mine" / "notebooks").mkdir(parents=True)  # killed before it finished: no run.json
    with pytest.raises(IdaeError, match="boom"):
        report.run(overrides={"name": "mine", "n_seeds": 99})
    assert not (build / "mine").exists()
    assert (build / "mine.failed").is_dir()


def test_the_command_line_builds_the_same_parameters(build, tables, monkeypatch, capsys):
    monkeypatch.chdir(tables)
    code = report.main([
        "--clinical", "clinical.csv", "--genomic", "genomic.csv", "--id-col", "patient", "--columns", "er,age",
        "--stratify", "er", "--flip", "er:neg:pos", "--latent-dim", "4", "--set", "negative_control=", "--name", "cli",
    ])  # fmt: skip
    assert code == 0, capsys.readouterr().err
    assert (build / "cli" / "notebooks" / "05_inversion.ipynb").exists()
    assert json.loads((build / "cli" / "run.json").read_text())["parameters"]["dataset"] == "cli"
    assert report.main(["--clinical", "clinical.csv", "--genomic", "genomic.csv"]) == 2
    assert "name the run" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--flip", "er:pos"], "expected COLUMN:FROM:TO"),
        (["--set", "n_seeds"], "expected NAME=VALUE"),
        (["--set", "latent_dimension=4"], "unknown parameter 'latent_dimension'"),
        (["--profile", "fast"], "unknown profile 'fast'"),
    ],
)
def test_command_line_errors_exit_2_with_a_message(build, argv, message, capsys):
    assert report.main(argv) == 2
    assert message in capsys.readouterr().err
    assert not build.exists()


def test_the_default_run_is_recognised_from_the_notebooks_own_defaults():
    defaults = report.declared_parameters(report.NOTEBOOKS / "05_inversion.ipynb")
    data = {k: v for k, v in report.declared_parameters(report.NOTEBOOKS / "01_data_alignment.ipynb").items()}
    assert report.is_default_run("05_inversion.ipynb", defaults, data)
    assert not report.is_default_run("05_inversion.ipynb", defaults | {"n_seeds": 2}, data)
    assert not report.is_default_run("05_inversion.ipynb", defaults, data | {"n_genes": 500})
    assert not report.is_default_run("05_inversion.ipynb", defaults, data | {"clinical_path": "/x.csv"})
