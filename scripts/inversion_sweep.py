"""The inversion benchmark in the harder synthetic setting, too long for the report's time budget (about 6 minutes
per seed on 2 cores), so it runs in `make sweep` and writes its table for notebook 05 to show:

    data/inversion_harder.csv     one row per (seed, method): per-patient median Pearson r and R² of the predicted
                                  against the true change, and for the subagged ensemble its 90% interval coverage
    data/inversion_harder.json    the command, seeds, versions, thread count and git commit

The setting: `make_cohort` with 3 mixing layers, 600 genes, 6 sources and 5% missing clinical cells (the harder
cohort of notebook 04); its first 1,500 patients train (the last 225 of them for early stopping), the next 500
are held out, and every held-out patient whose true ER status is negative is flipped to ER+. Methods: the default
model (`IDAE(latent_dim=6, seed=seed)`), the same model without the products of clinical columns in the factors'
model, the subagged ensemble of notebook 05 (5 members, each on its own 80% of the training patients), and every
inversion baseline, fitted on all 1,500 training patients.

    python scripts/inversion_sweep.py [--seeds 5] [--out data]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import warnings
from pathlib import Path

import pandas as pd
from identifiability_sweep import provenance
from tqdm import tqdm

from idae import IDAE
from idae import casestudy as cs
from idae.baselines import INVERSION_METHODS, fit_inversion
from idae.files import replaced_file
from idae.metrics import interval_coverage
from idae.synthetic import make_cohort

N_TRAIN, N_FIT, N_TEST = 1500, 1275, 500


def run_seed(seed: int) -> list[dict]:
    """The rows of one cohort seed (the seed draws the cohort and every model's initialisation)."""
    cohort = make_cohort(n_samples=N_TRAIN + N_TEST, n_genes=600, latent_dim=6, depth=3, missing=0.05, seed=seed)
    x, y, y_true = cohort.genomic, cohort.clinical, cohort.clinical_true
    ids = x.index
    fit_ids, val_ids, train_ids, test_ids = ids[:N_FIT], ids[N_FIT:N_TRAIN], ids[:N_TRAIN], ids[N_TRAIN:]
    source = test_ids[(y_true.loc[test_ids, "er"].astype(str) == "neg").to_numpy()]
    truth = cohort.counterfactual({"er": "pos"}).loc[source]
    rows = []

    def score(method: str, predicted: pd.DataFrame, began: float, **extra: float) -> None:
        medians = cs.per_patient(predicted, x.loc[source], truth).median()
        rows.append({"seed": seed, "method": method, "pearson": medians["pearson"], "r2": medians["r2"], **extra,
                     "seconds": time.perf_counter() - began})  # fmt: skip

    def fit(g: pd.DataFrame, c: pd.DataFrame, member_seed: int) -> IDAE:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the identifiability condition report, read elsewhere
            return IDAE(latent_dim=6, seed=member_seed, progress=False).fit(
                g, c, validation=(x.loc[val_ids], y.loc[val_ids]))

    began = time.perf_counter()
    single = fit(x.loc[fit_ids], y.loc[fit_ids], seed)
    score("idae", single.invert(x.loc[source], y.loc[source], {"er": "pos"}), began)
    began = time.perf_counter()
    plain = single.refit_inversion(x.loc[fit_ids], y.loc[fit_ids], latent_interactions=False)
    score("idae, no interactions", plain.invert(x.loc[source], y.loc[source], {"er": "pos"}), began)
    began = time.perf_counter()
    ensemble = cs.subagged(lambda g, c, m: fit(g, c, 100 * seed + m), x.loc[fit_ids], y.loc[fit_ids], progress=False)
    members = ensemble.profiles(x.loc[source], y.loc[source], {"er": "pos"})
    coverage = {f"coverage ({kind})": interval_coverage(lower, upper, truth.to_numpy())
                for kind, (lower, upper) in cs.intervals(members, scale=ensemble.interval_scale).items()}  # fmt: skip
    score("idae, subagged ensemble", pd.DataFrame(members.mean(axis=0), index=source, columns=x.columns), began,
          **coverage)  # fmt: skip
    for name in INVERSION_METHODS:
        began = time.perf_counter()
        predicted = fit_inversion(name, x.loc[train_ids], y.loc[train_ids]).predict(x.loc[source], y.loc[source],
                                                                                   {"er": "pos"})  # fmt: skip
        score(name, predicted, began)
    return rows


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--out", default="data")
    args = parser.parse_args(argv)
    if args.seeds < 1:
        parser.error(f"--seeds must be at least 1, got {args.seeds}")
    seeds = list(range(args.seeds))
    rows = [row for seed in tqdm(seeds, desc="inversion, harder setting") for row in run_seed(seed)]
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    with replaced_file(out / "inversion_harder.csv") as tmp:
        pd.DataFrame(rows).to_csv(tmp, index=False, float_format="%.4f")
    record = provenance(argv, seeds, script="scripts/inversion_sweep.py")
    with replaced_file(out / "inversion_harder.json") as tmp:
        tmp.write_text(json.dumps(record, indent=1) + "\n")
    table = pd.DataFrame(rows).groupby("method", sort=False)[["pearson", "r2"]].median()
    print("median over the cohort seeds, as notebook 05 shows it")
    print(table.round(3).to_string())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
