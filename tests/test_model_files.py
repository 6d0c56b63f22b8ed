"""IDAE.save / IDAE.load: every damaged, tampered, unsafe or inconsistent model folder is refused with an
IdaeError naming the file and the problem, and nothing in a model file is ever executed."""

import hashlib
import json
import os
import pickle
import shutil

import numpy as np
import pandas as pd
import pytest
import torch
from cohorts import random_cohort
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from idae import IDAE, IdaeError
from idae.files import previous_of
from idae.modelfile import FORMAT_VERSION

TINY = {"encoder_hidden": (8,), "condition_hidden": (4,), "decoder_hidden": (8,), "max_epochs": 2,
        "val_fraction": 0.0, "progress": False}  # fmt: skip




@pytest.fixture(scope="module")
def data():
    return random_cohort()


@pytest.fixture(scope="module")
def fitted(data):
    clinical, genomic = data
    return IDAE(latent_dim=2, seed=0, **TINY).fit(genomic, clinical)


@pytest.fixture
def saved(fitted, tmp_path):
    return fitted.save(tmp_path / "model")


def refused(path, *fragments):
    """Load `path`, expect an IdaeError, check that its message holds every fragment; return it."""
    with pytest.raises(IdaeError) as info:
        IDAE.load(path)
    message = str(info.value)
    for fragment in fragments:
        assert fragment in message, message
    return message


def read_config(path):
    return json.loads((path / "config.json").read_text())


def write_config(path, payload):
    (path / "config.json").write_text(json.dumps(payload))


def state_of(path):
    return torch.load(path / "weights.pt", weights_only=True)


def first_weight(state):
    return next(k for k in state if k.endswith("weight.original"))


# ---------------------------------------------------------------------------------------- round trip


def test_save_records_the_format_version_and_the_weights_checksum(saved, fitted, data):
    payload = read_config(saved)
    assert payload["format_version"] == FORMAT_VERSION == 11
    assert payload["weights_sha256"] == hashlib.sha256((saved / "weights.pt").read_bytes()).hexdigest()
    loaded = IDAE.load(saved)
    _, genomic = data
    np.testing.assert_array_equal(loaded.encode(genomic), fitted.encode(genomic))


# ----------------------------------------------------------------------------------- missing files


def test_missing_folder_or_files(saved, tmp_path):
    refused(tmp_path / "nowhere", "nowhere", "not a saved IDAE model", "not found")
    (tmp_path / "plain.txt").write_text("hello")
    refused(tmp_path / "plain.txt", "plain.txt", "not a folder")
    for name in ("config.json", "weights.pt"):
        copy = shutil.copytree(saved, tmp_path / f"without-{name}")
        (copy / name).unlink()
        refused(copy, f"without-{name}/{name} is missing")
    copy = shutil.copytree(saved, tmp_path / "weights-is-a-folder")
    (copy / "weights.pt").unlink()
    (copy / "weights.pt").mkdir()
    refused(copy, "weights.pt is missing")


@pytest.mark.parametrize("bad", [None, 3, b"model", ""])
def test_paths_that_are_not_paths(bad):
    with pytest.raises(IdaeError, match="model path"):
        IDAE.load(bad)


# ----------------------------------------------------------------------------------------- weights.pt


@pytest.mark.parametrize("keep", [0, 1, 64, 0.5, 0.9, -1])
def test_truncated_weights(saved, keep):
    raw = (saved / "weights.pt").read_bytes()
    cut = keep if isinstance(keep, int) and keep >= 0 else (len(raw) - 1 if keep == -1 else int(len(raw) * keep))
    (saved / "weights.pt").write_bytes(raw[:cut])
    refused(saved, "weights.pt is damaged or not a plain weights file")


def tamper_shape(state):
    key = first_weight(state)
    state[key] = torch.zeros(state[key].shape[0] + 1, state[key].shape[1])
    return key


def tamper_missing(state):
    key = first_weight(state)
    del state[key]
    return key


def tamper_extra(state):
    state["encoder.net.9.weight"] = torch.zeros(2, 2)
    return "encoder.net.9.weight"


def tamper_nan(state):
    key = first_weight(state)
    state[key][0, 0] = float("nan")
    return key


def tamper_inf(state):
    state["log_scale"] = torch.tensor(float("inf"))
    return "log_scale"


def tamper_dtype(state):
    key = first_weight(state)
    state[key] = state[key].double()
    return key


def tamper_not_a_tensor(state):
    state["log_scale"] = 2.0
    return "log_scale"


def tamper_value(state):
    key = first_weight(state)
    state[key][0, 0] += 0.5  # finite, right shape: only the checksum can tell
    return "SHA-256"


@pytest.mark.parametrize(
    "tamper, problem",
    [
        (tamper_shape, "has shape"),
        (tamper_missing, "missing tensors"),
        (tamper_extra, "unexpected tensors"),
        (tamper_nan, "non-finite"),
        (tamper_inf, "non-finite"),
        (tamper_dtype, "torch.float64"),
        (tamper_not_a_tensor, "not named tensors"),
        (tamper_value, "not the file that was saved"),
    ],
)
def test_tampered_weights(saved, tamper, problem):
    state = state_of(saved)
    named = tamper(state)
    torch.save(state, saved / "weights.pt")
    refused(saved, "weights.pt", problem, named)


@pytest.mark.parametrize("content", [[1, 2, 3], "weights", torch.zeros(3), {1: torch.zeros(1)}])
def test_weights_that_are_not_a_state_dict(saved, content):
    torch.save(content, saved / "weights.pt")
    refused(saved, "weights.pt does not fit the model in config.json")


def test_weights_of_another_model_with_the_same_shapes(saved, data, tmp_path):
    clinical, genomic = data
    other = IDAE(latent_dim=2, seed=1, **TINY).fit(genomic, clinical).save(tmp_path / "other")
    shutil.copy(other / "weights.pt", saved / "weights.pt")
    refused(saved, "weights.pt is not the file that was saved with config.json", "SHA-256")


class Exploit:
    """Unpickling this runs a shell command that creates `marker`."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (os.system, (f"touch '{self.marker}'",))


@pytest.mark.parametrize("how", ["torch.save", "inside a state dict", "plain pickle"])
def test_a_pickled_exploit_is_refused_and_never_run(saved, tmp_path, how):
    marker = tmp_path / "exploit-ran"
    if how == "torch.save":
        torch.save(Exploit(marker), saved / "weights.pt")
    elif how == "inside a state dict":
        state = state_of(saved)
        state["log_scale"] = Exploit(marker)
        torch.save(state, saved / "weights.pt")
    else:
        (saved / "weights.pt").write_bytes(pickle.dumps(Exploit(marker)))
    message = refused(saved, "weights.pt is damaged or not a plain weights file", "refused without running them")
    assert "weights_only` set to `False`" not in message  # torch's advice to retry unsafely is not passed on
    assert not marker.exists()
    pickle.loads(pickle.dumps(Exploit(marker)))  # the control: unpickling it for real does run it
    assert marker.exists()


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(position=st.floats(0, 1, exclude_max=True), flip=st.integers(1, 255))
def test_any_changed_byte_of_the_weights_is_refused(fitted, tmp_path_factory, position, flip):
    path = fitted.save(tmp_path_factory.mktemp("flip") / "model")
    raw = bytearray((path / "weights.pt").read_bytes())
    raw[int(position * len(raw))] ^= flip
    (path / "weights.pt").write_bytes(bytes(raw))
    refused(path, "weights.pt")


# ---------------------------------------------------------------------------------------- config.json


@pytest.mark.parametrize(
    "content",
    [b"", b"not json", b'{"format_version": 2, "config": ', b"\xff\xfe{}", b"[" * 100_000, b'{"a": 1, "a": 2}'],
    ids=["empty", "text", "truncated", "not utf-8", "deeply nested", "duplicate keys"],
)
def test_invalid_json(saved, content):
    (saved / "config.json").write_bytes(content)
    refused(saved, "config.json is damaged or not an IDAE config")


@pytest.mark.parametrize("keep", [0.1, 0.5, 0.99])
def test_truncated_json(saved, keep):
    text = (saved / "config.json").read_text()
    (saved / "config.json").write_text(text[: int(len(text) * keep)])
    refused(saved, "config.json is damaged or not an IDAE config")


@pytest.mark.parametrize("content", [[], 2, "model", None])
def test_json_that_is_not_an_object(saved, content):
    write_config(saved, content)
    refused(saved, "config.json", "not an IDAE config")


@pytest.mark.parametrize("version", [1, 2, 3, FORMAT_VERSION - 1, FORMAT_VERSION + 1, str(FORMAT_VERSION),
                                     float(FORMAT_VERSION), True, None, -1])  # fmt: skip
def test_unknown_format_version(saved, version):
    payload = read_config(saved)
    payload["format_version"] = version
    write_config(saved, payload)
    refused(saved, "config.json", f"unsupported format version {version!r}", f"reads version {FORMAT_VERSION}")


def test_format_version_missing(saved):
    payload = read_config(saved)
    del payload["format_version"]
    write_config(saved, payload)
    refused(saved, "config.json", "unsupported format version None")


def test_unknown_or_missing_keys(saved):
    original = read_config(saved)
    write_config(saved, {**original, "comment": "hi"})
    refused(saved, "config.json", "unknown keys ['comment']")
    write_config(saved, {k: v for k, v in original.items() if k != "weights_sha256"})
    refused(saved, "config.json", "the config file lacks keys ['weights_sha256']")  # no checksum, no load
    write_config(saved, {**original, "config": {**original["config"], "dropout": 0.1}})
    refused(saved, "config.json", "config has unknown keys ['dropout']")
    write_config(saved, {**original, "config": {k: v for k, v in original["config"].items() if k != "noise"}})
    refused(saved, "config.json", "lacks keys ['noise']")


@pytest.mark.parametrize(
    "key, value, problem",
    [
        ("latent_dim", "2", "config['latent_dim'] must be of type int"),
        ("latent_dim", 2.0, "config['latent_dim'] must be of type int"),
        ("latent_dim", True, "config['latent_dim'] must be of type int"),
        ("latent_dim", 0, "latent_dim must be a positive integer"),
        ("noise", "2.0", "config['noise'] must be of type float"),
        ("noise", 10**400, "config['noise'] must be of type float"),
        ("learning_rate", None, "config['learning_rate'] must be of type float"),
        ("progress", "yes", "config['progress'] must be of type bool"),
        ("objective", 5, "config['objective'] must be of type str"),
        ("objective", "mle", "objective must be one of"),
        ("encoder_hidden", "8", "config['encoder_hidden'] must be of type list of int"),
        ("encoder_hidden", [8.0], "config['encoder_hidden'] must be of type list of int"),
        ("encoder_hidden", [True], "config['encoder_hidden'] must be of type list of int"),
        ("augmentation", ["z", 2], "config['augmentation'] must be of type list of str"),
        ("augmentation", ["z", "z4"], "augmentation must be a non-empty subset"),
        ("device", "tpu", "device must be"),
        ("val_fraction", 0.7, "val_fraction must be a share in [0, 0.5)"),
    ],
)
def test_config_values_of_the_wrong_type_or_range(saved, key, value, problem):
    payload = read_config(saved)
    payload["config"][key] = value
    write_config(saved, payload)
    refused(saved, "config.json", problem)


def test_non_finite_numbers_in_the_config(saved):
    payload = read_config(saved)
    payload["config"]["noise"] = float("inf")
    write_config(saved, payload)  # json writes Infinity, which Python's json reads back
    refused(saved, "config.json", "config['noise'] must be of type float")
    payload = read_config(saved) | {"config": read_config(saved)["config"] | {"noise": 2.0}}
    payload["standardizer"]["mean"][0] = float("nan")
    write_config(saved, payload)
    refused(saved, "config.json", "standardizer mean must be a list of finite numbers")


def edit(path, change):
    payload = read_config(path)
    change(payload)
    write_config(path, payload)


def set_in(payload, keys, value):
    target = payload
    for key in keys[:-1]:
        target = target[key]
    target[keys[-1]] = value


@pytest.mark.parametrize(
    "keys, value, problem",
    [
        (["genes"], "g0", "genes must be a list of strings"),
        (["genes"], [], "genes must hold at least 1 distinct names"),
        (["standardizer", "scale", 0], -1.0, "standardizer scale must be positive"),
        (["standardizer", "mean"], [0.0], "standardizer mean has 1 entries, expected 6"),
        (["standardizer", "extra"], 1, "standardizer has unknown keys ['extra']"),
        (["design", "columns"], ["er", "grade"], "design columns ['er', 'grade'] must each be"),
        (["design", "levels", "er"], ["neg"], "design levels of 'er' must hold at least 2"),
        (["design", "frequencies", "er"], [0.9, 0.9], "design frequencies of 'er' are not probabilities"),
        (["design", "scale", "age"], 0.0, "design scale of 'age' must be positive"),
        (["design", "observed", "age"], [], "design observed values of 'age' are empty"),
        (["latent_model", "method"], "energy", "latent_model method 'energy' differs"),
        (["latent_model", "mean_coef"], [[0.0, 0.0]], "latent_model mean_coef must have"),
        (["latent_model", "interactions"], [[0, 99]], "latent_model interactions must be a list of pairs"),
        (["latent_model", "interactions"], [[0, 1]], "latent_model mean_coef must have"),
        (["latent_model", "centre"], [0.5], "latent_model centre has 1 entries, expected"),
        (["history", "best_epoch"], "1", "history['best_epoch'] has the wrong type"),
        (["history", "train_objective"], ["x"], "history['train_objective'] has the wrong type"),
        (["weights_sha256"], "abc", "weights_sha256 must be 64 lowercase hex digits"),
        (["config"], [], "config must be an object"),
    ],
)
def test_inconsistent_or_ill_typed_entries(saved, keys, value, problem):
    edit(saved, lambda payload: set_in(payload, keys, value))
    refused(saved, "config.json", problem)


def test_history_may_be_absent_and_hold_nan(saved, fitted, data):
    edit(saved, lambda payload: set_in(payload, ["history", "val_objective"], [float("nan")]))
    assert np.isnan(IDAE.load(saved).history_.val_objective[0])
    edit(saved, lambda payload: set_in(payload, ["history"], None))
    assert IDAE.load(saved).history_ is None


# -------------------------------------------------------------------- config.json against weights.pt


def drop_last_gene(payload):
    payload["genes"] = payload["genes"][:-1]
    for key in ("genes", "mean", "scale"):
        payload["standardizer"][key] = payload["standardizer"][key][:-1]


def add_gene(payload):
    payload["genes"].append("extra")
    payload["standardizer"]["genes"].append("extra")
    payload["standardizer"]["mean"].append(0.0)
    payload["standardizer"]["scale"].append(1.0)


def add_level(payload):
    """A consistent third ER level: the design (and the latent model's rows) widen by one."""
    design, latent = payload["design"], payload["latent_model"]
    design["levels"]["er"].append("unknown")
    design["frequencies"]["er"] = [0.4, 0.4, 0.2]
    for key in ("mean_coef", "logvar_coef"):
        latent[key].append([0.0] * len(latent[key][0]))
    if latent["centre"]:
        latent["centre"].append(0.0)


def wider_encoder(payload):
    payload["config"]["encoder_hidden"] = [9]


@pytest.mark.parametrize(
    "change, problem",
    [
        (drop_last_gene, "has shape (6,), the config (5 genes, design width 9, latent_dim 2) needs (5,)"),
        (add_gene, "needs (7,)"),
        (add_level, "design width 10"),
        (wider_encoder, "bias has shape (8,), the config (6 genes, design width 9, latent_dim 2) needs (9,)"),
    ],
)
def test_genes_design_or_sizes_that_do_not_fit_the_weights(saved, change, problem):
    edit(saved, change)
    refused(saved, "weights.pt does not fit the model in config.json", problem)


def test_standardizer_genes_that_differ_from_the_genes(saved):
    edit(saved, lambda payload: payload["standardizer"]["genes"].reverse())
    refused(saved, "config.json", "the standardiser's genes do not match the model's genes")


@pytest.mark.parametrize(
    "key, value", [("encoder_hidden", [10**12]), ("condition_hidden", [10**6, 10**6]), ("decoder_hidden", [4] * 50_000)]
)
def test_a_config_describing_a_huge_network_is_refused_before_allocating_it(saved, key, value):
    edit(saved, lambda payload: set_in(payload, ["config", key], value))
    refused(saved, "weights.pt does not fit the model in config.json: the config needs at least")


def test_a_huge_latent_dim_is_refused_by_the_latent_model_check(saved):
    edit(saved, lambda payload: set_in(payload, ["config", "latent_dim"], 10**9))
    refused(saved, "config.json", "latent_model mean_coef rows has 2 entries, expected 1000000000")


def test_any_changed_byte_of_the_config_loads_or_is_refused(fitted, tmp_path_factory):
    """A changed character either leaves a valid model (e.g. a digit of a mean) or is refused."""

    @settings(max_examples=25, deadline=None)
    @given(position=st.floats(0, 1, exclude_max=True), byte=st.integers(0, 255))
    def check(position, byte):
        raw = bytearray((original / "config.json").read_bytes())
        raw[int(position * len(raw))] = byte
        path = shutil.copytree(original, tmp_path_factory.mktemp("byte") / "model")
        (path / "config.json").write_bytes(bytes(raw))
        try:
            IDAE.load(path)
        except IdaeError as err:
            assert "config.json" in str(err) or "weights.pt" in str(err)

    original = fitted.save(tmp_path_factory.mktemp("original") / "model")
    check()


# ---------------------------------------------------------------------------------------------- save


def test_save_never_replaces_what_is_not_a_model(fitted, tmp_path):
    file = tmp_path / "notes.txt"
    file.write_text("keep me")
    with pytest.raises(IdaeError, match="not a model folder"):
        fitted.save(file)
    assert file.read_text() == "keep me"
    folder = tmp_path / "project"
    folder.mkdir()
    (folder / "data.csv").write_text("keep me too")
    with pytest.raises(IdaeError, match=r"files other than a saved model \(\['data.csv'\]\)"):
        fitted.save(folder)
    assert (folder / "data.csv").read_text() == "keep me too"
    empty = tmp_path / "empty"
    empty.mkdir()
    assert IDAE.load(fitted.save(empty)).genes_ == fitted.genes_
    with pytest.raises(IdaeError, match="cannot save the model to"):
        fitted.save(file / "model")  # the parent is a file
    with pytest.raises(IdaeError, match="model path"):
        fitted.save(42)


def test_a_save_killed_between_its_two_renames_loses_nothing(fitted, tmp_path):
    path = fitted.save(tmp_path / "model")
    os.replace(path, previous_of(path))  # the state a kill leaves: the old model set aside, the new one not in yet
    assert IDAE.load(path).genes_ == fitted.genes_  # load puts the last version back
    assert not previous_of(path).exists()
    os.replace(path, previous_of(path))
    assert IDAE.load(fitted.save(path)).genes_ == fitted.genes_  # and so does the next save, which then replaces it
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model"]


def test_save_refuses_non_finite_weights(data, tmp_path):
    clinical, genomic = data
    model = IDAE(latent_dim=2, **TINY).fit(genomic, clinical)
    with torch.no_grad():
        model.net_.log_scale.fill_(float("nan"))
    with pytest.raises(IdaeError, match="non-finite weights in \\['log_scale'\\]"):
        model.save(tmp_path / "model")
    assert not (tmp_path / "model").exists()


def test_save_refuses_what_it_could_not_load_back(data, tmp_path):
    """Clinical columns named by numbers would come back from JSON as text, no longer matching."""
    clinical, genomic = data
    numbered = clinical.set_axis([0, 1, 2], axis=1)
    model = IDAE(latent_dim=2, **TINY).fit(genomic, numbered)
    with pytest.raises(IdaeError, match=r"clinical column names must be strings.*\[0, 1, 2\]"):
        model.save(tmp_path / "model")
    assert not (tmp_path / "model").exists()


# -------------------------------------------------------------------------------------- loaded model


def test_load_on_a_device_that_does_not_exist(saved):
    if torch.cuda.is_available():
        pytest.skip("CUDA is available here")
    with pytest.raises(IdaeError, match="could not place the model on device 'cuda:0'"):
        IDAE.load(saved, device="cuda:0")
    with pytest.raises(IdaeError, match="device must be"):
        IDAE.load(saved, device="tpu")


def test_a_loaded_model_names_missing_genes_and_clinical_columns(saved, data):
    clinical, genomic = data
    model = IDAE.load(saved)
    with pytest.raises(IdaeError, match=r"lacks 2 of the model's 6 genes, e.g. \['g1', 'g4'\]"):
        model.encode(genomic.drop(columns=["g1", "g4"]))
    renamed = genomic.rename(columns={"g0": "G0"})
    for call in (model.encode, model.reconstruct, lambda g: model.invert(g, clinical, {"er": "pos"})):
        with pytest.raises(IdaeError, match=r"lacks 1 of the model's 6 genes, e.g. \['g0'\]"):
            call(renamed)
    other = clinical.rename(columns={"grade": "stage"})
    with pytest.raises(IdaeError, match=r"lacks the columns the model was fitted on: \['grade'\]"):
        model.invert(genomic, other, {"er": "pos"})
    with pytest.raises(IdaeError, match=r"lacks the columns the model was fitted on: \['er', 'grade', 'age'\]"):
        model.natural_parameters(pd.DataFrame({"x": [1.0]}))
    # extra genes and clinical columns, in any order, are fine: the model picks its own
    extra = genomic[genomic.columns[::-1]].assign(unused=0.0)
    np.testing.assert_array_equal(model.encode(extra), model.encode(genomic))
    out = model.invert(extra, clinical.assign(stage="II"), {"er": "pos"})
    assert list(out.columns) == model.genes_ and out.index.equals(genomic.index)
