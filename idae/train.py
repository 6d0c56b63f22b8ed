"""Seeding and the training loop: warm-up then cosine decay, clipping, early stopping, NaN guard, checkpoints
(written and resumed by `idae.checkpoint`)."""

from __future__ import annotations

import copy
import dataclasses
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

from idae.checkpoint import checkpoint_interval, checkpoint_path, discard_checkpoint, resume, save
from idae.model import IDAENet, dsm_loss, elbo_loss, infonce_loss, reconstruction_loss

OBJECTIVES = ("ivae", "infonce", "dsm")


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


@dataclass(frozen=True)
class Objective:
    """What training minimises, on one batch: `objective(net, x, y, w)` returns (objective term, reconstruction
    term, the loss to minimise), for profiles x (n, genes), design rows y (n, q) and patient weights w (n,).

    "ivae": the negative ELBO plus `contrastive_weight` × the InfoNCE term of the same Gaussian head (which
    clinical state goes with each profile), both in nats per patient and divided by the gene count: the ELBO
    grows with the panel and the InfoNCE term (at most log batch size) does not, so the weight means the same
    whatever the panel's size and the term matters most where the likelihood carries least (few dimensions).
    The ELBO holds the decoder's likelihood, so the reconstruction term (squared error per gene of the decoded
    posterior draw; of the mean in eval mode) is only reported.
    "infonce" and "dsm" add the denoising reconstruction term with `reconstruction_weight`; with `detach_decoder`
    that term trains the decoder only. `noise` is the corruption sd of the genes, in gene sds.
    """

    name: str
    noise: float = 0.0
    reconstruction_weight: float = 1.0
    contrastive_weight: float = 0.0
    detach_decoder: bool = False

    @property
    def needs_gradients(self) -> bool:
        """Score matching differentiates the energy with respect to x, so it needs autograd even to evaluate."""
        return self.name == "dsm"

    def __call__(self, net: IDAENet, x: torch.Tensor, y: torch.Tensor,
                 w: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:  # fmt: skip
        if self.name == "ivae":
            main, rec = elbo_loss(net, x, y, w, self.noise)
            if self.contrastive_weight > 0:
                return main, rec, main + self.contrastive_weight * infonce_loss(net, x, y, w, self.noise) / x.shape[1]
            return main, rec, main
        main = (infonce_loss if self.name == "infonce" else dsm_loss)(net, x, y, w, self.noise)
        rec = reconstruction_loss(net, x, w, self.noise, detach=self.detach_decoder)
        return main, rec, main + self.reconstruction_weight * rec


@dataclass
class EarlyStopping:
    """The best validation loss so far, the weights of its epoch and the epochs since; training stops once
    `patience` epochs in a row bring no gain of at least 0.01% of the best."""

    patience: int
    best: float = math.inf
    best_state: dict[str, torch.Tensor] = field(default_factory=dict)
    since_best: int = 0

    def update(self, total: float, net: torch.nn.Module, epoch: int, history: History) -> bool:
        """Record this epoch's validation loss `total`; True when training should stop."""
        improved = math.isfinite(total) and (not math.isfinite(self.best) or total < self.best - 1e-4 * abs(self.best))
        if improved:
            self.best, self.best_state, self.since_best = total, copy.deepcopy(net.state_dict()), 0
            history.best_epoch = epoch
        else:
            self.since_best += 1
        return self.since_best >= self.patience


@dataclass
class Checkpoints:
    """Where and how often the loop's state is written: every `every` epochs, or (`fixed` False) as often as keeps
    the writes under 10% of the time (`checkpoint_interval`)."""

    path: Path | None
    fingerprint: Mapping[str, Any]
    every: int
    fixed: bool
    unsaved: int = 0
    last_saved: float = field(default_factory=time.perf_counter)

    def after_epoch(self, epoch: int, net: torch.nn.Module, optimiser: torch.optim.Optimizer, stopping: EarlyStopping,
                    best_is_this_epoch: bool, history: History, rng: np.random.Generator | None) -> None:  # fmt: skip
        self.unsaved += 1
        if self.path is None or self.unsaved < self.every:
            return
        began = time.perf_counter()
        kept = None if best_is_this_epoch else stopping.best_state  # None: the file holds this epoch's weights already
        save(self.path, self.fingerprint, epoch, net, optimiser, kept, stopping.best, stopping.since_best,
             dataclasses.asdict(history), rng)  # fmt: skip
        ended = time.perf_counter()
        if not self.fixed:
            self.every = checkpoint_interval((began - self.last_saved) / self.unsaved, ended - began)
        self.unsaved, self.last_saved = 0, ended


def train_epoch(net: IDAENet, objective: Objective, optimiser: torch.optim.Optimizer, x: torch.Tensor,
                y: torch.Tensor, w: torch.Tensor, batch_size: int, clip_norm: float,
                history: History) -> str:  # fmt: skip
    """One pass over the patients in random batches of `batch_size` (the ragged last batch dropped, so contrastive
    batches stay comparable), appending the epoch's mean terms and learning rate to `history`. Returns "" or what
    turned non-finite ("loss" or "gradient"), whose step is then not taken."""
    net.train()
    n_batches = max(1, len(x) // batch_size)
    order = torch.randperm(len(x))
    sums = np.zeros(2)
    for b in range(n_batches):
        idx = order[b * batch_size : (b + 1) * batch_size]
        # bfloat16 autocast on CUDA (no loss scaling needed); CPU runs stay in float32
        with torch.autocast("cuda", dtype=torch.bfloat16, enabled=x.device.type == "cuda"):
            main, rec, loss = objective(net, x[idx], y[idx], w[idx])
        loss = loss.float()
        if not torch.isfinite(loss):
            return "loss"
        optimiser.zero_grad(set_to_none=True)
        loss.backward()
        # a finite loss can still have non-finite gradients; one step with them poisons the weights
        if not torch.isfinite(torch.nn.utils.clip_grad_norm_(net.parameters(), clip_norm)):
            return "gradient"
        optimiser.step()
        sums += [main.item(), rec.item()]
    history.train_objective.append(float(sums[0] / n_batches))  # python floats: a checkpoint holds no numpy
    history.train_reconstruction.append(float(sums[1] / n_batches))
    history.learning_rate.append(optimiser.param_groups[0]["lr"])
    return ""


def stop_non_finite(history: History, what: str, epoch: int) -> None:
    """Say in `history.stopped` and in a RuntimeWarning that training stopped on a non-finite `what` (the loop then
    puts back the last good weights)."""
    kept = f"epoch {history.best_epoch}" if history.best_epoch >= 0 else "the initial weights"
    history.stopped = f"non-finite {what} at epoch {epoch}; kept the weights of {kept}"
    warnings.warn(history.stopped, RuntimeWarning, stacklevel=3)


def train(
    net: IDAENet,
    x_train: torch.Tensor,
    design_train: Callable[[], torch.Tensor],
    w_train: torch.Tensor,
    x_val: torch.Tensor | None,
    y_val: torch.Tensor | None,
    w_val: torch.Tensor | None,
    *,
    objective: Objective,
    max_epochs: int,
    batch_size: int,
    learning_rate: float,
    weight_decay: float,
    warmup_epochs: int,
    patience: int,
    clip_norm: float,
    progress: bool = True,
    checkpoint: str | os.PathLike | None = None,
    checkpoint_every: int | None = None,
    fingerprint: Mapping[str, Any] | None = None,
    rng: np.random.Generator | None = None,
) -> History:
    """Fit `net` in place to minimise `objective` and return its history; the weights kept are those of the best
    epoch.

    `design_train()` returns a fresh (n_train, design) tensor each epoch, so missing clinical cells
    are re-drawn from their prior every time. Without validation data the last epoch is kept.
    A non-finite loss stops training with a warning and keeps the last good weights.

    With `checkpoint` (a file path), the loop's whole state is written there atomically at the end of
    every `checkpoint_every` epochs (None: see `checkpoint_interval`), and an existing file is resumed
    from, provided its `fingerprint` (see `fingerprint`) matches; `rng` is the numpy generator
    `design_train` draws from, saved and restored with torch's and python's. The file is deleted when
    training ends (not when an exception interrupts it).
    """
    history, start = History(), 0
    optimiser = torch.optim.AdamW(net.parameters(), lr=learning_rate, weight_decay=weight_decay)
    stopping = EarlyStopping(patience, best_state=copy.deepcopy(net.state_dict()))
    path = checkpoint_path(checkpoint) if checkpoint is not None else None
    if path is not None and (path.exists() or path.is_symlink()):
        history, stopping.best, stopping.best_state, stopping.since_best, start = resume(
            path, fingerprint or {}, net, optimiser, rng, max_epochs, History)  # fmt: skip
    saving = Checkpoints(path, fingerprint or {}, checkpoint_every or 1, fixed=checkpoint_every is not None)
    bar = tqdm(range(start, max_epochs), desc=f"fit ({objective.name})", disable=not progress, file=sys.stderr,
               mininterval=2.0, ncols=90, leave=False, initial=start, total=max_epochs)
    for epoch in bar:
        for group in optimiser.param_groups:
            group["lr"] = learning_rate * lr_factor(epoch, warmup_epochs, max_epochs)
        failed = train_epoch(net, objective, optimiser, x_train, design_train(), w_train,
                             min(batch_size, len(x_train)), clip_norm, history)  # fmt: skip
        if failed:
            stop_non_finite(history, failed, epoch)
            break
        if x_val is None:
            stopping.best_state, history.best_epoch = copy.deepcopy(net.state_dict()), epoch
        else:
            val_main, val_rec, total = evaluate(net, objective, x_val, y_val, w_val)
            history.val_objective.append(val_main)
            history.val_reconstruction.append(val_rec)
            stop = stopping.update(total, net, epoch, history)
            bar.set_postfix(val=f"{total:.3f}", best=history.best_epoch, refresh=False)
            if stop:
                history.stopped = f"early stop at epoch {epoch}: no validation gain for {patience} epochs"
                break
        if epoch < max_epochs - 1:  # the loop goes on: its state is worth saving
            saving.after_epoch(epoch, net, optimiser, stopping, x_val is None or stopping.since_best == 0, history,
                               rng)  # fmt: skip
    bar.refresh()  # the bar refreshes every few seconds: show where training ended before it closes
    bar.close()
    if not history.stopped:
        history.stopped = f"reached max_epochs={max_epochs}"
    net.load_state_dict(stopping.best_state)
    discard_checkpoint(path)
    return history


def evaluate(net: IDAENet, objective: Objective, x: torch.Tensor, y: torch.Tensor,
             w: torch.Tensor) -> tuple[float, float, float]:  # fmt: skip
    """Validation (objective, reconstruction, loss) with a fixed corruption draw, so epochs are compared on
    the same noise."""
    net.eval()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(12345)
        with torch.set_grad_enabled(objective.needs_gradients):
            main, rec, total = objective(net, x, y, w)
    return main.item(), rec.item(), total.item()
