"""Run the numbered notebooks in order with papermill: the default report, or the same on your data.

    python -m idae.report                                  # the default report, rewritten in place
    python -m idae.report --profile quick                  # small and fast, into build/quick/
    python -m idae.report --params my_cohort.yaml          # your tables, into build/my_cohort/
    python -m idae.report --clinical c.csv --genomic g.csv --id-col patient \\
        --columns er,grade,age --categorical grade --stratify er --flip er:neg:pos --name mine

The default run rewrites the committed report (`notebooks/`, `data/`, `figures/`), each notebook
through a temporary file. Any other run writes everything (executed notebooks, processed data, models,
figures, the HTML rendering, and last `run.json` recording the parameters) under `build/<name>/`; the
folder of the last good run of that name is kept aside until the new run has finished, and put back if
it fails or is killed (the next run puts it back). Parameters are checked against
the notebooks' parameter cells (names, types, and the clinical columns they refer to) before any
notebook starts.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import sys
import time
from pathlib import Path
from typing import Any

import yaml

from idae.errors import IdaeError
from idae.files import previous_of, replaced_file
from idae.html import notebook_paths as numbered_notebooks
from idae.params import NOTEBOOKS, check_params, declared_parameters

ROOT = Path(__file__).resolve().parent.parent
PROFILES = NOTEBOOKS / "profiles"
BUILD = ROOT / "build"
PATH_PARAMS = ("clinical_path", "genomic_path")
RECORD = "run.json"  # written last: a run folder without it did not finish
NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")


def notebook_paths() -> list[Path]:
    """The committed report's numbered notebooks, in order."""
    return numbered_notebooks(NOTEBOOKS)


def is_default_run(notebook: str, params: dict[str, Any], data_parameters: dict[str, Any] | None = None) -> bool:
    """True when `notebook` runs with its own defaults on the default processed cohort.

    Only that run (the one `make all` stores and nbval re-executes) asserts the report's scientific
    claims; on other parameters or data the notebooks print the same figures without asserting them.
    `data_parameters` are the parameters notebook 01 recorded in the processed data's manifest.
    """
    defaults = declared_parameters(NOTEBOOKS / notebook)
    if {k: params.get(k) for k in defaults} != defaults:
        return False
    if data_parameters is None:
        return True
    data_defaults = declared_parameters(NOTEBOOKS / "01_data_alignment.ipynb")
    return all(data_parameters.get(k) == v for k, v in data_defaults.items() if k != "out_dir")


def dataset_label(data_parameters: dict[str, Any]) -> str:
    """A short name for the data a run used: `dataset` if set, else the survset cohort or the clinical file's name."""
    if data_parameters.get("dataset"):
        return str(data_parameters["dataset"])
    path = data_parameters.get("clinical_path")
    return Path(path).stem if path else str(data_parameters.get("cohort", "the cohort"))


def check_run_params(params: dict[str, Any], declared: dict[str, dict[str, Any]]) -> None:
    """`params.check_params`, and what only a whole run can check: the two tables, both given and present."""
    p = check_params(params, declared)
    problems = []
    if bool(p["clinical_path"]) != bool(p["genomic_path"]):
        problems.append("set both clinical_path and genomic_path (or neither, to use `cohort`)")
    for key in PATH_PARAMS:
        if p[key] and not Path(p[key]).is_file():
            problems.append(f"{key}: file not found: {p[key]}")
    if problems:
        raise IdaeError("; ".join(problems))


def load_params(
    profile: str = "default", params_file: str | Path | None = None, overrides: dict[str, Any] | None = None
) -> tuple[str, dict[str, Any]]:
    """(run name, parameters): a profile, then a params YAML file, then `overrides`, laid over each other.

    Paths to tables are made absolute: relative to the params file's folder when they come from it,
    to the current directory when they come from `overrides` (the command line).
    """
    params: dict[str, Any] = {}
    if profile != "default":
        path = PROFILES / f"{profile}.yaml"
        if not path.is_file():
            known = ["default"] + sorted(p.stem for p in PROFILES.glob("*.yaml"))
            raise IdaeError(f"unknown profile {profile!r}; known profiles: {known}")
        params.update(yaml.safe_load(path.read_text()) or {})
    name = ""
    for source, base in ((params_file, None), (overrides, Path.cwd())):
        if source is None:
            continue
        if base is None:
            path = Path(source)
            if not path.is_file():
                raise IdaeError(f"params file not found: {path}")
            extra = yaml.safe_load(path.read_text()) or {}
            if not isinstance(extra, dict):
                raise IdaeError(f"{path}: expected a mapping of parameter names to values")
            base, name = path.resolve().parent, str(extra.get("name", name or path.stem))
        else:
            extra = dict(source)
            name = str(extra.get("name", name))
        extra.pop("name", None)
        for key in PATH_PARAMS:
            if isinstance(extra.get(key), str) and extra[key]:
                extra[key] = str((base / Path(extra[key]).expanduser()).resolve())
        params.update(extra)
    if not name and params.get("clinical_path"):
        raise IdaeError("name the run on your tables (--name, NAME=, or `name:` in a params file): build/<name>/")
    if name and profile != "default":
        name = f"{name}_{profile}"
    name = name or profile
    if not NAME.fullmatch(name) or name in ("html", "tables"):
        raise IdaeError(f"run name {name!r}: use letters, digits, '_', '-' or '.', not 'html' or 'tables'")
    return name, params


def _keep_as_failed(out: Path) -> Path:
    """Move the unfinished run folder `out` to `<name>.failed` (replacing an older one) to be looked at."""
    failed = out.with_name(out.name + ".failed")
    shutil.rmtree(failed, ignore_errors=True)
    if out.exists():
        os.replace(out, failed)
    return failed


def _restore(out: Path) -> None:
    """Undo a run that was killed before it finished: put the last good folder back in place."""
    previous = previous_of(out)
    if previous.exists():
        _keep_as_failed(out)
        os.replace(previous, out)
        print(f"[idae.report] an earlier run of {out.name} did not finish: restored the last good one", flush=True)


def _execute(paths: list[Path], params: dict[str, Any], nb_dir: Path, kernel: str) -> None:
    import papermill as pm

    nb_dir.mkdir(parents=True, exist_ok=True)
    for i, path in enumerate(paths, 1):
        own = {k: v for k, v in params.items() if k in declared_parameters(path)}
        target = nb_dir / path.name
        start = time.perf_counter()
        print(f"[idae.report] {i}/{len(paths)} {path.name} -> {target.relative_to(ROOT)}", flush=True)
        try:
            with replaced_file(target, suffix=".ipynb") as tmp:  # papermill wants the extension
                pm.execute_notebook(
                    str(path), str(tmp), parameters=own, kernel_name=kernel, cwd=str(NOTEBOOKS), progress_bar=False
                )
        except pm.PapermillExecutionError as err:
            raise IdaeError(
                f"{path.name} failed in cell {err.exec_count}: {err.ename}: {err.evalue}".rstrip()
            ) from None
        print(f"[idae.report]     done in {time.perf_counter() - start:.0f} s", flush=True)


def run(
    profile: str = "default",
    params_file: str | Path | None = None,
    overrides: dict[str, Any] | None = None,
    kernel: str = "idae",
) -> Path:
    """Execute every notebook, then render the HTML report; return the run's folder.

    The default run (no profile, file or overrides) writes into the repository and renders the HTML
    to `build/html/`; any other run writes everything under `build/<name>/`.
    """
    from idae.html import render_report
    from idae.results import update_readme

    name, params = load_params(profile, params_file, overrides)
    paths = notebook_paths()
    check_run_params(params, {p: declared_parameters(p) for p in paths})
    if name == "default" and not params:
        _execute(paths, params, NOTEBOOKS, kernel)
        render_report(NOTEBOOKS, BUILD / "html", title="idae report")
        update_readme(ROOT / "README.md", ROOT)  # the README's table follows the committed run
        return ROOT
    if params.get("clinical_path") and not params.get("dataset"):
        params["dataset"] = name.removesuffix(f"_{profile}")  # the report's text names the data after the run
    out = BUILD / name
    BUILD.mkdir(exist_ok=True)
    _restore(out)
    previous = previous_of(out)
    if out.exists():
        if (out / RECORD).is_file():
            os.replace(out, previous)
        else:  # left by a run killed before anything was set aside: not a good run, keep it only to look at
            _keep_as_failed(out)
    out.mkdir()
    start = time.time()
    try:
        _execute(paths, params | {"out_dir": str(out)}, out / "notebooks", kernel)
        render_report(out / "notebooks", out / "html", title=f"idae report: {name}")
        record = {"name": name, "profile": profile, "parameters": params, "seconds": round(time.time() - start),
                  "finished": time.strftime("%Y-%m-%dT%H:%M:%S%z")}  # fmt: skip
        with replaced_file(out / RECORD) as tmp:  # its presence marks a finished run: never half-written
            tmp.write_text(json.dumps(record, indent=1) + "\n")
    except BaseException:
        failed = _keep_as_failed(out)
        if previous.exists():
            os.replace(previous, out)
        print(f"[idae.report] run failed: its partial output is in {failed.relative_to(ROOT)}", file=sys.stderr)
        raise
    shutil.rmtree(previous, ignore_errors=True)
    shutil.rmtree(out.with_name(out.name + ".failed"), ignore_errors=True)  # an older failure, superseded by this run
    return out


def _flip(text: str) -> tuple[str, list[str]]:
    parts = text.split(":")
    if len(parts) != 3 or not all(parts):
        raise IdaeError(f"--flip {text!r}: expected COLUMN:FROM:TO, e.g. er:neg:pos")
    return parts[0], parts[1:]


def _setting(text: str) -> tuple[str, Any]:
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise IdaeError(f"--set {text!r}: expected NAME=VALUE (VALUE in YAML, e.g. n_seeds=3)")
    return key, yaml.safe_load(value) if value else ""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description="Run notebooks 01-05 (papermill), on the default cohort or on your tables.",
        epilog="Outputs of any non-default run land in build/<name>/. See the README, 'Your own data'.",
    )
    parser.add_argument("--profile", default="default", help="default, or a name in notebooks/profiles/ (quick)")
    parser.add_argument("--params", default=None, help="YAML file of notebook parameters")
    parser.add_argument("--name", help="name of the run and of its folder under build/")
    parser.add_argument("--clinical", help="clinical table (CSV/parquet), patients in rows")
    parser.add_argument("--genomic", help="genomic table (CSV/parquet), patients in rows, genes in columns")
    parser.add_argument("--id-col", help="column holding the patient IDs in both tables")
    parser.add_argument("--columns", help="clinical columns the model uses, comma-separated")
    parser.add_argument(
        "--categorical", help="number-coded columns that are categories (grade 1/2/3), comma-separated"
    )
    parser.add_argument("--stratify", help="column the split is stratified on ('' for none)")
    parser.add_argument("--flip", action="append", default=[], help="case study COLUMN:FROM:TO (repeatable)")
    parser.add_argument("--latent-dim", type=int, help="number of identifiable factors")
    parser.add_argument("--set", action="append", default=[], help="any notebook parameter, NAME=VALUE (repeatable)")
    parser.add_argument("--kernel", default="idae", help="Jupyter kernel to run the notebooks with")
    args = parser.parse_args(argv)
    try:
        overrides: dict[str, Any] = dict(_setting(s) for s in args.set)
        given = {
            "name": args.name, "clinical_path": args.clinical, "genomic_path": args.genomic, "id_col": args.id_col,
            "clinical_columns": args.columns and args.columns.split(","),
            "categorical_columns": args.categorical and args.categorical.split(","),
            "stratify": args.stratify, "flips": dict(_flip(f) for f in args.flip) or None,
            "latent_dim": args.latent_dim,
        }  # fmt: skip
        overrides.update({k: v for k, v in given.items() if v is not None})
        out = run(args.profile, args.params, overrides or None, args.kernel)
    except IdaeError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    where = "notebooks/, data/, figures/" if out == ROOT else out.relative_to(ROOT)
    print(f"[idae.report] done: {where}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
