import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from idae.casestudy import (
    Ensemble,
    change_ratio,
    conformal_intervals,
    coverage_curve,
    group_effect,
    intervals,
    permutation_null,
    set_rank_test,
    signature_table,
    stratified_effect,
    subagged,
)
from idae.data import subsample
from idae.errors import IdaeError
from idae.inversion_baselines import fit_inversion
from idae.metrics import ranks


def test_intervals_cover_their_nominal_share_with_a_large_ensemble():
    rng = np.random.default_rng(0)
    members = rng.normal(size=(400, 30, 20))  # a large ensemble: t ≈ normal, mean ± 1.645 sd is a 90% band
    lo, hi = intervals(members)["t"]
    truth = rng.normal(size=(30, 20))
    covered = ((truth >= lo) & (truth <= hi)).mean()
    assert 0.85 < covered < 0.95
    qlo, qhi = intervals(members)["quantile"]
    assert np.all(qlo < qhi)


def test_t_intervals_hold_their_level_with_five_members_where_a_normal_quantile_falls_short():
    # Five members drawn around a true value θ; their mean estimates θ with standard error sd/√5, so the
    # interval with scale 1/√5 is the textbook t interval for θ and must cover it 90% of the time even though
    # its sd comes from 4 degrees of freedom; the normal quantile would cover 82%.
    rng = np.random.default_rng(3)
    theta = rng.normal(size=(200, 50))
    members = theta + rng.normal(size=(5, 200, 50))
    lo, hi = intervals(members, scale=1 / np.sqrt(5))["t"]
    covered = ((theta >= lo) & (theta <= hi)).mean()
    assert 0.88 < covered < 0.92
    mean, sd = members.mean(axis=0), members.std(axis=0, ddof=1) / np.sqrt(5)
    assert (np.abs(theta - mean) <= 1.6449 * sd).mean() < 0.85


def test_interval_level_must_be_a_probability():
    with pytest.raises(IdaeError, match="level"):
        intervals(np.zeros((3, 2, 2)), level=90)


def randomised_cohort(seed: int, n: int, genes: int = 40) -> tuple[pd.DataFrame, pd.DataFrame, np.ndarray]:
    """Profiles whose arm ("a" / "b", assigned at random) shifts each gene by its own amount and the spread
    differs by gene: (profiles, clinical, each patient's profile in the other arm)."""
    rng = np.random.default_rng(seed)
    arm = rng.choice(["a", "b"], size=n)
    shift, spread = rng.normal(0, 2, genes), rng.uniform(0.5, 3, genes)
    base = rng.standard_t(5, size=(n, genes)) * spread
    ids = pd.Index([f"p{i}" for i in range(n)])
    profiles = pd.DataFrame(base + (arm == "b")[:, None] * shift, index=ids)
    other = base + (arm == "a")[:, None] * shift
    return profiles, pd.DataFrame({"arm": arm, "age": rng.normal(60, 9, n)}, index=ids), other


@settings(max_examples=5, deadline=None)
@given(st.integers(0, 2**16))
def test_conformal_intervals_cover_the_other_arm_at_their_level_when_the_arm_is_random(seed):
    profiles, clinical, other = randomised_cohort(seed, 1200)
    train, query = slice(0, 800), slice(800, None)
    targets = clinical["arm"].iloc[query].map({"a": "b", "b": "a"})
    lower, upper = conformal_intervals(profiles.iloc[train], clinical.iloc[train], "arm", targets, seed=seed)
    covered = (lower <= other[query]) & (other[query] <= upper)
    # split conformal covers at least 90% per gene in expectation, at most 90% + 1/(m + 1) with m ≈ 200
    # calibration patients per arm; 400 query patients × 40 genes make the share exact to about ±0.01
    assert 0.87 < covered.mean() < 0.94


def test_conformal_intervals_name_the_level_they_cannot_calibrate():
    profiles, clinical, _ = randomised_cohort(1, 30)
    with pytest.raises(IdaeError, match="'c'"):
        conformal_intervals(profiles, clinical, "arm", pd.Series(["c"] * 3, index=profiles.index[:3]))
    with pytest.raises(IdaeError, match="'arm' = 'b'.*too few"):
        conformal_intervals(profiles, clinical, "arm", pd.Series(["b"], index=profiles.index[:1]), level=0.99)
    with pytest.raises(IdaeError, match="stage"):
        conformal_intervals(profiles, clinical, "stage", pd.Series(["a"], index=profiles.index[:1]))
    with pytest.raises(IdaeError, match="level"):
        conformal_intervals(profiles, clinical, "arm", pd.Series(["a"], index=profiles.index[:1]), level=90)


@settings(max_examples=30, deadline=None)
@given(st.integers(7, 40), st.integers(0, 2**16), st.floats(0.3, 0.9))
def test_subsample_draws_distinct_patients_in_order_the_same_rows_of_both_tables(n, seed, fraction):
    ids = pd.Index([f"p{i}" for i in range(n)], name="patient")
    genomic = pd.DataFrame(np.arange(n * 3.0).reshape(n, 3), index=ids, columns=["a", "b", "c"])
    clinical = pd.DataFrame({"er": [["neg", "pos"][i % 2] for i in range(n)], "age": np.arange(n) + 40.0}, index=ids)
    g, c = subsample(genomic, clinical, seed=seed, fraction=fraction)
    assert len(g) == round(fraction * n) and g.index.equals(c.index) and g.index.is_unique
    assert list(g.index) == [i for i in ids if i in set(g.index)]  # original order
    pd.testing.assert_frame_equal(g, genomic.loc[g.index])
    pd.testing.assert_frame_equal(c, clinical.loc[g.index])
    assert subsample(genomic, clinical, seed=seed, fraction=fraction)[0].index.equals(g.index)


def test_subsample_refuses_misaligned_tables_and_bad_fractions():
    genomic = pd.DataFrame(np.zeros((20, 2)), index=[f"p{i}" for i in range(20)])
    with pytest.raises(IdaeError, match="same patients"):
        subsample(genomic, genomic.iloc[::-1], seed=0)
    for fraction in (0.0, 1.0, 1.5):
        with pytest.raises(IdaeError, match="fraction"):
            subsample(genomic, genomic, seed=0, fraction=fraction)
    with pytest.raises(IdaeError, match="too few"):
        subsample(genomic.iloc[:2], genomic.iloc[:2], seed=0, fraction=0.3)


def test_subagged_fits_each_member_on_its_own_subsample_with_its_own_seed():
    ids = pd.Index([f"p{i}" for i in range(50)])
    genomic = pd.DataFrame(np.arange(100.0).reshape(50, 2), index=ids)
    clinical = pd.DataFrame({"y": range(50)}, index=ids)
    seen = []

    def fit(g, c, seed):
        seen.append((g.index, seed))
        return seed

    ensemble = subagged(fit, genomic, clinical, members=3, fraction=0.5, progress=False)
    assert ensemble.models == [0, 1, 2] and ensemble.fraction == 0.5 and ensemble.interval_scale == 1.0
    for (index, seed), kept in zip(seen, ensemble.patients, strict=True):
        assert len(index) == 25 and index.equals(subsample(genomic, clinical, seed=seed, fraction=0.5)[0].index)
        assert kept.equals(index)
    assert not seen[0][0].equals(seen[1][0])
    assert subagged(fit, genomic, clinical, members=2, progress=False).interval_scale == pytest.approx(2.0)
    with pytest.raises(IdaeError, match="at least 2 members"):
        subagged(fit, genomic, clinical, members=1)


class _Member:
    """Stands for a fitted model: records the patients its inversion is refitted on."""

    def __init__(self):
        self.refitted_on = None

    def refit_inversion(self, genomic, clinical, **settings):
        out = _Member()
        out.refitted_on = (genomic.index, clinical.index, settings)
        return out


def test_refit_inversion_gives_each_subagged_member_the_patients_it_was_fitted_on():
    ids = pd.Index([f"p{i}" for i in range(40)])
    genomic, clinical = pd.DataFrame(np.zeros((40, 2)), index=ids), pd.DataFrame({"y": range(40)}, index=ids)
    ensemble = subagged(lambda g, c, seed: _Member(), genomic, clinical, members=3, progress=False)
    refitted = ensemble.refit_inversion(genomic.iloc[::-1], clinical.iloc[::-1], state_path=False)
    assert refitted.fraction == ensemble.fraction
    for member, patients in zip(refitted.models, ensemble.patients, strict=True):
        g_index, c_index, settings = member.refitted_on
        assert g_index.equals(patients) and c_index.equals(patients) and settings == {"state_path": False}
    with pytest.raises(IdaeError, match="lacks patients the members were fitted on"):
        ensemble.refit_inversion(genomic.iloc[:10], clinical.iloc[:10])
    with pytest.raises(IdaeError, match="both its fraction and each member's patients"):
        Ensemble([_Member()], 0.8)


def test_subsample_spread_scaled_estimates_the_sampling_sd_of_the_full_sample_mean():
    # the mean of n normal draws has sd 1/sqrt(n); the spread of subsample means, scaled, estimates it
    rng = np.random.default_rng(0)
    n, fraction = 400, 0.8
    data = pd.DataFrame(rng.normal(size=(n, 1)))
    means = [subsample(data, data, seed=m, fraction=fraction)[0].to_numpy().mean() for m in range(300)]
    scale = Ensemble([0], fraction, [data.index]).interval_scale
    assert scale * np.std(means, ddof=1) == pytest.approx(1 / np.sqrt(n), rel=0.15)


def test_scaled_intervals_widen_about_the_members_mean():
    rng = np.random.default_rng(1)
    members = rng.normal(size=(5, 4, 3))
    for kind, (lo, hi) in intervals(members).items():
        wide_lo, wide_hi = intervals(members, scale=2.0)[kind]
        centre = members.mean(axis=0)
        np.testing.assert_allclose(wide_hi - centre, 2 * (hi - centre))
        np.testing.assert_allclose(centre - wide_lo, 2 * (centre - lo))


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
    assert table.loc["mean rank, by increase", "m"] == pytest.approx((1 + 100 + 50) / 3, abs=0.5)


def test_the_set_rank_test_puts_a_top_set_at_its_smallest_p_and_a_bottom_set_at_one():
    effect = pd.Series(np.arange(200.0, 0.0, -1.0), index=[f"g{i}" for i in range(200)])  # g0 rises most
    assert set_rank_test(effect, ["g0", "g1", "g2"], permutations=999) == (2.0, 1 / 1000)
    rank, p = set_rank_test(effect, ["g197", "g198", "g199"], permutations=999)
    assert rank == 199.0 and p == 1.0
    with pytest.raises(IdaeError, match="at least one gene"):
        set_rank_test(effect, [])


@settings(max_examples=10, deadline=None, derandomize=True)
@given(size=st.integers(2, 12), seed=st.integers(0, 2**16))
def test_the_set_rank_test_rejects_random_sets_at_about_its_level(size, seed):
    """Gene sets drawn at random: p below 0.05 for about 5% of them (binomial sd 1.5% over 200 sets)."""
    rng = np.random.default_rng(seed)
    effect = pd.Series(rng.normal(size=300), index=[f"g{i}" for i in range(300)])
    p = [set_rank_test(effect, list(rng.choice(effect.index, size=size, replace=False)), permutations=199,
                       seed=k)[1] for k in range(200)]  # fmt: skip
    assert 0.01 <= np.mean(np.asarray(p) <= 0.05) <= 0.10


@settings(max_examples=20, deadline=None)
@given(seed=st.integers(0, 2**16), members=st.integers(2, 6))
def test_the_coverage_curve_rises_with_the_level_and_matches_the_interval_at_each(seed, members):
    rng = np.random.default_rng(seed)
    profiles, truth = rng.normal(size=(members, 7, 9)), rng.normal(size=(7, 9))
    curve = coverage_curve(profiles, truth, scale=2.0)
    assert list(curve.index) == [0.5, 0.6, 0.7, 0.8, 0.9, 0.95] and set(curve.columns) == {"t", "quantile"}
    assert (curve.diff().dropna() >= 0).all().all()  # nested intervals
    lower, upper = intervals(profiles, 0.9, scale=2.0)["t"]
    assert curve.loc[0.9, "t"] == pytest.approx(((lower <= truth) & (truth <= upper)).mean())
    moved = rng.random((7, 9)) < 0.5
    only = coverage_curve(profiles, truth, scale=2.0, cells=moved)
    assert only.loc[0.9, "t"] == pytest.approx(((lower <= truth) & (truth <= upper))[moved].mean())
    with pytest.raises(IdaeError, match="truth: expected shape"):
        coverage_curve(profiles, truth[:3])


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
