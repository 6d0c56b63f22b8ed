"""`IDAE`: the estimator users, notebooks and tests go through (fit / encode / invert / save / load)."""

from __future__ import annotations

import copy
import dataclasses
import io
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from idae import modelfile, unmixing
from idae.checkpoint import checkpoint_path, fingerprint
from idae.checks import check_clinical, check_fit_options, check_genomic, to_float32
from idae.config import FIELDS, Config, checked_config, parameters_doc, statistics_per_factor
from idae.data import Standardizer, hold_out
from idae.design import ClinicalDesign
from idae.errors import IdaeError, IdentifiabilityWarning
from idae.invert import LatentModel, apply_changes, counterfactual_change, fit_inversion_paths, refuse_overflow
from idae.metrics import ConditionReport, condition_check
from idae.model import IDAENet
from idae.train import History, Objective, resolve_device, seed_everything, train


class IDAE:
    """Identifiable denoising autoencoder of genomic profiles conditioned on clinical variables.

    Every setting has a default (the project's best known, notebook 04), so `IDAE(latent_dim=...)` is a complete
    configuration; the settings are stored in `config` (a `Config`). What `fit` learns carries a trailing
    underscore, as in scikit-learn.

    Parameters
    ----------
{parameters}

    Attributes
    ----------
    config : Config
        the settings above
    net_ : IDAENet or None
        the trained network (None until `fit`)
    genes_ : list of str
        the genes the model reads, in its order
    standardizer_ : Standardizer
        per-gene mean and sd of the training patients
    design_ : ClinicalDesign
        the clinical design matrix fitted on the training patients
    latent_model_ : LatentModel
        the factors' clinical model that `invert` moves
    history_ : History
        per-epoch training and validation losses
    condition_ : ConditionReport
        the identifiability condition on the training patients

    Examples
    --------
    >>> model = IDAE(latent_dim=6).fit(genomic, clinical)   # genomic: patients × genes
    >>> z = model.encode(genomic)                            # (n, latent_dim) identifiable factors
    >>> x_cf = model.invert(genomic, clinical, {"er": "pos"})
    """

    def __init__(
        self, latent_dim: int = Config.latent_dim, *,
        objective: str = Config.objective, head: str = Config.head, augmentation: Sequence[str] = Config.augmentation,
        components_per_factor: int = Config.components_per_factor,
        encoder_hidden: Sequence[int] = Config.encoder_hidden,
        condition_hidden: Sequence[int] = Config.condition_hidden,
        decoder_hidden: Sequence[int] = Config.decoder_hidden, spectral_norm: bool = Config.spectral_norm,
        linear_stage: bool = Config.linear_stage, noise: float = Config.noise,
        component_noise: float = Config.component_noise, decoder_noise: float = Config.decoder_noise,
        reconstruction_weight: float = Config.reconstruction_weight,
        contrastive_weight: float = Config.contrastive_weight, detach_decoder: bool = Config.detach_decoder,
        max_epochs: int = Config.max_epochs, batch_size: int = Config.batch_size,
        learning_rate: float = Config.learning_rate, weight_decay: float = Config.weight_decay,
        warmup_epochs: int = Config.warmup_epochs, patience: int = Config.patience, clip_norm: float = Config.clip_norm,
        val_fraction: float = Config.val_fraction, missing_weight: float = Config.missing_weight,
        inversion: str = Config.inversion, inversion_shrinkage: bool = Config.inversion_shrinkage,
        latent_interactions: bool = Config.latent_interactions, direct_path: bool = Config.direct_path,
        state_path: bool = Config.state_path, state_basis: str = Config.state_basis,
        state_direction_null: float = Config.state_direction_null, direct_basis: str = Config.direct_basis,
        device: str = Config.device, seed: int = Config.seed, progress: bool = Config.progress, **unknown: Any,
    ):  # fmt: skip  # every setting is a `Config` field: its default, its line of help and its checks live there
        given = locals()
        if unknown:
            raise IdaeError(f"unknown IDAE arguments {sorted(unknown)}; known: {sorted(FIELDS)}")
        self.config = checked_config({name: given[name] for name in FIELDS})
        self.net_: IDAENet | None = None
        self.genes_: list[str] = []
        self.standardizer_: Standardizer | None = None
        self.design_: ClinicalDesign | None = None
        self.history_: History | None = None
        self.latent_model_: LatentModel | None = None
        self.condition_: ConditionReport | None = None

    def __repr__(self) -> str:
        changed = {
            f.name: getattr(self.config, f.name)
            for f in dataclasses.fields(Config)
            if getattr(self.config, f.name) != f.default
        }
        return f"IDAE({', '.join(f'{k}={v!r}' for k, v in changed.items())})"

    # ---------------------------------------------------------------------------------------- input

    def _genomic(self, genomic: pd.DataFrame, fitted: bool) -> pd.DataFrame:
        """The finite float table of the model's genes (`fitted`) or of all genes (fit); IdaeError else."""
        return check_genomic(genomic, self.genes_ if fitted else None)

    def _clinical(self, clinical: pd.DataFrame, index: pd.Index, columns: list[str] | None = None) -> pd.DataFrame:
        """`clinical`'s rows for the patients in `index`; each of `columns` (all when None) named once."""
        return check_clinical(clinical, index, columns)

    def _check_fitted(self) -> IDAENet:
        if self.net_ is None:
            raise IdaeError("this IDAE is not fitted yet: call fit(genomic, clinical) or IDAE.load(path)")
        return self.net_

    def _tensor(self, genomic: pd.DataFrame) -> torch.Tensor:
        assert self.standardizer_ is not None
        z = self.standardizer_.transform(genomic).to_numpy(dtype=np.float64)
        x = to_float32(z, genomic.index, list(genomic.columns), "genomic", "gene")  # 1e300 must not become inf
        return torch.from_numpy(x).to(self.device)

    @torch.no_grad()
    def _decode(self, codes: np.ndarray) -> np.ndarray:
        """The decoder on factors (n, d) as NumPy: profiles (n, genes), standardised, float32."""
        net = self._check_fitted()
        return net.decode(torch.as_tensor(codes, dtype=torch.float32, device=self.device)).cpu().numpy()

    @torch.no_grad()
    def _natural(self, design_rows: np.ndarray) -> np.ndarray:
        """λ(y) of the factors for design rows (n, q): (n, k·latent_dim), float64."""
        y = torch.as_tensor(design_rows, dtype=torch.float32, device=self.device)
        return self._check_fitted().factor_natural_parameters(y).double().cpu().numpy()

    def _regressors(self, design_rows: np.ndarray) -> np.ndarray:
        """The factors' clinical model's regressors for design rows (n, q): the rows themselves (inversion "design")
        or the natural parameters λ(y) (n, k·latent_dim; "energy")."""
        return design_rows if self.config.inversion == "design" else self._natural(design_rows)

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
        checkpoint: str | Path | None = None,
        checkpoint_every: int | None = None,
    ) -> IDAE:
        """Train the model, then fit what `invert` uses besides the network.

        Parameters
        ----------
        genomic : DataFrame, patients × genes
            expression, any scale (each gene is standardised on these patients); matched to `clinical` on the index
        clinical : DataFrame, patients × variables
            numbers, text, booleans or categories; NaN marks a missing cell (drawn from its prior while training)
        validation : (genomic, clinical), optional
            the early-stopping patients; without it `val_fraction` of the patients are held out at random (seeded)
        checkpoint : str or Path, optional
            a file where training saves its state atomically; a fit that finds it resumes to the weights an
            uninterrupted fit would reach (same torch, device, threads); another run's file is refused; deleted
            once training ends (`idae.checkpoint`)
        checkpoint_every : int, optional
            epochs between checkpoints (None: every epoch, or fewer when writes would take over 10% of the time)

        Returns
        -------
        IDAE
            this model, fitted

        Examples
        --------
        >>> clinical, genomic = idae.load_cohort("gse1992")
        >>> model = IDAE(latent_dim=6).fit(genomic, clinical)
        """
        c = self.config
        checkpoint = checkpoint_path(checkpoint) if checkpoint is not None else None
        every = check_fit_options(validation, checkpoint_every)
        genomic = self._genomic(genomic, fitted=False)
        clinical = self._clinical(clinical, genomic.index)
        if len(genomic) < 8:
            raise IdaeError(f"fit needs at least 8 patients, got {len(genomic)}")
        seed_everything(c.seed)
        self.genes_ = list(genomic.columns)
        if validation is None and c.val_fraction > 0 and len(genomic) >= 20:
            genomic, clinical, validation = hold_out(genomic, clinical, c.val_fraction, c.seed)
        self.standardizer_ = Standardizer.fit(genomic)
        self.design_ = ClinicalDesign.fit(clinical)
        rng = np.random.default_rng(c.seed)
        x_train = self._tensor(genomic)
        w_train = self._weights(clinical)

        draw = self.design_.sampler(clinical, rng)

        def design_train() -> torch.Tensor:
            return torch.from_numpy(draw()).to(self.device)

        x_val = y_val = w_val = None
        if validation is not None:
            g_val = self._genomic(validation[0], fitted=True)
            c_val = self._clinical(validation[1], g_val.index)
            x_val, w_val = self._tensor(g_val), self._weights(c_val)
            y_val = torch.from_numpy(self.design_.transform(c_val)).to(self.device)

        self.net_ = self.build_network(len(self.genes_), self.design_.width).to(self.device)
        self.net_.start_at_pca(x_train)
        run = None
        if checkpoint is not None:  # what a checkpoint must match to be resumed by this fit
            settings = {**dataclasses.asdict(c), "device": str(self.device)}
            del settings["progress"]
            run = fingerprint(settings, {
                "genes": self.genes_, "clinical design columns": [str(col) for col in self.design_.columns],
                "clinical design": self.design_.to_dict(), "training design": self.design_.transform(clinical),
                "missing clinical cells": clinical.isna().to_numpy(), "training genomic": x_train,
                "training weights": w_train, "validation genomic": x_val, "validation design": y_val,
                "validation weights": w_val,
            })  # fmt: skip
        objective = Objective(c.objective, c.noise, c.reconstruction_weight, c.contrastive_weight, c.detach_decoder)
        self.history_ = train(
            self.net_, x_train, design_train, w_train, x_val, y_val, w_val, objective=objective,
            max_epochs=c.max_epochs, batch_size=c.batch_size, learning_rate=c.learning_rate,
            weight_decay=c.weight_decay, warmup_epochs=c.warmup_epochs, patience=c.patience, clip_norm=c.clip_norm,
            progress=c.progress, checkpoint=checkpoint, checkpoint_every=every, fingerprint=run, rng=rng,
        )  # fmt: skip
        self.net_.eval()
        design = self.design_.transform(clinical)
        if c.linear_stage:
            with torch.no_grad():
                codes = self.net_.codes(x_train).double().cpu().numpy()
            stage = unmixing.fit(codes, design, seed=c.seed)
            as_tensor = lambda a: torch.as_tensor(a, dtype=torch.float32, device=self.device)  # noqa: E731
            self.net_.set_unmixing(as_tensor(stage.centre), as_tensor(stage.weight), as_tensor(stage.head_weight),
                                  as_tensor(stage.head_bias))  # fmt: skip
        self.condition_ = self.condition_report(clinical)
        if self.condition_.warning:
            warnings.warn(f"IDAE.fit: {self.condition_.warning}", IdentifiabilityWarning, stacklevel=2)
        self._fit_inversion(genomic, clinical)
        return self

    @torch.no_grad()
    def _fit_inversion(self, genomic: pd.DataFrame, clinical: pd.DataFrame) -> None:
        """Fit what `invert` uses besides the network, on the training patients: the factors' clinical
        model and (with `direct_path`, `state_path`) the direct and state paths (`idae.invert`)."""
        c, net = self.config, self.net_
        design = self.design_.transform(clinical).astype(float)
        x = self._tensor(genomic)  # genomic is already checked and in the model's gene order (fit, refit_inversion)
        z = net.encode(x)  # what `encode` returns
        residuals = (x - net.decode(z)).double().cpu().numpy() if c.direct_path or c.state_path else None
        self.latent_model_, effect, direction, state_effect = fit_inversion_paths(
            z.double().cpu().numpy(), x.double().cpu().numpy(), residuals, design, self.design_, c, self._decode,
            self._regressors)  # fmt: skip
        net.direct_effect.copy_(torch.as_tensor(effect, dtype=torch.float32))
        net.state_direction.copy_(torch.as_tensor(direction, dtype=torch.float32))
        net.state_effect.copy_(torch.as_tensor(state_effect, dtype=torch.float32))

    def refit_inversion(self, genomic: pd.DataFrame, clinical: pd.DataFrame, **settings: Any) -> IDAE:
        """A copy of this fitted model with the inversion `settings` changed (`inversion`, `inversion_shrinkage`,
        `latent_interactions`, `direct_path`, `state_path`, `state_basis`, `state_direction_null`, `direct_basis`) and
        its inversion refitted on `genomic` (patients × genes) and `clinical`: pass the patients the model was trained
        on. Inversion is fitted after training, so the copy is the model `fit` would have returned with those
        settings, without training again."""
        self._check_fitted()
        allowed = {"inversion", "inversion_shrinkage", "latent_interactions", "direct_path", "state_path",
                   "state_basis", "state_direction_null", "direct_basis"}
        unknown = sorted(set(settings) - allowed)
        if unknown:
            raise IdaeError(f"refit_inversion changes inversion settings only, not {unknown}")
        config = dataclasses.replace(self.config, **settings)
        config.check()
        genomic = self._genomic(genomic, fitted=True)
        clinical = self._clinical(clinical, genomic.index, self.design_.columns)
        out = copy.deepcopy(self)
        out.config = config
        out._fit_inversion(genomic, clinical)
        return out

    def build_network(self, n_genes: int, n_design: int) -> IDAENet:
        """The untrained network this configuration describes, for `n_genes` genes and a design of width `n_design`."""
        c = self.config
        return IDAENet(
            n_genes=n_genes, n_design=n_design, latent_dim=c.latent_dim,
            input_components=c.components_per_factor * c.latent_dim, head=c.head, augmentation=c.augmentation,
            encoder_hidden=c.encoder_hidden, condition_hidden=c.condition_hidden, decoder_hidden=c.decoder_hidden,
            decoder_noise=c.decoder_noise, spectral=c.spectral_norm, component_noise=c.component_noise,
        )  # fmt: skip

    def condition_report(self, clinical: pd.DataFrame) -> ConditionReport:
        """The identifiability condition on these patients' clinical profiles (see `metrics.condition_check`):
        distinct profiles, rank of the design, and rank of the fitted model's natural-parameter differences."""
        self._check_fitted()
        clinical = self._clinical(clinical, clinical.index, self.design_.columns)
        y = self.design_.transform(clinical)
        c = self.config
        return condition_check(y, c.latent_dim, n_terms=statistics_per_factor(c.head, c.linear_stage, c.augmentation),
                               natural_parameters=self.natural_parameters(clinical))  # fmt: skip

    # ------------------------------------------------------------------------------------ transform

    @torch.no_grad()
    def encode(self, genomic: pd.DataFrame) -> np.ndarray:
        """The factors of each patient: u = (f(P x) - c) W, with P the whitening projection, f the encoder and W the
        linear stage (identity when `linear_stage=False`).

        Parameters
        ----------
        genomic : DataFrame, patients × genes
            the model's genes (extra columns are ignored, missing ones refused), on the scale `fit` saw

        Returns
        -------
        ndarray, (patients, latent_dim), float64
            rows in `genomic`'s order; unit variance on the training patients, in decreasing order of the share of
            variance the clinical state explains
        """
        net = self._check_fitted()
        genomic = self._genomic(genomic, fitted=True)
        return net.encode(self._tensor(genomic)).double().cpu().numpy()

    @torch.no_grad()
    def reconstruct(self, genomic: pd.DataFrame) -> pd.DataFrame:
        """h(T(f(x))) back on the input's scale: a DataFrame with the caller's index and genes."""
        net = self._check_fitted()
        genomic = self._genomic(genomic, fitted=True)
        x_hat = net.reconstruct(self._tensor(genomic))
        refuse_overflow(x_hat, genomic.index)
        out = pd.DataFrame(x_hat.double().cpu().numpy(), index=genomic.index, columns=self.genes_)
        return self.standardizer_.inverse(out)

    @torch.no_grad()
    def natural_parameters(self, clinical: pd.DataFrame) -> np.ndarray:
        """λ(y) of the factors `encode` returns: (n, k·latent_dim), clinical missing cells at their expectation.

        With the Gaussian head or the linear stage, k = 2 and λ = [m/v, -1/(2v)] per factor (mean m, variance v
        given y); with the energy head and no stage, the head's free λ over the augmentation terms.
        """
        self._check_fitted()
        return self._natural(self.design_.transform(clinical))

    def invert(
        self,
        genomic: pd.DataFrame,
        clinical: pd.DataFrame,
        changes: dict[str, Any] | pd.DataFrame,
    ) -> pd.DataFrame:
        """Each patient's predicted profile had their clinical values been changed as `changes` says: through the
        factors (their clinical model, each patient's own position kept), the direct path and the state path.

        Parameters
        ----------
        genomic : DataFrame, patients × genes
            the patients' profiles, on the scale `fit` saw
        clinical : DataFrame, patients × variables
            their clinical values (the model's columns; NaN = missing)
        changes : dict or DataFrame
            {column: new value} for every patient, or a DataFrame of new values per patient (its index a subset of
            `clinical`'s, any subset of the clinical columns; NaN keeps a patient's own value)

        Returns
        -------
        DataFrame, patients × genes
            the predicted profiles, with the caller's index and the model's genes, on the input's scale

        Examples
        --------
        >>> er_positive = model.invert(genomic, clinical, {"er": "pos"})
        >>> change = er_positive - genomic[er_positive.columns]
        """
        net = self._check_fitted()
        genomic = self._genomic(genomic, fitted=True)
        clinical = self._clinical(clinical, genomic.index, self.design_.columns)
        new_clinical = apply_changes(clinical, changes, self.design_.columns)
        x = self._tensor(genomic)
        with torch.no_grad():
            codes = net.encode(x)
            reconstruction = net.decode(codes)
        refuse_overflow(reconstruction, genomic.index)

        designs = [self.design_.transform(c).astype(float) for c in (clinical, new_clinical)]
        regressors = [self._regressors(d) for d in designs]
        paths = {name: getattr(net, name).double().cpu().numpy()
                 for name in ("direct_effect", "state_direction", "state_effect")}  # fmt: skip
        delta = counterfactual_change(
            codes.double().cpu().numpy(), reconstruction.cpu().numpy(), self._decode, self.latent_model_, *regressors,
            designs[1] - designs[0], **paths, state_basis=self.config.state_basis,
        )  # fmt: skip
        out = genomic + delta * self.standardizer_.scale.to_numpy()
        odd = ~np.isfinite(out.to_numpy()).all(axis=1)
        if odd.any():
            changed = list(changes) if isinstance(changes, dict) else list(changes.columns)
            raise IdaeError(
                f"the changes to {changed} give non-finite profiles for {int(odd.sum())} patient(s), e.g. "
                f"{genomic.index[odd][:5].tolist()}: the new values are too far outside the range the model was "
                "trained on for its float32 network"
            )
        return out

    # ------------------------------------------------------------------------------------ save/load

    def save(self, path: str | Path) -> Path:
        """Write the fitted model to a folder (weights.pt and config.json, atomically; `idae.modelfile`).

        Parameters
        ----------
        path : str or Path
            The folder. An existing one is replaced only when it is a model folder (or empty).

        Returns
        -------
        Path
            `path`.
        """
        net = self._check_fitted()
        path = modelfile.as_path(path)
        state = {k: v.detach().cpu() for k, v in net.state_dict().items()}
        bad = [k for k, v in state.items() if not bool(torch.isfinite(v).all())]
        if bad:
            raise IdaeError(f"cannot save: the network holds non-finite weights in {bad[:3]}")
        not_text = [c for c in self.design_.columns if not isinstance(c, str)]
        if not_text:
            raise IdaeError(
                f"cannot save: clinical column names must be strings to be stored in {modelfile.CONFIG}, got "
                f"{not_text[:5]}; rename the clinical columns (idae.align does) and fit again"
            )
        buffer = io.BytesIO()
        torch.save(state, buffer)
        modelfile.write(path, {
            "config": dataclasses.asdict(self.config),
            "genes": self.genes_,
            "standardizer": self.standardizer_.to_dict(),
            "design": self.design_.to_dict(),
            "latent_model": dataclasses.asdict(self.latent_model_),
            "history": dataclasses.asdict(self.history_) if self.history_ else None,
        }, buffer.getvalue())  # fmt: skip
        return path

    @classmethod
    def load(cls, path: str | Path, device: str | None = None) -> IDAE:
        """Read a model written by `save`, refusing anything else with an IdaeError that names the file: nothing in
        the files is executed, and every tensor and the weights' SHA-256 are checked (`idae.modelfile`).

        Parameters
        ----------
        path : str or Path
            a folder written by `save`
        device : str, optional
            where to place the network ("cpu", "cuda[:n]", "auto"); default: the saved setting

        Returns
        -------
        IDAE
            the fitted model
        """
        path = modelfile.as_path(path)
        payload, state, raw = modelfile.read(path)
        config = dict(payload["config"], progress=False)
        if device is not None:
            config["device"] = device
        try:
            model = cls(**config)
        except IdaeError as err:  # the config itself was checked by `read`: only the device argument is left
            raise IdaeError(f"cannot load {path} with device={device!r}: {err}") from err
        model.genes_ = list(payload["genes"])
        model.standardizer_ = Standardizer.from_dict(payload["standardizer"])
        model.design_ = ClinicalDesign.from_dict(payload["design"])
        model.latent_model_ = LatentModel(**payload["latent_model"])
        model.history_ = History(**payload["history"]) if payload["history"] is not None else None
        c, n_genes, width = model.config, len(model.genes_), model.design_.width
        misfit = modelfile.misfit_message(path)
        modelfile.check_size(raw, c, n_genes, width, misfit)
        net = model.build_network(n_genes, width)
        modelfile.check_state(state, net.state_dict(), misfit,
                              f"{n_genes} genes, design width {width}, latent_dim {c.latent_dim}")
        modelfile.check_checksum(raw, payload, path)
        try:
            net.load_state_dict(state)
            model.net_ = net.to(model.device).eval()
        except (RuntimeError, AssertionError, TypeError, ValueError) as err:  # e.g. cuda absent
            raise IdaeError(f"{path}: could not place the model on device {c.device!r}: {err}") from err
        return model


IDAE.__doc__ = IDAE.__doc__.replace("{parameters}", parameters_doc())
