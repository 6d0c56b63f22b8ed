"""Seeding and the training loop: warm-up then cosine decay, clipping, early stopping, NaN guard."""

from __future__ import annotations

import copy
import math
import os
import random
import sys
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch
from tqdm import tqdm

from idae.model import IDAENet, dsm_loss, infonce_loss, reconstruction_loss

OBJECTIVES = ("infonce", "dsm")


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

    def val_total(self, weight: float) -> list[float]:
        return [a + weight * b for a, b in zip(self.val_objective, self.val_reconstruction, strict=True)]


def lr_factor(epoch: int, warmup: int, total: int) -> float:
    """Linear warm-up over `warmup` epochs, then cosine decay to 5% of the base rate at `total`."""
    if epoch < warmup:
        return (epoch + 1) / warmup
    progress = (epoch - warmup) / max(1, total - warmup)
    return 0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))


def losses(
    net: IDAENet, objective: str, x: torch.Tensor, y: torch.Tensor, w: torch.Tensor, noise: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """(objective term, reconstruction term) on one batch."""
    if objective == "infonce":
        main = infonce_loss(net, x, y, w)
    else:
        main = dsm_loss(net, x, y, w, noise)
    return main, reconstruction_loss(net, x, w, noise)


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
    max_epochs: int,
    batch_size: int,
    learning_rate: float,
    weight_decay: float,
    warmup_epochs: int,
    patience: int,
    clip_norm: float,
    progress: bool = True,
) -> History:
    """Fit `net` in place and return its history; the weights kept are those of the best epoch.

    `design_train()` returns a fresh (n_train, design) tensor each epoch, so missing clinical cells
    are re-drawn from their prior every time. Without validation data the last epoch is kept.
    A non-finite loss stops training with a warning and keeps the last good weights.
    """
    history = History()
    optimiser = torch.optim.AdamW(net.parameters(), lr=learning_rate, weight_decay=weight_decay)
    n = len(x_train)
    batch_size = min(batch_size, n)
    n_batches = max(1, n // batch_size)  # drop the ragged last batch: contrastive batches stay comparable
    best, best_state, since_best = math.inf, copy.deepcopy(net.state_dict()), 0
    bar = tqdm(range(max_epochs), desc=f"fit ({objective})", disable=not progress, file=sys.stderr,
               mininterval=2.0, ncols=90, leave=False)
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
                main, rec = losses(net, objective, x_train[idx], y_train[idx], w_train[idx], noise)
            loss = main.float() + reconstruction_weight * rec.float()
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
                return history
            optimiser.step()
            sums += [main.item(), rec.item()]
        history.train_objective.append(sums[0] / n_batches)
        history.train_reconstruction.append(sums[1] / n_batches)
        history.learning_rate.append(optimiser.param_groups[0]["lr"])
        if x_val is None:
            best_state, history.best_epoch = copy.deepcopy(net.state_dict()), epoch
            continue
        val_main, val_rec = evaluate(net, objective, x_val, y_val, w_val, noise)
        history.val_objective.append(val_main)
        history.val_reconstruction.append(val_rec)
        total = val_main + reconstruction_weight * val_rec
        improved = math.isfinite(total) and (not math.isfinite(best) or total < best - 1e-4 * abs(best))
        if improved:
            best, best_state, since_best, history.best_epoch = total, copy.deepcopy(net.state_dict()), 0, epoch
        else:
            since_best += 1
        bar.set_postfix(val=f"{total:.3f}", best=history.best_epoch, refresh=False)
        if since_best >= patience:
            history.stopped = f"early stop at epoch {epoch}: no validation gain for {patience} epochs"
            break
    bar.close()
    if not history.stopped:
        history.stopped = f"reached max_epochs={max_epochs}"
    net.load_state_dict(best_state)
    return history


def evaluate(
    net: IDAENet, objective: str, x: torch.Tensor, y: torch.Tensor, w: torch.Tensor, noise: float
) -> tuple[float, float]:
    """Validation losses with a fixed corruption draw, so epochs are compared on the same noise."""
    net.eval()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(12345)
        with torch.set_grad_enabled(objective == "dsm"):
            main, rec = losses(net, objective, x, y, w, noise)
    return main.item(), rec.item()
