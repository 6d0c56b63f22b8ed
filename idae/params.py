"""Notebook parameters: what papermill injects is checked against what the notebook declares (papermill itself only
warns about unknown names)."""

from __future__ import annotations

import types
from typing import Any

from idae.errors import IdaeError


def check_params(params: dict[str, Any], spec: dict[str, type | tuple[type, ...]]) -> None:
    """Reject unknown or ill-typed parameters with one message naming each offender."""
    problems = [f"unknown parameter {k!r}" for k in params if k not in spec]
    for key, expected in spec.items():
        if key not in params:
            continue
        value = params[key]
        types = expected if isinstance(expected, tuple) else (expected,)
        ok = isinstance(value, types) and not (isinstance(value, bool) and bool not in types)
        if not ok and float in types and isinstance(value, int) and not isinstance(value, bool):
            ok = True
        if not ok:
            names = " or ".join("None" if t is type(None) else t.__name__ for t in types)
            problems.append(f"parameter {key!r} must be {names}, got {value!r} ({type(value).__name__})")
    if problems:
        raise IdaeError("; ".join(problems) + f". Known parameters: {sorted(spec)}")


_IPYTHON_NAMES = {"In", "Out", "exit", "quit", "get_ipython", "open"}


def check_notebook_params(namespace: dict[str, Any], spec: dict[str, type | tuple[type, ...]]) -> dict[str, Any]:
    """Validate a notebook's parameters from its globals (call right after the parameters cell).

    Every plain value defined so far counts as a parameter, so a name papermill injected that the
    notebook does not declare is rejected here instead of being silently ignored.
    """
    params = {
        k: v
        for k, v in namespace.items()
        if not k.startswith("_") and k not in _IPYTHON_NAMES and not callable(v) and not isinstance(v, types.ModuleType)
    }
    check_params(params, spec)
    return params
