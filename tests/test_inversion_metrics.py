"""idae.metrics inversion scores on cases with a known answer."""

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from idae.errors import IdaeError
from idae.metrics import (
    cycle_consistency,
    energy_distance,
    interval_coverage,
    per_patient_delta,
    population_metrics,
    residual_preservation,
)

shapes = st.tuples(st.integers(2, 30), st.integers(2, 60))


def normal(shape, seed=0, loc=0.0, scale=1.0):
    return np.random.default_rng(seed).normal(loc, scale, size=shape)


# per_patient_delta


@settings(max_examples=25, deadline=None)
@given(shape=shapes, seed=st.integers(0, 10_000))
def test_perfect_delta_scores_one(shape, seed):
    true = normal(shape, seed)
    out = per_patient_delta(true.copy(), true)
    assert list(out.columns) == ["pearson", "r2"] and len(out) == shape[0]
    np.testing.assert_allclose(out["pearson"], 1.0, atol=1e-9)
    np.testing.assert_allclose(out["r2"], 1.0, atol=1e-9)
    # a rescaled change keeps Pearson at 1 but loses R² (scale 2: R² = 1 - 1 = 0 exactly)
    scaled = per_patient_delta(true + (true - true.mean(axis=1, keepdims=True)), true)
    np.testing.assert_allclose(scaled["pearson"], 1.0, atol=1e-9)
    np.testing.assert_allclose(scaled["r2"], 0.0, atol=1e-9)


def test_independent_noise_scores_near_zero():
    n, p = 200, 2000
    out = per_patient_delta(normal((n, p), 1), normal((n, p), 2))
    # each r has sd ~ 1/sqrt(p) = 0.022: 5 sd bounds every patient; the mean over n patients has sd 1/sqrt(np)
    assert out["pearson"].abs().max() < 5 / np.sqrt(p)
    assert abs(out["pearson"].mean()) < 5 / np.sqrt(n * p)
    # same-variance independent noise doubles the squared error around the truth: R² ~ 1 - 2 = -1
    assert out["r2"].mean() == pytest.approx(-1.0, abs=0.05)


def test_constant_true_delta_gives_nan_not_a_crash():
    true = normal((4, 10), 3)
    true[0] = 0.0  # an unchanged patient
    true[1] = 0.1  # a constant shift
    pred = normal((4, 10), 4)
    pred[2] = 5.0  # a constant prediction: Pearson undefined, R² defined
    out = per_patient_delta(pred, true)
    assert out.loc[[0, 1]].isna().all().all()
    assert np.isnan(out.loc[2, "pearson"]) and np.isfinite(out.loc[2, "r2"])
    assert out.loc[3].notna().all()


def test_delta_keeps_the_patient_index():
    index = pd.Index(["p1", "p2", "p3"], name="patient")
    genes = ["g1", "g2", "g3", "g4"]
    true = pd.DataFrame(normal((3, 4), 5), index=index, columns=genes)
    out = per_patient_delta(true.to_numpy(), true)
    assert out.index.equals(index)
    out = per_patient_delta(true, true)
    assert out.index.equals(index)
    with pytest.raises(IdaeError, match="^true_delta's index"):
        per_patient_delta(true, true.iloc[::-1])
    with pytest.raises(IdaeError, match="^true_delta's columns"):
        per_patient_delta(true, true[genes[::-1]])


# interval_coverage


def test_gaussian_interval_covers_ninety_percent():
    truth = normal((200, 500), 6)  # 1e5 cells: the coverage has sd sqrt(0.9 * 0.1 / 1e5) ~ 0.001
    mean = np.zeros_like(truth)
    assert interval_coverage(mean - 1.645, mean + 1.645, truth) == pytest.approx(0.90, abs=0.005)
    assert interval_coverage(mean - 1.96, mean + 1.96, truth) == pytest.approx(0.95, abs=0.005)


@settings(max_examples=25, deadline=None)
@given(shape=shapes, seed=st.integers(0, 10_000))
def test_interval_coverage_known_cases(shape, seed):
    truth = normal(shape, seed)
    assert interval_coverage(truth, truth, truth) == 1.0  # bounds are inclusive
    assert interval_coverage(truth + 1, truth + 2, truth) == 0.0
    lower = truth - 1.0
    lower[:, 0] = truth[:, 0] + 0.5  # column 0 misses
    upper = np.maximum(truth + 1.0, lower)
    assert interval_coverage(lower, upper, truth) == pytest.approx(1 - 1 / shape[1])


def test_interval_with_upper_below_lower_is_an_error():
    truth = normal((3, 4), 7)
    with pytest.raises(IdaeError, match="^upper is below lower in 12 cell"):
        interval_coverage(truth + 1, truth - 1, truth)


# energy distance


def test_energy_distance_zero_for_identical_clouds_and_grows_with_shift():
    x = normal((300, 20), 8)
    assert energy_distance(x, x.copy()) == pytest.approx(0.0, abs=1e-9)
    # subsampled clouds (more rows than max_points) still give 0 for identical inputs
    assert energy_distance(x, x.copy(), max_points=100) == pytest.approx(0.0, abs=1e-9)
    shifts = [energy_distance(x, x + s) for s in (0.25, 0.5, 1.0)]
    assert 0 < shifts[0] < shifts[1] < shifts[2]


def test_energy_distance_penalises_collapse_unlike_the_squared_version():
    p = 30
    source = normal((500, p), 9)
    target = normal((500, p), 10, loc=1.0)
    correct = normal((500, p), 11, loc=1.0)  # same distribution as the target, other patients
    collapsed = np.tile(target.mean(axis=0), (500, 1))  # every patient on the target mean
    e_correct, e_collapsed = energy_distance(correct, target), energy_distance(collapsed, target)
    # collapse: 2E|mu - Y| - E|Y - Y'| ~ (2 - sqrt 2) sqrt(p) ~ 3.2; correct distribution: sampling noise only
    assert e_collapsed > 10 * e_correct
    assert e_collapsed == pytest.approx((2 - np.sqrt(2)) * np.sqrt(p), rel=0.1)

    def squared(a, b):
        d = lambda u, v: ((u[:, None, :] - v[None, :, :]) ** 2).sum(-1).mean()  # noqa: E731
        return 2 * d(a, b) - d(a, a) - d(b, b)

    # the squared version compares means only: it scores the collapse as perfect and prefers it
    assert squared(collapsed, target) == pytest.approx(0.0, abs=1e-9)
    assert squared(collapsed, target) < squared(correct, target)
    assert energy_distance(source, target) > e_correct


def test_energy_distance_subsample_is_seeded():
    x, y = normal((400, 5), 12), normal((400, 5), 13, loc=0.3)
    a = energy_distance(x, y, max_points=50, seed=1)
    assert a == energy_distance(x, y, max_points=50, seed=1)
    assert a != energy_distance(x, y, max_points=50, seed=2)
    assert energy_distance(x, y, max_points=400) == energy_distance(x, y, max_points=1000)


# population_metrics


def test_population_metrics_perfect_prediction():
    source = normal((100, 60), 14)
    shift = np.random.default_rng(15).normal(0, 2, 60)
    target = source + shift
    out = population_metrics(target.copy(), target, source)
    assert list(out) == ["r2_mean_all", "r2_mean_top20", "r2_mean_top50", "pearson_delta",
                         "wrong_direction_top20", "wrong_direction_top50", "energy_distance"]
    assert out["r2_mean_all"] == pytest.approx(1.0)
    assert out["r2_mean_top20"] == pytest.approx(1.0) and out["r2_mean_top50"] == pytest.approx(1.0)
    assert out["pearson_delta"] == pytest.approx(1.0)
    assert out["wrong_direction_top20"] == 0.0 and out["wrong_direction_top50"] == 0.0
    assert out["energy_distance"] == pytest.approx(0.0, abs=1e-9)


def test_reversed_change_is_always_in_the_wrong_direction():
    source = normal((80, 60), 16)
    target = normal((90, 60), 17, loc=np.random.default_rng(18).normal(0, 1, 60))
    observed_delta = target.mean(axis=0) - source.mean(axis=0)
    out = population_metrics(source - observed_delta, target, source)
    assert out["wrong_direction_top20"] == 1.0 and out["wrong_direction_top50"] == 1.0
    assert out["pearson_delta"] == pytest.approx(-1.0)
    assert out["r2_mean_all"] < 0


def test_top_genes_are_ranked_by_observed_change():
    p = 100
    source = normal((50, p), 19)
    shift = np.r_[np.full(20, 5.0), np.full(30, -2.0), np.full(50, 0.5)]
    predicted_shift = np.r_[np.full(20, 5.0), np.full(30, 2.0), np.full(50, 0.5)]  # genes 20-49 wrong way
    out = population_metrics(source + predicted_shift, source + shift, source, top=(20, 50, 10))
    assert out["wrong_direction_top20"] == 0.0 and out["wrong_direction_top10"] == 0.0
    assert out["wrong_direction_top50"] == pytest.approx(30 / 50)
    assert out["r2_mean_top20"] == pytest.approx(1.0) and out["r2_mean_top50"] < 0.9


def test_no_change_prediction():
    source = normal((60, 40), 20)
    target = normal((60, 40), 21, loc=np.linspace(-2, 2, 40))
    out = population_metrics(source.copy(), target, source, top=(10,))
    assert np.isnan(out["pearson_delta"])  # no predicted change: no correlation to speak of
    assert out["wrong_direction_top10"] == 0.0  # a zero change has no direction
    assert out["r2_mean_all"] < 0.5 and out["energy_distance"] > 0.5


def test_population_metrics_on_a_synthetic_counterfactual():
    from idae.synthetic import make_cohort

    cohort = make_cohort(n_samples=600, n_genes=80, latent_dim=4, seed=3)
    er = cohort.clinical_true["er"]
    neg, pos = er.index[er == "neg"], er.index[er == "pos"]
    changes = pd.DataFrame({"er": "pos"}, index=neg)  # every ER- patient made ER+
    truth = cohort.counterfactual(changes).loc[neg]
    assert not np.allclose(truth, cohort.genomic.loc[neg])
    source, target = cohort.genomic.loc[neg], cohort.genomic.loc[pos]
    collapsed = pd.DataFrame(np.tile(target.mean().to_numpy(), (len(neg), 1)), index=neg, columns=target.columns)
    good = population_metrics(truth, target, source)
    bad = population_metrics(collapsed, target, source)
    # the collapse matches the target means exactly, so only the energy distance tells it apart
    assert bad["r2_mean_all"] == pytest.approx(1.0) and bad["wrong_direction_top20"] == 0.0
    assert good["pearson_delta"] > 0.9 and good["wrong_direction_top20"] <= 0.1
    assert bad["energy_distance"] > 2 * good["energy_distance"]
    # the true counterfactual keeps much of each patient's deviation; the collapse keeps none (undefined)
    assert residual_preservation(source, truth, source.mean(), target.mean()) > 0.4
    assert np.isnan(residual_preservation(source, collapsed, source.mean(), target.mean()))


# residual_preservation


@settings(max_examples=25, deadline=None)
@given(shape=shapes, seed=st.integers(0, 10_000), per_patient=st.booleans())
def test_pure_group_shift_preserves_residuals(shape, seed, per_patient):
    rng = np.random.default_rng(seed)
    before = rng.normal(size=shape)
    mean_before = rng.normal(size=shape if per_patient else shape[1])
    mean_after = rng.normal(size=shape if per_patient else shape[1])
    after = before - mean_before + mean_after
    assert residual_preservation(before, after, mean_before, mean_after) == pytest.approx(1.0, abs=1e-9)


def test_shuffled_residuals_are_not_preserved():
    n, p = 200, 500
    rng = np.random.default_rng(22)
    mean_before, mean_after = rng.normal(size=p), rng.normal(size=p)
    residual = rng.normal(size=(n, p))
    before = mean_before + residual
    after = mean_after + residual[rng.permutation(n)]  # every patient gets another's residual
    # each r has sd 1/sqrt(p) ~ 0.045, their median over n patients ~ 1.25 * 0.045 / sqrt(n) ~ 0.004
    assert abs(residual_preservation(before, after, mean_before, mean_after)) < 0.03
    # collapsing onto the target mean leaves no residual at all: NaN, not a score
    assert np.isnan(residual_preservation(before, np.tile(mean_after, (n, 1)), mean_before, mean_after))


def test_group_mean_of_the_wrong_length_is_an_error():
    x = normal((5, 6), 23)
    with pytest.raises(IdaeError, match="^after_group_mean has shape"):
        residual_preservation(x, x, np.zeros(6), np.zeros(7))
    with pytest.raises(IdaeError, match="^before_group_mean has shape"):
        residual_preservation(x, x, np.zeros((4, 6)), np.zeros(6))


# cycle_consistency


@settings(max_examples=25, deadline=None)
@given(shape=shapes, seed=st.integers(0, 10_000))
def test_identity_round_trip_scores_one(shape, seed):
    x = normal(shape, seed)
    assert cycle_consistency(x, x.copy()) == pytest.approx(1.0, abs=1e-12)
    # returning the cohort mean is no better than the baseline of the denominator: 0
    assert cycle_consistency(x, np.tile(x.mean(axis=0), (shape[0], 1))) == pytest.approx(0.0, abs=1e-9)


def test_noisy_round_trip_scores_below_one():
    x = normal((100, 200), 24)
    noisy = x + normal(x.shape, 25, scale=0.5)
    # the cohort-mean deviation has ~ (1 - 1/n) sd 1 per gene, the noise 0.5: R² ~ 1 - 0.25 / 0.99
    assert cycle_consistency(x, noisy) == pytest.approx(0.75, abs=0.03)


# input errors name the argument


def bad_shape_cases():
    a, b = normal((5, 6), 26), normal((5, 7), 27)
    return [
        (per_patient_delta, (a, b), "true_delta"),
        (interval_coverage, (a, a + 1, b), "truth"),
        (interval_coverage, (a, b, a), "upper"),
        (population_metrics, (b, a, a), "predicted"),
        (population_metrics, (a, b, a), "observed_target"),
        (residual_preservation, (a, b, a, a), "after"),
        (cycle_consistency, (a, b), "round_trip"),
        (energy_distance, (a, b), "y"),
    ]


@pytest.mark.parametrize(("func", "args", "name"), bad_shape_cases())
def test_mismatched_shapes_name_the_argument(func, args, name):
    with pytest.raises(IdaeError, match=f"^{name} has"):
        func(*args)


@pytest.mark.parametrize(
    ("func", "n_args", "position", "name"),
    [
        (per_patient_delta, 2, 0, "predicted_delta"),
        (interval_coverage, 3, 2, "truth"),
        (population_metrics, 3, 1, "observed_target"),
        (residual_preservation, 4, 3, "after_group_mean"),
        (cycle_consistency, 2, 1, "round_trip"),
    ],
)
def test_non_finite_input_names_the_argument(func, n_args, position, name):
    args = [normal((5, 6), 28) for _ in range(n_args)]
    args[position][2, 3] = np.nan
    with pytest.raises(IdaeError, match=f"^{name} has non-finite values"):
        func(*args)


def test_top_beyond_the_gene_count_is_an_error():
    x = normal((5, 6), 29)
    with pytest.raises(IdaeError, match="^top must hold"):
        population_metrics(x, x, x)  # default top=(20, 50) with only 6 genes
