"""Run the numbered notebooks in order with papermill: `python -m idae.report [--profile P] [--params F]`.

The default profile rewrites the committed report in place (`notebooks/`, `data/`, `figures/`).
Any other profile or a params file writes everything (executed notebooks, processed data, models,
figures) under `build/<name>/`, so the default report is never touched. Each notebook is executed to
a temporary file and moved into place only when it succeeds.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

import yaml

from idae.errors import IdaeError

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = ROOT / "notebooks"
PROFILES = NOTEBOOKS / "profiles"


def notebook_paths() -> list[Path]:
    return sorted(NOTEBOOKS.glob("0[1-9]_*.ipynb"))


def load_params(profile: str, params_file: str | Path | None) -> tuple[str, dict[str, Any]]:
    """(output name, parameters) for a profile and an optional params YAML laid over it."""
    params: dict[str, Any] = {}
    name = profile
    if profile != "default":
        path = PROFILES / f"{profile}.yaml"
        if not path.is_file():
            known = ["default"] + sorted(p.stem for p in PROFILES.glob("*.yaml"))
            raise IdaeError(f"unknown profile {profile!r}; known profiles: {known}")
        params.update(yaml.safe_load(path.read_text()) or {})
    if params_file is not None:
        path = Path(params_file)
        if not path.is_file():
            raise IdaeError(f"params file not found: {path}")
        extra = yaml.safe_load(path.read_text()) or {}
        if not isinstance(extra, dict):
            raise IdaeError(f"{path}: expected a mapping of parameter names to values")
        params.update(extra)
        name = str(extra.get("name", path.stem))
    return name, params


def run(profile: str = "default", params_file: str | Path | None = None, kernel: str = "idae") -> Path:
    """Execute every notebook; return the folder the executed notebooks were written to."""
    import papermill as pm

    name, params = load_params(profile, params_file)
    paths = notebook_paths()
    declared = {p: pm.inspect_notebook(str(p)) for p in paths}
    known = set().union(*declared.values()) if declared else set()
    unknown = sorted(set(params) - known - {"name"})
    if unknown:
        raise IdaeError(f"unknown parameters {unknown}; the notebooks declare {sorted(known)}")
    if name == "default" and not params:
        out_dir, nb_dir = None, NOTEBOOKS
    else:
        out_dir = ROOT / "build" / name
        nb_dir = out_dir / "notebooks"
        params["out_dir"] = str(out_dir)
    nb_dir.mkdir(parents=True, exist_ok=True)
    for path in paths:
        own = {k: v for k, v in params.items() if k in declared[path]}
        target = nb_dir / path.name
        fd, tmp = tempfile.mkstemp(suffix=".ipynb", prefix=f".{path.stem}.", dir=nb_dir)
        os.close(fd)
        print(f"[idae.report] {path.name} -> {target.relative_to(ROOT)}", flush=True)
        try:
            pm.execute_notebook(
                str(path), tmp, parameters=own, kernel_name=kernel, cwd=str(NOTEBOOKS), progress_bar=False
            )
            os.replace(tmp, target)
        finally:
            if os.path.exists(tmp):
                os.remove(tmp)
    return nb_dir


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", default="default", help="default, or a name in notebooks/profiles/")
    parser.add_argument("--params", default=None, help="YAML file of notebook parameters (your own data)")
    parser.add_argument("--kernel", default="idae", help="Jupyter kernel to run the notebooks with")
    args = parser.parse_args(argv)
    try:
        out = run(args.profile, args.params, args.kernel)
    except IdaeError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(f"[idae.report] done: {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
