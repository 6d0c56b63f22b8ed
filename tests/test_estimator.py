"""The IDAE estimator: fit / encode / reconstruct / invert / save / load, input errors, NaN guard, bench."""

import dataclasses
import inspect
import json
import re
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import idae
import idae.train
from idae import IDAE, IdaeError
from idae.config import Config, Rule

ROOT = Path(__file__).resolve().parent.parent
# tiny networks and few epochs: every fit below takes a fraction of a second
TINY = {"encoder_hidden": (16, 16), "condition_hidden": (8,), "decoder_hidden": (16,), "max_epochs": 20,
        "progress": False}  # fmt: skip


def cohort(n=60, genes=40, seed=0):
    """(clinical, genomic): er neg/pos shifts the first 5 genes, grade 1/2/3 the next 3; age numeric."""
    rng = np.random.default_rng(seed)
    ids = [f"p{i:02d}" for i in range(n)]
    er = rng.choice(["neg", "pos"], n)
    grade = rng.choice(["1", "2", "3"], n)
    clinical = pd.DataFrame(
        {"er": pd.Categorical(er), "grade": pd.Categorical(grade), "age": rng.normal(55, 10, n)}, index=ids
    )
    x = rng.normal(size=(n, genes))
    x[:, :5] += 2.0 * (er == "pos")[:, None]
    x[:, 5:8] += 0.8 * (grade.astype(int) - 2)[:, None]
    genomic = pd.DataFrame(x * 0.5 + 7.0, index=ids, columns=[f"g{j}" for j in range(genes)])
    return clinical, genomic


def weights_of(model):
    return {k: v.clone() for k, v in model.net_.state_dict().items()}


def all_finite(model):
    return all(torch.isfinite(v).all() for v in model.net_.state_dict().values())


@pytest.fixture(scope="module")
def data():
    return cohort()


@pytest.fixture(scope="module")
def fitted(data):
    clinical, genomic = data
    return IDAE(latent_dim=3, seed=0, **TINY).fit(genomic, clinical)


# ----------------------------------------------------------------------------------------- outputs


def test_encode_reconstruct_invert_shapes_and_index(fitted, data):
    clinical, genomic = data
    # a shuffled subset with extra, reordered gene columns: outputs follow the caller's rows
    rows = genomic.index[::-3]
    extra = genomic.loc[rows, genomic.columns[::-1]].assign(unused=1.0)
    z = fitted.encode(extra)
    assert isinstance(z, np.ndarray) and z.shape == (len(rows), 3) and z.dtype == np.float64
    assert np.isfinite(z).all()
    np.testing.assert_array_equal(z, fitted.encode(genomic.loc[rows]))
    for out in (fitted.reconstruct(extra), fitted.invert(extra, clinical, {"er": "pos"})):
        assert isinstance(out, pd.DataFrame)
        assert out.index.equals(rows) and list(out.columns) == fitted.genes_ == list(genomic.columns)
        assert np.isfinite(out.to_numpy()).all()


def test_invert_accepts_a_table_of_new_values_and_no_change_is_identity(fitted, data):
    clinical, genomic = data
    same = fitted.invert(genomic, clinical, clinical[["er"]])
    pd.testing.assert_frame_equal(same, genomic, atol=1e-4, rtol=0)
    flipped = clinical[["er"]].astype(object).replace({"neg": "pos", "pos": "neg"})
    moved = fitted.invert(genomic, clinical, flipped)
    assert moved.index.equals(genomic.index) and not np.allclose(moved, genomic)


def test_text_and_boolean_columns_fit_without_align_and_match_their_categorical_fit(fitted, data, tmp_path):
    """The tables users have: er as text, a boolean flag. The fit is the one the categorical table gives, and a
    flip names the level as text."""
    clinical, genomic = data
    as_text = clinical.assign(er=clinical["er"].astype(str).astype(object), grade=clinical["grade"].astype(str))
    model = IDAE(latent_dim=3, seed=0, **TINY).fit(genomic, as_text)
    assert model.design_.levels == fitted.design_.levels
    np.testing.assert_array_equal(model.encode(genomic), fitted.encode(genomic))
    flipped = model.invert(genomic, as_text, {"er": "pos"})
    pd.testing.assert_frame_equal(flipped, fitted.invert(genomic, clinical, {"er": "pos"}))
    flagged = clinical.assign(treated=(clinical["age"] > 55).to_numpy())
    with_flag = IDAE(latent_dim=3, seed=0, **TINY).fit(genomic, flagged)
    assert with_flag.design_.levels["treated"] == ["False", "True"]
    again = IDAE.load(with_flag.save(tmp_path / "flag"))
    pd.testing.assert_frame_equal(again.invert(genomic, flagged, {"treated": True}),
                                  with_flag.invert(genomic, flagged, {"treated": True}))


def test_natural_parameters_shape(fitted, data):
    clinical, _ = data
    lam = fitted.natural_parameters(clinical)
    # the Gaussian head: [m/v, -1/(2v)] for each of the 3 factors, a positive precision
    assert lam.shape == (len(clinical), 2 * 3) and np.isfinite(lam).all() and (lam[:, 3:] < 0).all()


# ----------------------------------------------------------------------------------------- objectives


@pytest.mark.parametrize("objective", ["ivae", "infonce"])
def test_objective_decreases_on_a_small_problem(data, objective):
    clinical, genomic = data
    # the objective alone (no reconstruction term to trade against) must go down
    model = IDAE(latent_dim=3, objective=objective, val_fraction=0.0, learning_rate=3e-3, reconstruction_weight=0.0,
                 **{**TINY, "max_epochs": 60}).fit(genomic, clinical)  # fmt: skip
    h = model.history_
    assert len(h.train_objective) == 60 and h.stopped.startswith("reached")
    assert h.train_objective[-1] < h.train_objective[0]
    assert np.isfinite(h.train_reconstruction).all()


def test_dsm_objective_stays_at_its_floor_from_the_pca_start(data):
    """DSM per gene is ½‖x̃ + σ²∇ℓ − x‖²/σ² ≈ ½ when the score explains none of the corruption; a d-factor
    energy explains at most d of the genes' directions, and the PCA start already explains those."""
    clinical, genomic = data
    model = IDAE(latent_dim=3, objective="dsm", noise=0.5, val_fraction=0.0, learning_rate=3e-3,
                 reconstruction_weight=0.0, **{**TINY, "max_epochs": 30}).fit(genomic, clinical)  # fmt: skip
    assert all(0.3 < v < 0.6 for v in model.history_.train_objective)


def test_validation_split_gives_validation_history(fitted):
    h = fitted.history_
    assert len(h.val_objective) == len(h.train_objective) > 0
    assert 0 <= h.best_epoch < len(h.train_objective)


# ---------------------------------------------------------------------------------------- determinism


def test_same_seed_is_bit_for_bit_reproducible_different_seed_is_not(data):
    clinical, genomic = data
    a = IDAE(latent_dim=3, seed=7, **TINY).fit(genomic, clinical)
    b = IDAE(latent_dim=3, seed=7, **TINY).fit(genomic, clinical)
    c = IDAE(latent_dim=3, seed=8, **TINY).fit(genomic, clinical)
    wa, wb, wc = weights_of(a), weights_of(b), weights_of(c)
    assert wa.keys() == wb.keys() and all(torch.equal(wa[k], wb[k]) for k in wa)
    np.testing.assert_array_equal(a.encode(genomic), b.encode(genomic))
    assert a.history_.train_objective == b.history_.train_objective
    assert not all(torch.equal(wa[k], wc[k]) for k in wa)
    assert not np.array_equal(a.encode(genomic), c.encode(genomic))


# ------------------------------------------------------------------------------------------ save/load


def test_save_load_round_trip_is_exact(fitted, data, tmp_path):
    clinical, genomic = data
    path = fitted.save(tmp_path / "model")
    assert sorted(p.name for p in path.iterdir()) == ["config.json", "weights.pt"]
    loaded = IDAE.load(path)
    assert loaded.config == fitted.config.__class__(**{**fitted.config.__dict__, "progress": False})
    assert loaded.genes_ == fitted.genes_
    np.testing.assert_array_equal(loaded.encode(genomic), fitted.encode(genomic))
    pd.testing.assert_frame_equal(loaded.reconstruct(genomic), fitted.reconstruct(genomic), check_exact=True)
    changes = {"er": "pos", "grade": "3"}
    pd.testing.assert_frame_equal(
        loaded.invert(genomic, clinical, changes), fitted.invert(genomic, clinical, changes), check_exact=True
    )
    fitted.save(path)  # overwriting an existing model works and leaves no temporary folders behind
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model"]
    np.testing.assert_array_equal(IDAE.load(path).encode(genomic), fitted.encode(genomic))


def test_load_refuses_missing_files(fitted, tmp_path):
    with pytest.raises(IdaeError, match="not a saved IDAE model"):
        IDAE.load(tmp_path / "nowhere")
    path = fitted.save(tmp_path / "model")
    (path / "weights.pt").unlink()
    with pytest.raises(IdaeError, match="weights.pt"):
        IDAE.load(path)


def test_load_refuses_truncated_weights(fitted, tmp_path):
    path = fitted.save(tmp_path / "model")
    raw = (path / "weights.pt").read_bytes()
    (path / "weights.pt").write_bytes(raw[: len(raw) // 2])
    with pytest.raises(IdaeError, match="weights.pt is damaged"):
        IDAE.load(path)


def test_load_refuses_a_config_whose_gene_list_does_not_fit_the_weights(fitted, tmp_path):
    path = fitted.save(tmp_path / "model")
    payload = json.loads((path / "config.json").read_text())
    # drop one gene consistently from the gene list and the standardiser: the weights no longer fit
    payload["genes"] = payload["genes"][:-1]
    for key in ("genes", "mean", "scale"):
        payload["standardizer"][key] = payload["standardizer"][key][:-1]
    (path / "config.json").write_text(json.dumps(payload))
    with pytest.raises(IdaeError, match="does not fit the model"):
        IDAE.load(path)
    # a gene list that disagrees with the standardiser is caught before the weights are read
    payload["genes"] = payload["genes"][:-1]
    (path / "config.json").write_text(json.dumps(payload))
    with pytest.raises(IdaeError, match="genes do not match"):
        IDAE.load(path)


def test_load_refuses_damaged_json(fitted, tmp_path):
    path = fitted.save(tmp_path / "model")
    (path / "config.json").write_text('{"format_version": 1, "config": ')
    with pytest.raises(IdaeError, match="damaged or not an IDAE config"):
        IDAE.load(path)


class _Payload:
    """An arbitrary object whose unpickling would run code (writes a marker file)."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (exec, (f"open({self.marker!r}, 'w').close()",))


def test_load_refuses_a_pickled_object_without_running_it(fitted, tmp_path):
    path = fitted.save(tmp_path / "model")
    marker = tmp_path / "code-ran"
    torch.save(_Payload(marker), path / "weights.pt")
    with pytest.raises(IdaeError, match="damaged or not a plain weights file"):
        IDAE.load(path)
    assert not marker.exists()
    torch.save({"not": "weights"}, path / "weights.pt")  # loads under weights_only but does not fit
    with pytest.raises(IdaeError, match="does not fit"):
        IDAE.load(path)


# ------------------------------------------------------------------------------------- missing clinical


def test_missing_clinical_cells_fit_and_no_patient_is_dropped(data):
    clinical, genomic = data
    clinical = clinical.copy()
    clinical.loc[clinical.index[::4], "er"] = np.nan
    clinical.loc[clinical.index[1::5], "grade"] = np.nan
    clinical.loc[clinical.index[2::3], "age"] = np.nan
    clinical.loc[clinical.index[7], :] = np.nan  # one patient with every cell missing
    model = IDAE(latent_dim=3, **TINY).fit(genomic, clinical)
    z = model.encode(genomic)
    assert z.shape == (len(genomic), 3) and np.isfinite(z).all()
    lam = model.natural_parameters(clinical)
    assert lam.shape[0] == len(clinical) and np.isfinite(lam).all()
    x_cf = model.invert(genomic, clinical, {"er": "pos"})
    assert x_cf.index.equals(genomic.index) and np.isfinite(x_cf.to_numpy()).all()


@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    fractions=st.tuples(*[st.sampled_from([0.0, 0.1, 0.5, 0.9, 1.0])] * 3),
    seed=st.integers(0, 2**16),
)
def test_any_missing_pattern_fits_or_names_the_column(data, fractions, seed):
    """Whatever cells are missing, fit either works on every patient or says which column is unusable
    (a column with no observed value, or a single observed level, carries no information)."""
    clinical, genomic = data
    rng = np.random.default_rng(seed)
    clinical = clinical.copy()
    for col, frac in zip(clinical.columns, fractions, strict=True):
        clinical.loc[rng.random(len(clinical)) < frac, col] = np.nan
    try:
        model = IDAE(latent_dim=2, **{**TINY, "max_epochs": 5}).fit(genomic, clinical)
    except IdaeError as err:
        assert any(repr(col) in str(err) for col in clinical.columns), str(err)
        assert max(fractions) >= 0.9
        return
    assert model.encode(genomic).shape == (len(genomic), 2)
    weights = model._weights(clinical).numpy()
    assert np.all((weights > 0) & (weights <= 1))
    assert np.isfinite(model.natural_parameters(clinical)).all()
    assert model.invert(genomic, clinical, {"age": 40.0}).shape == genomic.shape


# -------------------------------------------------------------------------------------------- NaN guard


def nan_at_epoch(monkeypatch, epoch, kind):
    """Make idae.train's objective return a non-finite loss (or a finite loss with non-finite
    gradients) on the first training batch of `epoch`."""
    real = idae.train.Objective.__call__
    calls = {"n": 0}

    def fake(objective, net, *args):
        main, rec, total = real(objective, net, *args)
        if net.training:
            calls["n"] += 1
            if calls["n"] == epoch + 1:  # one batch per epoch here
                if kind == "loss":
                    total = total * float("nan")
                else:  # value 0, gradient 0 · ∞ = nan
                    total = total + 0.0 * torch.sqrt(0.0 * sum(p.sum() for p in net.parameters()))
        return main, rec, total

    monkeypatch.setattr(idae.train.Objective, "__call__", fake)


@pytest.mark.parametrize("kind", ["loss", "gradient"])
@pytest.mark.parametrize("val_fraction", [0.0, 0.15])
def test_non_finite_loss_stops_with_a_warning_and_finite_weights(data, monkeypatch, kind, val_fraction):
    clinical, genomic = data
    nan_at_epoch(monkeypatch, 3, kind)
    model = IDAE(latent_dim=3, val_fraction=val_fraction, **TINY)
    with pytest.warns(RuntimeWarning, match="non-finite"):
        model.fit(genomic, clinical)
    h = model.history_
    assert "non-finite" in h.stopped and "epoch 3" in h.stopped
    assert len(h.train_objective) == 3
    assert all_finite(model) and np.isfinite(model.encode(genomic)).all()


def test_huge_learning_rate_stops_with_finite_weights(data):
    clinical, genomic = data
    model = IDAE(latent_dim=3, learning_rate=1e8, warmup_epochs=1, **TINY)
    with pytest.warns(RuntimeWarning, match="non-finite"):
        model.fit(genomic, clinical)
    assert "non-finite" in model.history_.stopped
    assert all_finite(model) and np.isfinite(model.encode(genomic)).all()


def test_a_normal_fit_raises_no_warning(data):
    clinical, genomic = data
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        IDAE(latent_dim=2, **{**TINY, "max_epochs": 5}).fit(genomic, clinical)


# --------------------------------------------------------------------------------------------- errors


def test_help_lists_every_setting_with_its_default():
    """`help(IDAE)` shows every setting: as a keyword argument of `IDAE.__init__` with its `Config` default (in
    `Config`'s order; only unknown names fall into `**unknown`, which refuses them) and in the numpydoc
    Parameters section, each with a line of its own."""
    fields = dataclasses.fields(Config)
    parameters = inspect.signature(IDAE).parameters
    named = [p for p in parameters.values() if p.kind != inspect.Parameter.VAR_KEYWORD]
    assert [p.name for p in named] == [f.name for f in fields]
    assert all(p.default == f.default for p, f in zip(named, fields, strict=True))
    assert [p.kind for p in parameters.values()][-1] == inspect.Parameter.VAR_KEYWORD
    section = IDAE.__doc__.split("Parameters\n    ----------\n")[1].split("\n\n")[0]
    for f in fields:
        assert f"    {f.name} : " in section and f.metadata["doc"] in section, f.name
    assert "Attributes" in IDAE.__doc__ and "Examples" in IDAE.__doc__


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"latent_dimension": 4}, "unknown IDAE arguments.*latent_dimension"),
        ({"objective": "mle"}, "objective must be one of"),
        ({"latent_dim": 0}, "latent_dim must be a positive integer"),
        ({"latent_dim": 2.5}, "latent_dim must be a positive integer"),
        ({"augmentation": ("z", "z4")}, "augmentation"),
        ({"encoder_hidden": (16, 0)}, "encoder_hidden"),
        ({"objective": "dsm", "noise": 0.0}, "needs a positive noise"),
        ({"noise": -1.0}, r"noise must be a number of sds of its input in \[0, 100\], got -1.0"),
        ({"component_noise": -0.1}, r"component_noise must be a number of sds of its input in \[0, 100\]"),
        ({"component_noise": 1e3}, r"component_noise must be a number of sds of its input in \[0, 100\]"),
        ({"objective": "ivae", "head": "energy"}, "needs head='gaussian'"),
        ({"head": "laplace"}, "head must be one of"),
        ({"components_per_factor": -1}, "components_per_factor"),
        ({"linear_stage": 1}, "linear_stage must be True or False"),
        ({"val_fraction": 0.6}, "val_fraction"),
        ({"inversion": "magic"}, "inversion must be one of"),
        ({"state_basis": "u"}, "state_basis must be one of"),
        ({"state_direction_null": 0.0}, r"state_direction_null must be a probability of no effect in \(0, 0.5\]"),
        ({"state_direction_null": 0.6}, r"state_direction_null must be a probability of no effect in \(0, 0.5\]"),
        ({"state_direction_null": "0.1"}, "state_direction_null must be a probability of no effect in"),
        ({"learning_rate": float("nan")}, "learning_rate must be a positive finite number"),
        ({"seed": 2**32}, r"seed must be an integer in \[0, 2\*\*32\)"),
        ({"direct_basis": "profiles"}, "direct_basis must be one of"),
        ({"device": "tpu"}, "device"),
    ],
)
def test_bad_arguments(kwargs, message):
    with pytest.raises(IdaeError, match=message):
        IDAE(**kwargs)


def refused_by(rule: Rule) -> list:
    """Values `rule` refuses: one of the wrong type and, where the rule has bounds or options, one outside them."""
    wrong_type = {"int": [2.5], "float": ["0.1", float("inf")], "bool": [1], "str": [3], "device": [None],
                  "ints": ["8", (8.0,)], "strs": ["z", ("z", 2)]}[rule.kind]  # fmt: skip
    if rule.kind in ("int", "float"):
        if rule.low is not None:
            wrong_type.append(rule.low if rule.low_open else rule.low - 1)
        if rule.high is not None:
            wrong_type.append(rule.high if rule.high_open else rule.high + 1)
    else:
        wrong_type += {"str": ["nonsense"], "device": ["tpu"], "ints": [(16, 0)], "strs": [(), ("z4",)],
                       "bool": []}[rule.kind]  # fmt: skip
    return wrong_type


@pytest.mark.parametrize("field", dataclasses.fields(Config), ids=lambda f: f.name)
def test_every_setting_refuses_what_its_rule_refuses_with_its_name(field):
    """`Config`'s declared rule per setting drives the check: each refused value raises an IdaeError that names
    the setting and says what it takes, and the default passes it."""
    rule = field.metadata["rule"]
    assert rule.allows(field.default)
    for value in refused_by(rule):
        assert not rule.allows(value), value
        with pytest.raises(IdaeError, match=rf"^{field.name} must be {re.escape(rule.words)}, got"):
            IDAE(**{field.name: value})


def test_use_before_fit(data, tmp_path):
    clinical, genomic = data
    model = IDAE(latent_dim=2)
    calls = (
        lambda: model.encode(genomic),
        lambda: model.reconstruct(genomic),
        lambda: model.invert(genomic, clinical, {"er": "pos"}),
        lambda: model.save(tmp_path / "m"),
    )
    for call in calls:
        with pytest.raises(IdaeError, match="not fitted"):
            call()


def test_encode_names_missing_genes(fitted, data):
    _, genomic = data
    with pytest.raises(IdaeError, match=r"lacks 2 of the model's 40 genes.*'g3'.*'g17'"):
        fitted.encode(genomic.drop(columns=["g3", "g17"]))


def test_bad_genomic_tables(fitted, data):
    clinical, genomic = data
    text = genomic.astype({"g4": object})
    text.loc[text.index[0], "g4"] = "high"
    with pytest.raises(IdaeError, match="non-numeric gene columns.*g4"):
        fitted.encode(text)
    with pytest.raises(IdaeError, match="non-numeric gene columns.*g4"):
        IDAE(latent_dim=2, **TINY).fit(text, clinical)
    holes = genomic.copy()
    holes.loc["p05", "g9"] = np.nan
    with pytest.raises(IdaeError, match=r"non-finite.*'p05'.*'g9'"):
        fitted.encode(holes)
    with pytest.raises(IdaeError, match=r"non-finite.*'p05'.*'g9'"):
        IDAE(latent_dim=2, **TINY).fit(holes, clinical)
    with pytest.raises(IdaeError, match="pandas DataFrame"):
        fitted.encode(genomic.to_numpy())
    with pytest.raises(IdaeError, match="duplicate patient IDs"):
        fitted.encode(pd.concat([genomic, genomic.iloc[:1]]))


def test_clinical_index_must_cover_genomic_index(data):
    clinical, genomic = data
    with pytest.raises(IdaeError, match=r"2 genomic patients have no clinical row.*p00.*p01"):
        IDAE(latent_dim=2, **TINY).fit(genomic, clinical.drop(index=["p00", "p01"]))


def test_invert_names_unknown_columns_and_unseen_levels(fitted, data):
    clinical, genomic = data
    with pytest.raises(IdaeError, match="cannot change 'stage'"):
        fitted.invert(genomic, clinical, {"stage": "IV"})
    with pytest.raises(IdaeError, match=r"'er'.*unseen levels \['maybe'\]"):
        fitted.invert(genomic, clinical, {"er": "maybe"})
    with pytest.raises(IdaeError, match=r"'grade'.*unseen levels \['4'\]"):
        fitted.invert(genomic, clinical, pd.DataFrame({"grade": "4"}, index=clinical.index))
    with pytest.raises(IdaeError, match="not clinical columns of the model.*stage"):
        fitted.invert(genomic, clinical, pd.DataFrame({"stage": "IV"}, index=clinical.index))
    with pytest.raises(IdaeError, match="changes is empty"):
        fitted.invert(genomic, clinical, {})


def test_fit_needs_enough_patients(data):
    clinical, genomic = data
    with pytest.raises(IdaeError, match="at least 8 patients"):
        IDAE(latent_dim=2, **TINY).fit(genomic.iloc[:5], clinical)


# ---------------------------------------------------------------------------------------------- bench


def test_bench_quick_prints_a_table_with_parameter_counts():
    run = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "bench.py"), "--quick"],
        capture_output=True, text=True, timeout=300, cwd=ROOT,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr
    lines = run.stdout.splitlines()
    header = next(line for line in lines if "idae params" in line)
    assert "g×g params" in header and "epoch s" in header and "peak MB" in header
    rows = [line for line in lines if line.split()[:2] in (["1000", "124"], ["1000", "1240"])]
    assert len(rows) == 2  # 124 and 1240 patients
    for row in rows:
        assert "k" in row.split("|")[1] or "M" in row.split("|")[1]  # a parameter count, e.g. 657.7k
        assert "×" in row.split("|")[-1]  # ratios were computed: both architectures ran
    # the checkpoint table: the same fit without checkpoints, every epoch and at the default interval, as ratios
    checkpoint = [line for line in lines if line.split()[:2] == ["1000", "|"]]
    assert len(checkpoint) == 1 and checkpoint[0].count("×") == 2


# ------------------------------------------------------------------------------------ identifiability


def test_fit_warns_when_the_clinical_design_cannot_identify_latent_dim(data):
    """One binary clinical column gives two profiles: one Gaussian factor needs three (2d + 1)."""
    clinical, genomic = data
    poor = clinical[["er"]].astype("category")
    with pytest.warns(idae.IdentifiabilityWarning, match=r"latent_dim=2 exceeds .* at most 0 factor"):
        model = IDAE(latent_dim=2, **TINY).fit(genomic, poor)
    assert not model.condition_.ok and model.condition_.n_profiles == 2


def test_condition_report_of_a_fitted_model_counts_its_natural_parameters(fitted, data):
    clinical, _ = data
    report = fitted.condition_report(clinical)
    assert report.natural_parameter_rank is not None and report.n_terms == 2
    assert report.n_samples == len(clinical) and 0 <= report.smallest_relative_singular_value <= 1


def test_linear_stage_gives_unit_variance_factors_on_the_training_patients(data):
    clinical, genomic = data
    model = IDAE(latent_dim=3, val_fraction=0.0, **TINY).fit(genomic, clinical)
    np.testing.assert_allclose(model.encode(genomic).std(axis=0), 1.0, rtol=1e-4)
    raw = IDAE(latent_dim=3, val_fraction=0.0, linear_stage=False, **TINY).fit(genomic, clinical)
    assert not np.allclose(raw.encode(genomic).std(axis=0), 1.0, rtol=1e-4)
