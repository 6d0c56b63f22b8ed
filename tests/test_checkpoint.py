"""Checkpointed fits: a fit killed mid-training resumes to the very weights and history of an uninterrupted one;
checkpoints of another run, damaged ones and unsafe ones are refused with IdaeError."""

import dataclasses
import json
import os
import random
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from cohorts import random_cohort

import idae.checkpoint
import idae.train
from idae import IDAE, IdaeError

TESTS = Path(__file__).resolve().parent
# tiny networks, several batches per epoch, no early stop unless a case asks for it
KW = {"latent_dim": 2, "encoder_hidden": (16,), "condition_hidden": (8,), "decoder_hidden": (16,), "batch_size": 16,
      "max_epochs": 25, "patience": 1000, "progress": False, "seed": 3}  # fmt: skip
# validation loss stalls early at this rate, so early stopping ends the fit well before max_epochs
EARLY = {**KW, "max_epochs": 200, "patience": 5, "warmup_epochs": 2, "learning_rate": 2e-2}


def cohort():
    """60 patients × 40 genes with some missing clinical cells (re-drawn every epoch from the numpy generator)."""
    clinical, genomic = random_cohort(60, 40, seed=1)
    clinical.iloc[::4, 0] = np.nan
    clinical.iloc[1::5, 2] = np.nan
    return clinical, genomic


class Unsafe:
    """Unpickling this calls a function: a weights_only load must refuse it before that."""

    def __reduce__(self):
        return (print, ("unpickled",))


def split(clinical, genomic):
    """(train genomic, train clinical, validation pair): the last 12 patients validate."""
    return genomic.iloc[:48], clinical.iloc[:48], (genomic.iloc[48:], clinical.iloc[48:])


# The child fits with a checkpoint and blocks inside the training loop, mid-epoch (one optimiser step into the
# epoch after the checkpoint of epoch kill_at), having told the parent so through a file: the parent then
# SIGKILLs it, so the kill lands in the middle of training, with the child's state already ahead of its checkpoint.
CHILD = textwrap.dedent(
    """
    import json, os, sys, time
    from pathlib import Path
    sys.path.insert(0, {tests!r})
    import idae.checkpoint as C
    import idae.train as T
    from idae import IDAE
    from test_checkpoint import cohort, split

    barrier, kill_at, kw, validated = Path({barrier!r}), {kill_at}, json.loads({kw!r}), {validated}
    seen = {{"epoch": -1, "calls": 0}}
    write, objective = C.write_checkpoint, T.Objective.__call__

    def write_and_note(path, state):
        write(path, state)
        seen["epoch"] = state["epoch"]

    def blocking_objective(self, net, *args):
        if net.training and seen["epoch"] >= kill_at:
            seen["calls"] += 1
            if seen["calls"] == 2:
                tell("blocked")
                time.sleep(600)
        return objective(self, net, *args)

    def tell(word):
        barrier.with_suffix(".tmp").write_text(word)
        os.replace(barrier.with_suffix(".tmp"), barrier)

    C.write_checkpoint, T.Objective.__call__ = write_and_note, blocking_objective
    clinical, genomic = cohort()
    if validated:
        g, c, validation = split(clinical, genomic)
        IDAE(**kw).fit(g, c, validation=validation, checkpoint={checkpoint!r}, checkpoint_every=1)
    else:
        IDAE(**kw).fit(genomic, clinical, checkpoint={checkpoint!r}, checkpoint_every=1)
    tell("finished")
    """
)


def start_killable_fit(tmp_path, kw, kill_at, validated):
    barrier, checkpoint = tmp_path / "barrier", tmp_path / "fit.ckpt"
    code = CHILD.format(tests=str(TESTS), barrier=str(barrier), kill_at=kill_at, kw=json.dumps(kw),
                        validated=validated, checkpoint=str(checkpoint))  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    child = subprocess.Popen([sys.executable, "-c", code], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    return child, barrier, checkpoint


def kill_when_blocked(child, barrier, checkpoint, max_epochs, kill_at):
    """SIGKILL the child once it blocks mid-training; return its checkpoint as it was at the kill."""
    deadline = time.monotonic() + 120
    while not barrier.exists():
        if child.poll() is not None:
            out, err = child.communicate()
            pytest.fail(f"the child fit ended (code {child.returncode}) before it could be killed:\n{err.decode()}")
        assert time.monotonic() < deadline, "the child fit never reached the kill point"
        time.sleep(0.02)
    assert barrier.read_text() == "blocked"
    assert child.poll() is None  # still running, blocked in the training loop
    state = torch.load(checkpoint, weights_only=True)
    child.send_signal(signal.SIGKILL)
    child.communicate(timeout=30)
    assert child.returncode == -signal.SIGKILL
    assert kill_at <= state["epoch"] < max_epochs - 1  # killed well before the end
    assert checkpoint.exists()
    return state


def assert_same_fit(a, b):
    sa, sb = a.net_.state_dict(), b.net_.state_dict()
    assert list(sa) == list(sb)
    for key in sa:
        assert torch.equal(sa[key], sb[key]), key
    assert dataclasses.asdict(a.history_) == dataclasses.asdict(b.history_)
    assert dataclasses.asdict(a.latent_model_) == dataclasses.asdict(b.latent_model_)


@pytest.fixture
def batches(monkeypatch):
    """Counts the training batches run in this process (`batches.clear()` resets)."""
    counted, objective = [], idae.train.Objective.__call__

    def counting(self, net, *args):
        if net.training:
            counted.append(1)
        return objective(self, net, *args)

    monkeypatch.setattr(idae.train.Objective, "__call__", counting)
    return counted


def scramble_random_states():
    """Whatever the process drew before: a resume must not depend on it."""
    torch.manual_seed(987)
    np.random.seed(987)
    random.seed(987)


# ------------------------------------------------------------------------------------ real interruptions


@pytest.mark.parametrize("validated", [False, True], ids=["held-out-split", "validation-early-stop"])
def test_a_fit_killed_mid_training_resumes_to_the_uninterrupted_result(tmp_path, monkeypatch, batches, validated):
    monkeypatch.setenv("OMP_NUM_THREADS", "1")  # the child's thread count: float sums in the same order
    clinical, genomic = cohort()
    g, c, validation = split(clinical, genomic) if validated else (genomic, clinical, None)
    kw = EARLY if validated else KW

    def reference_fit():  # uninterrupted
        model = IDAE(**kw).fit(g, c, validation=validation)
        return model, torch.get_rng_state(), len(batches)

    if validated:  # killed two epochs after the last best one: the weights kept are in the checkpoint only
        reference, rng_after_reference, reference_batches = reference_fit()
        kill_at = reference.history_.best_epoch + 2
        child, barrier, checkpoint = start_killable_fit(tmp_path, kw, kill_at, validated)
    else:  # the reference is fitted while the child runs
        kill_at = 10
        child, barrier, checkpoint = start_killable_fit(tmp_path, kw, kill_at, validated)
        reference, rng_after_reference, reference_batches = reference_fit()
    try:
        state = kill_when_blocked(child, barrier, checkpoint, kw["max_epochs"], kill_at)
    finally:
        if child.poll() is None:
            child.kill()
            child.communicate()
    h = reference.history_
    if validated:  # early stopping after the kill, keeping weights older than the checkpoint's epoch
        assert h.stopped.startswith("early stop") and state["epoch"] < len(h.train_objective) - 1
        assert state["best_state"] is not None and state["since_best"] == 2 and h.best_epoch == state["epoch"] - 2
    else:
        assert h.stopped == f"reached max_epochs={kw['max_epochs']}"

    scramble_random_states()
    batches.clear()
    resumed = IDAE(**kw).fit(g, c, validation=validation, checkpoint=checkpoint)
    assert_same_fit(reference, resumed)
    epochs = len(h.train_objective)  # only the epochs after the checkpoint's were trained again
    assert len(batches) == reference_batches // epochs * (epochs - state["epoch"] - 1)
    assert torch.equal(torch.get_rng_state(), rng_after_reference)
    assert not checkpoint.exists() and not list(tmp_path.glob(".fit.ckpt.*"))


# ------------------------------------------------------------------------------------------ refusals


@pytest.fixture(scope="module")
def interrupted_bytes(tmp_path_factory):
    """The checkpoint a fit interrupted (KeyboardInterrupt) after epoch 4 leaves behind."""
    write = idae.checkpoint.write_checkpoint

    def write_then_interrupt(path, state):
        write(path, state)
        if state["epoch"] == 4:
            raise KeyboardInterrupt

    checkpoint = tmp_path_factory.mktemp("interrupted") / "fit.ckpt"
    clinical, genomic = cohort()
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("OMP_NUM_THREADS", "1")
        mp.setattr(idae.checkpoint, "write_checkpoint", write_then_interrupt)
        with pytest.raises(KeyboardInterrupt):
            IDAE(**KW).fit(genomic, clinical, checkpoint=checkpoint, checkpoint_every=1)
    return checkpoint.read_bytes()


@pytest.fixture
def interrupted(interrupted_bytes, tmp_path, monkeypatch):
    """(checkpoint of an interrupted fit, its clinical and genomic tables)."""
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    checkpoint = tmp_path / "run" / "fit.ckpt"
    checkpoint.parent.mkdir()
    checkpoint.write_bytes(interrupted_bytes)
    clinical, genomic = cohort()
    return checkpoint, clinical, genomic


def test_an_interrupted_in_process_fit_resumes_and_prints_nothing(interrupted, batches, capsys):
    checkpoint, clinical, genomic = interrupted
    capsys.readouterr()
    scramble_random_states()
    resumed = IDAE(**KW).fit(genomic, clinical, checkpoint=str(checkpoint))  # automatic interval now
    assert capsys.readouterr() == ("", "")
    assert len(batches) == 3 * (KW["max_epochs"] - 5)  # 51 training patients, batches of 16: 3 a epoch
    assert not checkpoint.exists()
    assert_same_fit(IDAE(**KW).fit(genomic, clinical), resumed)


def test_resuming_under_another_thread_count_warns(interrupted, monkeypatch):
    checkpoint, clinical, genomic = interrupted
    written = torch.load(checkpoint, weights_only=True)["environment"]
    assert written == {"torch": str(torch.__version__), "threads": 1}
    # as if OMP_NUM_THREADS were 2 now: float sums in another order, no longer bitwise reproducible
    monkeypatch.setattr(idae.checkpoint, "environment", lambda: {**written, "threads": 2})
    with pytest.warns(RuntimeWarning, match="'threads': 1.*'threads': 2.*not be bitwise identical"):
        IDAE(**KW).fit(genomic, clinical, checkpoint=checkpoint)
    assert not checkpoint.exists()


@pytest.mark.parametrize(
    "change, message",
    [
        ({"learning_rate": 2e-3}, r"configuration differs \(learning_rate=0.001 in the checkpoint, 0.002 now\)\."),
        ({"max_epochs": 26}, r"model configuration differs \(max_epochs=25 in the checkpoint, 26 now\)\."),
        # another seed holds out other validation patients: both differ
        ({"seed": 4}, r"configuration differs \(seed=3 in the checkpoint, 4 now\) and the training data differ"),
    ],
)
def test_a_checkpoint_of_another_configuration_is_refused(interrupted, change, message):
    checkpoint, clinical, genomic = interrupted
    before = checkpoint.read_bytes()
    with pytest.raises(IdaeError, match=message) as err:
        IDAE(**{**KW, **change}).fit(genomic, clinical, checkpoint=checkpoint)
    assert str(checkpoint) in str(err.value)
    assert checkpoint.read_bytes() == before  # left alone


@pytest.mark.parametrize("what", ["genomic value", "gene names", "clinical value", "missing cell", "patients"])
def test_a_checkpoint_of_other_data_is_refused(interrupted, what):
    checkpoint, clinical, genomic = interrupted
    genomic, clinical = genomic.copy(), clinical.copy()
    if what == "genomic value":
        genomic.iloc[5, 7] += 1e-3
    elif what == "gene names":
        genomic = genomic.rename(columns={"g3": "G3"})
    elif what == "clinical value":
        clinical.iloc[2, 2] += 1.0
    elif what == "missing cell":
        clinical.iloc[1, 0] = np.nan
    else:
        genomic, clinical = genomic.iloc[1:], clinical.iloc[1:]
    with pytest.raises(IdaeError, match="training data differ") as err:
        IDAE(**KW).fit(genomic, clinical, checkpoint=checkpoint)
    assert str(checkpoint) in str(err.value) and "configuration" not in str(err.value).replace(str(checkpoint), "")


@pytest.mark.parametrize("damage", ["truncated", "empty", "garbage", "pickled object", "not a checkpoint"])
def test_a_damaged_or_unsafe_checkpoint_is_refused(interrupted, damage, tmp_path):
    checkpoint, clinical, genomic = interrupted
    raw = checkpoint.read_bytes()
    if damage == "truncated":
        checkpoint.write_bytes(raw[: len(raw) // 2])
    elif damage == "empty":
        checkpoint.write_bytes(b"")
    elif damage == "garbage":
        checkpoint.write_bytes(os.urandom(4096))
    elif damage == "pickled object":  # would run code if unpickled: refused by weights_only
        torch.save({"format": Unsafe()}, checkpoint)
    else:
        torch.save({"net": torch.zeros(3)}, checkpoint)
    with pytest.raises(IdaeError, match="damaged|not an idae") as err:
        IDAE(**KW).fit(genomic, clinical, checkpoint=checkpoint)
    assert str(checkpoint) in str(err.value)


def test_a_folder_or_non_path_is_not_a_checkpoint(tmp_path):
    clinical, genomic = cohort()
    with pytest.raises(IdaeError, match="is a folder"):
        IDAE(**KW).fit(genomic, clinical, checkpoint=tmp_path)
    with pytest.raises(IdaeError, match="must be a file path"):
        IDAE(**KW).fit(genomic, clinical, checkpoint=3)
    for every in (0, 1.5, True):
        with pytest.raises(IdaeError, match="checkpoint_every must be a positive number of epochs"):
            IDAE(**KW).fit(genomic, clinical, checkpoint=tmp_path / "fit.ckpt", checkpoint_every=every)


def written_epochs(monkeypatch, checkpoint, every, write_seconds=0.0):
    """The epochs a 12-epoch fit checkpoints, each write taking at least `write_seconds`."""
    write, epochs = idae.checkpoint.write_checkpoint, []

    def noting(path, state):
        write(path, state)
        time.sleep(write_seconds)
        epochs.append(state["epoch"])

    monkeypatch.setattr(idae.checkpoint, "write_checkpoint", noting)
    clinical, genomic = cohort()
    IDAE(**{**KW, "max_epochs": 12}).fit(genomic, clinical, checkpoint=checkpoint, checkpoint_every=every)
    return epochs


def test_checkpoint_every_and_the_automatic_interval(tmp_path, monkeypatch):
    checkpoint = tmp_path / "fit.ckpt"
    assert written_epochs(monkeypatch, checkpoint, 1) == list(range(11))  # none after the last epoch
    assert written_epochs(monkeypatch, checkpoint, 4) == [3, 7]
    # writes slower than the epochs: the automatic interval spaces them (at most ~10% of the time writing)
    slow = written_epochs(monkeypatch, checkpoint, None, write_seconds=0.5)
    assert slow[0] == 0 and all(b - a >= 5 for a, b in zip(slow, slow[1:], strict=False))
    assert idae.checkpoint.checkpoint_interval(epoch_seconds=1.0, write_seconds=0.05) == 1
    assert idae.checkpoint.checkpoint_interval(epoch_seconds=0.4, write_seconds=0.1) == 3


def test_completion_removes_the_checkpoint_and_partial_writes(tmp_path, monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    clinical, genomic = cohort()
    checkpoint = tmp_path / "fit.ckpt"
    stale = tmp_path / ".fit.ckpt.abc123.tmp"  # what a kill during a write leaves
    stale.write_bytes(b"partial")
    (tmp_path / "other.tmp").write_bytes(b"not ours")
    plain = IDAE(**{**KW, "max_epochs": 6}).fit(genomic, clinical)
    checked = IDAE(**{**KW, "max_epochs": 6}).fit(genomic, clinical, checkpoint=checkpoint)
    assert_same_fit(plain, checked)  # writing checkpoints changes nothing
    assert sorted(p.name for p in tmp_path.iterdir()) == ["other.tmp"]
