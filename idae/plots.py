"""Figures the notebooks show. Each function draws on a new figure and returns it; `save` writes it."""

from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns
from sklearn.decomposition import PCA

from idae.files import replaced_file

sns.set_theme(style="whitegrid", context="notebook")


def save(fig: plt.Figure, path: str | Path) -> Path:
    """Save as PNG (dpi 120, tight) creating the folder, in one rename (`files.replaced_file`); deterministic
    metadata so reruns are stable."""
    path = Path(path)
    with replaced_file(path) as tmp:
        fig.savefig(tmp, format="png", dpi=120, bbox_inches="tight", metadata={"Software": None})
    return path


def clinical_distributions(clinical: pd.DataFrame) -> plt.Figure:
    """One panel per clinical column: level counts (missing shown as its own bar) or a histogram."""
    cols = list(clinical.columns)
    ncol = min(3, len(cols))
    nrow = int(np.ceil(len(cols) / ncol))
    fig, axes = plt.subplots(nrow, ncol, figsize=(4 * ncol, 3 * nrow), squeeze=False)
    for ax, col in zip(axes.flat, cols, strict=False):
        values = clinical[col]
        if isinstance(values.dtype, pd.CategoricalDtype):
            counts = values.astype(object).fillna("missing").value_counts().sort_index()
            colors = ["#bbbbbb" if k == "missing" else "#4c72b0" for k in counts.index]
            ax.bar(counts.index.astype(str), counts.to_numpy(), color=colors)
        else:
            ax.hist(values.dropna(), bins=20, color="#4c72b0")
            if values.isna().any():
                ax.text(0.98, 0.95, f"{values.isna().sum()} missing", ha="right", va="top", transform=ax.transAxes)
        ax.set_title(col)
        ax.set_ylabel("patients")
    for ax in list(axes.flat)[len(cols) :]:
        ax.axis("off")
    fig.tight_layout()
    return fig


def missingness(clinical: pd.DataFrame) -> plt.Figure:
    """Patients × clinical columns, dark where a cell is missing."""
    fig, ax = plt.subplots(figsize=(1 + 0.6 * clinical.shape[1], 4))
    sns.heatmap(clinical.isna().astype(int), cbar=False, cmap="Greys", vmin=0, vmax=1, yticklabels=False, ax=ax)
    ax.set_xlabel("clinical column")
    ax.set_ylabel(f"patients (n={len(clinical)})")
    ax.set_title(f"missing cells: {int(clinical.isna().sum().sum())}")
    fig.tight_layout()
    return fig


def gene_variance(variance: pd.Series, cut: float) -> plt.Figure:
    """Histogram of per-gene variance (log scale) with the selection cut."""
    fig, ax = plt.subplots(figsize=(6, 3.5))
    ax.hist(np.log10(variance[variance > 0]), bins=80, color="#4c72b0")
    ax.axvline(np.log10(cut), color="#c44e52", lw=2, label=f"cut: {int((variance >= cut).sum())} genes kept")
    ax.set_xlabel("log10 variance per gene (training split)")
    ax.set_ylabel("genes")
    ax.legend()
    fig.tight_layout()
    return fig


def pca_scatter(genomic: pd.DataFrame, clinical: pd.DataFrame, columns: list[str]) -> plt.Figure:
    """First two principal components of the genomic table, one panel per clinical column."""
    pcs = PCA(n_components=2, random_state=0).fit(genomic.to_numpy())
    scores = pcs.transform(genomic.to_numpy())
    fig, axes = plt.subplots(1, len(columns), figsize=(4.5 * len(columns), 4), squeeze=False)
    for ax, col in zip(axes[0], columns, strict=True):
        hue = clinical[col].astype(object).fillna("missing").astype(str)
        order = sorted(set(hue) - {"missing"}) + (["missing"] if (hue == "missing").any() else [])
        sns.scatterplot(x=scores[:, 0], y=scores[:, 1], hue=hue, hue_order=order, ax=ax, s=25, palette="deep")
        ev = pcs.explained_variance_ratio_
        ax.set_xlabel(f"PC1 ({ev[0]:.0%})")
        ax.set_ylabel(f"PC2 ({ev[1]:.0%})")
        ax.set_title(col)
    fig.tight_layout()
    return fig


def loss_curves(histories: dict[str, object], objective_labels: dict[str, str] | None = None) -> plt.Figure:
    """One panel per model for its own objective (their scales differ), one shared panel for the reconstruction
    error; train solid, validation dashed, the kept epoch as a dotted line."""
    labels = objective_labels or {}
    fig, axes = plt.subplots(1, len(histories) + 1, figsize=(4.2 * (len(histories) + 1), 3.6))
    for ax, (label, h), color in zip(axes, histories.items(), sns.color_palette("deep"), strict=False):
        for target, train, val in ((ax, h.train_objective, h.val_objective),
                                   (axes[-1], h.train_reconstruction, h.val_reconstruction)):  # fmt: skip
            target.plot(train, color=color, label=f"{label}, training")
            if val:
                target.plot(val, color=color, ls="--", label=f"{label}, validation")
            if h.best_epoch >= 0:
                target.axvline(h.best_epoch, color=color, lw=0.8, ls=":")
        ax.set_ylabel(labels.get(label, "objective"))
        ax.set_title(label)
        ax.legend(fontsize=8)
    axes[-1].set_ylabel("reconstruction error (MSE per standardised gene)")
    axes[-1].set_title("reconstruction")
    axes[-1].legend(fontsize=8)
    for ax in axes:
        ax.set_xlabel("epoch")
    fig.tight_layout()
    return fig
