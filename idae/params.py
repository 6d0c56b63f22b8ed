"""Notebook parameters, declared once: each notebook's parameters cell is the declaration (names and defaults),
and both the runner (`idae.report`) and the notebooks check what papermill injects against it here, the type of
each value inferred from its default (papermill itself only warns about unknown names)."""

from __future__ import annotations

import ast
import types
from functools import cache
from pathlib import Path
from typing import Any

from idae.errors import IdaeError

NOTEBOOKS = Path(__file__).resolve().parent.parent / "notebooks"
_IPYTHON_NAMES = {"In", "Out", "exit", "quit", "get_ipython", "open"}


@cache
def declared_parameters(path: Path) -> dict[str, Any]:
    """The parameters cell of one committed notebook: {name: default value}."""
    import papermill as pm

    declared = pm.inspect_notebook(str(path))
    return {name: ast.literal_eval(spec["default"]) for name, spec in declared.items()}


def conforms(value: Any, default: Any) -> bool:
    """Whether `value` has the type of a parameter whose default is `default` (ints pass for floats)."""
    if isinstance(default, bool) or isinstance(value, bool):
        return isinstance(value, bool) and isinstance(default, bool)
    if isinstance(default, float):
        return isinstance(value, int | float)
    if isinstance(default, list):
        return isinstance(value, list) and (not default or all(conforms(v, default[0]) for v in value))
    if isinstance(default, dict):
        first = next(iter(default.values()), None)
        return isinstance(value, dict) and all(
            isinstance(k, str) and (first is None or conforms(v, first)) for k, v in value.items()
        )
    return isinstance(value, type(default))


def check_params(params: dict[str, Any], declared: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """Reject unknown, ill-typed or inconsistent parameters, naming each one. `declared` maps each notebook to its
    {name: default}; the checks between parameters run where the notebooks declare the names they relate. Returns
    every declared parameter with `params` laid over the defaults."""
    defaults: dict[str, Any] = {}
    for own in declared.values():
        defaults.update(own)
    problems = [f"unknown parameter {k!r}" for k in params if k not in defaults]
    for key, value in params.items():
        if key in defaults and not conforms(value, defaults[key]):
            hint = ""
            if isinstance(defaults[key], float) and isinstance(value, str):
                hint = " (in YAML write floats with a dot, e.g. 1.0e-3)"
            problems.append(f"parameter {key!r} must look like its default {defaults[key]!r}: got {value!r}{hint}")
    if problems:
        raise IdaeError("; ".join(problems) + f". The notebooks declare: {sorted(defaults)}")
    p = defaults | params
    columns = p.get("clinical_columns")
    if columns is not None:
        outside = [c for c in p.get("categorical_columns", []) + [p.get("stratify", "")] if c and c not in columns]
        if outside:
            problems.append(
                f"stratify / categorical_columns name {outside}, which are not in clinical_columns {columns}"
            )
    for column, levels in p.get("flips", {}).items():
        if columns is not None and column not in columns:
            problems.append(
                f"flips: column {column!r} is not in clinical_columns {columns} (set flips, e.g. --flip er:neg:pos)"
            )
        if len(levels) != 2:
            problems.append(f"flips: {column!r} needs [from, to], got {levels!r}")
    if "flips" in p and not p["flips"]:
        problems.append("flips is empty: name at least one column to flip, e.g. {'er': ['neg', 'pos']}")
    if problems:
        raise IdaeError("; ".join(problems))
    return p


def check_notebook_params(namespace: dict[str, Any], notebook: str) -> dict[str, Any]:
    """Check a notebook's parameters, read from its globals right after the parameters cell, against the parameters
    cell of the committed `notebook` (a file name in notebooks/). Every plain value defined so far counts as a
    parameter, so a name papermill injected that the notebook does not declare is refused, not ignored."""
    params = {
        k: v
        for k, v in namespace.items()
        if not k.startswith("_") and k not in _IPYTHON_NAMES and not callable(v) and not isinstance(v, types.ModuleType)
    }
    check_params(params, {notebook: declared_parameters(NOTEBOOKS / notebook)})
    return params
