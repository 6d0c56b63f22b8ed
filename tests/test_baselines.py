"""Latent-factor and inversion baselines: shapes, recovery of known sources and effects, determinism, errors."""

import numpy as np
import pandas as pd
import pytest

from idae import IdaeError
from idae.factor_baselines import LATENT_METHODS, fit_latent
from idae.inversion_baselines import INVERSION_METHODS, fit_inversion
from idae.invert import apply_changes
from idae.metrics import mcc

# tiny settings: each neural fit takes well under a second
FAST = {"dae": {"hidden": (16, 16), "max_epochs": 30}, "cebra": {"max_iterations": 30, "num_hidden_units": 8}}


def mixture(n=80, genes=30, seed=0):
    """(clinical, genomic, sources): 3 uniform sources mixed linearly into genes; er=pos shifts source 0."""
    rng = np.random.default_rng(seed)
    ids = [f"p{i:02d}" for i in range(n)]
    er = rng.choice(["neg", "pos"], n)
    sources = rng.uniform(-np.sqrt(3), np.sqrt(3), size=(n, 3))
    sources[:, 0] += 1.0 * (er == "pos")
    mixing = rng.normal(size=(3, genes))
    x = sources @ mixing + 0.05 * rng.normal(size=(n, genes)) + 5.0
    clinical = pd.DataFrame({"er": pd.Categorical(er), "age": rng.normal(55, 10, n)}, index=ids)
    clinical.loc[ids[:4], "er"] = np.nan
    genomic = pd.DataFrame(x, index=ids, columns=[f"g{j}" for j in range(genes)])
    return clinical, genomic, sources


@pytest.fixture(scope="module")
def data():
    return mixture()


# --------------------------------------------------------------------------------------------------
# latent baselines


@pytest.mark.parametrize("method", LATENT_METHODS)
def test_latent_shape_order_and_finite(data, method):
    clinical, genomic, _ = data
    model = fit_latent(method, genomic, clinical, 3, **FAST.get(method, {}))
    assert model.method == method
    z = model.transform(genomic)
    assert z.shape == (len(genomic), 3) and z.dtype == np.float64 and np.isfinite(z).all()
    # rows follow the input's order; extra or reordered gene columns are fine
    subset = genomic.iloc[[5, 2, 9]]
    shuffled = subset[genomic.columns[::-1]].assign(extra=1.0)
    np.testing.assert_allclose(model.transform(shuffled), z[[5, 2, 9]], rtol=1e-5, atol=1e-5)


def test_raw_selects_the_most_variable_genes(data):
    clinical, genomic, _ = data
    model = fit_latent("raw", genomic, clinical, 4)
    top = genomic.var().sort_values(ascending=False).index[:4]
    assert set(model.genes) == set(top)
    np.testing.assert_array_equal(model.transform(genomic), genomic[model.genes].to_numpy())


def test_pca_spans_and_ica_recovers_the_sources(data):
    clinical, genomic, sources = data
    z = fit_latent("pca", genomic, clinical, 3).transform(genomic)
    fit = np.column_stack([np.ones(len(z)), z])
    resid = sources - fit @ np.linalg.lstsq(fit, sources, rcond=None)[0]
    assert (1 - resid.var(0) / sources.var(0)).min() > 0.99  # the PCA codes span the source subspace
    z = fit_latent("ica", genomic, clinical, 3).transform(genomic)
    assert mcc(z, sources) > 0.9  # and ICA finds the sources themselves


@pytest.mark.parametrize("method", ["dae", "cebra"])
def test_neural_baselines_are_deterministic_given_the_seed(data, method):
    clinical, genomic, _ = data
    runs = [fit_latent(method, genomic, clinical, 2, seed=s, **FAST[method]).transform(genomic) for s in (0, 0, 1)]
    np.testing.assert_array_equal(runs[0], runs[1])
    assert not np.allclose(runs[0], runs[2])


def test_latent_bad_input(data):
    clinical, genomic, _ = data
    with pytest.raises(IdaeError, match="method"):
        fit_latent("nmf", genomic, clinical, 3)
    with pytest.raises(IdaeError, match="latent_dim"):
        fit_latent("pca", genomic, clinical, 31)
    with pytest.raises(IdaeError, match="latent_dim"):
        fit_latent("raw", genomic, clinical, 0)
    with pytest.raises(IdaeError, match="unknown options"):
        fit_latent("pca", genomic, clinical, 3, noise=1.0)
    with pytest.raises(IdaeError, match="clinical"):
        fit_latent("cebra", genomic, None, 3)
    model = fit_latent("pca", genomic, clinical, 3)
    with pytest.raises(IdaeError, match="lacks"):
        model.transform(genomic.drop(columns="g3"))


# --------------------------------------------------------------------------------------------------
# inversion baselines


def test_no_change_is_the_identity(data):
    clinical, genomic, _ = data
    out = fit_inversion("no_change", genomic, clinical).invert(genomic, clinical, {"er": "pos"})
    pd.testing.assert_frame_equal(out, genomic)


def test_collapse_sets_every_patient_to_the_target_group_mean(data):
    clinical, genomic, _ = data
    out = fit_inversion("collapse", genomic, clinical).invert(genomic, clinical, {"er": "neg"})
    assert out.index.equals(genomic.index) and out.columns.equals(genomic.columns)
    target = genomic[clinical["er"] == "neg"].mean().to_numpy()
    np.testing.assert_allclose(out.to_numpy(), np.tile(target, (len(out), 1)))


def test_group_shift_moves_by_the_group_difference_and_reverses(data):
    clinical, genomic, _ = data
    model = fit_inversion("group_shift", genomic, clinical)
    moved = model.invert(genomic, clinical, {"er": "pos"})
    means = genomic.groupby(clinical["er"].astype(object)).mean()
    neg = (clinical["er"] == "neg").to_numpy()
    np.testing.assert_allclose((moved - genomic)[neg], np.tile(means.loc["pos"] - means.loc["neg"], (neg.sum(), 1)))
    missing = clinical["er"].isna().to_numpy()  # own group unknown: moved from the overall mean
    np.testing.assert_allclose((moved - genomic)[missing], np.tile(means.loc["pos"] - genomic.mean(), (4, 1)))
    # undo with the original values of the patients that had one (NaN in changes keeps the new value)
    back = model.invert(moved, apply_changes(clinical, {"er": "pos"}, ["er", "age"]), clinical[["er"]])
    np.testing.assert_allclose(back[~missing], genomic[~missing])


def test_group_shift_uses_the_slope_for_numeric_columns(data):
    clinical, genomic, _ = data
    model = fit_inversion("group_shift", genomic, clinical)
    out = model.invert(genomic, clinical, pd.DataFrame({"age": clinical["age"] + 10.0}))
    slope = np.array([np.polyfit(clinical["age"], genomic[g], 1)[0] for g in genomic.columns])
    np.testing.assert_allclose((out - genomic).to_numpy(), np.tile(10 * slope, (len(out), 1)), atol=1e-10)


def test_linear_recovers_a_known_linear_effect():
    rng = np.random.default_rng(1)
    n, genes = 200, 12
    ids = [f"q{i}" for i in range(n)]
    clinical = pd.DataFrame(
        {"er": pd.Categorical(rng.choice(["neg", "pos"], n)), "age": rng.normal(55, 10, n)}, index=ids
    )
    b_er, b_age = rng.normal(size=genes), rng.normal(size=genes)
    pos = (clinical["er"] == "pos").to_numpy()
    x = 2.0 * pos[:, None] * b_er + ((clinical["age"] - 55) / 10).to_numpy()[:, None] * b_age
    genomic = pd.DataFrame(x + 0.05 * rng.normal(size=(n, genes)), index=ids, columns=[f"g{j}" for j in range(genes)])
    model = fit_inversion("linear", genomic, clinical)
    delta = (model.invert(genomic, clinical, {"er": "pos"}) - genomic).to_numpy()
    np.testing.assert_allclose(delta[~pos], np.tile(2.0 * b_er, ((~pos).sum(), 1)), atol=0.05)
    np.testing.assert_allclose(delta[pos], 0.0, atol=1e-12)
    delta = (model.invert(genomic, clinical, {"age": 65.0}) - genomic).to_numpy()
    expected = ((65.0 - clinical["age"]) / 10).to_numpy()[:, None] * b_age
    np.testing.assert_allclose(delta, expected, atol=0.05)


@pytest.mark.parametrize("method", INVERSION_METHODS)
def test_inversion_rejects_unseen_levels_and_bad_changes(data, method):
    clinical, genomic, _ = data
    model = fit_inversion(method, genomic, clinical)
    with pytest.raises(IdaeError, match=r"'er'.*'unknown_level'"):
        model.invert(genomic, clinical, {"er": "unknown_level"})
    with pytest.raises(IdaeError, match="stage"):
        model.invert(genomic, clinical, {"stage": "II"})
    with pytest.raises(IdaeError, match="age"):
        model.invert(genomic, clinical, {"age": "old"})


def test_fit_inversion_rejects_an_unknown_method(data):
    clinical, genomic, _ = data
    with pytest.raises(IdaeError, match="method"):
        fit_inversion("optimal_transport", genomic, clinical)
