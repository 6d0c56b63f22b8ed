"""Tiny random cohorts shared by the test modules (pytest puts this folder on sys.path)."""

import numpy as np
import pandas as pd


def random_cohort(n: int = 24, genes: int = 6, seed: int = 0) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(clinical, genomic) without signal: er neg/pos, grade 1/2/3, age numeric; genes ~ N(7, 1)."""
    rng = np.random.default_rng(seed)
    ids = [f"p{i:02d}" for i in range(n)]
    clinical = pd.DataFrame(
        {
            "er": pd.Categorical(rng.choice(["neg", "pos"], n)),
            "grade": pd.Categorical(rng.choice(["1", "2", "3"], n)),
            "age": rng.normal(55, 10, n),
        },
        index=ids,
    )
    genomic = pd.DataFrame(rng.normal(7, 1, (n, genes)), index=ids, columns=[f"g{j}" for j in range(genes)])
    return clinical, genomic
