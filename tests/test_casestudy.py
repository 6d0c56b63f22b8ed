import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from idae.casestudy import group_effect, intervals, ranks, signature_table, stratified_effect
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
