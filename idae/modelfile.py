"""The model-file format of `IDAE.save` and `IDAE.load`: a folder holding config.json (the configuration, the
fitted parts besides the network, and the SHA-256 of the weights) and weights.pt (a state dict of tensors).
Everything a file holds is checked here before anything reads it, and nothing in it is ever executed."""

from __future__ import annotations

import dataclasses
import hashlib
import io
import json
import math
import os
import warnings
from pathlib import Path
from typing import Any

import torch

from idae.config import Config, checked_config, statistics_per_factor
from idae.design import ClinicalDesign
from idae.errors import IdaeError
from idae.files import replaced_folder, restore_previous
from idae.invert import LatentModel
from idae.train import History

WEIGHTS, CONFIG = "weights.pt", "config.json"
FORMAT_VERSION = 11  # 2: config.json records the SHA-256 of weights.pt; 3: projection, heads, linear stage;
# 4: the inversion's direct path and shrunk latent model; 5: the inversion's state path; 6: latent interactions;
# 7: the latent interactions' centre; 8: the state path's state_basis; 9: the direct path's direct_basis;
# 10: component_noise; 11: the state path's state_direction_null

SHA256 = "weights_sha256"
PAYLOAD_KEYS = ("format_version", SHA256, "config", "genes", "standardizer", "design", "latent_model", "history")


def as_path(path: Any) -> Path:
    if not isinstance(path, (str, os.PathLike)) or not str(path):
        raise IdaeError(f"a model path must be a non-empty str or Path, got {path!r}")
    return Path(path)


def check_target(path: Path) -> None:
    """`save` replaces an existing `path` only when it is an IDAE model folder (or an empty one)."""
    if not (path.exists() or path.is_symlink()):
        return
    if path.is_symlink() or not path.is_dir():
        raise IdaeError(f"cannot save to {path}: it exists and is not a model folder; choose another path")
    others = sorted(p.name for p in path.iterdir() if p.name not in (WEIGHTS, CONFIG))
    if others:
        raise IdaeError(
            f"cannot save to {path}: the folder holds files other than a saved model ({others[:5]}); "
            "refusing to replace it, choose a new or empty path"
        )


def load_failure(err: Exception) -> str:
    """torch.load's reason, without its advice to retry with weights_only=False (never do that here)."""
    text = str(err)
    if "Weights only load failed" in text:
        parts = [p.strip() for p in text.split("\n\n") if p.strip()]
        detail = next((p for p in parts[1:] if not p.startswith("Check the documentation")), "")
        return f"it holds objects other than tensors, refused without running them ({detail})"
    return text.split(". ")[0] or type(err).__name__


def no_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    keys = [k for k, _ in pairs]
    repeated = sorted({k for k in keys if keys.count(k) > 1})
    if repeated:
        raise ValueError(f"duplicate keys {repeated}")
    return dict(pairs)


def is_number(value: Any, finite: bool = True) -> bool:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return False
    try:
        return math.isfinite(value) or not finite
    except OverflowError:  # an integer too large for a float
        return False


def write(path: Path, payload: dict[str, Any], raw: bytes) -> None:
    """Write the model folder `path` from `payload` (every entry of config.json but the format version and the
    checksum, which are added here) and the weights' bytes `raw`, atomically. What `read` would refuse is
    refused now, while the fitted model is still in memory; an existing `path` is replaced only when it is a
    model folder (or empty)."""
    payload = {"format_version": FORMAT_VERSION, SHA256: hashlib.sha256(raw).hexdigest(), **payload}
    try:
        text = json.dumps(payload)
        check_payload(json.loads(text), CONFIG)
    except (TypeError, ValueError) as err:  # IdaeError is a ValueError
        raise IdaeError(f"cannot save this model, it could not be loaded back: {err}") from err
    try:
        restore_previous(path)
        check_target(path)
        with replaced_folder(path) as tmp:
            (tmp / WEIGHTS).write_bytes(raw)
            (tmp / CONFIG).write_text(text)
    except OSError as err:
        raise IdaeError(f"cannot save the model to {path}: {err}") from err


def read(path: Path) -> tuple[dict[str, Any], dict[str, torch.Tensor], bytes]:
    """(payload, state dict, the weights' bytes) of the model folder `path`, or IdaeError naming the file.

    The payload is checked in full (`check_payload`); the weights are read with `weights_only=True` and must be
    a dict of named tensors. Their shapes against the network the payload describes (`check_state`) and their
    checksum (`check_checksum`) are for the caller, once it has built that network."""
    restore_previous(path)  # a save killed between its two renames left the last version beside it
    if not path.is_dir():
        raise IdaeError(f"{path} is not a saved IDAE model: " + ("not a folder" if path.exists() else "not found"))
    for name in (CONFIG, WEIGHTS):
        if not (path / name).is_file():
            raise IdaeError(f"{path} is not a saved IDAE model: {path / name} is missing")
    config_file, weights_file = path / CONFIG, path / WEIGHTS
    try:
        payload = json.loads(config_file.read_bytes().decode("utf-8"), object_pairs_hook=no_duplicate_keys)
    except (OSError, ValueError, RecursionError) as err:  # JSONDecodeError, UnicodeDecodeError: ValueError
        raise IdaeError(f"{config_file} is damaged or not an IDAE config: {err!r}") from err
    check_payload(payload, str(config_file))
    misfit = misfit_message(path)
    try:
        raw = weights_file.read_bytes()  # hashed and unpickled from the same bytes
        with warnings.catch_warnings():  # e.g. about the pickle protocol of a file refused just below
            warnings.simplefilter("ignore")
            state = torch.load(io.BytesIO(raw), map_location="cpu", weights_only=True)
    except Exception as err:  # torch raises many types for damaged or unsafe files
        raise IdaeError(f"{weights_file} is damaged or not a plain weights file: {load_failure(err)}") from err
    if not isinstance(state, dict):
        raise IdaeError(f"{misfit}: it holds a {type(state).__name__}, not a state dict of tensors")
    odd = [k for k, v in state.items() if not isinstance(k, str) or not isinstance(v, torch.Tensor)]
    if odd:
        raise IdaeError(f"{misfit}: entries {odd[:5]} are not named tensors")
    return payload, state, raw


def misfit_message(path: Path) -> str:
    """The start of every message about weights that do not fit the config of the model folder `path`."""
    return f"{path / WEIGHTS} does not fit the model in {CONFIG}"


def check_size(raw: bytes, config: Config, n_genes: int, design_width: int, misfit: str) -> None:
    """Refuse a config that describes a network larger than the weights file, before the network is allocated:
    each float32 weight takes 4 bytes of weights.pt (tensor sizes in the file are not to be trusted)."""
    d = config.latent_dim
    k = min(config.components_per_factor * d, n_genes) or n_genes
    n_out = 2 * d if config.head == "gaussian" else d * len(set(config.augmentation))
    paths = [[k, d], [d, n_genes], [design_width, *config.condition_hidden, n_out]]
    paths += [[k, *config.encoder_hidden, d]] * bool(config.encoder_hidden) + [
        [d, *config.decoder_hidden, n_genes]] * bool(config.decoder_hidden)
    n_weights = n_genes * k * (k < n_genes) + sum(
        a * b for sizes in paths for a, b in zip(sizes[:-1], sizes[1:], strict=False))
    if 4 * n_weights > len(raw):
        raise IdaeError(f"{misfit}: the config needs at least {n_weights} weights, the file has {len(raw)} bytes")


def check_checksum(raw: bytes, payload: dict[str, Any], path: Path) -> None:
    """Refuse weights whose SHA-256 differs from the one config.json recorded at save time."""
    if hashlib.sha256(raw).hexdigest() != payload[SHA256]:
        raise IdaeError(
            f"{path / WEIGHTS} is not the file that was saved with {CONFIG}: its SHA-256 differs from "
            f"the recorded {SHA256} (modified, replaced or damaged after saving)"
        )


def check_payload(payload: Any, where: str) -> None:
    """Raise IdaeError naming `where` and the entry unless `payload` is a well-formed, consistent config."""

    def fail(problem: str) -> IdaeError:
        return IdaeError(f"{where}: {problem}")

    def keys(value: Any, expected: list[str] | tuple[str, ...], name: str) -> None:
        if not isinstance(value, dict):
            raise fail(f"{name} must be an object, got {type(value).__name__}")
        unknown, absent = sorted(map(str, set(value) - set(expected))), [k for k in expected if k not in value]
        if unknown or absent:
            problems = [f"has unknown keys {unknown}"] * bool(unknown) + [f"lacks keys {absent}"] * bool(absent)
            raise fail(f"{name} {' and '.join(problems)}; expected exactly {list(expected)}")

    def numbers(value: Any, name: str, length: int | None = None, finite: bool = True) -> list[float]:
        if not isinstance(value, list) or not all(is_number(v, finite) for v in value):
            raise fail(f"{name} must be a list of {'finite ' if finite else ''}numbers")
        if length is not None and len(value) != length:
            raise fail(f"{name} has {len(value)} entries, expected {length}")
        return value

    def names(value: Any, name: str, min_length: int = 1) -> list[str]:
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise fail(f"{name} must be a list of strings")
        if len(value) < min_length or len(set(value)) < len(value):
            raise fail(f"{name} must hold at least {min_length} distinct names, got {value[:8]}")
        return value

    if not isinstance(payload, dict):
        raise fail(f"not an IDAE config: a JSON {type(payload).__name__} instead of an object")
    version = payload.get("format_version")
    if type(version) is not int or version != FORMAT_VERSION:
        raise fail(
            f"unsupported format version {version!r}: this idae reads version {FORMAT_VERSION} "
            "(fit and save the model again with this version)"
        )
    keys(payload, PAYLOAD_KEYS, "the config file")
    digest = payload[SHA256]
    if not isinstance(digest, str) or len(digest) != 64 or set(digest) - set("0123456789abcdef"):
        raise fail(f"{SHA256} must be 64 lowercase hex digits, got {digest!r}")

    config = payload["config"]
    fields = dataclasses.fields(Config)
    keys(config, [f.name for f in fields], "config")
    for f in fields:
        rule = f.metadata["rule"]
        if not rule.allows_type(config[f.name]):
            kind = {"ints": "list of int", "strs": "list of str", "device": "str"}.get(rule.kind, rule.kind)
            raise fail(f"config[{f.name!r}] must be of type {kind}, got {config[f.name]!r}")
    try:
        checked_config(config)
    except IdaeError as err:
        raise fail(str(err)) from err

    genes = names(payload["genes"], "genes")
    scaler = payload["standardizer"]
    keys(scaler, ("genes", "mean", "scale"), "standardizer")
    if scaler["genes"] != genes:
        raise fail("the standardiser's genes do not match the model's genes")
    numbers(scaler["mean"], "standardizer mean", len(genes))
    if not all(v > 0 for v in numbers(scaler["scale"], "standardizer scale", len(genes))):
        raise fail("standardizer scale must be positive")

    design = payload["design"]
    keys(design, [f.name for f in dataclasses.fields(ClinicalDesign)], "design")
    columns = names(design["columns"], "design columns")
    levels, numeric = design["levels"], design["mean"]
    for name in ("levels", "frequencies", "mean", "scale", "observed"):
        if not isinstance(design[name], dict):
            raise fail(f"design {name} must be an object")
    if set(levels) & set(numeric) or set(levels) | set(numeric) != set(columns):
        raise fail(f"design columns {columns} must each be either categorical (levels) or numeric (mean)")
    if set(design["frequencies"]) != set(levels) or not set(numeric) == set(design["scale"]) == set(design["observed"]):
        raise fail("design frequencies / scale / observed do not cover the same columns as levels / mean")
    for col, col_levels in levels.items():
        names(col_levels, f"design levels of {col!r}", min_length=2)
        p = numbers(design["frequencies"][col], f"design frequencies of {col!r}", len(col_levels))
        if min(p) < 0 or abs(sum(p) - 1) > 1e-6:
            raise fail(f"design frequencies of {col!r} are not probabilities")
    for col in numeric:
        numbers([numeric[col]], f"design mean of {col!r}")
        if not numbers([design["scale"][col]], f"design scale of {col!r}")[0] > 0:
            raise fail(f"design scale of {col!r} must be positive")
        if not numbers(design["observed"][col], f"design observed values of {col!r}"):
            raise fail(f"design observed values of {col!r} are empty")

    latent = payload["latent_model"]
    keys(latent, [f.name for f in dataclasses.fields(LatentModel)], "latent_model")
    if latent["method"] != config["inversion"]:
        raise fail(f"latent_model method {latent['method']!r} differs from config inversion {config['inversion']!r}")
    width = sum(len(v) for v in levels.values()) + len(numeric) + len(columns)
    n_terms = statistics_per_factor(config["head"], config["linear_stage"], config["augmentation"])
    n_regressors = width if latent["method"] == "design" else config["latent_dim"] * n_terms
    pairs = latent["interactions"]
    if not isinstance(pairs, list) or any(
        not isinstance(pair, list) or len(pair) != 2 or not all(type(i) is int and 0 <= i < n_regressors for i in pair)
        for pair in pairs
    ):
        raise fail(f"latent_model interactions must be a list of pairs of regressor indices below {n_regressors}")
    for name in ("mean_coef", "logvar_coef"):
        rows = latent[name]
        if not isinstance(rows, list) or len(rows) != 1 + n_regressors + len(pairs):
            raise fail(f"latent_model {name} must have {1 + n_regressors + len(pairs)} rows (1 + the regressors "
                       "+ the interactions)")  # fmt: skip
        for row in rows:
            numbers(row, f"latent_model {name} rows", config["latent_dim"])
    numbers(latent["centre"], "latent_model centre", n_regressors if pairs else 0)

    history = payload["history"]
    if history is not None:
        keys(history, [f.name for f in dataclasses.fields(History)], "history")
        for f in dataclasses.fields(History):
            value = history[f.name]
            if f.name == "best_epoch":
                ok = isinstance(value, int) and not isinstance(value, bool)
            elif f.name == "stopped":
                ok = isinstance(value, str)
            else:
                ok = isinstance(value, list) and all(is_number(v, finite=False) for v in value)
            if not ok:
                raise fail(f"history[{f.name!r}] has the wrong type")


def check_state(state: dict[str, torch.Tensor], expected: dict[str, torch.Tensor], misfit: str, sizes: str) -> None:
    """Raise IdaeError unless `state` holds exactly the tensors `expected` names, same shapes, finite; `sizes`
    describes the model the config holds, for the message."""
    missing, extra = [k for k in expected if k not in state], [k for k in state if k not in expected]
    if missing or extra:
        problems = [f"missing tensors {missing[:5]}"] * bool(missing)
        problems += [f"unexpected tensors {extra[:5]}"] * bool(extra)
        raise IdaeError(f"{misfit}: {', '.join(problems)}")
    for key, want in expected.items():
        have = state[key]
        if have.shape != want.shape:
            raise IdaeError(
                f"{misfit}: {key} has shape {tuple(have.shape)}, the config ({sizes}) needs {tuple(want.shape)}"
            )
        if have.dtype != want.dtype or have.layout != torch.strided or have.device.type != "cpu":
            raise IdaeError(f"{misfit}: {key} is a {have.dtype} {have.layout} tensor, expected {want.dtype}")
        if not bool(torch.isfinite(have).all()):
            raise IdaeError(f"{misfit}: {key} holds non-finite values")

