"""idae.invert: empirical-Bayes shrinkage, the shrunk latent model and the direct and state paths of the inversion."""

import warnings

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from idae import IDAE
from idae.design import ClinicalDesign
from idae.errors import IdaeError
from idae.inversion_baselines import fit_inversion
from idae.invert import (
    LatentModel,
    fit_direct_path,
    fit_latent_model,
    fit_state_path,
    interaction_candidates,
    least_squares,
    patient_state,
    select_interactions,
    shrink,
    shrink_posterior,
)


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 10_000), n=st.integers(5, 400), scale=st.floats(0.01, 100.0))
def test_shrink_moves_every_effect_toward_zero_without_changing_its_sign(seed, n, scale):
    rng = np.random.default_rng(seed)
    se = scale * rng.uniform(0.5, 2.0, n)
    estimate = rng.normal(0, 1, n) * se * rng.choice([0.0, 1.0, 5.0], n)
    out = shrink(estimate, se)
    assert out.shape == estimate.shape and np.isfinite(out).all()
    assert (np.abs(out) <= np.abs(estimate) * (1 + 1e-9)).all()
    assert (out * estimate >= 0).all()


def test_shrink_zeroes_noise_and_keeps_large_effects():
    rng = np.random.default_rng(0)
    se = np.ones(2000)
    truth = np.where(np.arange(2000) < 100, 8.0, 0.0)
    out = shrink(truth + rng.normal(0, 1, 2000), se)
    assert np.abs(out[100:]).mean() < 0.1  # the estimates alone average 0.8
    np.testing.assert_allclose(out[:100].mean(), 8.0, atol=0.3)


def test_the_posterior_null_probability_separates_noise_from_large_effects():
    rng = np.random.default_rng(5)
    truth = np.where(np.arange(2000) < 100, 6.0, 0.0) * rng.choice([-1.0, 1.0], 2000)
    estimate = truth + rng.normal(0, 1, 2000)
    means, null = shrink_posterior(estimate, np.ones(2000))
    assert ((null >= 0) & (null <= 1)).all()
    assert np.median(null[:100]) < 0.01 and np.median(null[100:]) > 0.8
    np.testing.assert_array_equal(means, shrink(estimate, np.ones(2000)))


def test_least_squares_recovers_coefficients_and_their_standard_errors():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(5000, 2))
    y = 1.0 + x @ np.array([[2.0], [-1.0]]) + rng.normal(0, 0.5, (5000, 1))
    intercept, coef, se = least_squares(x, y)
    np.testing.assert_allclose(intercept, [1.0], atol=0.03)
    np.testing.assert_allclose(coef[:, 0], [2.0, -1.0], atol=0.03)
    np.testing.assert_allclose(se[:, 0], 0.5 / np.sqrt(5000), rtol=0.1)


def test_contrast_columns_drop_the_first_level_of_each_categorical_column():
    clinical = pd.DataFrame({"grade": pd.Categorical(["1", "2", "3", "2"]), "age": [50.0, 60.0, np.nan, 40.0],
                             "er": pd.Categorical(["neg", "pos", "pos", "neg"])})  # fmt: skip
    design = ClinicalDesign.fit(clinical)
    names = design.feature_names()
    kept = [names[i] for i in design.contrast_columns()]
    assert kept == ["grade=2", "grade=3", "age", "er=pos", "grade:missing", "age:missing", "er:missing"]


def test_the_shrunk_latent_model_keeps_a_real_effect_and_drops_an_unrelated_column():
    rng = np.random.default_rng(2)
    n = 1000
    real, unrelated = rng.integers(0, 2, n).astype(float), rng.integers(0, 2, n).astype(float)
    z = rng.normal(size=(n, 3))
    z[:, 0] += 2.0 * real
    z[:, 1] *= np.exp(0.7 * real)  # the real column also moves a factor's variance
    regressors = np.column_stack([real, unrelated])
    shrunk = fit_latent_model(z, regressors, "design", shrinkage=True)
    ridge = fit_latent_model(z, regressors, "design", shrinkage=False)
    mean, logvar, ridge_mean = (np.asarray(m) for m in (shrunk.mean_coef, shrunk.logvar_coef, ridge.mean_coef))
    assert mean[1, 0] == pytest.approx(2.0, abs=0.2)
    assert logvar[1, 1] == pytest.approx(1.4, abs=0.4)
    assert np.abs(mean[2]).max() < 0.5 * np.abs(ridge_mean[2]).max()
    assert np.abs(np.delete(logvar[1:], 1)).max() < 0.3  # every other log-variance effect is noise


def test_interaction_candidates_pair_contrasts_of_different_columns_without_missing_flags():
    clinical = pd.DataFrame({"grade": pd.Categorical(["1", "2", "3", "2"]), "age": [50.0, 60.0, np.nan, 40.0],
                             "er": pd.Categorical(["neg", "pos", "pos", "neg"])})  # fmt: skip
    design = ClinicalDesign.fit(clinical)
    names = design.feature_names()
    pairs = [(names[a], names[b]) for a, b in interaction_candidates(design)]
    assert pairs == [("grade=2", "age"), ("grade=3", "age"), ("grade=2", "er=pos"), ("grade=3", "er=pos"),
                     ("age", "er=pos")]  # fmt: skip


def _two_flags(seed: int, n: int, interaction: float) -> tuple[np.ndarray, np.ndarray]:
    """Regressors [a, b, noise] (n, 3) and factors (n, 3): a and b move factor 0, and their product by `interaction`."""
    rng = np.random.default_rng(seed)
    regressors = np.column_stack([rng.integers(0, 2, (n, 2)), rng.normal(size=n)]).astype(float)
    z = rng.normal(size=(n, 3))
    z[:, 0] += regressors[:, 0] - regressors[:, 1] + interaction * regressors[:, 0] * regressors[:, 1]
    return regressors, z


def test_select_interactions_keeps_a_real_product_on_its_factor_only():
    regressors, z = _two_flags(0, 600, interaction=1.5)
    selected = select_interactions(z, regressors, np.arange(3), [[0, 1], [0, 2], [1, 2]])
    assert selected.shape == (3, 3)
    assert selected[0, 0] and selected.sum() == 1


def test_select_interactions_keeps_something_in_at_most_its_error_rate_of_null_cohorts():
    """No product moves any factor. Under this global null, Benjamini–Hochberg at 5% keeps anything at all in at most
    5% of cohorts; over 400 fixed cohorts (0.055 measured; sd of the share about 0.011) the share stays below 8%. A
    miscomputed p-value (a wrong standard error or degrees of freedom) would push it far above."""
    kept = [select_interactions(z, regressors, np.arange(3), [[0, 1], [0, 2], [1, 2]]).any()
            for regressors, z in (_two_flags(seed, 300, interaction=0.0) for seed in range(400))]
    assert np.mean(kept) < 0.08


def test_the_shrunk_latent_model_carries_a_selected_interaction_into_its_mean():
    regressors, z = _two_flags(1, 600, interaction=1.5)
    with_products = fit_latent_model(z, regressors, "design", candidates=[[0, 1], [0, 2], [1, 2]])
    without = fit_latent_model(z, regressors, "design")
    assert with_products.interactions == [[0, 1]]
    assert np.asarray(with_products.mean_coef).shape == (5, 3)  # intercept, 3 regressors, 1 product
    # flip a for a patient without b (true move 1.0) and one with b (1.0 + 1.5)
    before, after = np.array([[0.0, 0.0, 0.0], [0.0, 1.0, 0.0]]), np.array([[1.0, 0.0, 0.0], [1.0, 1.0, 0.0]])
    move = lambda model: model.moments(after)[0][:, 0] - model.moments(before)[0][:, 0]  # noqa: E731
    np.testing.assert_allclose(move(with_products), [1.0, 2.5], atol=0.25)
    assert np.abs(move(without) - [1.0, 2.5]).min() > 0.5  # main effects alone give both the average move


def test_centred_products_keep_the_common_cells_flip_when_the_reference_cell_is_rare():
    """b is 1 for 95% of patients; a moves factor 0 by 1 where b = 0 and by 2 where b = 1. With the products of
    centred regressors the main effect of a is its average effect, well determined (and shrunk little), so the
    flip of a for b = 1 is within 0.06 of 2 on average over cohorts (uncentred, the main effect is a's effect
    among the rare b = 0 patients and shrinks toward zero: 0.16 off, measured)."""
    errors = []
    for seed in range(5):
        rng = np.random.default_rng(seed)
        n = 2000
        a, b = rng.integers(0, 2, n).astype(float), (rng.random(n) < 0.95).astype(float)
        regressors = np.column_stack([a, b, rng.normal(size=n)])
        z = rng.normal(size=(n, 3))
        z[:, 0] += a + a * b
        model = fit_latent_model(z, regressors, "design", candidates=[[0, 1], [0, 2], [1, 2]])
        assert model.interactions == [[0, 1]]
        np.testing.assert_allclose(model.centre, regressors.mean(axis=0))
        before, after = np.array([[0.0, 1.0, 0.0], [0.0, 0.0, 0.0]]), np.array([[1.0, 1.0, 0.0], [1.0, 0.0, 0.0]])
        flip = model.moments(after)[0][:, 0] - model.moments(before)[0][:, 0]
        assert 0.0 < flip[1] < flip[0]
        errors.append(abs(flip[0] - 2.0))
    assert np.mean(errors) < 0.06


def test_selected_products_keep_their_fitted_values_so_a_rare_cell_does_not_bias_the_common_flip():
    """Among ER-negative patients 2% are grade 1, so the products er·g2 and er·g3, each selected on its own test,
    are strongly correlated once both are in, and each has a wide standard error, while the ER flip within grade 3
    (their combination) is well determined. Shrinking the products one by one pulled that flip toward the average
    ER effect (0.26 off on average over these cohorts, measured before selected products kept their
    least-squares values); kept as fitted it is 0.07 off."""
    errors = []
    for seed in range(5):
        rng = np.random.default_rng(seed)
        n = 1500
        er = (rng.random(n) < 0.7).astype(float)
        p_grade = np.where(er[:, None] == 1, [0.25, 0.5, 0.25], [0.02, 0.33, 0.65])
        grade = 1 + (rng.random(n)[:, None] > np.cumsum(p_grade, axis=1)).sum(axis=1)
        g2, g3 = (grade == 2).astype(float), (grade == 3).astype(float)
        regressors = np.column_stack([er, g2, g3])
        z = rng.normal(size=(n, 2))
        z[:, 0] += 0.5 * er + 1.0 * er * g3 - g3
        model = fit_latent_model(z, regressors, "design", candidates=[[0, 1], [0, 2]])
        assert model.interactions == [[0, 1], [0, 2]]
        flip = model.moments(np.array([[1.0, 0.0, 1.0]]))[0] - model.moments(np.array([[0.0, 0.0, 1.0]]))[0]
        errors.append(abs(flip[0, 0] - 1.5))
    assert np.mean(errors) < 0.1


def test_a_product_the_others_span_is_skipped_and_the_flip_stays_estimable():
    """No er=0 patient has grade 1 (as in GSE1992), so er, er·g2 and er·g3 span one column too many: one
    product is skipped and the ER flip of a grade-3 patient is still the difference of its two cells."""
    rng = np.random.default_rng(4)
    n = 900
    grade = rng.integers(1, 4, n)
    er = np.where(grade == 1, 1, rng.integers(0, 2, n)).astype(float)
    regressors = np.column_stack([grade == 2, grade == 3, er]).astype(float)
    z = rng.normal(size=(n, 2))
    z[:, 0] += 1.0 * er + 1.5 * er * regressors[:, 0] - 1.5 * er * regressors[:, 1]
    model = fit_latent_model(z, regressors, "design", candidates=[[0, 2], [1, 2]])
    mean = np.asarray(model.mean_coef)
    assert model.interactions == [[0, 2], [1, 2]] and (mean[4:, 0] != 0).sum() == 1
    flip = model.moments(np.array([[0.0, 1.0, 1.0]]))[0] - model.moments(np.array([[0.0, 1.0, 0.0]]))[0]
    assert flip[0, 0] == pytest.approx(1.0 - 1.5, abs=0.3)


def test_the_direct_path_shrinks_each_design_column_across_genes():
    rng = np.random.default_rng(3)
    n, p = 100, 400
    flag = rng.integers(0, 2, n).astype(float)
    design = np.column_stack([1 - flag, flag])  # one-hot: the first column is the intercept's
    residuals = rng.normal(size=(n, p))
    residuals[:, :20] += 1.5 * flag[:, None]
    effect, null = fit_direct_path(design, residuals, np.array([1]))
    assert effect.shape == null.shape == (2, p) and (effect[0] == 0).all() and (null[0] == 1).all()
    np.testing.assert_allclose(effect[1, :20].mean(), 1.5, atol=0.3)
    assert np.abs(effect[1, 20:]).mean() < 0.05


def test_the_state_path_recovers_an_effect_that_depends_on_the_patient():
    """A flag moves 30 of 300 genes by a shared 1.0 plus 1.0 × the patient's state along a hidden direction
    of a 3-d state: the path finds that direction and those slopes, and nothing on a flag without effect."""
    rng = np.random.default_rng(6)
    n, p, k = 400, 300, 3
    flag, unrelated = rng.integers(0, 2, n).astype(float), rng.integers(0, 2, n).astype(float)
    design = np.column_stack([1 - flag, flag, 1 - unrelated, unrelated])
    state = rng.normal(size=(n, k))
    hidden = np.array([0.6, -0.8, 0.0])
    slopes = np.where(np.arange(p) < 30, rng.choice([-1.0, 1.0], p), 0.0)
    change = np.where(slopes != 0, 1.0, 0.0) + np.outer(state @ hidden, slopes)  # (n, p): shared + state-dependent
    residuals = rng.normal(0, 0.5, (n, p)) + flag[:, None] * change
    keep = np.array([1, 3])
    directions, effects = fit_state_path(design, state, residuals, keep, fit_direct_path(design, residuals, keep)[1])
    assert directions.shape == (4, k) and effects.shape == (4, p)
    assert (effects[[0, 2, 3]] == 0).all() and (directions[[0, 2, 3]] == 0).all()  # no effect, no state path
    sign = np.sign(directions[1] @ hidden)
    np.testing.assert_allclose(sign * directions[1], hidden, atol=0.1)
    np.testing.assert_allclose(sign * effects[1, :30], slopes[:30], atol=0.2)
    assert (effects[1, 30:] == 0).all()  # the hierarchy: no slope on genes the flag does not move


def test_the_state_direction_is_read_off_the_genes_the_column_surely_moves():
    """10 genes move by 1.0 with a slope along a hidden direction; 100 more move by 0.3, with slopes along
    another direction. Many of those are doubtful yet still among the moved genes, whose slopes the path fits;
    read off the sure genes only (`direction_null` 0.1), the direction is far closer to the hidden one than when
    every moved gene has its say (0.5)."""
    rng = np.random.default_rng(11)
    n, p, k = 300, 300, 3
    flag = rng.integers(0, 2, n).astype(float)
    design = np.column_stack([1 - flag, flag])
    state = rng.normal(size=(n, k))
    hidden, other = np.array([0.6, -0.8, 0.0]), np.array([0.0, 0.6, 0.8])
    change = np.zeros((n, p))
    change[:, :10] = 1.0 + np.outer(state @ hidden, np.ones(10))
    change[:, 10:110] = 0.3 + np.outer(state @ other, np.full(100, 0.5))
    residuals = rng.normal(0, 1.0, (n, p)) + flag[:, None] * change
    keep = np.array([1])
    null = fit_direct_path(design, residuals, keep)[1]
    assert (null[1, :10] < 0.1).all() and ((null[1, 10:110] >= 0.1) & (null[1, 10:110] < 0.5)).sum() >= 20
    cosine = {}
    for direction_null in (0.1, 0.5):
        directions, effects = fit_state_path(design, state, residuals, keep, null, direction_null=direction_null)
        cosine[direction_null] = abs(directions[1] @ hidden)
        assert (effects[1, null[1] >= 0.5] == 0).all()  # slopes on the moved genes only, whatever the direction
    assert cosine[0.1] > 0.85 and cosine[0.1] > cosine[0.5] + 0.1


def outside_the_factors(n: int = 240, p: int = 40, seed: int = 0) -> tuple[pd.DataFrame, pd.DataFrame, list[str]]:
    """Two strong factors moved by `er`, and a column `hidden` (independent of them) that adds 1.5 sd to
    six genes: an effect the leading factors do not carry."""
    rng = np.random.default_rng(seed)
    index = pd.Index([f"p{i:03d}" for i in range(n)])
    er = rng.choice(["neg", "pos"], n)
    hidden = rng.choice(["neg", "pos"], n)
    factors = rng.normal(size=(n, 2)) + np.where(er == "pos", 1.5, 0.0)[:, None]
    x = factors @ rng.normal(size=(2, p)) + 0.3 * rng.normal(size=(n, p))
    affected = [f"g{j}" for j in range(p - 6, p)]
    x[:, p - 6:] = 0.3 * rng.normal(size=(n, 6)) + 1.5 * (hidden == "pos")[:, None]
    genomic = pd.DataFrame(x, index=index, columns=[f"g{j}" for j in range(p)])
    clinical = pd.DataFrame({"er": pd.Categorical(er), "hidden": pd.Categorical(hidden)}, index=index)
    return genomic, clinical, affected


@pytest.fixture(scope="module")
def outside_fit():
    genomic, clinical, affected = outside_the_factors()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = IDAE(latent_dim=2, max_epochs=60, val_fraction=0.0, progress=False).fit(genomic, clinical)
    return model, genomic, clinical, affected


def test_the_direct_path_recovers_an_effect_the_factors_do_not_carry(outside_fit):
    model, genomic, clinical, affected = outside_fit
    negative = clinical.index[clinical["hidden"] == "neg"]
    change = model.invert(genomic.loc[negative], clinical.loc[negative], {"hidden": "pos"}) - genomic.loc[negative]
    np.testing.assert_allclose(change[affected].mean().to_numpy(), 1.5, atol=0.3)
    # the genes it does not touch move less than the difference of group means moves them (0.33 here: sampling
    # noise and the chance imbalance of er between the groups); the shrunk direct path keeps them nearer to 0
    positive = clinical.index[clinical["hidden"] == "pos"]
    group_shift = (genomic.loc[positive].mean() - genomic.loc[negative].mean()).drop(affected)
    assert change.drop(columns=affected).abs().to_numpy().mean() < group_shift.abs().mean()
    without = model.refit_inversion(genomic, clinical, direct_path=False)
    change = without.invert(genomic.loc[negative], clinical.loc[negative], {"hidden": "pos"}) - genomic.loc[negative]
    assert change[affected].abs().to_numpy().mean() < 0.75  # the factors alone miss at least half of it


def test_direct_path_on_totals_moves_the_patients_on_average_by_the_shrunk_total_effect(outside_fit):
    """With `direct_basis="totals"` the factor and direct paths together move the training patients, on average,
    by the empirical-Bayes-shrunk least-squares effect of the column on their profiles; on the residuals they
    move them by less where the factors carry part of the effect (here er, which moves both factors)."""
    model, genomic, clinical, _ = outside_fit
    scale = model.standardizer_.scale
    x = model.standardizer_.transform(genomic).to_numpy()
    design = model.design_.transform(clinical).astype(float)
    keep = model.design_.contrast_columns()
    _, coef, se = least_squares(design[:, keep], x)
    er_pos = model.design_.feature_names().index("er=pos")
    total = shrink_posterior(coef[list(keep).index(er_pos)], se[list(keep).index(er_pos)])[0]
    gaps = {}
    for basis in ("totals", "residuals"):
        refit = model.refit_inversion(genomic, clinical, direct_basis=basis, state_path=False)
        step = (refit.invert(genomic, clinical, {"er": "pos"}) - refit.invert(genomic, clinical, {"er": "neg"})) / scale
        gaps[basis] = np.abs(step.mean().to_numpy() - total)
    assert gaps["totals"].max() < 1e-3, gaps["totals"].max()
    assert gaps["residuals"].mean() > 10 * gaps["totals"].mean()


def test_the_surer_direct_path_takes_each_gene_from_the_basis_surer_that_it_moves(outside_fit):
    """The default `direct_basis="surer"`: gene by gene and column by column, the direct effect is the totals' or
    the residuals', whichever basis's shrinkage gives the lower probability of no effect. On er, which moves the
    factors, both bases are taken somewhere; on the hidden column, which the factors do not carry, the surer
    effect stays within noise of the residuals'."""
    model, genomic, clinical, affected = outside_fit
    assert model.config.direct_basis == "surer"  # the default
    fits = {basis: model.refit_inversion(genomic, clinical, direct_basis=basis, state_path=False)
            for basis in ("surer", "totals", "residuals")}  # fmt: skip
    effect = {basis: m.net_.direct_effect.numpy() for basis, m in fits.items()}
    from_totals = np.isclose(effect["surer"], effect["totals"], atol=1e-6)
    from_residuals = np.isclose(effect["surer"], effect["residuals"], atol=1e-6)
    assert (from_totals | from_residuals).all()
    names = model.design_.feature_names()
    er_pos, hidden_pos = names.index("er=pos"), names.index("hidden=pos")
    assert (from_totals[er_pos] & ~from_residuals[er_pos]).any()
    assert (from_residuals[er_pos] & ~from_totals[er_pos]).any()
    columns = [genomic.columns.get_loc(g) for g in affected]
    np.testing.assert_allclose(effect["surer"][hidden_pos, columns], effect["residuals"][hidden_pos, columns], atol=0.3)


def test_the_state_path_reads_the_patients_factors_not_their_position():
    """`hidden` moves six genes by 1 + the patient's first factor, and `er` moves that factor: the part of the
    modifier that er explains is in the factors z and not in the position u = (z - μ(y)) / σ(y), so the state
    path on z recovers each patient's change better."""
    rng = np.random.default_rng(8)
    n, p = 400, 40
    index = pd.Index([f"p{i:03d}" for i in range(n)])
    er, hidden = rng.choice(["neg", "pos"], n), rng.choice(["neg", "pos"], n)
    factors = rng.normal(size=(n, 2)) + np.where(er == "pos", 2.0, 0.0)[:, None] * np.array([1.0, 0.0])
    x = factors @ rng.normal(size=(2, p)) + 0.3 * rng.normal(size=(n, p))
    modifier = (factors[:, 0] - factors[:, 0].mean()) / factors[:, 0].std()
    effect = 1.0 + modifier  # (n,): on each of the last six genes
    x[:, p - 6:] += (hidden == "pos")[:, None] * effect[:, None]
    genomic = pd.DataFrame(x, index=index, columns=[f"g{j}" for j in range(p)])
    clinical = pd.DataFrame({"er": pd.Categorical(er), "hidden": pd.Categorical(hidden)}, index=index)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = IDAE(latent_dim=2, max_epochs=60, val_fraction=0.0, progress=False).fit(genomic, clinical)
    negative = index[hidden == "neg"]
    errors = {}
    for basis in ("factors", "position"):
        refit = model.refit_inversion(genomic, clinical, state_basis=basis)
        change = refit.invert(genomic.loc[negative], clinical.loc[negative], {"hidden": "pos"}) - genomic.loc[negative]
        errors[basis] = float(np.abs(change.to_numpy()[:, p - 6:] - effect[hidden == "neg", None]).mean())
    assert model.config.state_basis == "factors"  # the default
    assert errors["factors"] < 0.7 * errors["position"], errors


@given(st.integers(0, 2**32 - 1))
@settings(max_examples=20, deadline=None)
def test_patient_state_is_the_factors_or_their_position_given_the_clinical_state(seed):
    rng = np.random.default_rng(seed)
    n, d, q = 12, 3, 2
    regressors = rng.normal(size=(n, q))
    latent = LatentModel("design", rng.normal(size=(1 + q, d)).tolist(), (0.3 * rng.normal(size=(1 + q, d))).tolist())
    codes = rng.normal(size=(n, d))
    np.testing.assert_array_equal(patient_state(codes, latent, regressors, "factors"), codes)
    mean, sd = latent.moments(regressors)
    position = patient_state(codes, latent, regressors, "position")
    np.testing.assert_allclose(mean + sd * position, codes)  # the position is what inversion keeps
    with pytest.raises(IdaeError, match="state_basis must be one of"):
        patient_state(codes, latent, regressors, "u")


def test_refit_inversion_with_the_same_settings_gives_the_same_inversion(outside_fit):
    model, genomic, clinical, _ = outside_fit
    same = model.refit_inversion(genomic, clinical)
    changes = {"er": "pos"}
    pd.testing.assert_frame_equal(same.invert(genomic, clinical, changes), model.invert(genomic, clinical, changes))
    assert model.refit_inversion(genomic, clinical, direct_path=False).config.direct_path is False
    assert model.config.direct_path is True  # the original is left as it was
    with pytest.raises(IdaeError, match="latent_dim"):
        model.refit_inversion(genomic, clinical, latent_dim=3)
    with pytest.raises(IdaeError, match="direct_path"):
        model.refit_inversion(genomic, clinical, direct_path="yes")


def test_the_shrunk_baselines_keep_the_effect_and_drop_the_noise():
    genomic, clinical, affected = outside_the_factors(n=300, p=200, seed=4)
    negative = clinical.index[clinical["hidden"] == "neg"]
    for method in ("group_shift_shrunk", "linear_shrunk", "linear_state"):
        model = fit_inversion(method, genomic, clinical.drop(columns="er"))
        change = model.invert(genomic.loc[negative], clinical.loc[negative, ["hidden"]], {"hidden": "pos"})
        change -= genomic.loc[negative]
        np.testing.assert_allclose(change[affected].mean().to_numpy(), 1.5, atol=0.3, err_msg=method)
        assert change.drop(columns=affected).abs().to_numpy().mean() < 0.1, method


def test_linear_state_recovers_an_effect_that_depends_on_the_patients_state():
    rng = np.random.default_rng(5)
    n, p = 400, 200  # many genes, few affected: what the shrinkage prior is fitted on
    background = rng.normal(size=(n, 6)) * np.array([3.0, 2.8, 2.6, 2.4, 2.2, 2.0])
    state = background[:, 0] / 3.0  # six strong principal components, the state the first of them
    x = background @ np.linalg.qr(rng.normal(size=(p, 6)))[0].T * np.sqrt(p) + 0.3 * rng.normal(size=(n, p))
    flag = rng.choice(["neg", "pos"], n)
    slope = np.zeros(p)
    slope[:10] = 1.0
    x += (flag == "pos")[:, None] * (slope + np.outer(state, slope))  # on the first ten genes only
    index = pd.Index([f"p{i}" for i in range(n)])
    genomic = pd.DataFrame(x, index=index, columns=[f"g{j}" for j in range(p)])
    clinical = pd.DataFrame({"flag": pd.Categorical(flag)}, index=index)
    negative = index[flag == "neg"]
    truth = slope + np.outer(state[flag == "neg"], slope)
    errors = {}
    for method in ("linear_shrunk", "linear_state"):
        model = fit_inversion(method, genomic, clinical)
        change = model.invert(genomic.loc[negative], clinical.loc[negative], {"flag": "pos"}) - genomic.loc[negative]
        errors[method] = float(np.abs(change.to_numpy() - truth)[:, :10].mean())
    assert errors["linear_state"] < 0.5 * errors["linear_shrunk"]


def test_linear_products_recovers_an_effect_that_depends_on_another_column_and_keeps_no_product_without_one():
    rng = np.random.default_rng(7)
    n, p = 400, 300
    er, grade = rng.choice(["neg", "pos"], n), rng.choice(["low", "high"], n)
    x = rng.normal(size=(n, p))
    effect = np.zeros((n, p))
    effect[:, :10] = np.where(grade == "high", 2.0, 0.0)[:, None]  # ER moves ten genes, in high-grade tumours only
    x += (er == "pos")[:, None] * effect
    index = pd.Index([f"p{i}" for i in range(n)])
    genomic = pd.DataFrame(x, index=index, columns=[f"g{j}" for j in range(p)])
    clinical = pd.DataFrame({"er": pd.Categorical(er), "grade": pd.Categorical(grade)}, index=index)
    negative = index[er == "neg"]
    errors = {}
    for method in ("linear_shrunk", "linear_products"):
        model = fit_inversion(method, genomic, clinical)
        change = model.invert(genomic.loc[negative], clinical.loc[negative], {"er": "pos"}) - genomic.loc[negative]
        errors[method] = float(np.abs(change.to_numpy() - effect[er == "neg"])[:, :10].mean())
        assert change.iloc[:, 10:].abs().to_numpy().mean() < 0.1, method  # the other genes stay put
    assert errors["linear_products"] < 0.5 * errors["linear_shrunk"]
    # the same cohort without the dependence: the test keeps no product, and the baseline is linear_shrunk
    plain = genomic.copy()
    plain.iloc[:, :10] -= (er == "pos")[:, None] * effect[:, :10] - (er == "pos")[:, None] * 1.0
    products = fit_inversion("linear_products", plain, clinical)
    shrunk = fit_inversion("linear_shrunk", plain, clinical)
    assert len(products.pairs_) == 0
    np.testing.assert_allclose(products.coef_, shrunk.coef_, atol=1e-8)


def test_nearest_neighbours_returns_target_group_profiles_and_refuses_numeric_changes():
    genomic, clinical, _ = outside_the_factors(n=120, p=20, seed=6)
    clinical["age"] = np.linspace(40, 80, len(clinical))
    model = fit_inversion("nearest_neighbours", genomic, clinical)
    negative = clinical.index[clinical["er"] == "neg"]
    out = model.invert(genomic.loc[negative], clinical.loc[negative], {"er": "pos"})
    positive = genomic[clinical["er"] == "pos"]
    assert (out.min() >= positive.min() - 1e-9).all() and (out.max() <= positive.max() + 1e-9).all()
    with pytest.raises(IdaeError, match="age"):
        model.invert(genomic, clinical, {"age": 50.0})
