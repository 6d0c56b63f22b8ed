"""The sweep scripts' command lines: what they refuse, and that they say why before any fitting starts."""

import json
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

ROOT = Path(__file__).resolve().parents[1]


def inversion_sweep(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(ROOT / "scripts" / "inversion_sweep.py"), *args],
                          capture_output=True, text=True, timeout=120, cwd=cwd)  # fmt: skip


@pytest.mark.parametrize(
    "args, message",
    [
        (["--seeds", "0", "--semi-seeds", "0"], "nothing to run"),
        (["--seeds", "-1"], "--seeds must be non-negative"),
        (["--semi-seeds", "-2"], "--semi-seeds must be non-negative"),
    ],
)
def test_inversion_sweep_refuses_bad_seed_counts(tmp_path, args, message):
    run = inversion_sweep(*args, "--out", str(tmp_path), cwd=tmp_path)
    assert run.returncode == 2 and message in run.stderr
    assert list(tmp_path.iterdir()) == []  # nothing written


def test_inversion_sweep_semi_needs_the_processed_cohort(tmp_path):
    """The semi-synthetic benchmark reads notebook 01's processed cohort: without it the script names the folder
    and the step that writes it, and writes nothing, before fitting anything (the harder setting included)."""
    run = inversion_sweep("--seeds", "1", "--semi-seeds", "1", "--out", str(tmp_path / "data"), cwd=tmp_path)
    assert run.returncode == 2
    assert str(tmp_path / "data" / "processed") in run.stderr and "notebook 01" in run.stderr
    assert not (tmp_path / "data").exists()


def test_inversion_sweep_refuses_an_unknown_baseline(tmp_path):
    run = inversion_sweep("--seeds", "1", "--baselines", "linear", "magic", "--out", str(tmp_path), cwd=tmp_path)
    assert run.returncode == 2 and "unknown baselines ['magic']" in run.stderr
    assert list(tmp_path.iterdir()) == []


def test_inversion_sweep_updates_only_the_baselines_it_runs(tmp_path):
    """--baselines fits only the named baselines on the table's seeds and replaces their rows; the idae rows and the
    provenance of the run that wrote the table stay, and the update is recorded."""
    old = pd.DataFrame({"seed": [0, 0, 0], "method": ["idae", "no_change", "linear"],
                        "pearson": [0.9, float("nan"), 0.1], "r2": [0.8, 0.0, -5.0], "seconds": [1.0, 0.1, 0.1]})
    old.to_csv(tmp_path / "inversion_harder.csv", index=False)
    (tmp_path / "inversion_harder.json").write_text(json.dumps({"command": "the full sweep", "seeds": [0]}))
    run = inversion_sweep("--seeds", "1", "--baselines", "linear", "linear_products", "--out", str(tmp_path),
                          cwd=tmp_path)  # fmt: skip
    assert run.returncode == 0, run.stderr
    new = pd.read_csv(tmp_path / "inversion_harder.csv")
    assert list(new.method) == ["idae", "no_change", "linear", "linear_products"]  # in INVERSION_METHODS' order
    assert new.loc[0, "pearson"] == 0.9 and new.loc[2, "r2"] > -5.0  # idae kept, linear re-measured
    record = json.loads((tmp_path / "inversion_harder.json").read_text())
    assert record["command"] == "the full sweep" and record["updates"][0]["methods"] == ["linear", "linear_products"]
    refused = inversion_sweep("--seeds", "2", "--baselines", "linear", "--out", str(tmp_path), cwd=tmp_path)
    assert refused.returncode != 0 and "must run the seeds" in refused.stderr
