"""The environment files agree with each other, and the report runner rejects bad parameters."""

import re
import tomllib
from pathlib import Path

import pytest
import yaml

from idae import report
from idae.errors import IdaeError

ROOT = Path(__file__).resolve().parent.parent


def lock_pins() -> dict[str, str]:
    pins = {}
    for line in (ROOT / "requirements.lock").read_text().splitlines():
        if line and not line.startswith("#"):
            name, _, version = line.partition("==")
            assert version, f"unpinned line in requirements.lock: {line!r}"
            pins[re.sub(r"[-_.]+", "-", name).lower()] = version
    return pins


def test_lock_pins_every_declared_dependency_and_torch_exactly():
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    declared = list(pyproject["dependencies"])
    for extra in pyproject["optional-dependencies"].values():
        declared += extra
    pins = lock_pins()
    for requirement in declared:
        name = re.split(r"[<>=!~\[ ]", requirement)[0]
        assert re.sub(r"[-_.]+", "-", name).lower() in pins, f"{name} is declared but not pinned"
    assert pins["torch"] == "2.13.0"


def test_environment_yml_mirrors_the_lock():
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    deps = env["dependencies"]
    python = [d for d in deps if isinstance(d, str) and d.startswith("python")]
    requires = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["requires-python"]
    assert python == ["python=3.11"] and "3.11" in requires
    pip = next(d["pip"] for d in deps if isinstance(d, dict))
    assert pip == ["-r requirements.lock", "-e ."]


def test_makefile_exports_one_thread_setting_for_all_and_test():
    makefile = (ROOT / "Makefile").read_text()
    assert "export OMP_NUM_THREADS := 2" in makefile
    for target in ("all:", "test:", "nbval:"):
        assert target in makefile


def test_report_rejects_unknown_parameters_before_running(tmp_path):
    params = tmp_path / "mine.yaml"
    params.write_text("latent_dimension: 4\n")
    with pytest.raises(IdaeError, match="latent_dimension"):
        report.run(params_file=params)


def test_report_rejects_unknown_profile_and_missing_file(tmp_path):
    with pytest.raises(IdaeError, match="unknown profile 'fast'"):
        report.load_params("fast", None)
    with pytest.raises(IdaeError, match="params file not found"):
        report.load_params("default", tmp_path / "absent.yaml")


def test_notebook_parameter_cells_hold_literals_only():
    import papermill as pm

    for path in report.notebook_paths():
        params = pm.inspect_notebook(str(path))
        assert params, f"{path.name} has no parameters cell"
        assert "out_dir" in params, f"{path.name} must take out_dir so reuse never touches the report"


def test_committed_notebook_outputs_hold_no_machine_paths():
    """A stored output naming this machine's checkout (a warning's file path, say) differs on any other
    clone, so nbval would fail there; outputs must speak of the project only."""
    import json

    root = Path(__file__).resolve().parent.parent
    offenders = []
    for path in sorted((root / "notebooks").glob("0[1-9]_*.ipynb")):
        for i, cell in enumerate(json.loads(path.read_text())["cells"]):
            for output in cell.get("outputs", []):
                text = json.dumps(output)
                if str(root) in text or "site-packages" in text:
                    offenders.append(f"{path.name} cell {i}")
    assert not offenders, offenders
