"""idae.semisynthetic.make_semisynthetic: real profiles plus a binary column of known per-patient effect."""

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from idae.errors import IdaeError
from idae.semisynthetic import SETTINGS, make_semisynthetic


def tables(n: int = 60, p: int = 80, seed: int = 0) -> tuple[pd.DataFrame, pd.DataFrame]:
    rng = np.random.default_rng(seed)
    index = pd.Index([f"p{i}" for i in range(n)], name="patient")
    genomic = pd.DataFrame(rng.normal(size=(n, p)), index=index, columns=[f"g{j}" for j in range(p)])
    clinical = pd.DataFrame({"er": pd.Categorical(rng.choice(["neg", "pos"], n)), "age": rng.normal(55, 9, n)},
                            index=index)  # fmt: skip
    return genomic, clinical


@settings(max_examples=25, deadline=None)
@given(sparsity=st.floats(0.05, 1.0), effect_size=st.floats(0.0, 3.0), interaction=st.floats(0.0, 2.0),
       prevalence=st.floats(0.0, 1.0), seed=st.integers(0, 10_000))  # fmt: skip
def test_the_observed_profiles_are_the_input_plus_each_positive_patients_effect(sparsity, effect_size, interaction,
                                                                                  prevalence, seed):  # fmt: skip
    genomic, clinical = tables()
    data = make_semisynthetic(genomic, clinical, sparsity=sparsity, effect_size=effect_size,
                              interaction=interaction, prevalence=prevalence, seed=seed)  # fmt: skip
    positive = (data.clinical["hidden"] == "pos").to_numpy()
    np.testing.assert_allclose(data.genomic - genomic, data.effect * positive[:, None], atol=1e-12)
    assert len(data.genes) == round(sparsity * genomic.shape[1])
    assert (data.effect.drop(columns=data.genes) == 0).all().all()
    assert data.clinical.drop(columns="hidden").equals(clinical)
    np.testing.assert_allclose([data.state.mean(), data.state.std(ddof=0)], [0, 1], atol=1e-9)
    # the true change: +effect for a "neg" patient sent to "pos", -effect the other way, none if already there
    np.testing.assert_allclose(data.true_change("pos"), data.effect * (~positive)[:, None])
    np.testing.assert_allclose(data.true_change("neg"), -data.effect * positive[:, None])


@pytest.mark.parametrize("setting", list(SETTINGS))
def test_flip_to_other_sends_each_patient_to_the_other_level_with_its_true_change(setting):
    genomic, clinical = tables()
    data = make_semisynthetic(genomic, clinical, seed=3, **SETTINGS[setting])
    held = genomic.index[::3]
    changes, truth = data.flip_to_other(held)
    now = data.clinical.loc[held, "hidden"].astype(str)
    assert list(changes.columns) == ["hidden"] and changes.index.equals(held)
    assert (changes["hidden"] != now).all()
    positive = (now == "pos").to_numpy()
    np.testing.assert_allclose(truth, data.effect.loc[held] * np.where(positive, -1.0, 1.0)[:, None])
    assert (truth[data.genes].abs().to_numpy() > 0).all() and (truth.drop(columns=data.genes) == 0).all().all()


def test_the_effect_has_a_shared_part_and_a_part_that_follows_the_patients_state():
    genomic, clinical = tables(n=200, p=100)
    data = make_semisynthetic(genomic, clinical, sparsity=0.2, effect_size=1.0, interaction=1.0, seed=3)
    effect = data.effect[data.genes]
    # per gene, the effect is linear in the state: a + b s exactly, with |b| = |a| at interaction 1
    for gene in data.genes[:5]:
        b, a = np.polyfit(data.state, effect[gene], 1)
        np.testing.assert_allclose(effect[gene], a + b * data.state, atol=1e-9)
        assert abs(abs(b) - abs(a)) < 1e-9 and 0.5 <= abs(a) <= 1.5
    flat = make_semisynthetic(genomic, clinical, sparsity=0.2, interaction=0.0, seed=3)
    assert (flat.effect[flat.genes].std() < 1e-12).all()  # no interaction: one shift for every patient
    again = make_semisynthetic(genomic, clinical, sparsity=0.2, effect_size=1.0, interaction=1.0, seed=3)
    assert again.genes.equals(data.genes) and again.effect.equals(data.effect)  # seeded


def test_bad_input_is_named():
    genomic, clinical = tables()
    with pytest.raises(IdaeError, match="'er' is already a clinical column"):
        make_semisynthetic(genomic, clinical, column="er")
    with pytest.raises(IdaeError, match="without a clinical row: \\['p0'\\]"):
        make_semisynthetic(genomic, clinical.drop(index="p0"))
    holed = genomic.copy()
    holed.iloc[3, 7] = np.nan
    with pytest.raises(IdaeError, match="patient 'p3', gene 'g7'"):
        make_semisynthetic(holed, clinical)
    with pytest.raises(IdaeError, match="sparsity must lie in"):
        make_semisynthetic(genomic, clinical, sparsity=1.5)
    with pytest.raises(IdaeError, match="affects no gene"):
        make_semisynthetic(genomic, clinical, sparsity=0.001)
    with pytest.raises(IdaeError, match="to must be 'neg' or 'pos'"):
        make_semisynthetic(genomic, clinical).true_change("yes")


# ---------------------------------------------------------------------------------------- the Bayes ceiling


def ols_change(data, train: pd.Index) -> np.ndarray:
    """Each patient's change to the other level from per-gene least squares on [1, s, pos, pos*s], every gene."""
    s = data.state.to_numpy()
    pos = (data.clinical["hidden"] == "pos").to_numpy().astype(float)
    rows = data.genomic.index.get_indexer(train)
    design = np.column_stack([np.ones(len(rows)), s[rows], pos[rows], pos[rows] * s[rows]])
    beta, *_ = np.linalg.lstsq(design, data.genomic.to_numpy()[rows], rcond=None)
    return np.where(pos == 1, -1.0, 1.0)[:, None] * (beta[2][None] + s[:, None] * beta[3][None])


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_the_bayes_ceiling_beats_unshrunk_least_squares_and_nears_the_truth_when_the_effect_is_large(seed):
    genomic, clinical = tables(n=160, p=200, seed=seed)
    train = genomic.index[:120]
    truth = lambda d: (d.true_change("pos") + d.true_change("neg")).to_numpy()  # noqa: E731
    small = make_semisynthetic(genomic, clinical, sparsity=0.1, effect_size=0.5, seed=seed)
    error = lambda change: ((change - truth(small))[120:] ** 2).mean()  # noqa: E731
    assert error(small.bayes_change(train).to_numpy()) < 0.5 * error(ols_change(small, train))
    large = make_semisynthetic(genomic, clinical, sparsity=0.1, effect_size=6.0, seed=seed)
    ceiling = large.bayes_change(train)
    assert list(ceiling.index) == list(genomic.index) and list(ceiling.columns) == list(genomic.columns)
    assert np.corrcoef(ceiling.to_numpy()[120:].ravel(), truth(large)[120:].ravel())[0, 1] > 0.99
    # the genes the column does not move stay (nearly) still
    assert np.abs(ceiling.drop(columns=large.genes).to_numpy()).max() < 0.05


def test_the_bayes_ceiling_names_unknown_training_patients_and_refuses_one_level():
    genomic, clinical = tables()
    data = make_semisynthetic(genomic, clinical, seed=1)
    with pytest.raises(IdaeError, match="not in the data: \\['x1'\\]"):
        data.bayes_change(pd.Index(["p0", "x1"]))
    only_neg = data.clinical.index[data.clinical["hidden"] == "neg"]
    with pytest.raises(IdaeError, match="both levels"):
        data.bayes_change(only_neg)
