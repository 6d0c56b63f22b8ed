"""What a result was computed with: package versions, thread count and the code's git commit, for the notebooks'
environment cells and the sweeps' provenance files."""

from __future__ import annotations

import os
import platform
import subprocess
import time
from importlib import metadata
from pathlib import Path

import torch

PACKAGES = ("torch", "numpy", "pandas", "scikit-learn", "scipy", "survset")
# what the Makefile fixes so that float sums, hence fits, come out alike from one machine to the next
NUMERIC_SETTINGS = ("OMP_NUM_THREADS", "ATEN_CPU_CAPABILITY", "MKL_CBWR", "OPENBLAS_CORETYPE", "ONEDNN_MAX_CPU_ISA",
                    "PYTHONHASHSEED")
REPOSITORY = Path(__file__).resolve().parent.parent


def git_commit() -> str:
    """The repository's commit, with " (idae/ modified)" when the package has uncommitted changes; "unknown" outside
    a git checkout."""
    try:
        run = lambda *args: subprocess.run(["git", *args], capture_output=True, text=True, check=True,  # noqa: E731
                                           cwd=REPOSITORY).stdout.strip()  # fmt: skip
        commit, dirty = run("rev-parse", "HEAD"), bool(run("status", "--porcelain", "idae"))
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return commit + (" (idae/ modified)" if dirty else "")


def short_commit(commit: str) -> str:
    """A `git_commit()` record shortened to 7 hex digits, keeping its " (idae/ modified)" mark."""
    return commit[:7] + commit[40:]


def _version(package: str) -> str:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return "not installed"


def environment() -> dict[str, str | int]:
    """Python and package versions, torch's thread count, the git commit and today's date."""
    return {
        "python": platform.python_version(), **{name: _version(name) for name in PACKAGES},
        "threads": torch.get_num_threads(), "git commit": git_commit(), "date": time.strftime("%Y-%m-%d"),
    }  # fmt: skip


def cpu_model() -> str:
    """The processor's model name (Linux), else what `platform` knows."""
    try:
        names = [line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                 if line.startswith("model name")]  # fmt: skip
    except OSError:
        names = []
    return names[0] if names else platform.processor() or "unknown"


def describe_environment() -> str:
    """`environment()` as lines for a notebook's environment cell, with the CPU and the numeric settings."""
    env = environment()
    versions = ", ".join(f"{name} {env[name]}" for name in ("python", *PACKAGES))
    settings = ", ".join(f"{name}={os.environ.get(name, 'unset')}" for name in NUMERIC_SETTINGS)
    return (f"{versions}; {env['threads']} threads; commit {env['git commit']}; {env['date']}\n"
            f"CPU {cpu_model()}; {settings}")
