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

With --semi-seeds N, also the semi-synthetic benchmark of notebook 05 on N seeds (notebook 05 itself runs 2):

    data/inversion_semi.csv       one row per (setting, seed, method): per-patient median Pearson r and R²
    data/inversion_semi.json      its provenance

the processed cohort of notebook 01 (its training patients fit, early stopping on its validation patients, every
other patient held out) plus a hidden binary column moving 5% of the genes (`make_semisynthetic`); each held-out
patient is flipped to the other level. Methods: the default model, the same fit with the state path's direction
read off every moved gene (`state_direction_null=0.5`) and without the state path, and every inversion baseline.

    python scripts/inversion_sweep.py [--seeds 5] [--semi-seeds 0] [--out data]     (--seeds 0: semi only)
"""

from __future__ import annotations

import argparse
import sys
import time
import warnings
from pathlib import Path

import pandas as pd
from identifiability_sweep import provenance, write_with_provenance
from tqdm import tqdm

from idae import IDAE
from idae import casestudy as cs
from idae.data import Prepared, read_processed
from idae.inversion_baselines import INVERSION_METHODS, fit_inversion
from idae.metrics import interval_coverage, per_patient_delta
from idae.semisynthetic import SETTINGS as SEMI_SETTINGS
from idae.semisynthetic import make_semisynthetic
from idae.synthetic import make_cohort

N_TRAIN, N_FIT, N_TEST = 1500, 1275, 500
# the inversion designs compared on idae.semisynthetic.SETTINGS (refits of one trained model)
SEMI_DESIGNS = {
    "idae": {},
    "idae: state direction from every moved gene": {"state_direction_null": 0.5},
    "idae: no state path": {"state_path": False},
    "idae: direct path on residuals": {"direct_basis": "residuals"},
    "idae: direct path on totals": {"direct_basis": "totals"},
}


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
        predicted = fit_inversion(name, x.loc[train_ids], y.loc[train_ids]).invert(x.loc[source], y.loc[source],
                                                                                   {"er": "pos"})  # fmt: skip
        score(name, predicted, began)
    return rows


def run_semi(cohort: Prepared, setting: str, seed: int) -> list[dict]:
    """The rows of one semi-synthetic setting and seed on the processed `cohort` (the seed draws the hidden column,
    its effect and the model's initialisation, as in notebook 05)."""
    fit_rows, validation = cohort.split == "train", cohort.split == "validation"
    held = ~fit_rows
    data = make_semisynthetic(cohort.genomic, cohort.clinical, seed=seed, **SEMI_SETTINGS[setting])
    g, c = data.genomic, data.clinical
    changes, truth = data.flip_to_other(g.index[held])  # each patient to the other level
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the identifiability condition report, read elsewhere
        model = IDAE(latent_dim=6, seed=seed, progress=False).fit(g[fit_rows], c[fit_rows],
                                                                   validation=(g[validation], c[validation]))
    predictors = {name: cs.Ensemble([model.refit_inversion(g[fit_rows], c[fit_rows], **design)])
                  for name, design in SEMI_DESIGNS.items()}  # fmt: skip
    predictors |= {name: fit_inversion(name, g[fit_rows], c[fit_rows]) for name in INVERSION_METHODS}
    rows = []
    for name, predictor in predictors.items():
        scores = per_patient_delta(predictor.invert(g[held], c[held], changes) - g[held], truth)
        rows.append({"setting": setting, "seed": seed, "method": name, "pearson": scores["pearson"].median(),
                     "r2": scores["r2"].median()})  # fmt: skip
    return rows


def write_table(rows: list[dict], out: Path, name: str, argv: list[str], seeds: list[int]) -> None:
    """`name`.csv and its provenance `name`.json in `out`."""
    record = provenance(argv, seeds, script="scripts/inversion_sweep.py")
    write_with_provenance(pd.DataFrame(rows), out, name, record, float_format="%.4f")


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, default=5, help="harder-setting cohort seeds (0: skip it)")
    parser.add_argument("--semi-seeds", type=int, default=0, help="semi-synthetic seeds (0: skip it)")
    parser.add_argument("--out", default="data")
    args = parser.parse_args(argv)
    for name in ("seeds", "semi_seeds"):
        if getattr(args, name) < 0:
            parser.error(f"--{name.replace('_', '-')} must be non-negative, got {getattr(args, name)}")
    if args.seeds == args.semi_seeds == 0:
        parser.error("nothing to run: --seeds and --semi-seeds are both 0")
    out = Path(args.out)
    processed = out / "processed"
    if args.semi_seeds and not (processed / "manifest.json").exists():
        parser.error(f"--semi-seeds needs the processed cohort in {processed}: run notebook 01 first (make all)")
    if args.seeds:
        seeds = list(range(args.seeds))
        rows = [row for seed in tqdm(seeds, desc="inversion, harder setting") for row in run_seed(seed)]
        write_table(rows, out, "inversion_harder", argv, seeds)
        table = pd.DataFrame(rows).groupby("method", sort=False)[["pearson", "r2"]].median()
        print("harder setting, median over the cohort seeds, as notebook 05 shows it")
        print(table.round(3).to_string())
    if args.semi_seeds:
        seeds = list(range(args.semi_seeds))
        runs = [(setting, seed) for setting in SEMI_SETTINGS for seed in seeds]
        cohort = read_processed(processed)
        rows = [row for setting, seed in tqdm(runs, desc="inversion, semi-synthetic") for row in
                run_semi(cohort, setting, seed)]  # fmt: skip
        write_table(rows, out, "inversion_semi", argv, seeds)
        table = pd.DataFrame(rows).pivot_table(index="method", columns="setting", values=["pearson", "r2"],
                                               aggfunc="median", sort=False)  # fmt: skip
        print("semi-synthetic, median over the seeds")
        print(table.round(3).to_string())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
