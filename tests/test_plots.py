"""Figure functions: the theme is set by an explicit call, every figure function returns a labelled figure."""

import subprocess
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402
from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from idae import plots  # noqa: E402
from idae.errors import IdaeError  # noqa: E402


def test_importing_plots_leaves_the_style_alone_and_set_theme_sets_it():
    """In a fresh interpreter, so that no other test's theme leaks in."""
    code = (
        "import matplotlib; before = dict(matplotlib.rcParams); import idae.plots as p; "
        "assert dict(matplotlib.rcParams) == before, 'import changed rcParams'; "
        "p.set_theme(); assert matplotlib.rcParams['axes.grid'] and dict(matplotlib.rcParams) != before"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_the_case_study_figures_label_their_axes():
    rng = np.random.default_rng(0)
    genes = [f"g{i}" for i in range(40)]
    mean = pd.Series(rng.normal(size=40), index=genes)
    figures = [
        plots.volcano(mean, pd.Series(rng.uniform(size=40), index=genes), {"signature": ["g1", "g2"]}, "agreement"),
        plots.top_genes_figure(mean, ["g1"], n=10, title="top"),
        plots.replication_figure({"cohort A": (mean, mean + rng.normal(size=40))}, "cohort B", marked=["g1"]),
        plots.per_patient_figure({"a": pd.DataFrame({"pearson": rng.uniform(size=5), "r2": rng.uniform(size=5)})}, "t"),
    ]
    for fig in figures:
        for ax in fig.axes:
            assert ax.get_xlabel() or ax.get_ylabel(), fig
        plt.close(fig)
    top = plots.top_genes_figure(mean, [], n=5)
    shown = [t.get_text() for t in top.axes[0].get_yticklabels()]
    assert shown == list(mean.abs().sort_values(ascending=False).index[:5])  # largest |change| on top
    plt.close(top)


# --------------------------------------------------------------------------------------------------
# legibility: every figure the report saves passes `legibility_problems`; crafted figures show what it catches

ER = ["ESR1", "GATA3", "FOXA1", "XBP1", "TFF1", "AGR2", "SCUBE2", "CA12"]
PROLIFERATION = ["AURKA", "BUB1", "CENPA", "MKI67", "TOP2A"]


def _report_like_figures() -> dict[str, plt.Figure]:
    """Every figure function on inputs of the report's size and shape (5,000 genes, 124 patients, the signature
    genes crowded together at the largest changes, eight methods, long labels)."""
    rng = np.random.default_rng(0)
    n, p = 124, 5000
    genes = ER + PROLIFERATION + [f"G{i}" for i in range(p - 13)]
    mean = pd.Series(rng.normal(0, 0.2, p), index=genes)
    mean[ER], mean[PROLIFERATION] = rng.uniform(0.7, 1.25, 8), rng.uniform(-0.75, -0.3, 5)
    agreement = pd.Series(np.clip(0.5 + 2 * mean.abs() + rng.normal(0, 0.05, p), 0, 1), index=genes)
    clinical = pd.DataFrame({
        "er": pd.Categorical(rng.choice(["negative", "positive"], n)),
        "grade": pd.Categorical(rng.choice(["1", "2", "3", None], n)),
        "age": rng.normal(50, 10, n),
        "histology": pd.Categorical(rng.choice([f"subtype {k}" for k in range(12)], n)),
    })  # fmt: skip
    genomic = pd.DataFrame(rng.normal(size=(n, 50)), columns=genes[:50])
    methods = ["idae", "no_change", "group_shift", "group_shift_shrunk", "linear", "linear_shrunk", "linear_state",
               "nearest_neighbours"]  # fmt: skip
    scores = {m: pd.DataFrame({"pearson": rng.uniform(size=20), "r2": rng.uniform(-2, 1, size=20)}) for m in methods}
    variants = ["default", "PCA", "FastICA", "without the augmentation"]
    rows = pd.DataFrame({"variant": np.repeat(variants, 5), "strong MCC": rng.uniform(size=20),
                         "strong MCC + stage": rng.uniform(size=20), "weak MCC": rng.uniform(size=20)})  # fmt: skip
    history = plots_history(rng)
    levels = np.array([0.5, 0.6, 0.7, 0.8, 0.9, 0.95])
    return {
        "clinical_distributions": plots.clinical_distributions(clinical),
        "missingness": plots.missingness(clinical),
        "gene_variance": plots.gene_variance(pd.Series(rng.lognormal(size=p)), 1.0),
        "pca_scatter": plots.pca_scatter(genomic, clinical, ["er", "grade", "histology"]),
        "loss_curves": plots.loss_curves({"default (iVAE + linear stage)": history, "seed model (DSM)": history},
                                         {"default (iVAE + linear stage)": "negative ELBO per gene"}),  # fmt: skip
        "per_patient_figure": plots.per_patient_figure(scores, "per-patient agreement"),
        "volcano": plots.volcano(mean, agreement, {"er signature": ER, "grade signature": PROLIFERATION},
                                 "share of members moving with the mean"),  # fmt: skip
        "top_genes_figure": plots.top_genes_figure(mean, ER, n=30, title="largest changes"),
        "replication_figure": plots.replication_figure(
            {"gse1992 effect": (mean, mean + rng.normal(0, 0.2, p)), "idae": (mean, 0.8 * mean)}, "gse4335 effect",
            marked=ER),  # fmt: skip
        "patient_heatmap": plots.patient_heatmap(genomic.iloc[:4], genomic.iloc[:4] + 1, genes[:13], title="flip",
                                                 reference=genomic.mean(), reference_label="er = positive: mean"),
        "reconstruction_ecdf": plots.reconstruction_ecdf(pd.DataFrame({"idae": rng.normal(size=300),
                                                                       "PCA": rng.normal(size=300)})),  # fmt: skip
        "ablation_strip": plots.ablation_strip(rows, variants, chance=0.11, n_patients=200, chance_weak=0.3),
        "matched_factors": plots.matched_factors(rng.normal(size=(200, 5)), rng.normal(size=(200, 5)),
                                                 [(i, i, 0.9) for i in range(5)]),  # fmt: skip
        "objective_tradeoff": plots.objective_tradeoff(pd.DataFrame(
            {"cohort": [0.80, 0.85, 0.90, 0.93, 0.95], "segments": [0.90, 0.88, 0.86, 0.80, 0.70]},
            index=["dsm", "dsm + reconstruction", "ivae", "ivae + stage", "energy"])),  # fmt: skip
        "cross_fit_mcc": plots.cross_fit_mcc({"idae, across seeds": pd.DataFrame(rng.uniform(size=(5, 5))),
                                              "resampled training sets": pd.DataFrame(rng.uniform(size=(5, 5)))}),
        "flip_embedding": plots.flip_embedding(
            genomic.iloc[:40], {name: genomic.iloc[:40] + 0.5 for name in ("idae", "group_shift", "linear_state")},
            genomic.iloc[40:], ("er = negative", "er = positive")),  # fmt: skip
        "factor_correlations": plots.factor_correlations(pd.DataFrame(
            rng.uniform(-1, 1, size=(6, 7)), index=[f"factor {k}" for k in range(6)],
            columns=["er=positive", "grade=2", "grade=3", "node=positive", "age", "size", "histology=lobular"])),
        "calibration_figure": plots.calibration_figure({
            name: pd.DataFrame({"t interval": levels - 0.02, "widened quantiles": levels - 0.2}, index=levels)
            for name in ("synthetic ER− → ER+, all cells", "semi-synthetic (1 sd, state-dependent), moved cells")
        }),
    }  # fmt: skip


def plots_history(rng: np.random.Generator):
    from idae.train import History

    curve = lambda: list(np.cumsum(rng.normal(size=60)))  # noqa: E731
    return History(train_objective=curve(), train_reconstruction=curve(), val_objective=curve(),
                   val_reconstruction=curve(), best_epoch=30)  # fmt: skip


def test_every_figure_function_draws_a_legible_figure_at_the_report_size():
    figures = _report_like_figures()
    assert {f for f in dir(plots) if f in figures} == set(figures)  # every name is a figure function of plots
    problems = {name: plots.legibility_problems(fig) for name, fig in figures.items()}
    plt.close("all")
    assert problems == {name: [] for name in figures}


def test_legibility_names_overlapping_tick_labels_and_save_writes_nothing(tmp_path):
    fig, ax = plt.subplots(figsize=(3, 2))
    ax.bar([f"a long category name {k}" for k in range(8)], np.arange(8))
    ax.set_xlabel("category")
    ax.set_ylabel("count")
    problems = plots.legibility_problems(fig)
    assert "'a long category name 0' overlaps 'a long category name 1'" in problems
    with pytest.raises(IdaeError, match="bars.png is hard to read: 'a long category name 0' overlaps"):
        plots.save(fig, tmp_path / "bars.png")
    assert list(tmp_path.iterdir()) == []
    ax.tick_params(axis="x", rotation=90)  # the same figure, labels turned: now it reads
    assert plots.legibility_problems(fig) == []
    assert plots.save(fig, tmp_path / "bars.png").exists()
    plt.close(fig)


def test_legibility_names_an_unlabelled_axis_and_text_too_small_to_read():
    fig, (left, right) = plt.subplots(1, 2, figsize=(8, 3))
    left.plot([0, 1], [0, 1])
    left.set_title("no labels")
    right.plot([0, 1], [0, 1])
    right.set_xlabel("x (a.u.)")
    right.set_ylabel("y (a.u.)")
    right.annotate("tiny", (0.5, 0.5), fontsize=5)
    problems = plots.legibility_problems(fig)
    assert problems == ["'no labels': the x axis has tick labels but no axis label",
                        "'no labels': the y axis has tick labels but no axis label",
                        "'tiny' is 5.0 pt (< 7)"]  # fmt: skip
    left.set_xticks([])
    left.set_yticks([])  # an axis that shows no ticks needs no label
    assert plots.legibility_problems(fig) == ["'tiny' is 5.0 pt (< 7)"]
    plt.close(fig)


@settings(max_examples=20, deadline=None)
@given(st.lists(st.tuples(st.floats(0.45, 0.55), st.floats(0.45, 0.55)), min_size=2, max_size=10),
       st.sampled_from([8.0, 10.0]))  # fmt: skip
def test_place_labels_keeps_crowded_point_labels_apart(points, fontsize):
    """Up to 10 labels on points crowded into 10% of each axis: none overlaps another or a tick label."""
    fig, ax = plt.subplots(figsize=(5, 4))
    x, y = zip(*points, strict=True)
    ax.scatter(x, y)
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.set_xlabel("x (a.u.)")
    ax.set_ylabel("y (a.u.)")
    plots.place_labels(ax, x, y, [f"GENE{k}" for k in range(len(points))], fontsize=fontsize)
    assert plots.legibility_problems(fig) == []
    plt.close(fig)
