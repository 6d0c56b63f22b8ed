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

With --baselines METHOD ..., only those inversion baselines are fitted (no idae model: a minute, not an hour), on the
same cohorts, seeds and splits, and their rows replace theirs in the existing tables; the provenance keeps the run
that wrote the table and records this one under "updates".
"""

from __future__ import annotations

import argparse
import json
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


def run_seed(seed: int, baselines: list[str] | None = None) -> list[dict]:
    """The rows of one cohort seed (the seed draws the cohort and every model's initialisation); with `baselines`,
    only theirs."""
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

    def score_baselines(names: list[str] | tuple[str, ...]) -> list[dict]:
        for name in names:
            began = time.perf_counter()
            predicted = fit_inversion(name, x.loc[train_ids], y.loc[train_ids]).invert(x.loc[source], y.loc[source],
                                                                                       {"er": "pos"})  # fmt: skip
            score(name, predicted, began)
        return rows

    if baselines is not None:
        return score_baselines(baselines)
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
    return score_baselines(INVERSION_METHODS)


def run_semi(cohort: Prepared, setting: str, seed: int, baselines: list[str] | None = None) -> list[dict]:
    """The rows of one semi-synthetic setting and seed on the processed `cohort` (the seed draws the hidden column,
    its effect and the model's initialisation, as in notebook 05); with `baselines`, only theirs."""
    fit_rows, validation = cohort.split == "train", cohort.split == "validation"
    held = ~fit_rows
    data = make_semisynthetic(cohort.genomic, cohort.clinical, seed=seed, **SEMI_SETTINGS[setting])
    g, c = data.genomic, data.clinical
    changes, truth = data.flip_to_other(g.index[held])  # each patient to the other level
    predictors = {}
    if baselines is None:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the identifiability condition report, read elsewhere
            model = IDAE(latent_dim=6, seed=seed, progress=False).fit(g[fit_rows], c[fit_rows],
                                                                       validation=(g[validation], c[validation]))
        predictors = {name: cs.Ensemble([model.refit_inversion(g[fit_rows], c[fit_rows], **design)])
                      for name, design in SEMI_DESIGNS.items()}  # fmt: skip
    predictors |= {name: fit_inversion(name, g[fit_rows], c[fit_rows]) for name in baselines or INVERSION_METHODS}
    rows = []
    for name, predictor in predictors.items():
        scores = per_patient_delta(predictor.invert(g[held], c[held], changes) - g[held], truth)
        rows.append({"setting": setting, "seed": seed, "method": name, "pearson": scores["pearson"].median(),
                     "r2": scores["r2"].median()})  # fmt: skip
    return rows


def write_table(rows: list[dict], out: Path, name: str, argv: list[str], seeds: list[int],
                baselines: list[str] | None = None) -> pd.DataFrame:  # fmt: skip
    """`name`.csv and its provenance `name`.json in `out`; return the table written. With `baselines`, the rows of
    those methods replace theirs in the existing table (each method's rows placed where INVERSION_METHODS orders it)
    and this run is recorded under the provenance's "updates"."""
    record = provenance(argv, seeds, script="scripts/inversion_sweep.py")
    table = pd.DataFrame(rows)
    if baselines is not None:
        csv, meta = out / f"{name}.csv", out / f"{name}.json"
        old = pd.read_csv(csv)
        keys = [k for k in ("setting", "seed") if k in old]
        order = list(dict.fromkeys(old.method))
        for m in baselines:  # a new baseline goes after the one INVERSION_METHODS puts before it
            if m not in order:
                before = [b for b in INVERSION_METHODS[: INVERSION_METHODS.index(m)] if b in order]
                order.insert(order.index(before[-1]) + 1 if before else len(order), m)
        table = pd.concat([old[~old.method.isin(baselines)], table], ignore_index=True)
        rank = {m: i for i, m in enumerate(order)}
        table = table.sort_values([*keys, "method"], key=lambda c: c.map(rank) if c.name == "method" else c,
                                  kind="stable", ignore_index=True)  # fmt: skip
        previous = json.loads(meta.read_text())
        run = {k: record[k] for k in ("command", "git commit", "date", "torch", "threads")} | {"methods": baselines}
        record = {**previous, "updates": [*previous.get("updates", []), run]}
    write_with_provenance(table, out, name, record, float_format="%.4f")
    return table


def check_update(out: Path, name: str, seeds: list[int]) -> None:
    """Refuse, before any fitting, a --baselines run whose table is absent or holds other seeds."""
    csv, meta = out / f"{name}.csv", out / f"{name}.json"
    if not (csv.exists() and meta.exists()):
        raise SystemExit(f"--baselines updates {csv}, which does not exist: run the full sweep first")
    held = sorted(set(pd.read_csv(csv).seed))
    if held != seeds:
        raise SystemExit(f"--baselines must run the seeds of {csv}, {held}: got {seeds}")


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, default=5, help="harder-setting cohort seeds (0: skip it)")
    parser.add_argument("--semi-seeds", type=int, default=0, help="semi-synthetic seeds (0: skip it)")
    parser.add_argument("--out", default="data")
    parser.add_argument("--baselines", nargs="+", metavar="METHOD",
                        help="fit only these inversion baselines and replace their rows in the existing tables")
    args = parser.parse_args(argv)
    unknown = sorted(set(args.baselines or []) - set(INVERSION_METHODS))
    if unknown:
        parser.error(f"unknown baselines {unknown}; choose from {list(INVERSION_METHODS)}")
    for name in ("seeds", "semi_seeds"):
        if getattr(args, name) < 0:
            parser.error(f"--{name.replace('_', '-')} must be non-negative, got {getattr(args, name)}")
    if args.seeds == args.semi_seeds == 0:
        parser.error("nothing to run: --seeds and --semi-seeds are both 0")
    out = Path(args.out)
    processed = out / "processed"
    if args.semi_seeds and not (processed / "manifest.json").exists():
        parser.error(f"--semi-seeds needs the processed cohort in {processed}: run notebook 01 first (make all)")
    if args.baselines:
        for name, count in (("inversion_harder", args.seeds), ("inversion_semi", args.semi_seeds)):
            if count:
                check_update(out, name, list(range(count)))
    if args.seeds:
        seeds = list(range(args.seeds))
        rows = [row for seed in tqdm(seeds, desc="inversion, harder setting") for row in run_seed(seed, args.baselines)]
        table = write_table(rows, out, "inversion_harder", argv, seeds, args.baselines)
        table = table.groupby("method", sort=False)[["pearson", "r2"]].median()
        print("harder setting, median over the cohort seeds, as notebook 05 shows it")
        print(table.round(3).to_string())
    if args.semi_seeds:
        seeds = list(range(args.semi_seeds))
        runs = [(setting, seed) for setting in SEMI_SETTINGS for seed in seeds]
        cohort = read_processed(processed)
        rows = [row for setting, seed in tqdm(runs, desc="inversion, semi-synthetic") for row in
                run_semi(cohort, setting, seed, args.baselines)]  # fmt: skip
        table = write_table(rows, out, "inversion_semi", argv, seeds, args.baselines)
        table = table.pivot_table(index="method", columns="setting", values=["pearson", "r2"], aggfunc="median",
                                  sort=False)  # fmt: skip
        print("semi-synthetic, median over the seeds")
        print(table.round(3).to_string())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
