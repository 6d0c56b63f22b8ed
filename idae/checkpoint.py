"""Training checkpoints: the training loop's whole state written atomically every few epochs, and resumed only
by the run it belongs to (the same settings, data, format version), with every random generator restored."""

from __future__ import annotations

import copy
import hashlib
import json
import math
import os
import random
import warnings
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch

from idae.errors import IdaeError
from idae.files import partial_files, replaced_file

CHECKPOINT_FORMAT, CHECKPOINT_VERSION = "idae training checkpoint", 1
CHECKPOINT_SHARE = 0.1  # automatic checkpoint interval: writes take at most this share of the training time
CHECKPOINT_KEYS = ("format", "version", "fingerprint", "environment", "epoch", "net", "optimiser", "best_state",
                   "best", "since_best", "history", "rng")  # fmt: skip


def resume(path: Path, expected: Mapping[str, Any], net: torch.nn.Module, optimiser: torch.optim.Optimizer,
           rng: np.random.Generator | None, max_epochs: int, history_type: Callable[..., Any],
           ) -> tuple[Any, float, dict[str, torch.Tensor], int, int]:  # fmt: skip
    """Load the checkpoint `path` of the run `expected` fingerprints into `net`, `optimiser` and every random
    generator: (history, best validation loss, best weights, epochs since the best, first epoch to run). The
    history is rebuilt with `history_type`. Warns when the checkpoint was written under another environment."""
    state = read_checkpoint(path, expected)
    try:  # the fingerprint matched, so a failure here means a damaged file
        net.load_state_dict(state["net"])
        optimiser.load_state_dict(state["optimiser"])
        best_state = copy.deepcopy(net.state_dict()) if state["best_state"] is None else state["best_state"]
        same_layout(best_state, net.state_dict())
        history = history_type(**state["history"])
        best, since_best, start = float(state["best"]), int(state["since_best"]), int(state["epoch"]) + 1
        if not 0 < start < max_epochs or len(history.train_objective) != start:
            raise ValueError(f"its epoch {start - 1} and history of {len(history.train_objective)} epochs "
                             f"do not fit max_epochs={max_epochs}")  # fmt: skip
        set_rng_state(state["rng"], rng)
    except (KeyError, TypeError, ValueError, RuntimeError, IndexError, AttributeError) as err:
        raise IdaeError(f"checkpoint {path} is damaged and cannot be resumed: {err}") from err
    if state["environment"] != environment():  # e.g. another OMP_NUM_THREADS: float sums in another order
        warnings.warn(
            f"resuming {path}, written with {state['environment']}, under {environment()}: the fit goes on "
            "but will not be bitwise identical to an uninterrupted one", RuntimeWarning, stacklevel=3,
        )  # fmt: skip
    return history, best, best_state, since_best, start


def save(path: Path, expected: Mapping[str, Any], epoch: int, net: torch.nn.Module, optimiser: torch.optim.Optimizer,
         best_state: dict[str, torch.Tensor] | None, best: float, since_best: int, history: dict[str, Any],
         rng: np.random.Generator | None) -> None:  # fmt: skip
    """Write the loop's state after `epoch` to `path` (`write_checkpoint`). `best_state` None: the best weights
    are those of this very epoch, which the file holds already."""
    write_checkpoint(path, {
        "format": CHECKPOINT_FORMAT, "version": CHECKPOINT_VERSION, "fingerprint": dict(expected),
        "environment": environment(), "epoch": epoch, "net": net.state_dict(), "optimiser": optimiser.state_dict(),
        "best_state": best_state, "best": best, "since_best": since_best, "history": history,
        "rng": get_rng_state(rng),
    })  # fmt: skip


def environment() -> dict[str, Any]:
    """What, besides the run's settings and data, decides the last bits of a fit's numbers."""
    return {"torch": str(torch.__version__), "threads": torch.get_num_threads()}  # str: TorchVersion is a class


def checkpoint_interval(epoch_seconds: float, write_seconds: float) -> int:
    """Epochs between checkpoints: every epoch, unless writing would then take over 10% of the time."""
    return max(1, math.ceil((1 - CHECKPOINT_SHARE) / CHECKPOINT_SHARE * write_seconds / max(epoch_seconds, 1e-9)))


def checkpoint_path(value: Any) -> Path:
    """`value` as a checkpoint file path, or IdaeError."""
    if not isinstance(value, (str, os.PathLike)) or not os.fspath(value):
        raise IdaeError(f"checkpoint must be a file path (str or Path), got {value!r}")
    path = Path(os.fsdecode(value))
    if path.is_dir():
        raise IdaeError(f"checkpoint {path} is a folder; pass a file path such as {path / 'fit.ckpt'}")
    return path


def _digest(value: Any) -> str:
    h = hashlib.sha256()
    if isinstance(value, torch.Tensor):
        value = value.detach().cpu().numpy()
    if isinstance(value, np.ndarray):
        h.update(f"{value.dtype.str}{value.shape}".encode())
        h.update(np.ascontiguousarray(value).tobytes())
    else:
        h.update(json.dumps(value, default=str).encode())
    return h.hexdigest()


def fingerprint(settings: Mapping[str, Any], data: Mapping[str, Any]) -> dict[str, Any]:
    """What a checkpoint must match to be resumed: SHA-256 of `settings` (as JSON) and of `data`.

    `data` maps a name to a tensor, an array or JSON-able value (names, say); tensors and arrays are hashed
    with their dtype and shape. The settings and the per-part digests are kept too, so that a refused
    checkpoint's message can say which setting or which part of the data differs.
    """
    text = json.dumps(dict(settings), sort_keys=True, default=str)
    parts = {str(name): _digest(value) for name, value in data.items()}
    return {
        "config": hashlib.sha256(text.encode()).hexdigest(),
        "data": hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest(),
        "settings": json.loads(text),
        "parts": parts,
    }


def _differences(stored: Any, expected: Mapping[str, Any]) -> str:
    """'' when `stored` matches `expected`, else what differs: the configuration, the data or both."""
    stored = stored if isinstance(stored, dict) else {}
    problems = []
    if stored.get("config") != expected.get("config"):
        old, new = stored.get("settings"), expected.get("settings") or {}
        old = old if isinstance(old, dict) else {}
        changed = [f"{k}={old.get(k)!r} in the checkpoint, {new.get(k)!r} now"
                   for k in sorted(set(old) | set(new), key=str) if old.get(k) != new.get(k)]  # fmt: skip
        problems.append("the model configuration differs" + (f" ({'; '.join(changed[:5])})" if changed else ""))
    if stored.get("data") != expected.get("data"):
        old, new = stored.get("parts"), expected.get("parts") or {}
        old = old if isinstance(old, dict) else {}
        changed = [k for k in {**new, **old} if old.get(k) != new.get(k)]
        problems.append("the training data differ" + (f" ({', '.join(map(str, changed))})" if changed else ""))
    return " and ".join(problems)


def read_checkpoint(path: Path, expected: Mapping[str, Any]) -> dict[str, Any]:
    """The checkpoint in `path` if it is one of the run `expected` fingerprints, else IdaeError naming the file.

    Read with `weights_only=True`: tensors and plain python values only, nothing in the file is executed.
    """
    if not path.is_file():
        raise IdaeError(f"checkpoint {path} exists but is not a file; remove it or pass another path")
    try:
        with warnings.catch_warnings():  # e.g. about the pickle protocol of a file refused just below
            warnings.simplefilter("ignore")
            state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # torch raises many types for truncated, damaged or unsafe files
        reason = str(err).strip().split("\n")[0][:200] or type(err).__name__
        if "Weights only load failed" in reason:  # never pass on torch's advice to load it unsafely
            reason = "it holds objects other than tensors and plain values, refused without running them"
        raise IdaeError(f"checkpoint {path} is damaged or not an idae checkpoint, not resumed: {reason}") from err
    if not isinstance(state, dict) or state.get("format") != CHECKPOINT_FORMAT:
        raise IdaeError(f"{path} is not an idae training checkpoint; remove it or pass another checkpoint path")
    if state.get("version") != CHECKPOINT_VERSION:
        raise IdaeError(
            f"checkpoint {path} has format version {state.get('version')!r}, this idae resumes version "
            f"{CHECKPOINT_VERSION}; remove it to train from scratch"
        )
    absent = [k for k in CHECKPOINT_KEYS if k not in state]
    if absent:
        raise IdaeError(f"checkpoint {path} is damaged, not resumed: it lacks {absent}")
    differences = _differences(state["fingerprint"], expected)
    if differences:
        raise IdaeError(
            f"checkpoint {path} belongs to another run and was not resumed: {differences}. "
            "Remove it to train from scratch, or pass another checkpoint path"
        )
    return state


def write_checkpoint(path: Path, state: dict[str, Any]) -> None:
    """torch.save `state` to `path` atomically: a temporary file in the same folder, fsync, os.replace."""
    try:
        with replaced_file(path, durable=True) as tmp:  # a kill keeps the previous checkpoint, drops the partial file
            torch.save(state, tmp)
    except OSError as err:
        raise IdaeError(f"cannot write checkpoint {path}: {err}") from err


def discard_checkpoint(path: Path | None) -> None:
    """Remove `path` and any partial file a killed write left beside it."""
    if path is None:
        return
    try:
        for stale in partial_files(path):
            stale.unlink(missing_ok=True)
        path.unlink(missing_ok=True)
    except OSError as err:
        warnings.warn(f"training finished but its checkpoint {path} could not be removed: {err}", stacklevel=3)


def same_layout(state: Any, reference: Mapping[str, torch.Tensor]) -> None:
    """ValueError unless `state` holds tensors of the same names and shapes as `reference`."""
    if not isinstance(state, dict) or set(state) != set(reference):
        raise ValueError("its best weights do not name the network's tensors")
    for key, want in reference.items():
        if not isinstance(state[key], torch.Tensor) or state[key].shape != want.shape:
            raise ValueError(f"its best weights {key} do not have the shape {tuple(want.shape)}")


def _plain(value: Any) -> Any:
    """numpy RNG state -> ints, lists and dicts only (what torch.load(weights_only=True) accepts)."""
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, np.ndarray):
        return {"ndarray": value.tolist(), "dtype": value.dtype.str}
    if isinstance(value, np.generic):
        return value.item()
    return value


def _unplain(value: Any) -> Any:
    if isinstance(value, dict):
        if set(value) == {"ndarray", "dtype"}:
            return np.asarray(value["ndarray"], dtype=np.dtype(value["dtype"]))
        return {k: _unplain(v) for k, v in value.items()}
    return value


def get_rng_state(rng: np.random.Generator | None) -> dict[str, Any]:
    """Every random state the training loop (or code after it) draws from: torch, CUDA, numpy, python."""
    version, state, gauss = random.getstate()
    cuda = torch.cuda.is_available() and torch.cuda.is_initialized()
    return {
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if cuda else [],
        "numpy": None if rng is None else _plain(rng.bit_generator.state),
        "numpy_global": _plain(np.random.get_state(legacy=False)),
        "python": {"version": version, "state": list(state), "gauss": gauss},
    }


def set_rng_state(saved: dict[str, Any], rng: np.random.Generator | None) -> None:
    """Restore what `get_rng_state` saved, replacing whatever seeding produced."""
    torch.set_rng_state(saved["torch"])
    if saved["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(saved["cuda"])
    if rng is not None:
        if saved["numpy"] is None:
            raise ValueError("it holds no state for the numpy generator of the clinical draws")
        rng.bit_generator.state = _unplain(saved["numpy"])
    np.random.set_state(_unplain(saved["numpy_global"]))
    python = saved["python"]
    random.setstate((python["version"], tuple(python["state"]), python["gauss"]))
