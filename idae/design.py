"""`ClinicalDesign`: the clinical design matrix the condition encoder reads (one-hot levels, standardised numbers,
missing-value indicators), fitted on the training patients and stored with the model."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd

from idae.checks import check_clinical, is_numeric_column, level_counts, level_name, to_float32
from idae.errors import IdaeError


@dataclasses.dataclass
class ClinicalDesign:
    """Fitted encoding of clinical columns: one-hot categorical, standardised numeric, missing masks.

    Row layout: for each categorical column its levels (one-hot), for each numeric column one
    standardised value, then one missing-indicator per column. A missing cell is filled with a draw
    from the column's empirical distribution (`rng` given: training) or with its expectation (level
    frequencies, or the mean; inference).
    """

    columns: list[str]
    levels: dict[str, list[str]]  # categorical column -> levels
    frequencies: dict[str, list[float]]  # categorical column -> level frequencies
    mean: dict[str, float]  # numeric column -> mean
    scale: dict[str, float]  # numeric column -> sd
    observed: dict[str, list[float]]  # numeric column -> observed standardised values (the prior)

    @classmethod
    def fit(cls, clinical: pd.DataFrame) -> ClinicalDesign:
        clinical = check_clinical(clinical)
        if clinical.shape[1] == 0:
            raise IdaeError("clinical has no columns: the model needs at least one clinical variable")
        levels, freqs, mean, scale, observed = {}, {}, {}, {}, {}
        for col in clinical.columns:
            values = clinical[col]
            if values.isna().all():
                raise IdaeError(f"clinical column {col!r} is entirely missing")
            if not is_numeric_column(values):  # categorical, text or boolean
                counts = level_counts(values, col)
                if len(counts) < 2:
                    raise IdaeError(f"clinical column {col!r} has a single observed level {list(counts.index)}")
                levels[col] = list(counts.index)
                freqs[col] = (counts / counts.sum()).tolist()
            else:
                v = values.dropna().astype(float)
                if not np.isfinite(v).all():
                    raise IdaeError(f"clinical column {col!r} holds non-finite values")
                sd = float(v.std(ddof=0))
                mean[col], scale[col] = float(v.mean()), sd if sd > 0 else 1.0
                observed[col] = ((v - mean[col]) / scale[col]).tolist()
        return cls(list(clinical.columns), levels, freqs, mean, scale, observed)

    @property
    def width(self) -> int:
        return sum(len(v) for v in self.levels.values()) + len(self.mean) + len(self.columns)

    def feature_names(self) -> list[str]:
        names = []
        for col in self.columns:
            if col in self.levels:
                names += [f"{col}={lv}" for lv in self.levels[col]]
            else:
                names.append(col)
        return names + [f"{col}:missing" for col in self.columns]

    def contrast_blocks(self) -> list[list[int]]:
        """Per clinical column, the indices of its design columns a regression keeps: every level but the first of a
        categorical column (one-hot rows sum to one, so the first level is the intercept's), or the numeric
        column."""
        blocks, start = [], 0
        for col in self.columns:
            width = len(self.levels[col]) if col in self.levels else 1
            blocks.append(list(range(start + (col in self.levels), start + width)))
            start += width
        return blocks

    def contrast_columns(self) -> np.ndarray:
        """Indices of the design columns a regression keeps: the contrasts of every clinical column
        (`contrast_blocks`), then every missing flag (the last `len(columns)` columns of a design row)."""
        keep = [i for block in self.contrast_blocks() for i in block]
        return np.asarray(keep + list(range(self.width - len(self.columns), self.width)), dtype=int)

    def transform(self, clinical: pd.DataFrame, rng: np.random.Generator | None = None) -> np.ndarray:
        """(n, width) float32 design; missing cells sampled with `rng`, else set to their expectation."""
        clinical = check_clinical(clinical, columns=self.columns)
        absent = [c for c in self.columns if c not in clinical.columns]
        if absent:
            raise IdaeError(f"clinical table lacks the columns the model was fitted on: {absent}")
        n = len(clinical)
        blocks, masks = [], []
        for col in self.columns:
            values = clinical[col]
            missing = values.isna().to_numpy()
            masks.append(missing)
            if col in self.levels:
                levels = self.levels[col]
                text = values.astype(object).map(lambda v: v if pd.isna(v) else level_name(v))
                unseen = sorted(set(text.dropna()) - set(levels))
                if unseen:
                    raise IdaeError(f"clinical column {col!r}: unseen levels {unseen}; known levels {levels}")
                codes = text.map({lv: i for i, lv in enumerate(levels)}).to_numpy()
                onehot = np.zeros((n, len(levels)))
                obs = ~missing
                onehot[np.flatnonzero(obs), codes[obs].astype(int)] = 1.0
                if missing.any():
                    p = np.asarray(self.frequencies[col])
                    if rng is None:
                        onehot[missing] = p
                    else:
                        draws = rng.choice(len(levels), size=int(missing.sum()), p=p)
                        onehot[np.flatnonzero(missing), draws] = 1.0
                blocks.append(onehot)
            else:
                try:
                    v = values.astype(float).to_numpy()
                except (TypeError, ValueError) as err:
                    raise IdaeError(f"clinical column {col!r} must be numeric: {err}") from err
                if not np.isfinite(v[~missing]).all():
                    raise IdaeError(f"clinical column {col!r} holds non-finite values")
                z = (v - self.mean[col]) / self.scale[col]
                if missing.any():
                    z[missing] = 0.0 if rng is None else rng.choice(self.observed[col], size=int(missing.sum()))
                to_float32(z[:, None], clinical.index, [col], "clinical", "column")
                blocks.append(z[:, None])
        blocks.append(np.stack(masks, axis=1).astype(float))
        return np.concatenate(blocks, axis=1).astype(np.float32)

    def sampler(self, clinical: pd.DataFrame, rng: np.random.Generator) -> Callable[[], np.ndarray]:
        """A function returning `transform(clinical, rng)` afresh on each call, redrawing only the missing
        cells (the same draws, in the same order, as `transform` makes), so an epoch's draw costs little."""
        base = self.transform(clinical)
        draws = []  # (rows, first design column, levels or observed values, categorical?)
        start = 0
        for col in self.columns:
            missing = np.flatnonzero(clinical[col].isna().to_numpy())
            width = len(self.levels[col]) if col in self.levels else 1
            if missing.size:
                if col in self.levels:
                    base[np.ix_(missing, np.arange(start, start + width))] = 0.0
                draws.append((missing, start, col))
            start += width

        def draw() -> np.ndarray:
            out = base.copy()
            for rows, first, col in draws:
                if col in self.levels:
                    picked = rng.choice(len(self.levels[col]), size=len(rows), p=np.asarray(self.frequencies[col]))
                    out[rows, first + picked] = 1.0
                else:
                    out[rows, first] = rng.choice(self.observed[col], size=len(rows))
            return out

        return draw

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ClinicalDesign:
        return cls(**d)
