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
        history, best, best_state, since_best, start = resume(path, fingerprint or {}, net, optimiser, rng,
                                                              max_epochs, History)  # fmt: skip
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
            # the best weights are those of this very epoch unless validation has not improved since
            kept = None if x_val is None or since_best == 0 else best_state
            save(path, fingerprint or {}, epoch, net, optimiser, kept, best, since_best, dataclasses.asdict(history),
                 rng)
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
