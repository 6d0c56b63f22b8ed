"""The sweep scripts' command lines: what they refuse, and that they say why before any fitting starts."""

import subprocess
import sys
from pathlib import Path

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
