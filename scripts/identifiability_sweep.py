"""The identifiability ablation: every design change, one at a time from the default, on the same splits and
seeds, beside the baselines given the same linear stage. Too long for the report's time budget (about an
hour on 2 cores), so it runs as `make sweep` and writes its tables for notebook 04 to show:

    data/identifiability_sweep.csv    one row per (setting, variant, seed): strong / weak MCC, stage, seconds
    data/identifiability_real.csv     with --real: stability of REAL_VARIANTS on the processed cohort (notebook 01)
    data/identifiability_cohort_stability.csv
                                      with --cohort-stability N: COHORT_STABILITY_VARIANTS on the first N synthetic
                                      cohorts, across seeds and across resampled training sets, scored against each
                                      other and against the true sources
    data/latent_size.csv              with --latent-sizes: the default model at each of LATENT_SIZES on the
                                      processed cohort: held-out objective, stability, the identifiability condition
    data/identifiability_*.json       beside each table: the command, seeds, versions, thread count and git commit

Notebook 04 re-measures the default and the strongest alternative in its own run.

    python scripts/identifiability_sweep.py [--seeds 5] [--resamples N] [--out data] [--only NAME ...] [--segments]
                                            [--real] [--latent-sizes] [--cohort-stability N] [--no-cohort] [--update]

With --update, the rows of the variants run replace theirs in the existing tables and the others are kept; the
provenance file then lists each update (command, commit, date, variants) under "updates". `make sweep` runs
everything afresh.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

import pandas as pd
import torch
from tqdm import tqdm

from idae.benchmarks import (
    COHORT_STABILITY_VARIANTS,
    REAL_VARIANTS,
    SEGMENT_VARIANTS,
    VARIANTS,
    cohort_split,
    processed_split,
    score_method,
    segments_split,
    stability,
)
from idae.data import read_processed
from idae.environment import environment
from idae.files import replaced_file

LATENT_SIZES = (2, 4, 6, 8, 12)


def provenance(argv: list[str], seeds: list[int], script: str = "scripts/identifiability_sweep.py") -> dict:
    """What produced the table: the command (`script` and its arguments, without --out, a local path that does not
    change the numbers), seeds, and `idae.environment.environment()`: versions, thread count, commit, date."""
    kept, skip = [], False
    for arg in argv:
        if skip:
            skip = False
        elif arg == "--out":
            skip = True
        elif not arg.startswith("--out="):
            kept.append(arg)
    return {"command": " ".join(["python", script, *kept]), "seeds": seeds, **environment()}


def write_with_provenance(table: pd.DataFrame, out: Path, name: str, record: dict, **csv_options: str) -> None:
    """`out/name.csv` and its provenance `record` as `out/name.json`, each swapped in whole."""
    out.mkdir(parents=True, exist_ok=True)
    with replaced_file(out / f"{name}.csv") as tmp:
        table.to_csv(tmp, index=False, **csv_options)
    with replaced_file(out / f"{name}.json") as tmp:
        tmp.write_text(json.dumps(record, indent=1) + "\n")


def variants() -> dict:
    """The identifiability variants for the provenance: method, options and what each changes."""
    return {name: {"method": m, "options": {k: list(v) if isinstance(v, tuple) else v for k, v in o.items()},
                   "changes": what} for name, (m, o, what) in VARIANTS.items()}  # fmt: skip


def write_table(table: pd.DataFrame, out: Path, name: str, argv: list[str], seeds: list[int], keys: list[str],
                update: bool) -> pd.DataFrame:  # fmt: skip
    """Write `out/name.csv` (swapped in whole) and its provenance `out/name.json`; return the table written.

    `update`: replace only the rows whose `keys` values this run produced and keep the others, recording this run
    under the provenance's "updates" (the rest of the provenance stays that of the run that wrote the table)."""
    csv, meta = out / f"{name}.csv", out / f"{name}.json"
    record = provenance(argv, seeds) | {"variants": variants()}
    if update and csv.exists() and meta.exists():
        old = pd.read_csv(csv)
        ran = set(map(tuple, table[keys].to_numpy().tolist()))
        kept = old[[tuple(row) not in ran for row in old[keys].to_numpy().tolist()]]
        table = pd.concat([kept, table], ignore_index=True)
        previous = json.loads(meta.read_text())
        run = {k: record[k] for k in ("command", "git commit", "date", "torch", "threads")}
        run["variants"] = sorted(set(map(str, table.loc[len(kept):, "variant"])))
        record = {**previous, "variants": {**previous.get("variants", {}), **record["variants"]},
                  "updates": [*previous.get("updates", []), run]}  # fmt: skip
    rank = {v: i for i, v in enumerate(VARIANTS)}  # rows in the order of VARIANTS, whatever run wrote them
    table = table.sort_values(keys, key=lambda c: c.map(rank) if c.name == "variant" else c.map(
        {v: i for i, v in enumerate(dict.fromkeys(c))}), kind="stable", ignore_index=True)  # fmt: skip
    write_with_provenance(table, out, name, record)
    return table


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--resamples", type=int, default=None,
                        help="resampled training sets for stability on the processed cohort (default: --seeds)")
    parser.add_argument("--out", default="data")
    parser.add_argument("--only", nargs="*", help="run these variants only (names as in VARIANTS)")
    parser.add_argument("--segments", action="store_true", help="also the segment simulation (slow)")
    parser.add_argument("--real", action="store_true", help="also stability on the processed cohort (data/processed)")
    parser.add_argument("--latent-sizes", action="store_true",
                        help="also the default model at each of LATENT_SIZES on the processed cohort")
    parser.add_argument("--cohort-stability", type=int, default=0, metavar="N",
                        help="also stability of COHORT_STABILITY_VARIANTS on the first N synthetic cohorts")
    parser.add_argument("--no-cohort", action="store_true", help="skip the synthetic cohort")
    parser.add_argument("--update", action="store_true", help="replace only the rows of the variants run")
    args = parser.parse_args(argv)
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "2")))
    seeds = list(range(args.seeds))
    resamples = args.seeds if args.resamples is None else args.resamples
    names = args.only or list(VARIANTS)
    unknown = [n for n in names if n not in VARIANTS]
    if unknown:
        parser.error(f"unknown variants {unknown}; choose from {list(VARIANTS)}")
    jobs = [] if args.no_cohort else [("cohort", name, seed) for seed in seeds for name in names]
    if args.segments:
        jobs += [("segments", name, seed) for seed in seeds for name in names if name in SEGMENT_VARIANTS]
    out = Path(args.out)
    rows = []
    splits: dict[tuple[str, int], object] = {}
    for setting, name, seed in tqdm(jobs, desc="identifiability sweep", disable=not jobs):
        if (setting, seed) not in splits:
            splits = {(setting, seed): cohort_split(seed) if setting == "cohort" else segments_split(seed)}
        method, options, what = VARIANTS[name]
        if setting == "segments" and method == "idae":
            options = {**options, "max_epochs": 150}  # 16,000 observations: 150 epochs are 9,000 steps
        row = score_method(method, splits[(setting, seed)], seed, **options)
        rows.append({"setting": setting, "variant": name, "changes": what, "seed": seed, **row})
    if rows:
        table = write_table(pd.DataFrame(rows), out, "identifiability_sweep", argv, seeds,
                            ["setting", "variant", "seed"], args.update)  # fmt: skip
        summary = table.groupby(["setting", "variant"], sort=False)[["strong MCC", "weak MCC", "strong MCC + stage"]]
        print(summary.median().round(3).to_string())
    if args.real:
        real = processed_split(read_processed(out / "processed"), latent_dim=6)
        real_rows = []
        for name in tqdm([n for n in names if n in REAL_VARIANTS], desc="stability on the real cohort"):
            method, options, what = VARIANTS[name]
            real_rows.append({"variant": name, "changes": what, "held-out patients": len(real.genomic_test),
                              "resampled sets": resamples,
                              **stability(method, real, seeds=args.seeds, resamples=resamples, **options)})
        table = write_table(pd.DataFrame(real_rows), out, "identifiability_real", argv, seeds, ["variant"], args.update)
        print(table.round(3).to_string())
    if args.cohort_stability:
        cohort_rows = []
        jobs = [(c, n) for c in range(args.cohort_stability) for n in names if n in COHORT_STABILITY_VARIANTS]
        for cohort, name in tqdm(jobs, desc="stability on synthetic cohorts"):
            method, options, what = VARIANTS[name]
            cohort_rows.append({"cohort": cohort, "variant": name, "changes": what, "resampled sets": resamples,
                                **stability(method, cohort_split(cohort), seeds=args.seeds, resamples=resamples,
                                            **options)})  # fmt: skip
        table = write_table(pd.DataFrame(cohort_rows), out, "identifiability_cohort_stability", argv, seeds,
                            ["cohort", "variant"], args.update)  # fmt: skip
        print(table.round(3).to_string())
    if args.latent_sizes:
        prepared = read_processed(out / "processed")
        size_rows = []
        for d in tqdm(LATENT_SIZES, desc="latent sizes on the real cohort"):
            split = processed_split(prepared, latent_dim=d)
            size_rows.append({"variant": "default", "latent_dim": d, "held-out patients": len(split.genomic_test),
                              "resampled sets": resamples,
                              **stability("idae", split, seeds=args.seeds, resamples=resamples)})
        table = write_table(pd.DataFrame(size_rows), out, "latent_size", argv, seeds, ["latent_dim"], args.update)
        print(table.round(3).to_string())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
