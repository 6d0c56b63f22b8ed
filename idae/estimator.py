"""`IDAE`: the estimator users, notebooks and tests go through (fit / encode / invert / save / load)."""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from idae.data import ClinicalDesign, Standardizer
from idae.errors import IdaeError
from idae.invert import METHODS, LatentModel, counterfactual, fit_latent_model, regressors
from idae.model import AUGMENTATIONS, IDAENet
from idae.train import OBJECTIVES, History, resolve_device, seed_everything, train

WEIGHTS, CONFIG = "weights.pt", "config.json"
FORMAT_VERSION = 1


@dataclasses.dataclass
class Config:
    """Every constructor argument of `IDAE`; the defaults are the project's best known settings."""

    latent_dim: int = 6
    objective: str = "dsm"  # best cross-seed stability and reconstruction on gse1992 (notebook 03)
    augmentation: tuple[str, ...] = AUGMENTATIONS
    encoder_hidden: tuple[int, ...] = (256, 256)
    condition_hidden: tuple[int, ...] = (64, 64)
    decoder_hidden: tuple[int, ...] = (256, 256)
    noise: float = 2.0  # corruption sd in units of each gene's sd: heavy corruption gave the most stable factors
    decoder_noise: float = 0.05
    reconstruction_weight: float = 1.0
    max_epochs: int = 300
    batch_size: int = 256
    learning_rate: float = 1e-3
    weight_decay: float = 1e-4
    warmup_epochs: int = 10
    patience: int = 40
    clip_norm: float = 1.0
    val_fraction: float = 0.15
    missing_weight: float = 0.5  # a patient with every clinical cell missing counts 1 - this
    inversion: str = "design"  # regressors of the factors' clinical model: "design" or "energy"
    device: str = "auto"
    seed: int = 0
    progress: bool = True

    def check(self) -> None:
        def positive_int(name: str) -> None:
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise IdaeError(f"{name} must be a positive integer, got {value!r}")

        for name in ("latent_dim", "max_epochs", "batch_size", "warmup_epochs", "patience"):
            positive_int(name)
        if self.objective not in OBJECTIVES:
            raise IdaeError(f"objective must be one of {OBJECTIVES}, got {self.objective!r}")
        if not self.augmentation or set(self.augmentation) - set(AUGMENTATIONS):
            raise IdaeError(f"augmentation must be a non-empty subset of {AUGMENTATIONS}, got {self.augmentation}")
        for name in ("encoder_hidden", "condition_hidden", "decoder_hidden"):
            sizes = getattr(self, name)
            if not all(isinstance(s, int) and not isinstance(s, bool) and s > 0 for s in sizes):
                raise IdaeError(f"{name} must be a tuple of positive integers, got {sizes!r}")
        for name in ("noise", "learning_rate", "clip_norm"):
            if not float(getattr(self, name)) > 0:
                raise IdaeError(f"{name} must be positive, got {getattr(self, name)!r}")
        for name in ("decoder_noise", "reconstruction_weight", "weight_decay"):
            if not float(getattr(self, name)) >= 0:
                raise IdaeError(f"{name} must be non-negative, got {getattr(self, name)!r}")
        if not 0 <= self.val_fraction < 0.5:
            raise IdaeError(f"val_fraction must be in [0, 0.5), got {self.val_fraction!r}")
        if not 0 <= self.missing_weight < 1:
            raise IdaeError(f"missing_weight must be in [0, 1), got {self.missing_weight!r}")
        if self.inversion not in METHODS:
            raise IdaeError(f"inversion must be one of {METHODS}, got {self.inversion!r}")
        if self.device not in ("auto", "cpu") and not str(self.device).startswith("cuda"):
            raise IdaeError(f"device must be 'auto', 'cpu' or 'cuda[:n]', got {self.device!r}")


def _no_duplicate_ids(table: pd.DataFrame, name: str) -> None:
    if table.index.has_duplicates:
        raise IdaeError(f"{name} has duplicate patient IDs {table.index[table.index.duplicated()][:5].tolist()}")


class IDAE:
    """Identifiable denoising autoencoder of genomic profiles conditioned on clinical variables.

    >>> model = IDAE(latent_dim=6).fit(genomic, clinical)   # genomic: patients × genes
    >>> z = model.encode(genomic)                            # (n, latent_dim) identifiable factors
    >>> x_cf = model.invert(genomic, clinical, {"er": "pos"})

    Every argument is listed in `Config`; each has a default, so `IDAE(latent_dim=...)` is a
    complete configuration.
    """

    def __init__(self, latent_dim: int = 6, **kwargs: Any):
        names = {f.name for f in dataclasses.fields(Config)}
        unknown = sorted(set(kwargs) - names)
        if unknown:
            raise IdaeError(f"unknown IDAE arguments {unknown}; known: {sorted(names)}")
        for key in ("augmentation", "encoder_hidden", "condition_hidden", "decoder_hidden"):
            if key in kwargs and not isinstance(kwargs[key], str):
                kwargs[key] = tuple(kwargs[key])
        self.config = Config(latent_dim=latent_dim, **kwargs)
        self.config.check()
        self.net: IDAENet | None = None
        self.genes: list[str] = []
        self.standardizer: Standardizer | None = None
        self.design: ClinicalDesign | None = None
        self.history: History | None = None
        self.latent_model: LatentModel | None = None

    def __repr__(self) -> str:
        changed = {
            f.name: getattr(self.config, f.name)
            for f in dataclasses.fields(Config)
            if getattr(self.config, f.name) != f.default
        }
        return f"IDAE({', '.join(f'{k}={v!r}' for k, v in changed.items())})"

    # ---------------------------------------------------------------------------------------- input

    def _genomic(self, genomic: pd.DataFrame, fitted: bool) -> pd.DataFrame:
        if not isinstance(genomic, pd.DataFrame):
            raise IdaeError(f"genomic must be a pandas DataFrame (patients × genes), got {type(genomic).__name__}")
        if genomic.shape[0] == 0:
            raise IdaeError("genomic has no rows")
        _no_duplicate_ids(genomic, "genomic")
        genomic = genomic.rename(columns=str)
        if fitted:
            missing = [g for g in self.genes if g not in genomic.columns]
            if missing:
                raise IdaeError(
                    f"genomic lacks {len(missing)} of the model's {len(self.genes)} genes, e.g. {missing[:5]}"
                )
            genomic = genomic[self.genes]
        non_numeric = [c for c in genomic.columns if not pd.api.types.is_numeric_dtype(genomic[c])]
        if non_numeric:
            raise IdaeError(f"genomic has non-numeric gene columns {non_numeric[:5]}")
        values = genomic.to_numpy(dtype=float)
        bad = ~np.isfinite(values)
        if bad.any():
            rows, cols = np.nonzero(bad)
            raise IdaeError(
                f"genomic holds {bad.sum()} non-finite values, e.g. patient {genomic.index[rows[0]]!r}, "
                f"gene {genomic.columns[cols[0]]!r}; impute or drop them (idae.align lists such genes)"
            )
        return genomic.astype(float)

    def _clinical(self, clinical: pd.DataFrame, index: pd.Index) -> pd.DataFrame:
        if not isinstance(clinical, pd.DataFrame):
            raise IdaeError(f"clinical must be a pandas DataFrame, got {type(clinical).__name__}")
        _no_duplicate_ids(clinical, "clinical")
        absent = index.difference(clinical.index)
        if len(absent):
            raise IdaeError(
                f"{len(absent)} genomic patients have no clinical row, e.g. {absent[:5].tolist()}; "
                "use idae.align to match the tables"
            )
        return clinical.loc[index]

    def _check_fitted(self) -> IDAENet:
        if self.net is None:
            raise IdaeError("this IDAE is not fitted yet: call fit(genomic, clinical) or IDAE.load(path)")
        return self.net

    def _tensor(self, genomic: pd.DataFrame) -> torch.Tensor:
        assert self.standardizer is not None
        x = self.standardizer.transform(genomic).to_numpy(dtype=np.float32, copy=True)
        return torch.from_numpy(x).to(self.device)

    def _weights(self, clinical: pd.DataFrame) -> torch.Tensor:
        missing_share = clinical.isna().mean(axis=1).to_numpy()
        return torch.tensor(1.0 - self.config.missing_weight * missing_share, dtype=torch.float32, device=self.device)

    @property
    def device(self) -> torch.device:
        return resolve_device(self.config.device)

    # ------------------------------------------------------------------------------------------ fit

    def fit(
        self,
        genomic: pd.DataFrame,
        clinical: pd.DataFrame,
        validation: tuple[pd.DataFrame, pd.DataFrame] | None = None,
    ) -> IDAE:
        """Fit on genomic (patients × genes) and clinical (patients × variables, NaN = missing cell).

        The two tables are matched on their index. `validation=(genomic, clinical)` gives the early-
        stopping set; otherwise `val_fraction` of the patients are held out at random (seeded).
        """
        c = self.config
        genomic = self._genomic(genomic, fitted=False)
        clinical = self._clinical(clinical, genomic.index)
        if len(genomic) < 8:
            raise IdaeError(f"fit needs at least 8 patients, got {len(genomic)}")
        seed_everything(c.seed)
        self.genes = list(genomic.columns)
        if validation is None and c.val_fraction > 0 and len(genomic) >= 20:
            order = np.random.default_rng(c.seed).permutation(len(genomic))
            n_val = max(2, round(c.val_fraction * len(genomic)))
            val_ids, train_ids = genomic.index[order[:n_val]], genomic.index[order[n_val:]]
            validation = (genomic.loc[val_ids], clinical.loc[val_ids])
            genomic, clinical = genomic.loc[train_ids], clinical.loc[train_ids]
        self.standardizer = Standardizer.fit(genomic)
        self.design = ClinicalDesign.fit(clinical)
        rng = np.random.default_rng(c.seed)
        x_train = self._tensor(genomic)
        w_train = self._weights(clinical)

        def design_train() -> torch.Tensor:
            return torch.from_numpy(self.design.transform(clinical, rng)).to(self.device)

        x_val = y_val = w_val = None
        if validation is not None:
            g_val = self._genomic(validation[0], fitted=True)
            c_val = self._clinical(validation[1], g_val.index)
            x_val, w_val = self._tensor(g_val), self._weights(c_val)
            y_val = torch.from_numpy(self.design.transform(c_val)).to(self.device)

        self.net = IDAENet(
            n_genes=len(self.genes),
            n_design=self.design.width,
            latent_dim=c.latent_dim,
            augmentation=c.augmentation,
            encoder_hidden=c.encoder_hidden,
            condition_hidden=c.condition_hidden,
            decoder_hidden=c.decoder_hidden,
            decoder_noise=c.decoder_noise,
        ).to(self.device)
        self.history = train(
            self.net, x_train, design_train, w_train, x_val, y_val, w_val,
            objective=c.objective, noise=c.noise, reconstruction_weight=c.reconstruction_weight,
            max_epochs=c.max_epochs, batch_size=c.batch_size, learning_rate=c.learning_rate,
            weight_decay=c.weight_decay, warmup_epochs=c.warmup_epochs, patience=c.patience,
            clip_norm=c.clip_norm, progress=c.progress,
        )  # fmt: skip
        self.net.eval()
        self.latent_model = fit_latent_model(
            self.encode(genomic), regressors(self, clinical, c.inversion), c.inversion
        )
        return self

    # ------------------------------------------------------------------------------------ transform

    @torch.no_grad()
    def encode(self, genomic: pd.DataFrame) -> np.ndarray:
        """The identifiable factors z = f(x): (n, latent_dim) float64, rows in `genomic`'s order."""
        net = self._check_fitted()
        genomic = self._genomic(genomic, fitted=True)
        return net.encoder(self._tensor(genomic)).double().cpu().numpy()

    @torch.no_grad()
    def reconstruct(self, genomic: pd.DataFrame) -> pd.DataFrame:
        """h(T(f(x))) back on the input's scale: a DataFrame with the caller's index and genes."""
        net = self._check_fitted()
        genomic = self._genomic(genomic, fitted=True)
        x_hat = net.reconstruct(self._tensor(genomic)).double().cpu().numpy()
        out = pd.DataFrame(x_hat, index=genomic.index, columns=self.genes)
        return self.standardizer.inverse(out)

    @torch.no_grad()
    def natural_parameters(self, clinical: pd.DataFrame) -> np.ndarray:
        """λ(y): (n, k·latent_dim), clinical missing cells at their expectation."""
        net = self._check_fitted()
        y = torch.from_numpy(self.design.transform(clinical)).to(self.device)
        return net.natural_parameters(y).double().cpu().numpy()

    def invert(
        self,
        genomic: pd.DataFrame,
        clinical: pd.DataFrame,
        changes: dict[str, Any] | pd.DataFrame,
    ) -> pd.DataFrame:
        """Each patient's predicted profile had their clinical values been changed as `changes` says.

        `changes`: {column: new value} for every patient, or a DataFrame of new values (same index,
        any subset of the clinical columns; NaN keeps a patient's own value). Returns a DataFrame
        with the caller's index and the model's genes, on the input's scale.
        """
        return counterfactual(self, genomic, clinical, changes)

    # ------------------------------------------------------------------------------------ save/load

    def save(self, path: str | Path) -> Path:
        """Write `path/` with weights.pt (a state dict) and config.json, atomically."""
        net = self._check_fitted()
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        config = dataclasses.asdict(self.config)
        payload = {
            "format_version": FORMAT_VERSION,
            "config": config,
            "genes": self.genes,
            "standardizer": self.standardizer.to_dict(),
            "design": self.design.to_dict(),
            "latent_model": dataclasses.asdict(self.latent_model),
            "history": dataclasses.asdict(self.history) if self.history else None,
        }
        tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", dir=path.parent))
        try:
            torch.save({k: v.cpu() for k, v in net.state_dict().items()}, tmp / WEIGHTS)
            (tmp / CONFIG).write_text(json.dumps(payload))
            if path.exists():
                old = path.with_name(f".{path.name}.old")
                shutil.rmtree(old, ignore_errors=True)
                os.replace(path, old)
                os.replace(tmp, path)
                shutil.rmtree(old, ignore_errors=True)
            else:
                os.replace(tmp, path)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        return path

    @classmethod
    def load(cls, path: str | Path, device: str | None = None) -> IDAE:
        """Read a model written by `save`. Weights are loaded with `weights_only=True`: never executed."""
        path = Path(path)
        if not (path / CONFIG).is_file() or not (path / WEIGHTS).is_file():
            raise IdaeError(f"{path} is not a saved IDAE model (expected {CONFIG} and {WEIGHTS} inside)")
        try:
            payload = json.loads((path / CONFIG).read_text())
            config = payload["config"]
            if payload.get("format_version") != FORMAT_VERSION:
                raise IdaeError(f"{path}: unsupported format version {payload.get('format_version')!r}")
            if device is not None:
                config["device"] = device
            config["progress"] = False
            model = cls(**config)
            model.genes = list(payload["genes"])
            model.standardizer = Standardizer.from_dict(payload["standardizer"])
            model.design = ClinicalDesign.from_dict(payload["design"])
            model.latent_model = LatentModel(**payload["latent_model"])
            model.history = History(**payload["history"]) if payload.get("history") else None
        except (json.JSONDecodeError, KeyError, TypeError, UnicodeDecodeError) as err:
            raise IdaeError(f"{path / CONFIG} is damaged or not an IDAE config: {err!r}") from err
        if model.standardizer.mean.index.tolist() != model.genes:
            raise IdaeError(f"{path / CONFIG}: the standardiser's genes do not match the model's genes")
        try:
            state = torch.load(path / WEIGHTS, map_location="cpu", weights_only=True)
        except Exception as err:  # torch raises several types for damaged or unsafe files
            raise IdaeError(f"{path / WEIGHTS} is damaged or not a plain weights file: {err}") from err
        c = model.config
        net = IDAENet(
            len(model.genes), model.design.width, c.latent_dim, c.augmentation,
            c.encoder_hidden, c.condition_hidden, c.decoder_hidden, c.decoder_noise,
        )  # fmt: skip
        try:
            net.load_state_dict(state)
        except (RuntimeError, TypeError, AttributeError) as err:
            raise IdaeError(f"{path / WEIGHTS} does not fit the model in {CONFIG}: {err}") from err
        model.net = net.to(model.device).eval()
        return model
