"""What a result was computed with: package versions, thread count and the code's git commit, for the notebooks'
environment cells and the sweeps' provenance files."""

from __future__ import annotations

import platform
import subprocess
import time
from importlib import metadata
from pathlib import Path

import torch

PACKAGES = ("torch", "numpy", "pandas", "scikit-learn", "scipy", "survset")
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


def describe_environment() -> str:
    """`environment()` as one line for a notebook's environment cell."""
    env = environment()
    versions = ", ".join(f"{name} {env[name]}" for name in ("python", *PACKAGES))
    return f"{versions}; {env['threads']} threads; commit {env['git commit']}; {env['date']}"
