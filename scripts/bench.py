"""Speed and memory of `idae` beside the design's old genes × genes encoder (run by `make bench`).

Prints tables; it is not a test. Every configuration runs in a fresh subprocess (OMP_NUM_THREADS=2),
so a peak RSS never carries over from one configuration to the next:

- per configuration (genes × patients × architecture): parameter count of the whole network, median
  fit time per epoch over a few epochs of a default `IDAE.fit` (batch 256, validation 15%), and
  peak RSS growth of the child process over its footprint after imports (`resource.getrusage`);
- the old architecture reads every gene and has an encoder whose first layer is genes × genes; it is skipped
  when its estimated footprint exceeds a memory cap, and killed (reported "OOM/killed") if its RSS crosses it;
- the cost of training checkpoints (`IDAE.fit(checkpoint=...)`): the same fit without them, writing one
  every epoch, and at the default interval;
- two wall-time targets: a default fit on the real gse1992 cohort and on a synthetic
  2,000-patient × 600-gene cohort, each against 60 s, beside the seed model's fit of the same data in the
  same run;
- one inversion target: a default `IDAE.invert` of every gse1992 patient (ER flipped) against 5 s, beside
  the `linear_state` baseline's prediction of the same patients in the same run.

The machine is shared and noisy: read the genes×genes / idae ratios rather than absolute times.

    python scripts/bench.py            # full run (about 5-10 minutes on 2 cores)
    python scripts/bench.py --quick    # smoke run: 1k genes, no targets
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

THREADS = "2"
GENES = (1000, 5000, 15000, 20000)
PATIENTS = (124, 1240)  # the gse1992 cohort's size, and 10×
MEMORY_CAP = 12 * 1024**3  # bytes: configurations estimated (or seen) above this are skipped (or killed)
TARGET_S = 60.0
INVERT_TARGET_S = 5.0
ROOT = Path(__file__).resolve().parent.parent

# ------------------------------------------------------------------------------------------ child side


def synthetic_cohort(n_patients: int, n_genes: int, seed: int = 0):
    """A cohort shaped like gse1992: er / node / grade / size_class / age with a few missing cells,
    and genes = low-rank structure + ER and grade effects on some genes + noise."""
    import pandas as pd

    rng = np.random.default_rng(seed)
    ids = [f"s{i:05d}" for i in range(n_patients)]
    er = rng.choice(["neg", "pos"], n_patients, p=[0.3, 0.7])
    grade = rng.choice(["1", "2", "3"], n_patients, p=[0.2, 0.4, 0.4])
    node = rng.choice(["neg", "pos"], n_patients)
    size = rng.choice(["1", "2", "3"], n_patients)
    age = rng.normal(55, 11, n_patients)
    clinical = pd.DataFrame({"er": er, "node": node, "grade": grade, "size_class": size, "age": age}, index=ids).astype(
        {"er": "category", "node": "category", "grade": "category", "size_class": "category"}
    )
    for col in clinical.columns:  # about 2% missing cells per column
        clinical.loc[rng.random(n_patients) < 0.02, col] = np.nan
    rank = 8
    x = rng.standard_normal((n_patients, rank)).astype(np.float32) @ rng.standard_normal((rank, n_genes)).astype(
        np.float32
    )
    x += rng.standard_normal((n_patients, n_genes), dtype=np.float32)
    k = max(1, n_genes // 20)
    x[:, :k] += 2.0 * (er == "pos")[:, None]
    x[:, k : 2 * k] += 1.0 * (grade.astype(int) - 2)[:, None]
    genomic = pd.DataFrame(x, index=ids, columns=[f"G{j}" for j in range(n_genes)])
    return clinical, genomic


def rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


class _Enough(Exception):
    """Raised at an epoch boundary once enough epochs are timed."""


def child_epochs(spec: dict) -> dict:
    """Fit a default IDAE for a few epochs; time each epoch at its boundaries."""
    import idae
    import idae.estimator as estimator

    base = rss_bytes()
    clinical, genomic = synthetic_cohort(spec["patients"], spec["genes"])
    options = architecture(spec["genes"], spec["arch"])
    model = idae.IDAE(latent_dim=6, max_epochs=spec["epochs"], progress=False, **options)
    marks: list[float] = []
    real_train = estimator.train

    def timed_train(net, x_train, design_train, *args, **kwargs):
        def design():  # called once at the start of every epoch
            marks.append(time.perf_counter())
            done = len(marks) - 1
            elapsed = marks[-1] - marks[0]
            # a few epochs within the budget; a single one when one epoch alone is very slow
            if (done >= spec["min_epochs"] and elapsed > spec["budget_s"]) or (
                done >= 1 and elapsed > 3 * spec["budget_s"]
            ):
                raise _Enough
            return design_train()

        return real_train(net, x_train, design, *args, **kwargs)

    estimator.train = timed_train
    try:
        model.fit(genomic, clinical)
        marks.append(time.perf_counter())  # end of the last epoch (+ fit's short epilogue; the median ignores it)
    except _Enough:
        pass
    epochs = np.diff(marks)
    if len(epochs) > 2:
        epochs = epochs[1:]  # the first epoch pays one-off allocations
    params = sum(p.numel() for p in model.net_.parameters())
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    return {
        "params": params,
        "epoch_s": float(np.median(epochs)),
        "n_epochs": int(len(epochs)),
        "peak_delta_mb": (peak - base) / 2**20,
    }


def child_target(spec: dict) -> dict:
    """Wall time of a default fit (or of the seed model's, `spec["seed_model"]`), data loading excluded."""
    import idae
    from idae.benchmarks import SEED_MODEL

    if spec["data"] == "gse1992":
        clinical, genomic = gse1992()
    else:
        clinical, genomic = synthetic_cohort(spec["patients"], spec["genes"])
    start = time.perf_counter()
    options = SEED_MODEL if spec.get("seed_model") else {}
    model = idae.IDAE(latent_dim=6, progress=False, **options).fit(genomic, clinical)
    wall = time.perf_counter() - start
    return {
        "shape": f"{genomic.shape[0]} × {genomic.shape[1]}",
        "wall_s": wall,
        "epochs": len(model.history_.train_objective),
        "stopped": model.history_.stopped,
    }


def gse1992():
    """The gse1992 cohort as notebook 01 aligns it by default: (clinical, genomic)."""
    import idae

    clinical, genomic = idae.load_cohort("gse1992")
    aligned = idae.align(clinical[["er", "node", "grade", "size_class", "age"]], genomic)
    return aligned.clinical, aligned.genomic


def child_invert(spec: dict) -> dict:
    """Wall time of a default `IDAE.invert` of every gse1992 patient to ER-positive, and of the `linear_state`
    baseline's prediction of the same, each the best of three in this warm process (the fits are not timed)."""
    import idae
    from idae.inversion_baselines import fit_inversion

    clinical, genomic = gse1992()
    model = idae.IDAE(latent_dim=6, progress=False).fit(genomic, clinical)
    baseline = fit_inversion("linear_state", genomic, clinical)
    walls: dict[str, list[float]] = {"idae": [], "linear_state": []}
    for _ in range(3):
        for label, call in (("idae", model.invert), ("linear_state", baseline.invert)):
            start = time.perf_counter()
            call(genomic, clinical, {"er": "pos"})
            walls[label].append(time.perf_counter() - start)
    return {"shape": f"{genomic.shape[0]} × {genomic.shape[1]}", **{k: min(v) for k, v in walls.items()}}


def child_checkpoint(spec: dict) -> dict:
    """Wall time of one short fit without checkpoints, checkpointing every epoch, and at the default
    interval (`checkpoint_every=None`), each the best of two runs in this warm process."""
    import tempfile

    import idae

    clinical, genomic = synthetic_cohort(spec["patients"], spec["genes"])
    settings = {"latent_dim": 6, "max_epochs": spec["epochs"], "patience": 10**6, "progress": False}
    idae.IDAE(**{**settings, "max_epochs": 2}).fit(genomic, clinical)  # warm-up: allocator, kernels
    walls: dict[str, list[float]] = {"none": [], "every": [], "auto": []}
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "fit.ckpt"
        for _ in range(2):
            for label, checkpoint, every in (("none", None, None), ("every", path, 1), ("auto", path, None)):
                start = time.perf_counter()
                idae.IDAE(**settings).fit(genomic, clinical, checkpoint=checkpoint, checkpoint_every=every)
                walls[label].append(time.perf_counter() - start)
    return {label: min(times) for label, times in walls.items()}


# ----------------------------------------------------------------------------------------- parent side


def architecture(genes: int, arch: str) -> dict:
    """IDAE arguments: the default ("idae"), or every gene in with a genes × genes first layer ("dense")."""
    return {} if arch == "idae" else {"components_per_factor": 0, "encoder_hidden": (genes, 128)}


def count_params(genes: int, arch: str, latent_dim: int = 6, design_width: int = 16) -> int:
    """Trainable parameters of the whole IDAENet, without building it (the dense one can be gigabytes).
    design_width 16: er 2 + node 2 + grade 3 + size_class 3 levels, age 1, five missing masks."""

    def mlp(sizes: list[int]) -> int:
        return sum(a * b + b for a, b in zip(sizes[:-1], sizes[1:], strict=True))

    d = latent_dim
    k = 2 * d if arch == "idae" else genes  # the encoder's input: whitened components, or every gene
    hidden = (128, 128) if arch == "idae" else (genes, 128)
    encoder = mlp([k, d]) + mlp([k, *hidden, d]) + 1  # linear path, MLP, gain
    decoder = mlp([d, genes]) + mlp([d, 128, 128, genes]) + 1
    return encoder + mlp([design_width, 2 * d]) + decoder + genes + d + 1  # + genes' noise, posterior sd, scale


def estimate_bytes(genes: int, patients: int, arch: str) -> int:
    """A rough peak: about 10 copies of the parameters (weights, spectral-normalised weight, their
    gradients, two Adam moments, best-state copies; 9.1 GB measured for 15k genes × genes), plus
    activations and the data tables."""
    activations = min(patients, 256) * genes * 4 * 16 + patients * genes * 8 * 4
    return count_params(genes, arch) * 4 * 10 + activations + 600 * 2**20


def run_child(kind: str, spec: dict, timeout: float, cap: int) -> dict:
    """Run one configuration in a fresh interpreter; kill it if its RSS crosses `cap` or time runs out."""
    import psutil

    env = {
        **os.environ,
        "OMP_NUM_THREADS": THREADS,
        "MKL_NUM_THREADS": THREADS,
        "OPENBLAS_NUM_THREADS": THREADS,
        "PYTHONHASHSEED": "0",
    }
    cmd = [sys.executable, str(Path(__file__).resolve()), f"--{kind}", json.dumps(spec)]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT)
    watched = psutil.Process(proc.pid)
    start, reason = time.monotonic(), ""
    while proc.poll() is None:
        try:
            if watched.memory_info().rss > cap:
                reason = "OOM/killed"
        except psutil.NoSuchProcess:
            break
        if time.monotonic() - start > timeout:
            reason = "timeout"
        if reason:
            proc.kill()
            break
        time.sleep(0.1)
    out, err = proc.communicate()
    if reason:
        return {"error": reason}
    if proc.returncode != 0:
        last = (err.strip().splitlines() or ["?"])[-1]
        return {"error": "OOM/failed" if "memory" in last.lower() or proc.returncode < 0 else f"failed: {last}"}
    return json.loads(out.strip().splitlines()[-1])


def fmt_int(n: float) -> str:
    return f"{n / 1e6:.2f}M" if n >= 1e6 else f"{n / 1e3:.1f}k"


def measure(genes: int, patients: int, arch: str, quick: bool, cap: int) -> dict:
    """One configuration: the child's measurements, or {"error": ...}; "params" always present."""
    params = count_params(genes, arch)
    need = estimate_bytes(genes, patients, arch)
    if need > cap:
        return {"params": params, "error": f"OOM/skipped (est. {need / 2**30:.0f} GB)"}
    spec = {
        "genes": genes,
        "patients": patients,
        "arch": arch,
        "epochs": 3 if quick else 7,
        "min_epochs": 2 if quick else 3,
        "budget_s": 5.0 if quick else 20.0,
    }
    result = run_child("child", spec, timeout=300, cap=cap)
    if "error" not in result and result["params"] != params:
        print(f"note: {arch} at {genes} genes has {result['params']} parameters, not {params} as computed")
    return {"params": params, **result}


def cells(r: dict) -> str:
    """params, epoch s (epochs timed), peak MB."""
    if "error" in r:
        return f"{fmt_int(r['params']):>10} {r['error']:>25}"
    return f"{fmt_int(r['params']):>10} {r['epoch_s']:>9.3f} ({r['n_epochs']}) {r['peak_delta_mb']:>10.0f}"


def ratio(a: dict, b: dict, key: str) -> str:
    if key in a and key in b:
        return f"{b[key] / max(a[key], 1e-9):.1f}×"
    return "-"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smoke run: 1k genes only, no targets")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--target", help=argparse.SUPPRESS)
    parser.add_argument("--checkpoint", help=argparse.SUPPRESS)
    parser.add_argument("--invert", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child or args.target or args.checkpoint or args.invert:
        import warnings

        warnings.simplefilter("ignore")
        if args.checkpoint:
            result = child_checkpoint(json.loads(args.checkpoint))
        elif args.invert:
            result = child_invert(json.loads(args.invert))
        else:
            result = child_epochs(json.loads(args.child)) if args.child else child_target(json.loads(args.target))
        print(json.dumps(result))
        return 0

    import psutil

    cap = int(min(MEMORY_CAP, 0.8 * psutil.virtual_memory().available))
    started = time.monotonic()
    print(
        f"idae bench: OMP_NUM_THREADS={THREADS}, a fresh subprocess per configuration, memory cap "
        f"{cap / 2**30:.1f} GB. Default IDAE (batch 256, 15% validation); 'g×g' = every gene into an encoder "
        "whose first layer is genes × genes, as in the first design."
    )
    print(
        "params = whole network; epoch s = median seconds per fit epoch (epochs timed); peak MB = growth "
        "of the child's max RSS after imports; ratios = g×g / idae.\n"
    )
    header = (
        f"{'genes':>6} {'patients':>8} | {'idae params':>10} {'epoch s':>13} {'peak MB':>10} | "
        f"{'g×g params':>10} {'epoch s':>13} {'peak MB':>10} | {'params':>7} {'time':>6} {'memory':>6}"
    )
    print(header)
    print("-" * len(header))
    for genes in (1000,) if args.quick else GENES:
        for patients in PATIENTS:
            a = measure(genes, patients, "idae", args.quick, cap)
            b = measure(genes, patients, "dense", args.quick, cap)
            print(
                f"{genes:>6} {patients:>8} | {cells(a)} | {cells(b)} | {ratio(a, b, 'params'):>7} "
                f"{ratio(a, b, 'epoch_s'):>6} {ratio(a, b, 'peak_delta_mb'):>6}",
                flush=True,
            )
    print(
        "\ncheckpoints: wall time of the same fit (124 patients, 15% validation, 20 epochs; 8 with --quick) without "
        "checkpoints, writing one every epoch, and at the default interval (writes kept near 10% of the time); "
        "best of two, ratios to no checkpoints"
    )
    header = f"{'genes':>6} | {'none s':>7} | {'every epoch s':>13} {'ratio':>6} | {'default s':>9} {'ratio':>6}"
    print(header)
    print("-" * len(header))
    for genes in (1000,) if args.quick else (1000, 5000, 15000):
        r = run_child("checkpoint", {"genes": genes, "patients": 124, "epochs": 8 if args.quick else 20}, 900, cap)
        if "error" in r:
            print(f"{genes:>6} | {r['error']}")
            continue
        print(
            f"{genes:>6} | {r['none']:>7.2f} | {r['every']:>13.2f} {r['every'] / r['none']:>5.2f}× | "
            f"{r['auto']:>9.2f} {r['auto'] / r['none']:>5.2f}×",
            flush=True,
        )
    if not args.quick:
        print(f"\ntargets: wall time of a default fit, IDAE(latent_dim=6, progress=False).fit, vs {TARGET_S:.0f} s, "
              "beside the seed model's fit of the same data (DSM on every gene, idae.benchmarks.SEED_MODEL)")
        header = f"{'data':<52} {'wall s':>7} {'/ 60 s':>7} {'epochs':>6} {'seed model s':>12} {'ratio':>6}  stopped"
        print(header)
        print("-" * len(header))
        for name, spec in (
            ("gse1992, er,node,grade,size_class,age", {"data": "gse1992"}),
            ("synthetic", {"data": "synthetic", "patients": 2000, "genes": 600}),
        ):
            r = run_child("target", spec, timeout=900, cap=cap)
            seed = run_child("target", {**spec, "seed_model": True}, timeout=900, cap=cap)
            if "error" in r:
                print(f"{name:<52} {r['error']}")
                continue
            label = f"{name} ({r['shape']})"
            verdict = "ok" if r["wall_s"] <= TARGET_S else "OVER TARGET"
            seed_s = f"{seed['wall_s']:>12.1f} {r['wall_s'] / seed['wall_s']:>5.2f}×" if "error" not in seed else (
                f"{seed['error']:>19}")
            print(
                f"{label:<52} {r['wall_s']:>7.1f} {r['wall_s'] / TARGET_S:>7.2f} {r['epochs']:>6} {seed_s}  "
                f"{r['stopped']} [{verdict}]",
                flush=True,
            )
    if not args.quick:
        print(f"\ninversion target: wall time of a default IDAE.invert of every gse1992 patient to ER-positive vs "
              f"{INVERT_TARGET_S:.0f} s, beside the linear_state baseline's invert of the same (best of three)")
        header = f"{'data':<28} {'idae s':>7} {'/ 5 s':>6} {'linear_state s':>14} {'ratio':>6}"
        print(header)
        print("-" * len(header))
        r = run_child("invert", {}, timeout=900, cap=cap)
        if "error" in r:
            print(f"{'gse1992':<28} {r['error']}")
        else:
            verdict = "ok" if r["idae"] <= INVERT_TARGET_S else "OVER TARGET"
            print(f"{'gse1992 (' + r['shape'] + ')':<28} {r['idae']:>7.2f} {r['idae'] / INVERT_TARGET_S:>6.2f} "
                  f"{r['linear_state']:>14.2f} {r['idae'] / r['linear_state']:>5.2f}×  [{verdict}]", flush=True)
    print(f"\nbench took {time.monotonic() - started:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
