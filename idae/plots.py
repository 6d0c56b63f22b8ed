"""Figures the notebooks show. Each function draws on a new figure and returns it; `save` writes it."""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib.patches import Patch
from matplotlib.text import Annotation, Text
from matplotlib.ticker import MaxNLocator
from matplotlib.transforms import Bbox
from sklearn.decomposition import PCA

from idae.errors import IdaeError
from idae.files import replaced_file
from idae.metrics import ranks


def set_theme() -> None:
    """The report's seaborn theme (white grid, notebook context): each notebook calls it once, before its figures."""
    sns.set_theme(style="whitegrid", context="notebook")


def save(fig: plt.Figure, path: str | Path) -> Path:
    """Save as PNG (dpi 120, tight) creating the folder, in one rename (`files.replaced_file`); deterministic
    metadata so reruns are stable. Refuses (IdaeError, nothing written) a figure with `legibility_problems`."""
    problems = legibility_problems(fig)
    if problems:
        raise IdaeError(f"figure {Path(path).name} is hard to read: " + "; ".join(problems))
    path = Path(path)
    with replaced_file(path) as tmp:
        fig.savefig(tmp, format="png", dpi=120, bbox_inches="tight", metadata={"Software": None})
    return path


MIN_FONT_PT = 7.0  # the smallest text a page-width figure stays readable at


def _drawn_texts(fig: plt.Figure) -> list[Text]:
    """The figure's visible, non-empty texts as drawn: tick labels of ticks outside the view are left out (matplotlib
    keeps them as artists but does not draw them)."""
    undrawn = set()
    for ax in fig.axes:
        for axis in (ax.xaxis, ax.yaxis):
            low, high = sorted(axis.get_view_interval())
            slack = 1e-9 * max(abs(low), abs(high), 1.0)
            for tick in axis.get_major_ticks() + axis.get_minor_ticks():
                if not low - slack <= tick.get_loc() <= high + slack:
                    undrawn.update((tick.label1, tick.label2))
    return [t for t in fig.findobj(Text)
            if t not in undrawn and t.get_visible() and t.get_text().strip()]  # fmt: skip


def _text_box(text: Text, renderer) -> object:
    """The window box of the text alone (an annotation's own extent also spans its connecting line)."""
    if isinstance(text, Annotation):
        text.update_positions(renderer)
    return Text.get_window_extent(text, renderer)


def _overlap(a, b) -> bool:
    """Two window boxes share more than a pixel each way."""
    return min(a.x1, b.x1) - max(a.x0, b.x0) > 1 and min(a.y1, b.y1) - max(a.y0, b.y0) > 1


def legibility_problems(fig: plt.Figure) -> list[str]:
    """What makes `fig` hard to read at page width, one sentence each: an axis showing tick labels without an axis
    label, text smaller than `MIN_FONT_PT`, and any two drawn texts (tick, point, axis and legend labels, titles)
    whose boxes overlap by more than a pixel. Empty when the figure reads."""
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    problems = []
    for k, ax in enumerate(fig.axes):
        if not ax.get_visible() or not ax.axison:
            continue
        where = f"'{ax.get_title()}'" if ax.get_title() else f"panel {k}"
        for axis, letter in ((ax.xaxis, "x"), (ax.yaxis, "y")):
            ticks = [t for t in axis.get_ticklabels() if t.get_visible() and t.get_text().strip()]
            if ticks and axis.get_visible() and not axis.get_label_text().strip():
                problems.append(f"{where}: the {letter} axis has tick labels but no axis label")
    texts = _drawn_texts(fig)
    problems += [f"'{t.get_text()}' is {t.get_fontsize():.1f} pt (< {MIN_FONT_PT:g})"
                 for t in texts if t.get_fontsize() < MIN_FONT_PT]  # fmt: skip
    boxes = [_text_box(t, renderer) for t in texts]
    for i, j in itertools.combinations(range(len(texts)), 2):
        if _overlap(boxes[i], boxes[j]):
            problems.append(f"'{texts[i].get_text()}' overlaps '{texts[j].get_text()}'")
    return problems


def place_labels(ax: plt.Axes, x: Sequence[float], y: Sequence[float], names: Sequence[str],
                 fontsize: float = 8.0) -> None:  # fmt: skip
    """Label the points (x, y) with `names`, each label at the first of several offsets around its point (nearest
    first) where it stays inside the axes and overlaps no label placed before it and no tick label, joined to its
    point by a thin line when moved away from it. A label that finds no free place stays at its nearest offset
    (`legibility_problems` then reports an overlap)."""
    fig = ax.figure
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    taken = [_text_box(t, renderer) for t in _drawn_texts(fig)]
    frame = ax.get_window_extent(renderer)
    inside = lambda b: b.x0 >= frame.x0 and b.x1 <= frame.x1 and b.y0 >= frame.y0 and b.y1 <= frame.y1  # noqa: E731
    for px, py in ax.transData.transform(np.column_stack([np.asarray(x, float), np.asarray(y, float)])):
        taken.append(Bbox([[px - 3.5, py - 3.5], [px + 3.5, py + 3.5]]))  # a marked point's marker: no label on it
    offsets = [(dx * r, dy * r) for r in (4, 12, 22, 34) for dx, dy in
               ((1, 1), (1, -1), (-1, 1), (-1, -1), (0, 1.5), (0, -1.5), (1.5, 0), (-1.5, 0))]  # fmt: skip
    def annotate(name: str, point: tuple[float, float], k: int) -> Annotation:
        dx, dy = offsets[k]
        return ax.annotate(name, point, xytext=(dx, dy), textcoords="offset points", fontsize=fontsize,
                           ha="left" if dx > 0 else "right" if dx < 0 else "center",
                           va="bottom" if dy > 0 else "top" if dy < 0 else "center",
                           arrowprops={"arrowstyle": "-", "lw": 0.5, "color": "#555555"} if k >= 8 else None)

    for point, name in zip(zip(x, y, strict=True), names, strict=True):
        for k in range(len(offsets)):
            label = annotate(name, point, k)
            box = _text_box(label, renderer)
            if inside(box) and not any(_overlap(box, other) for other in taken):
                break
            label.remove()
        else:  # nowhere free: the nearest place
            box = _text_box(annotate(name, point, 0), renderer)
        taken.append(box)


def clinical_distributions(clinical: pd.DataFrame, units: dict[str, str] | None = None) -> plt.Figure:
    """One panel per clinical column: level counts (missing shown as its own bar) or a histogram; `units` names the
    unit of a numeric column (e.g. {"age": "years"}), "as recorded" where it is not given."""
    units = units or {}
    cols = list(clinical.columns)
    ncol = min(3, len(cols))
    nrow = int(np.ceil(len(cols) / ncol))
    categorical = [c for c in cols if isinstance(clinical[c].dtype, pd.CategoricalDtype)]
    levels = max([len(clinical[c].cat.categories) + 1 for c in categorical] + [8])  # the tallest panel sets the height
    fig, axes = plt.subplots(nrow, ncol, figsize=(4.2 * ncol, (0.8 + 0.28 * levels) * nrow), squeeze=False)
    for ax, col in zip(axes.flat, cols, strict=False):
        values = clinical[col]
        if isinstance(values.dtype, pd.CategoricalDtype):
            counts = values.value_counts().reindex(values.cat.categories)  # the levels in order, then missing last
            if values.isna().any():
                counts["missing"] = values.isna().sum()
            colors = ["#bbbbbb" if k == "missing" else "#4c72b0" for k in counts.index]
            ax.barh(counts.index.astype(str)[::-1], counts.to_numpy()[::-1], color=colors[::-1])
            ax.set_xlabel("patients")
            ax.set_ylabel("level (grey: missing)")
        else:
            ax.hist(values.dropna(), bins=20, color="#4c72b0")
            ax.yaxis.set_major_locator(MaxNLocator(integer=True))  # counts of patients are whole numbers
            if values.isna().any():
                ax.text(0.98, 0.95, f"{values.isna().sum()} missing", ha="right", va="top", transform=ax.transAxes)
            ax.set_xlabel(f"{col} ({units.get(col, 'as recorded')})")
            ax.set_ylabel("patients")
        ax.set_title(col)
    for ax in list(axes.flat)[len(cols) :]:
        ax.axis("off")
    fig.tight_layout()
    return fig


def missingness(clinical: pd.DataFrame) -> plt.Figure:
    """Patients × clinical columns (one row per patient, in table order), black where a cell is missing, with a legend
    giving the number of missing and observed cells."""
    fig, ax = plt.subplots(figsize=(3 + 0.6 * clinical.shape[1], 4))
    sns.heatmap(clinical.isna().astype(int), cbar=False, cmap="Greys", vmin=0, vmax=1, yticklabels=False, ax=ax)
    ax.tick_params(axis="x", labelrotation=45)
    for label in ax.get_xticklabels():
        label.set_horizontalalignment("right")
    ax.set_xlabel("clinical column")
    ax.set_ylabel(f"patients, in table order (n={len(clinical)})")
    missing = int(clinical.isna().sum().sum())
    ax.legend([Patch(facecolor="black", edgecolor="grey"), Patch(facecolor="white", edgecolor="grey")],
              [f"missing ({missing} cells)", f"observed ({clinical.size - missing} cells)"], fontsize=8,
              loc="upper left", bbox_to_anchor=(1.02, 1), frameon=False)  # fmt: skip
    for spine in ax.spines.values():  # white observed cells need a frame
        spine.set_visible(True)
        spine.set_color("grey")
    fig.tight_layout()
    return fig


def gene_variance(variance: pd.Series, cut: float) -> plt.Figure:
    """Histogram of per-gene variance (log scale) with the selection cut."""
    fig, ax = plt.subplots(figsize=(6, 3.5))
    ax.hist(np.log10(variance[variance > 0]), bins=80, color="#4c72b0")
    ax.axvline(np.log10(cut), color="#c44e52", lw=2, label=f"cut: {int((variance >= cut).sum())} genes kept")
    ax.set_xlabel("log10 variance per gene (squared units of the values; training split)")
    ax.set_ylabel("genes")
    ax.legend()
    fig.tight_layout()
    return fig


def pca_scores(genomic: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """The first two principal component scores (patients, 2) of a genomic table and their shares of variance."""
    pcs = PCA(n_components=2, random_state=0).fit(genomic.to_numpy())
    return pcs.transform(genomic.to_numpy()), pcs.explained_variance_ratio_


def pca_scatter(genomic: pd.DataFrame, clinical: pd.DataFrame, columns: list[str]) -> plt.Figure:
    """First two principal components of the genomic table, one panel per clinical column; no colour means two
    things (each panel's levels take their own colours, missing is grey in every panel)."""
    scores, ev = pca_scores(genomic)
    hues = {col: clinical[col].astype(object).fillna("missing").astype(str) for col in columns}
    orders = {col: sorted(set(h) - {"missing"}) for col, h in hues.items()}
    tab20 = sns.color_palette("tab20")  # saturated colours first, then their light pairs; its greys left for missing
    colours = itertools.cycle([tab20[k] for k in (0, 2, 4, 6, 8, 10, 12, 16, 18, 1, 3, 5, 7, 9, 11, 13, 17, 19)])
    fig, axes = plt.subplots(1, len(columns), figsize=(4.5 * len(columns), 4), squeeze=False)
    for ax, col in zip(axes[0], columns, strict=True):
        hue, order = hues[col], orders[col] + (["missing"] if (hues[col] == "missing").any() else [])
        palette = {level: "#bbbbbb" if level == "missing" else next(colours) for level in order}
        sns.scatterplot(x=scores[:, 0], y=scores[:, 1], hue=hue, hue_order=order, ax=ax, s=25, palette=palette)
        ax.set_xlabel(f"PC1 ({ev[0]:.0%} of variance)")
        ax.set_ylabel(f"PC2 ({ev[1]:.0%} of variance)")
        # the legend above the panel, where it hides no patient
        ax.legend(title=col, fontsize=8, title_fontsize=9, loc="lower center", bbox_to_anchor=(0.5, 1.01),
                  ncol=min(len(order), 4), frameon=False)  # fmt: skip
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
    axes[-1].set_ylabel("reconstruction error\n(MSE per standardised gene)")
    axes[-1].set_title("reconstruction")
    for ax in axes:
        ax.set_xlabel("epoch")
    # one legend for every panel, below them, where it hides no curve
    handles, names = axes[-1].get_legend_handles_labels()
    handles.append(plt.Line2D([], [], color="grey", lw=0.8, ls=":"))
    names.append("epoch kept (lowest validation loss: the objective plotted plus the term added to it)")
    fig.tight_layout(rect=(0, 0.14, 1, 1))
    fig.legend(handles, names, fontsize=8, loc="lower center", ncol=min(len(names), 3), frameon=False)
    return fig


def per_patient_figure(scores: dict[str, pd.DataFrame], title: str) -> plt.Figure:
    """Per-patient Pearson r and R² of the predicted against the true change, one box per method."""
    long = pd.concat([s.assign(method=name) for name, s in scores.items()], ignore_index=True)
    fig, axes = plt.subplots(1, 2, figsize=(11, 0.4 * len(scores) + 1.4), sharey=True)
    for ax, col, label in ((axes[0], "pearson", "Pearson r"), (axes[1], "r2", "R² (clipped at −1)")):
        data = long.assign(value=long[col].clip(lower=-1)).dropna(subset=["value"])
        sns.boxplot(data=data, y="method", x="value", order=list(scores), ax=ax, color="#9fb8d8", fliersize=2)
        ax.set_xlabel(f"per-patient {label}")
        ax.set_ylabel("method" if ax is axes[0] else "")
        low = ax.get_xlim()[0]
        for row, s in enumerate(scores.values()):  # say what an empty or clipped row hides
            if s[col].isna().all():
                ax.text(0.5, row, "undefined (Δ̂ = 0)", transform=ax.get_yaxis_transform(), ha="center", va="center",
                        fontsize=8, color="#555555")  # fmt: skip
            elif col == "r2" and (s[col] < -1).any():
                ax.annotate(f"{int((s[col] < -1).sum())} of {len(s)} below −1", (low, row), xytext=(3, -7),
                            textcoords="offset points", fontsize=7, color="#555555", va="top")  # fmt: skip
    fig.suptitle(title)
    fig.tight_layout()
    return fig


def volcano(mean: pd.Series, consistency: pd.Series, marked: dict[str, Sequence[str]], ylabel: str,
            top_share: float = 0.05, title: str = "") -> plt.Figure:  # fmt: skip
    """Mean Δ̂ per gene against a consistency score, genes of each `marked` set labelled; `title` names the flip."""
    fig, ax = plt.subplots(figsize=(6.5, 5.2))
    ax.scatter(mean, consistency, s=4, color="#bbbbbb", rasterized=True, label="all genes")
    cut = np.sort(np.abs(mean.to_numpy()))[::-1][int(np.ceil(top_share * len(mean))) - 1]
    top_label = f"top {top_share:.0%} of genes by |mean Δ̂|"
    for x in (-cut, cut):
        ax.axvline(x, color="#888888", lw=0.8, ls="--", label=top_label if x > 0 else None)
    shown_all = []
    for (name, genes), color in zip(marked.items(), sns.color_palette("deep"), strict=False):
        shown = [g for g in genes if g in mean.index]
        ax.scatter(mean[shown], consistency[shown], s=22, color=color, label=name, zorder=3)
        shown_all += shown
    ax.set_xlabel("mean predicted change Δ̂ (standardised units)")
    ax.set_ylabel(ylabel)
    ax.legend(fontsize=8, loc="lower left", bbox_to_anchor=(0, 1.01), ncol=2, frameon=False)
    if title:
        ax.set_title(title, fontsize=10, pad=34)  # above the legend
    fig.tight_layout()
    place_labels(ax, mean[shown_all], consistency[shown_all], shown_all)
    return fig


def top_genes_figure(effect: pd.Series, marked: Sequence[str], n: int = 30, title: str = "") -> plt.Figure:
    """The n genes with the largest |effect|, signature genes (`marked`) in colour with a legend saying so; `title`
    names the flip."""
    top = effect.loc[ranks(effect).sort_values().index[:n]]
    colors = ["#c44e52" if g in marked else "#9fb8d8" for g in top.index]
    fig, ax = plt.subplots(figsize=(6, 0.22 * n + 1.3))
    ax.barh(np.arange(n)[::-1], top.to_numpy(), color=colors)
    ax.set_yticks(np.arange(n)[::-1], top.index, fontsize=8)
    ax.axvline(0, color="black", lw=0.8)
    ax.set_xlabel("mean predicted change Δ̂ (standardised units)")
    ax.set_ylabel(f"gene (the {n} largest |Δ̂|)")
    handles = [Patch(color="#9fb8d8", label="other gene")]
    if any(g in marked for g in top.index):
        handles.insert(0, Patch(color="#c44e52", label="signature gene"))
    elif len(marked):
        handles.append(Patch(color="none", label="no signature gene among them"))
    else:
        handles = [Patch(color="#9fb8d8", label="gene (no signature given)")]
    if title:
        ax.set_title(title, fontsize=10)
    fig.tight_layout(rect=(0, 0.05, 1, 1))  # room for the legend below the axes
    fig.legend(handles=handles, fontsize=8, loc="lower center", ncol=len(handles), frameon=False)
    return fig


def replication_figure(panels: dict[str, tuple[pd.Series, pd.Series]], ylabel: str,
                       marked: Sequence[str] = ()) -> plt.Figure:  # fmt: skip
    """One scatter per panel: (x effect, y effect) over shared genes, the Pearson r and the number of genes in a
    corner, the `marked` genes in red and labelled."""
    fig, axes = plt.subplots(1, len(panels), figsize=(4.6 * len(panels), 4.4), squeeze=False)
    labelled = []  # (axes, x, y, names) of the marked genes, labelled once the layout is final
    for ax, (xlabel, (x, y)) in zip(axes[0], panels.items(), strict=True):
        ax.scatter(x, y, s=3, alpha=0.4, color="#4c72b0", rasterized=True, label="gene")
        shown = [g for g in marked if g in x.index]
        labelled.append((ax, x[shown], y[shown], shown))
        if shown:
            ax.scatter(x[shown], y[shown], s=18, color="#c44e52", zorder=3, label="signature gene")
        r = np.corrcoef(x.to_numpy(), y.to_numpy())[0, 1]
        ax.text(0.02, 0.98, f"r = {r:.2f}, {len(x):,} genes", transform=ax.transAxes, ha="left", va="top", fontsize=9,
                bbox={"boxstyle": "round", "facecolor": "white", "edgecolor": "#cccccc"})  # fmt: skip
        ax.set_xlabel(xlabel)
        ax.set_ylabel(ylabel)
        ax.legend(fontsize=8, loc="lower right", frameon=True)
    fig.tight_layout()  # labels are placed on the final layout
    for args in labelled:
        place_labels(*args)
    return fig


def patient_heatmap(before: pd.DataFrame, after: pd.DataFrame, genes: Sequence[str], title: str = "",
                    reference: pd.Series | None = None, reference_label: str = "target group mean"
                    ) -> plt.Figure:  # fmt: skip
    """Before / after profiles of a few patients over `genes`: one row pair per patient, then `reference` (for
    example the target group's mean profile) as the last row."""
    rows, labels = [], []
    for patient in before.index:
        rows += [before.loc[patient, list(genes)], after.loc[patient, list(genes)]]
        labels += [f"{patient} before", f"{patient} after"]
    if reference is not None:
        rows.append(reference[list(genes)])
        labels.append(reference_label)
    table = pd.DataFrame(rows, index=labels)
    lim = float(np.abs(table.to_numpy()).max())
    fig, ax = plt.subplots(figsize=(0.32 * len(genes) + 3, 0.36 * len(table) + 1.5))
    sns.heatmap(table, cmap="RdBu_r", center=0, vmin=-lim, vmax=lim, ax=ax,
                cbar_kws={"label": "expression (standardised)"})  # fmt: skip
    for k in range(2, len(table), 2):
        ax.axhline(k, color="white", lw=2)
    ax.set_xlabel("gene")
    ax.set_ylabel("patient, before and after" + ("; reference" if reference is not None else ""))
    ax.set_title(title)
    fig.tight_layout()
    return fig


def reconstruction_ecdf(r2: pd.DataFrame) -> plt.Figure:
    """Left: cumulative share of genes by their held-out reconstruction R² (clipped at -1), one curve per model
    (column). Right: the per-gene difference of each model's R² from the last column's (the reference, e.g. PCA of
    the same rank), which shows what curves lying on top of each other hide."""
    reference = r2.columns[-1]
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    colours = dict(zip(r2.columns, sns.color_palette("deep"), strict=False))
    for col in r2:
        axes[0].ecdf(r2[col].clip(-1, 1), label=col, color=colours[col])
    axes[0].set_xlabel("per-gene R² on the test split (clipped at -1)")
    axes[0].set_ylabel("fraction of genes")
    axes[0].legend(fontsize=8, loc="upper left")
    for col in r2.columns[:-1]:
        axes[1].ecdf((r2[col] - r2[reference]).clip(-0.5, 0.5), label=f"{col} − {reference}", color=colours[col])
    axes[1].axvline(0, color="grey", lw=0.8, ls="--")
    axes[1].set_xlabel(f"per-gene R², difference from {reference} (clipped at ±0.5)")
    axes[1].set_ylabel("fraction of genes")
    axes[1].legend(fontsize=8, loc="upper left")
    fig.tight_layout()
    return fig


def ablation_strip(rows: pd.DataFrame, order: Sequence[str], chance: float, n_patients: int,
                   target: float = 0.9, chance_weak: float | None = None) -> plt.Figure:  # fmt: skip
    """Strong MCC of each variant, with and without the linear stage, and its weak MCC (rows: "variant", "strong MCC",
    "strong MCC + stage", optionally "weak MCC"), one point per seed, in `order`, beside the chance level for
    `n_patients` (and the weak MCC's, `chance_weak`) and the target."""
    fig, ax = plt.subplots(figsize=(8, 0.42 * len(order) + 1.2))
    sns.stripplot(data=rows, y="variant", x="strong MCC", order=order, ax=ax, color="#4c72b0", size=5,
                  label="strong MCC, one seed")  # fmt: skip
    position = {v: i for i, v in enumerate(order)}  # the strip plot's row of each variant
    staged = rows.dropna(subset=["strong MCC + stage"])
    ax.scatter(staged["strong MCC + stage"], staged.variant.map(position), marker="x", color="#dd8452", s=28,
               label="with the linear stage")  # fmt: skip
    weak_too = "weak MCC" in rows
    if weak_too:
        weak = rows.dropna(subset=["weak MCC"])
        ax.scatter(weak["weak MCC"], weak.variant.map(position) + 0.25, marker="^", color="#8172b3", s=12,
                   label="weak MCC, one seed")  # fmt: skip
    ax.axvline(chance, color="grey", ls=":", label=f"chance, strong ({n_patients} patients)")
    if chance_weak is not None:
        ax.axvline(chance_weak, color="#8172b3", ls=":", label=f"chance, weak ({n_patients} patients)")
    ax.axvline(target, color="black", ls="--", lw=0.8, label=f"target {target:.2f}")
    ax.set_xlim(0, 1.02)  # room for the markers at 1
    meaning = "1 = identified up to permutation and scale" + ("; weak: up to a linear map" if weak_too else "")
    ax.set_xlabel(f"{'strong or weak' if weak_too else 'strong'} MCC on held-out patients ({meaning})")
    ax.set_ylabel("variant")
    handles, labels = ax.get_legend_handles_labels()
    unique = dict(zip(labels, handles, strict=True))  # the strip plot labels every seed's points
    ax.legend(unique.values(), unique.keys(), fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1), frameon=False)
    return fig


def matched_factors(codes: np.ndarray, truth: np.ndarray, pairs: Sequence[tuple[int, int, float]]) -> plt.Figure:
    """One panel per (true source, matched factor, |r|) in `pairs`: the source (truth (n, d)) against the factor
    (codes (n, d)) the matching pairs with it."""
    fig, axes = plt.subplots(1, len(pairs), figsize=(2.3 * len(pairs), 2.6), sharey=True)
    for ax, (t, e, value) in zip(np.atleast_1d(axes), pairs, strict=True):
        ax.scatter(truth[:, t], codes[:, e], s=3, alpha=0.4)
        ax.set_title(f"source s{t}: |r| = {value:.2f}", fontsize=9)
        ax.set_xlabel(f"true s{t} (a.u.)")
    np.atleast_1d(axes)[0].set_ylabel("matched factor (unit variance)")
    fig.tight_layout()
    return fig


def objective_tradeoff(tradeoff: pd.DataFrame, cohort_target: float = 0.90,
                       segments_target: float = 0.85) -> plt.Figure:  # fmt: skip
    """Median strong MCC on the cohort against the segments setting (columns "cohort", "segments"), one labelled
    point per objective (the index), the region where both targets hold shaded."""
    fig, ax = plt.subplots(figsize=(6.4, 4.4))
    ax.fill_between([cohort_target, 1.0], segments_target, 1.0, color="#55a868", alpha=0.15, label="both targets met",
                    zorder=0)  # fmt: skip
    ax.plot(tradeoff.cohort, tradeoff.segments, color="grey", lw=0.8, zorder=1)
    ax.scatter(tradeoff.cohort, tradeoff.segments, color="#4c72b0", zorder=2)
    ax.axvline(cohort_target, color="black", ls="--", lw=0.8)
    ax.axhline(segments_target, color="black", ls=":", lw=0.8)
    ax.set_xlim(min(0.6, tradeoff.cohort.min() - 0.02), 1.0)
    ax.set_ylim(min(0.5, tradeoff.segments.min() - 0.02), 1.0)
    ax.set_xlabel(f"cohort: median strong MCC, 5 seeds\n(target {cohort_target:.2f}, dashed)")
    ax.set_ylabel(f"segments: median strong MCC, 5 seeds\n(target {segments_target:.2f}, dotted)")
    ax.legend(loc="lower left", fontsize=8, frameon=False)
    place_labels(ax, tradeoff.cohort.tolist(), tradeoff.segments.tolist(), [str(name) for name in tradeoff.index])
    return fig


def cross_fit_mcc(panels: dict[str, pd.DataFrame]) -> plt.Figure:
    """One heatmap per title in `panels`: the strong MCC between every two fits (a square table)."""
    fig, axes = plt.subplots(1, len(panels), figsize=(5 * len(panels), 4.2))
    for ax, (title, matrix) in zip(np.atleast_1d(axes), panels.items(), strict=True):
        m = matrix.copy()
        m.index = m.columns = [str(i) for i in range(len(m))]
        sns.heatmap(m, vmin=0, vmax=1, cmap="viridis", annot=True, fmt=".2f", ax=ax, square=True,
                    cbar_kws={"label": "strong MCC between the two fits"})  # fmt: skip
        ax.set_xlabel("fit")
        ax.set_ylabel("fit")
        ax.set_title(title, fontsize=10)
    fig.tight_layout()
    return fig


def calibration_figure(panels: dict[str, pd.DataFrame]) -> plt.Figure:
    """Measured coverage against nominal level, one panel per benchmark: each frame has the nominal levels (0-1)
    as its index and one column per interval (`casestudy.coverage_curve`); a calibrated interval lies on the
    dashed diagonal."""
    fig, axes = plt.subplots(1, len(panels), figsize=(4.8 * len(panels), 4.4), squeeze=False, sharey=True)
    for ax, (name, curves) in zip(axes[0], panels.items(), strict=True):
        ax.plot([0, 1], [0, 1], color="#888888", lw=0.8, ls="--", label="calibrated")
        for (kind, values), color in zip(curves.items(), sns.color_palette("deep"), strict=False):
            ax.plot(curves.index, values, marker="o", ms=4, color=color, label=kind)
        ax.set_xlim(0.4, 1.0)
        ax.set_ylim(0.0, 1.02)
        ax.set_xlabel("nominal level of the interval")
        ax.set_ylabel("share of true values inside" if ax is axes[0, 0] else "")
        ax.set_title(name, fontsize=10)
        ax.legend(fontsize=8, loc="lower right", frameon=False)
    fig.tight_layout()
    return fig


def flip_embedding(before: pd.DataFrame, after: dict[str, pd.DataFrame], target: pd.DataFrame,
                   labels: tuple[str, str]) -> plt.Figure:  # fmt: skip
    """Flipped patients beside the group they were moved toward, in the first two principal components of the
    observed profiles (before and target, patients × genes): one panel per method in `after` (its predicted
    profiles of the `before` patients), a line from each patient to their prediction. `labels`: the names of the
    from and to groups, e.g. ("er = neg", "er = pos")."""
    pcs = PCA(n_components=2, random_state=0).fit(pd.concat([before, target]).to_numpy())
    ev = pcs.explained_variance_ratio_
    start, goal = pcs.transform(before.to_numpy()), pcs.transform(target.to_numpy())
    fig, axes = plt.subplots(1, len(after), figsize=(4.8 * len(after), 4.6), squeeze=False, sharex=True, sharey=True)
    grey, blue, orange = "#bbbbbb", *sns.color_palette("deep")[:2]
    for ax, (name, predicted) in zip(axes[0], after.items(), strict=True):
        end = pcs.transform(predicted.loc[before.index, before.columns].to_numpy())
        ax.scatter(goal[:, 0], goal[:, 1], s=14, color=grey, label=f"observed, {labels[1]}")
        for a, b in zip(start, end, strict=True):
            ax.plot([a[0], b[0]], [a[1], b[1]], color=orange, lw=0.5, alpha=0.5)
        ax.scatter(start[:, 0], start[:, 1], s=16, color=blue, label=f"observed, {labels[0]}")
        ax.scatter(end[:, 0], end[:, 1], s=16, color=orange, marker="^", label=f"{labels[0]} moved to {labels[1]}")
        ax.set_xlabel(f"PC1 ({ev[0]:.0%} of variance)")
        ax.set_ylabel(f"PC2 ({ev[1]:.0%})" if ax is axes[0, 0] else "")
        ax.set_title(name, fontsize=10)
    fig.legend(*axes[0, 0].get_legend_handles_labels(), fontsize=8, loc="upper center", ncol=3, frameon=False)
    fig.tight_layout(rect=(0, 0, 1, 0.92))
    return fig


def factor_correlations(correlations: pd.DataFrame, title: str = "") -> plt.Figure:
    """Spearman correlations (factors × clinical features), each cell annotated, on a diverging scale from −1 to 1
    with its colour bar."""
    fig, ax = plt.subplots(figsize=(1.1 * correlations.shape[1] + 2.5, 0.5 * correlations.shape[0] + 2.2))
    sns.heatmap(correlations, vmin=-1, vmax=1, center=0, cmap="vlag", annot=True, fmt=".2f", annot_kws={"fontsize": 8},
                ax=ax, cbar_kws={"label": "Spearman correlation"})  # fmt: skip
    ax.set_xlabel("clinical feature (level against the first level; numeric as is)")
    ax.set_ylabel("factor")
    ax.tick_params(axis="x", labelrotation=45)
    ax.tick_params(axis="y", labelrotation=0)
    for label in ax.get_xticklabels():
        label.set_horizontalalignment("right")
    if title:
        ax.set_title(title, fontsize=10)
    fig.tight_layout()
    return fig
