import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from idae.baselines import fit_inversion
from idae.casestudy import (
    change_ratio,
    group_effect,
    intervals,
    permutation_null,
    ranks,
    signature_table,
    stratified_effect,
)
from idae.errors import IdaeError


def test_intervals_cover_their_nominal_share_of_an_ensemble_drawn_from_the_truth():
    rng = np.random.default_rng(0)
    members = rng.normal(size=(400, 30, 20))  # a large ensemble: mean ± 1.645 sd is a 90% band
    lo, hi = intervals(members)["normal"]
    truth = rng.normal(size=(30, 20))
    covered = ((truth >= lo) & (truth <= hi)).mean()
    assert 0.85 < covered < 0.95
    qlo, qhi = intervals(members)["quantile"]
    assert np.all(qlo < qhi)


def test_intervals_need_two_members():
    with pytest.raises(IdaeError, match="members >= 2"):
        intervals(np.zeros((1, 3, 4)))


@settings(max_examples=30, deadline=None)
@given(st.lists(st.floats(-100, 100, allow_nan=False), min_size=1, max_size=40, unique=True))
def test_ranks_order_genes_by_absolute_effect(values):
    effect = pd.Series(values, index=[f"g{i}" for i in range(len(values))])
    r = ranks(effect)
    assert sorted(r) == list(range(1, len(values) + 1))
    top = r.idxmin()
    assert abs(effect[top]) == np.abs(effect).max()


def test_group_and_stratified_effects_separate_a_confounder():
    # grade confounds ER: ER- tumours are mostly grade 3, and grade alone raises gene "prolif"
    rows = []
    for er, grade, n in [("neg", "3", 40), ("neg", "1", 10), ("pos", "3", 10), ("pos", "1", 40)]:
        rows += [(er, grade)] * n
    labels = pd.DataFrame(rows, columns=["er", "grade"], index=[f"p{i}" for i in range(len(rows))])
    genomic = pd.DataFrame({
        "esr1": np.where(labels["er"] == "pos", 2.0, 0.0),
        "prolif": np.where(labels["grade"] == "3", 1.0, 0.0),
    }, index=labels.index)
    raw = group_effect(genomic, labels["er"], "neg", "pos")
    within = stratified_effect(genomic, labels["er"], "neg", "pos", labels["grade"])
    assert raw["esr1"] == pytest.approx(2.0) and within["esr1"] == pytest.approx(2.0)
    assert raw["prolif"] == pytest.approx(-0.6)  # the confounded contrast
    assert within["prolif"] == pytest.approx(0.0)  # gone at fixed grade
    with pytest.raises(IdaeError, match="no patient labelled"):
        group_effect(genomic, labels["er"], "neg", "unknown")


def test_signature_table_counts_genes_in_the_top_share_and_their_direction():
    effect = pd.Series(np.linspace(-1, 1, 100) ** 3, index=[f"g{i}" for i in range(100)])
    table = signature_table({"m": effect}, ["g99", "g0", "g50", "absent"], top_share=0.05)
    assert "absent" not in table.index
    assert table.loc["in top 5%", "m"] == 2  # g99 (+) and g0 (−)
    assert table.loc["up and in top 5%", "m"] == 1
    assert table.loc["g99", "m"].endswith("(+)")


def cohort_with_a_null_column(n: int = 200, p: int = 300, seed: int = 0) -> tuple[pd.DataFrame, pd.DataFrame]:
    """`er` moves 30 genes by 1.5 sd, `node` moves 20 genes by 1 sd, `null` moves nothing."""
    rng = np.random.default_rng(seed)
    index = pd.Index([f"p{i}" for i in range(n)])
    clinical = pd.DataFrame({c: pd.Categorical(rng.choice(["neg", "pos"], n)) for c in ("er", "node", "null")},
                            index=index)  # fmt: skip
    x = rng.normal(size=(n, p))
    x[:, :30] += 1.5 * (clinical["er"] == "pos").to_numpy()[:, None]
    x[:, 30:50] += 1.0 * (clinical["node"] == "pos").to_numpy()[:, None]
    return pd.DataFrame(x, index=index, columns=[f"g{j}" for j in range(p)]), clinical


def test_change_ratio_is_one_for_the_reference_itself():
    genomic, clinical = cohort_with_a_null_column()
    model = fit_inversion("group_shift", genomic, clinical)
    er = ("er", "neg", "pos")
    assert change_ratio(model, genomic, clinical, er, er) == pytest.approx(1.0)
    with pytest.raises(IdaeError, match="node = 'absent'"):
        change_ratio(model, genomic, clinical, ("node", "absent", "pos"), er)


def test_permutation_null_separates_a_real_effect_from_a_column_without_one():
    genomic, clinical = cohort_with_a_null_column()

    def fit(g, c):
        return fit_inversion("linear_shrunk", g, c)

    er = ("er", "neg", "pos")
    real = permutation_null(fit, genomic, clinical, ("node", "neg", "pos"), er, permutations=19, seed=1)
    assert real["p"] == pytest.approx(1 / 20)  # every shuffled copy moves less than the real column
    assert real["null"].shape == (19,) and real["observed"] > 3 * np.median(real["null"])
    empty = permutation_null(fit, genomic, clinical, ("null", "neg", "pos"), er, permutations=19, seed=1)
    assert empty["p"] > 0.05  # a column without an effect is inside its null at the 5% level
    assert clinical["null"].dtype == "category"  # the caller's table is left as it was
    with pytest.raises(IdaeError, match="permutations"):
        permutation_null(fit, genomic, clinical, ("null", "neg", "pos"), er, permutations=0)
