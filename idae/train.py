"""Seeding and the training loop: warm-up then cosine decay, clipping, early stopping, NaN guard, checkpoints."""

from __future__ import annotations

import copy
import dataclasses
import hashlib
import json
import math
import os
import random
import sys
import time
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from idae.errors import IdaeError
from idae.files import partial_files, replaced_file
from idae.model import IDAENet, dsm_loss, elbo_loss, infonce_loss, reconstruction_loss

OBJECTIVES = ("ivae", "infonce", "dsm")
CHECKPOINT_FORMAT, CHECKPOINT_VERSION = "idae training checkpoint", 1
CHECKPOINT_SHARE = 0.1  # automatic checkpoint interval: writes take at most this share of the training time
CHECKPOINT_KEYS = ("format", "version", "fingerprint", "environment", "epoch", "net", "optimiser", "best_state",
                   "best", "since_best", "history", "rng")  # fmt: skip


def seed_everything(seed: int) -> None:
    """Seed python, numpy and torch; fix torch's thread count; use deterministic kernels.

    The thread count comes from OMP_NUM_THREADS (the Makefile exports it), because a different
    count changes the order of float sums and so the last digits of every result.
    """
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "2")))
    torch.use_deterministic_algorithms(True, warn_only=True)


def resolve_device(device: str) -> torch.device:
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


@dataclass
class History:
    """Per-epoch losses (objective term, reconstruction term, their sum) for train and validation."""

    train_objective: list[float] = field(default_factory=list)
    train_reconstruction: list[float] = field(default_factory=list)
    val_objective: list[float] = field(default_factory=list)
    val_reconstruction: list[float] = field(default_factory=list)
    learning_rate: list[float] = field(default_factory=list)
    best_epoch: int = -1
    stopped: str = ""


def lr_factor(epoch: int, warmup: int, total: int) -> float:
    """Linear warm-up over `warmup` epochs, then cosine decay to 5% of the base rate at `total`."""
    if epoch < warmup:
        return (epoch + 1) / warmup
    progress = (epoch - warmup) / max(1, total - warmup)
    return 0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))


def losses(
    net: IDAENet, objective: str, x: torch.Tensor, y: torch.Tensor, w: torch.Tensor, noise: float,
    reconstruction_weight: float, detach_decoder: bool = False, contrastive_weight: float = 0.0,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(objective term, reconstruction term, the loss to minimise) on one batch.

    "ivae": the negative ELBO plus `contrastive_weight` × the InfoNCE term of the same Gaussian head (which
    clinical state goes with each profile), both in nats per patient and divided by the gene count: the ELBO
    grows with the panel and the InfoNCE term (at most log batch size) does not, so the weight means the same
    whatever the panel's size and the term matters most where the likelihood carries least (few dimensions).
    The ELBO holds the decoder's likelihood, so the reconstruction term (squared error per gene of the decoded
    posterior draw; of the mean in eval mode) is only reported.
    The contrastive objectives add the denoising reconstruction term with `reconstruction_weight`.
    """
    if objective == "ivae":
        main, rec = elbo_loss(net, x, y, w, noise)
        if contrastive_weight > 0:
            return main, rec, main + contrastive_weight * infonce_loss(net, x, y, w, noise) / x.shape[1]
        return main, rec, main
    main = (infonce_loss if objective == "infonce" else dsm_loss)(net, x, y, w, noise)
    rec = reconstruction_loss(net, x, w, noise, detach=detach_decoder)
    return main, rec, main + reconstruction_weight * rec


def train(
    net: IDAENet,
    x_train: torch.Tensor,
    design_train: Callable[[], torch.Tensor],
    w_train: torch.Tensor,
    x_val: torch.Tensor | None,
    y_val: torch.Tensor | None,
    w_val: torch.Tensor | None,
    *,
    objective: str,
    noise: float,
    reconstruction_weight: float,
    contrastive_weight: float = 0.0,
    max_epochs: int,
    batch_size: int,
    learning_rate: float,
    weight_decay: float,
    warmup_epochs: int,
    patience: int,
    clip_norm: float,
    detach_decoder: bool = False,
    progress: bool = True,
    checkpoint: str | os.PathLike | None = None,
    checkpoint_every: int | None = None,
    fingerprint: Mapping[str, Any] | None = None,
    rng: np.random.Generator | None = None,
) -> History:
    """Fit `net` in place and return its history; the weights kept are those of the best epoch.

    `design_train()` returns a fresh (n_train, design) tensor each epoch, so missing clinical cells
    are re-drawn from their prior every time. Without validation data the last epoch is kept.
    A non-finite loss stops training with a warning and keeps the last good weights.

    With `checkpoint` (a file path), the loop's whole state is written there atomically at the end of
    every `checkpoint_every` epochs (None: see `checkpoint_interval`), and an existing file is resumed
    from, provided its `fingerprint` (see `fingerprint`) matches; `rng` is the numpy generator
    `design_train` draws from, saved and restored with torch's and python's. The file is deleted when
    training ends (not when an exception interrupts it).
    """
    history = History()
    optimiser = torch.optim.AdamW(net.parameters(), lr=learning_rate, weight_decay=weight_decay)
    n = len(x_train)
    batch_size = min(batch_size, n)
    n_batches = max(1, n // batch_size)  # drop the ragged last batch: contrastive batches stay comparable
    best, best_state, since_best, start = math.inf, copy.deepcopy(net.state_dict()), 0, 0
    path = checkpoint_path(checkpoint) if checkpoint is not None else None
    if path is not None and (path.exists() or path.is_symlink()):
        state = read_checkpoint(path, fingerprint or {})
        try:  # the fingerprint matched, so a failure here means a damaged file
            net.load_state_dict(state["net"])
            optimiser.load_state_dict(state["optimiser"])
            best_state = copy.deepcopy(net.state_dict()) if state["best_state"] is None else state["best_state"]
            same_layout(best_state, net.state_dict())
            history = History(**state["history"])
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
                "but will not be bitwise identical to an uninterrupted one", RuntimeWarning, stacklevel=2,
            )  # fmt: skip
    bar = tqdm(range(start, max_epochs), desc=f"fit ({objective})", disable=not progress, file=sys.stderr,
               mininterval=2.0, ncols=90, leave=False, initial=start, total=max_epochs)
    every, unsaved, last_saved = checkpoint_every or 1, 0, time.perf_counter()
    for epoch in bar:
        for group in optimiser.param_groups:
            group["lr"] = learning_rate * lr_factor(epoch, warmup_epochs, max_epochs)
        net.train()
        y_train = design_train()
        order = torch.randperm(n)
        sums = np.zeros(2)
        for b in range(n_batches):
            idx = order[b * batch_size : (b + 1) * batch_size]
            # bfloat16 autocast on CUDA (no loss scaling needed); CPU runs stay in float32
            with torch.autocast("cuda", dtype=torch.bfloat16, enabled=x_train.device.type == "cuda"):
                main, rec, loss = losses(net, objective, x_train[idx], y_train[idx], w_train[idx], noise,
                                         reconstruction_weight, detach_decoder, contrastive_weight)
            loss = loss.float()
            what = "loss" if not torch.isfinite(loss) else ""
            if not what:
                optimiser.zero_grad(set_to_none=True)
                loss.backward()
                grad_norm = torch.nn.utils.clip_grad_norm_(net.parameters(), clip_norm)
                # a finite loss can still have non-finite gradients; one step with them poisons the weights
                what = "gradient" if not torch.isfinite(grad_norm) else ""
            if what:
                net.load_state_dict(best_state)
                kept = f"epoch {history.best_epoch}" if history.best_epoch >= 0 else "the initial weights"
                history.stopped = f"non-finite {what} at epoch {epoch}; kept the weights of {kept}"
                warnings.warn(history.stopped, RuntimeWarning, stacklevel=2)
                bar.close()
                discard_checkpoint(path)
                return history
            optimiser.step()
            sums += [main.item(), rec.item()]
        history.train_objective.append(float(sums[0] / n_batches))  # python floats: a checkpoint holds no numpy
        history.train_reconstruction.append(float(sums[1] / n_batches))
        history.learning_rate.append(optimiser.param_groups[0]["lr"])
        if x_val is None:
            best_state, history.best_epoch = copy.deepcopy(net.state_dict()), epoch
        else:
            val_main, val_rec, total = evaluate(net, objective, x_val, y_val, w_val, noise, reconstruction_weight,
                                                contrastive_weight)
            history.val_objective.append(val_main)
            history.val_reconstruction.append(val_rec)
            improved = math.isfinite(total) and (not math.isfinite(best) or total < best - 1e-4 * abs(best))
            if improved:
                best, best_state, since_best, history.best_epoch = total, copy.deepcopy(net.state_dict()), 0, epoch
            else:
                since_best += 1
            bar.set_postfix(val=f"{total:.3f}", best=history.best_epoch, refresh=False)
            if since_best >= patience:
                history.stopped = f"early stop at epoch {epoch}: no validation gain for {patience} epochs"
                break
        unsaved += 1
        if path is not None and unsaved >= every and epoch < max_epochs - 1:  # the loop goes on: save its state
            began = time.perf_counter()
            write_checkpoint(path, {
                "format": CHECKPOINT_FORMAT, "version": CHECKPOINT_VERSION, "fingerprint": dict(fingerprint or {}),
                "environment": environment(),
                "epoch": epoch, "net": net.state_dict(), "optimiser": optimiser.state_dict(),
                # the best weights are those of this very epoch unless validation has not improved since
                "best_state": None if x_val is None or since_best == 0 else best_state,
                "best": best, "since_best": since_best, "history": dataclasses.asdict(history),
                "rng": get_rng_state(rng),
            })  # fmt: skip
            ended = time.perf_counter()
            if checkpoint_every is None:
                every = checkpoint_interval((began - last_saved) / unsaved, ended - began)
            unsaved, last_saved = 0, ended
    bar.close()
    if not history.stopped:
        history.stopped = f"reached max_epochs={max_epochs}"
    net.load_state_dict(best_state)
    discard_checkpoint(path)
    return history


def evaluate(
    net: IDAENet, objective: str, x: torch.Tensor, y: torch.Tensor, w: torch.Tensor, noise: float,
    reconstruction_weight: float, contrastive_weight: float = 0.0,
) -> tuple[float, float, float]:
    """Validation (objective, reconstruction, loss) with a fixed corruption draw, so epochs are compared on
    the same noise."""
    net.eval()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(12345)
        with torch.set_grad_enabled(objective == "dsm"):
            main, rec, total = losses(net, objective, x, y, w, noise, reconstruction_weight, False, contrastive_weight)
    return main.item(), rec.item(), total.item()


# ------------------------------------------------------------------------------------------ checkpoints


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
