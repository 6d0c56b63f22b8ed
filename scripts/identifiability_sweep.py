"""The identifiability ablation: every design change, one at a time from the default, on the same splits and
seeds, beside the baselines given the same linear stage. Too long for the report's time budget (about an
hour on 2 cores), so it runs as `make sweep` and writes its table for notebook 04 to show:

    data/identifiability_sweep.csv    one row per (setting, variant, seed): strong / weak MCC, stage, seconds
    data/identifiability_sweep.json   the command, seeds, package versions, thread count and git commit

Notebook 04 re-measures the default and the strongest alternative in its own run.

    python scripts/identifiability_sweep.py [--seeds 5] [--out data] [--only NAME ...] [--segments]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import sklearn
import torch
from tqdm import tqdm

from idae.benchmarks import SEGMENT_VARIANTS, VARIANTS, cohort_split, score_method, segments_split


def provenance(argv: list[str], seeds: list[int]) -> dict:
    """What produced the table: the command (without --out, a local path that does not change the numbers),
    seeds, versions, thread count and commit."""
    kept, skip = [], False
    for arg in argv:
        if skip:
            skip = False
        elif arg == "--out":
            skip = True
        elif not arg.startswith("--out="):
            kept.append(arg)
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, check=True).stdout.strip()
        dirty = bool(subprocess.run(["git", "status", "--porcelain", "idae"], capture_output=True, text=True).stdout)
    except (OSError, subprocess.CalledProcessError):
        commit, dirty = "unknown", False
    return {
        "command": " ".join(["python", "scripts/identifiability_sweep.py", *kept]),
        "seeds": seeds,
        "git commit": commit + (" (idae/ modified)" if dirty else ""),
        "python": platform.python_version(), "torch": torch.__version__, "numpy": np.__version__,
        "pandas": pd.__version__, "scikit-learn": sklearn.__version__,
        "threads": torch.get_num_threads(), "date": time.strftime("%Y-%m-%d"),
        "variants": {name: {"method": m, "options": {k: list(v) if isinstance(v, tuple) else v for k, v in o.items()},
                            "changes": what} for name, (m, o, what) in VARIANTS.items()},
    }  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--out", default="data")
    parser.add_argument("--only", nargs="*", help="run these variants only (names as in VARIANTS)")
    parser.add_argument("--segments", action="store_true", help="also the segment simulation (slow)")
    args = parser.parse_args(argv)
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "2")))
    seeds = list(range(args.seeds))
    names = args.only or list(VARIANTS)
    jobs = [("cohort", name, seed) for seed in seeds for name in names]
    if args.segments:
        jobs += [("segments", name, seed) for seed in seeds for name in names if name in SEGMENT_VARIANTS]
    rows = []
    splits: dict[tuple[str, int], object] = {}
    for setting, name, seed in tqdm(jobs, desc="identifiability sweep"):
        if (setting, seed) not in splits:
            splits = {(setting, seed): cohort_split(seed) if setting == "cohort" else segments_split(seed)}
        method, options, what = VARIANTS[name]
        if setting == "segments" and method == "idae":
            options = {**options, "max_epochs": 150}  # 16,000 observations: 150 epochs are 9,000 steps
        row = score_method(method, splits[(setting, seed)], seed, **options)
        rows.append({"setting": setting, "variant": name, "changes": what, "seed": seed, **row})
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    table = pd.DataFrame(rows)
    tmp = out / ".identifiability_sweep.csv.tmp"
    table.to_csv(tmp, index=False)
    os.replace(tmp, out / "identifiability_sweep.csv")
    (out / "identifiability_sweep.json").write_text(json.dumps(provenance(argv, seeds), indent=1) + "\n")
    summary = table.groupby(["setting", "variant"], sort=False)[["strong MCC", "weak MCC", "strong MCC + stage"]]
    print(summary.median().round(3).to_string())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
