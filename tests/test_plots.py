"""Figure functions: the theme is set by an explicit call, every figure function returns a labelled figure."""

import subprocess
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from idae import plots  # noqa: E402


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
