"""`IDAE`: the estimator users, notebooks and tests go through (fit / encode / invert / save / load)."""

from __future__ import annotations

import copy
import dataclasses
import hashlib
import io
import json
import math
import numbers
import os
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from idae import unmixing
from idae.data import ClinicalDesign, Standardizer, check_clinical, check_genomic, to_float32
from idae.errors import IdaeError, IdentifiabilityWarning
from idae.files import replaced_folder, restore_previous
from idae.invert import (
    DIRECT_BASES,
    METHODS,
    STATE_BASES,
    LatentModel,
    anchor_direct_path,
    apply_changes,
    counterfactual_change,
    factor_path_effect,
    fit_direct_path,
    fit_latent_model,
    fit_state_path,
    interaction_candidates,
    patient_state,
    refuse_overflow,
)
from idae.metrics import ConditionReport, condition_check
from idae.model import AUGMENTATIONS, HEADS, IDAENet
from idae.train import OBJECTIVES, History, checkpoint_path, fingerprint, resolve_device, seed_everything, train

WEIGHTS, CONFIG = "weights.pt", "config.json"
FORMAT_VERSION = 11  # 2: config.json records the SHA-256 of weights.pt; 3: projection, heads, linear stage;
# 4: the inversion's direct path and shrunk latent model; 5: the inversion's state path; 6: latent interactions;
# 7: the latent interactions' centre; 8: the state path's state_basis; 9: the direct path's direct_basis;
# 10: component_noise; 11: the state path's state_direction_null


def statistics_per_factor(head: str, linear_stage: bool, augmentation: tuple[str, ...] | list[str]) -> int:
    """Sufficient statistics per factor of the λ(y) that `IDAE.natural_parameters` returns: 2 ([z, z²]) with the
    Gaussian head or once the linear stage's Gaussian model replaces the head, else the energy head's terms."""
    return 2 if head == "gaussian" or linear_stage else len(set(augmentation))


@dataclasses.dataclass
class Config:
    """Every constructor argument of `IDAE`; the defaults are the project's best known settings (notebook 04)."""

    latent_dim: int = 6
    objective: str = "ivae"  # "ivae" (evidence lower bound), "infonce" or "dsm" (the seed's energy estimators)
    head: str = "gaussian"  # "gaussian" (positive precision, exact log-partition) or "energy" (the seed's free λ)
    augmentation: tuple[str, ...] = AUGMENTATIONS  # T(z) of the "energy" head; the Gaussian head uses [z, z²]
    components_per_factor: int = 2  # whitened principal components the encoder reads, per factor; 0: every gene
    encoder_hidden: tuple[int, ...] = (128, 128)
    condition_hidden: tuple[int, ...] = ()
    decoder_hidden: tuple[int, ...] = (128, 128)
    spectral_norm: bool = True  # on the encoder's MLP
    linear_stage: bool = True  # the conditional maximum-likelihood linear map after training (idae.unmixing)
    noise: float = 0.0  # corruption sd of the genes the encoder reads, in units of each gene's sd
    component_noise: float = 0.0  # corruption sd of the whitened components the encoder reads (their sds)
    decoder_noise: float = 0.0
    reconstruction_weight: float = 1.0  # of the reconstruction term ("infonce" and "dsm")
    contrastive_weight: float = 50.0  # "ivae": weight of the InfoNCE term beside the ELBO (both nats per patient)
    detach_decoder: bool = False  # "infonce" / "dsm": the reconstruction term does not train the encoder
    max_epochs: int = 1000
    batch_size: int = 256
    learning_rate: float = 1e-3
    weight_decay: float = 1e-4
    warmup_epochs: int = 10
    patience: int = 40
    clip_norm: float = 1.0
    val_fraction: float = 0.15
    missing_weight: float = 0.5  # a patient with every clinical cell missing counts 1 - this
    inversion: str = "design"  # regressors of the factors' clinical model: "design" or "energy"
    inversion_shrinkage: bool = True  # empirical-Bayes shrinkage of that model's coefficients (idae.invert)
    latent_interactions: bool = True  # ... and products of two clinical columns where a test keeps them
    direct_path: bool = True  # inversion also moves genes by the clinical effects the factors do not carry
    state_path: bool = True  # ... and by the part of those effects that depends on the patient's state
    state_basis: str = "factors"  # that state: the factors z ("factors") or their position given y ("position")
    state_direction_null: float = 0.1  # its direction from the genes whose probability of no effect is below this
    direct_basis: str = "residuals"  # the direct path's effects: on the decoder's residuals, or "totals" (idae.invert)
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
        value = self.components_per_factor
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise IdaeError(f"components_per_factor must be a non-negative integer, got {value!r}")
        for name in ("spectral_norm", "linear_stage", "detach_decoder", "progress", "inversion_shrinkage",
                     "latent_interactions", "direct_path", "state_path"):
            if not isinstance(getattr(self, name), bool):
                raise IdaeError(f"{name} must be True or False, got {getattr(self, name)!r}")
        if self.objective not in OBJECTIVES:
            raise IdaeError(f"objective must be one of {OBJECTIVES}, got {self.objective!r}")
        if self.head not in HEADS:
            raise IdaeError(f"head must be one of {HEADS}, got {self.head!r}")
        if self.objective == "ivae" and self.head != "gaussian":
            raise IdaeError("objective 'ivae' needs head='gaussian' (its prior is the Gaussian head)")
        if self.objective == "ivae" and self.detach_decoder:
            raise IdaeError("objective 'ivae' trains the encoder through its decoder: detach_decoder must be False")
        terms = self.augmentation
        valid = not isinstance(terms, str) and all(isinstance(t, str) for t in terms)
        if not valid or not terms or set(terms) - set(AUGMENTATIONS):
            raise IdaeError(f"augmentation must be a non-empty subset of {AUGMENTATIONS}, got {self.augmentation}")
        for name in ("encoder_hidden", "condition_hidden", "decoder_hidden"):
            sizes = getattr(self, name)
            if not all(isinstance(s, int) and not isinstance(s, bool) and s > 0 for s in sizes):
                raise IdaeError(f"{name} must be a tuple of positive integers, got {sizes!r}")
        def finite_number(name: str) -> float:
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value):
                raise IdaeError(f"{name} must be a finite number, got {value!r}")
            return float(value)

        for name in ("learning_rate", "clip_norm"):
            if not finite_number(name) > 0:
                raise IdaeError(f"{name} must be positive, got {getattr(self, name)!r}")
        if self.objective == "dsm" and not finite_number("noise") > 0:
            raise IdaeError(f"objective 'dsm' needs a positive noise (its corruption), got {self.noise!r}")
        for name in ("noise", "component_noise", "decoder_noise", "reconstruction_weight", "contrastive_weight",
                     "weight_decay", "val_fraction", "missing_weight"):
            if not finite_number(name) >= 0:
                raise IdaeError(f"{name} must be non-negative, got {getattr(self, name)!r}")
        for name in ("noise", "component_noise", "decoder_noise"):  # in sds: beyond 100 the corruption is all there is
            if getattr(self, name) > 100:
                raise IdaeError(f"{name} is in sds of its input and must be at most 100, got {getattr(self, name)!r}")
        if isinstance(self.seed, bool) or not isinstance(self.seed, int) or not 0 <= self.seed < 2**32:
            raise IdaeError(f"seed must be an integer in [0, 2**32), got {self.seed!r}")
        if not 0 <= self.val_fraction < 0.5:
            raise IdaeError(f"val_fraction must be in [0, 0.5), got {self.val_fraction!r}")
        if not 0 <= self.missing_weight < 1:
            raise IdaeError(f"missing_weight must be in [0, 1), got {self.missing_weight!r}")
        if self.inversion not in METHODS:
            raise IdaeError(f"inversion must be one of {METHODS}, got {self.inversion!r}")
        if not 0 < finite_number("state_direction_null") <= 0.5:
            raise IdaeError("state_direction_null is a probability of no effect in (0, 0.5] (the state path's genes "
                            f"are those below 0.5), got {self.state_direction_null!r}")
        if self.state_basis not in STATE_BASES:
            raise IdaeError(f"state_basis must be one of {STATE_BASES}, got {self.state_basis!r}")
        if self.direct_basis not in DIRECT_BASES:
            raise IdaeError(f"direct_basis must be one of {DIRECT_BASES}, got {self.direct_basis!r}")
        if self.direct_basis == "totals" and self.inversion != "design":
            raise IdaeError("direct_basis 'totals' needs inversion 'design': the factor path's average effect of "
                            f"a clinical column comes from the latent model on the design; got {self.inversion!r}")
        if self.device not in ("auto", "cpu") and not str(self.device).startswith("cuda"):
            raise IdaeError(f"device must be 'auto', 'cpu' or 'cuda[:n]', got {self.device!r}")


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
                try:
                    kwargs[key] = tuple(kwargs[key])
                except TypeError:
                    raise IdaeError(f"{key} must be a sequence, got {kwargs[key]!r}") from None
        self.config = Config(latent_dim=latent_dim, **kwargs)
        self.config.check()
        self.net: IDAENet | None = None
        self.genes: list[str] = []
        self.standardizer: Standardizer | None = None
        self.design: ClinicalDesign | None = None
        self.history: History | None = None
        self.latent_model: LatentModel | None = None
        self.condition: ConditionReport | None = None

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
        return check_genomic(genomic, self.genes if fitted else None)

    def _clinical(self, clinical: pd.DataFrame, index: pd.Index, columns: list[str] | None = None) -> pd.DataFrame:
        """`clinical`'s rows for the patients in `index`; each of `columns` (all when None) named once."""
        return check_clinical(clinical, index, columns)

    def _check_fitted(self) -> IDAENet:
        if self.net is None:
            raise IdaeError("this IDAE is not fitted yet: call fit(genomic, clinical) or IDAE.load(path)")
        return self.net

    def _tensor(self, genomic: pd.DataFrame) -> torch.Tensor:
        assert self.standardizer is not None
        z = self.standardizer.transform(genomic).to_numpy(dtype=np.float64)
        x = to_float32(z, genomic.index, list(genomic.columns), "genomic", "gene")  # 1e300 must not become inf
        return torch.from_numpy(x).to(self.device)

    @torch.no_grad()
    def _decode(self, codes: np.ndarray) -> np.ndarray:
        """The decoder on factors (n, d) as NumPy: profiles (n, genes), standardised, float32."""
        net = self._check_fitted()
        return net.decode(torch.as_tensor(codes, dtype=torch.float32, device=self.device)).cpu().numpy()

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
        """Fit on genomic (patients × genes) and clinical (patients × variables, NaN = missing cell).

        The two tables are matched on their index. `validation=(genomic, clinical)` gives the early-
        stopping set; otherwise `val_fraction` of the patients are held out at random (seeded).

        `checkpoint`: a file path. Training then saves its whole state there every `checkpoint_every`
        epochs (default None: every epoch, or every few when writing would take over 10% of the training
        time), atomically: a kill mid-write keeps the previous file. A fit that finds the file resumes
        after the epoch it records and ends with the same weights and history as an uninterrupted fit
        (same torch, device and OMP_NUM_THREADS). A checkpoint of another configuration or other data,
        or a damaged one, is refused with IdaeError. The file is deleted once training ends.
        """
        c = self.config
        checkpoint = checkpoint_path(checkpoint) if checkpoint is not None else None
        every = checkpoint_every
        if every is not None and (isinstance(every, bool) or not isinstance(every, numbers.Integral) or every < 1):
            raise IdaeError(f"checkpoint_every must be a positive number of epochs or None, got {every!r}")
        if validation is not None and (not isinstance(validation, (tuple, list)) or len(validation) != 2):
            size = f" of {len(validation)} item(s)" if isinstance(validation, (tuple, list)) else ""
            raise IdaeError(
                f"validation must be a (genomic, clinical) pair of DataFrames, got a {type(validation).__name__}{size}"
            )
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

        draw = self.design.sampler(clinical, rng)

        def design_train() -> torch.Tensor:
            return torch.from_numpy(draw()).to(self.device)

        x_val = y_val = w_val = None
        if validation is not None:
            g_val = self._genomic(validation[0], fitted=True)
            c_val = self._clinical(validation[1], g_val.index)
            x_val, w_val = self._tensor(g_val), self._weights(c_val)
            y_val = torch.from_numpy(self.design.transform(c_val)).to(self.device)

        self.net = self.build_network(len(self.genes), self.design.width).to(self.device)
        self.net.start_at_pca(x_train)
        run = None
        if checkpoint is not None:  # what a checkpoint must match to be resumed by this fit
            settings = {**dataclasses.asdict(c), "device": str(self.device)}
            del settings["progress"]
            run = fingerprint(settings, {
                "genes": self.genes, "clinical design columns": [str(col) for col in self.design.columns],
                "clinical design": self.design.to_dict(), "training design": self.design.transform(clinical),
                "missing clinical cells": clinical.isna().to_numpy(), "training genomic": x_train,
                "training weights": w_train, "validation genomic": x_val, "validation design": y_val,
                "validation weights": w_val,
            })  # fmt: skip
        self.history = train(
            self.net, x_train, design_train, w_train, x_val, y_val, w_val,
            objective=c.objective, noise=c.noise, reconstruction_weight=c.reconstruction_weight,
            contrastive_weight=c.contrastive_weight, max_epochs=c.max_epochs, batch_size=c.batch_size,
            learning_rate=c.learning_rate,
            weight_decay=c.weight_decay, warmup_epochs=c.warmup_epochs, patience=c.patience,
            clip_norm=c.clip_norm, detach_decoder=c.detach_decoder, progress=c.progress, checkpoint=checkpoint,
            checkpoint_every=None if every is None else int(every), fingerprint=run, rng=rng,
        )  # fmt: skip
        self.net.eval()
        design = self.design.transform(clinical)
        if c.linear_stage:
            with torch.no_grad():
                codes = self.net.codes(x_train).double().cpu().numpy()
            stage = unmixing.fit(codes, design, seed=c.seed)
            as_tensor = lambda a: torch.as_tensor(a, dtype=torch.float32, device=self.device)  # noqa: E731
            self.net.set_unmixing(as_tensor(stage.centre), as_tensor(stage.weight), as_tensor(stage.head_weight),
                                  as_tensor(stage.head_bias))  # fmt: skip
        self.condition = self.condition_report(clinical)
        if self.condition.warning:
            warnings.warn(f"IDAE.fit: {self.condition.warning}", IdentifiabilityWarning, stacklevel=2)
        self._fit_inversion(genomic, clinical)
        return self

    @torch.no_grad()
    def _fit_inversion(self, genomic: pd.DataFrame, clinical: pd.DataFrame) -> None:
        """Fit what `invert` uses besides the network, on the training patients: the factors' clinical
        model and (with `direct_path`, `state_path`) the direct and state paths (`idae.invert`)."""
        c, net = self.config, self.net
        design = self.design.transform(clinical).astype(float)
        by_design = c.inversion == "design"
        regressors = design if by_design else self.natural_parameters(clinical)
        keep = self.design.contrast_columns()
        x = self._tensor(genomic)  # genomic is already checked and in the model's gene order (fit, refit_inversion)
        z = net.encode(x)
        codes = z.double().cpu().numpy()  # what `encode` returns
        self.latent_model = fit_latent_model(
            codes, regressors, c.inversion, keep=keep if by_design else None, shrinkage=c.inversion_shrinkage,
            candidates=interaction_candidates(self.design) if by_design and c.latent_interactions else None,
        )  # fmt: skip
        effect = np.zeros((design.shape[1], len(self.genes)))
        direction, state_effect = np.zeros((design.shape[1], c.latent_dim)), effect.copy()
        if c.direct_path or c.state_path:
            residuals = (x - net.decode(z)).double().cpu().numpy()
            shrunk, null = fit_direct_path(design, residuals, keep)
        if c.direct_path:
            effect = shrunk
            if c.direct_basis == "totals":
                factor_effect = factor_path_effect(codes, design, self.latent_model, self.design, self._decode)
                effect = anchor_direct_path(design, x.double().cpu().numpy(), factor_effect, keep, self.design, shrunk)
        if c.state_path:
            state = patient_state(codes, self.latent_model, regressors, c.state_basis)
            direction, state_effect = fit_state_path(design, state, residuals, keep, null,
                                                     direction_null=c.state_direction_null)
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
        clinical = self._clinical(clinical, genomic.index, self.design.columns)
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
        clinical = self._clinical(clinical, clinical.index, self.design.columns)
        y = self.design.transform(clinical)
        c = self.config
        return condition_check(y, c.latent_dim, n_terms=statistics_per_factor(c.head, c.linear_stage, c.augmentation),
                               natural_parameters=self.natural_parameters(clinical))  # fmt: skip

    # ------------------------------------------------------------------------------------ transform

    @torch.no_grad()
    def encode(self, genomic: pd.DataFrame) -> np.ndarray:
        """The factors u = (f(P x) - c) W: (n, latent_dim) float64, rows in `genomic`'s order.

        The linear stage W is included (identity when `linear_stage=False`); the factors have unit variance on
        the training patients and come in decreasing order of the share the clinical state explains.
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
        out = pd.DataFrame(x_hat.double().cpu().numpy(), index=genomic.index, columns=self.genes)
        return self.standardizer.inverse(out)

    @torch.no_grad()
    def natural_parameters(self, clinical: pd.DataFrame) -> np.ndarray:
        """λ(y) of the factors `encode` returns: (n, k·latent_dim), clinical missing cells at their expectation.

        With the Gaussian head or the linear stage, k = 2 and λ = [m/v, -1/(2v)] per factor (mean m, variance v
        given y); with the energy head and no stage, the head's free λ over the augmentation terms.
        """
        net = self._check_fitted()
        y = torch.from_numpy(self.design.transform(clinical)).to(self.device)
        return net.factor_natural_parameters(y).double().cpu().numpy()

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
        net = self._check_fitted()
        genomic = self._genomic(genomic, fitted=True)
        clinical = self._clinical(clinical, genomic.index, self.design.columns)
        new_clinical = apply_changes(clinical, changes, self.design.columns)
        x = self._tensor(genomic)
        with torch.no_grad():
            codes = net.encode(x)
            reconstruction = net.decode(codes)
        refuse_overflow(reconstruction, genomic.index)

        designs = [self.design.transform(c).astype(float) for c in (clinical, new_clinical)]
        regressors = designs if self.latent_model.method == "design" else [
            self.natural_parameters(c) for c in (clinical, new_clinical)]  # fmt: skip
        paths = {name: getattr(net, name).double().cpu().numpy()
                 for name in ("direct_effect", "state_direction", "state_effect")}  # fmt: skip
        delta = counterfactual_change(
            codes.double().cpu().numpy(), reconstruction.cpu().numpy(), self._decode, self.latent_model, *regressors,
            designs[1] - designs[0], **paths, state_basis=self.config.state_basis,
        )  # fmt: skip
        out = genomic + delta * self.standardizer.scale.to_numpy()
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
        """Write `path/` with weights.pt (a state dict) and config.json, atomically.

        config.json records the SHA-256 of weights.pt, which `load` checks. An existing `path` is
        replaced only when it is a model folder (or empty); any other file or folder is left alone.
        """
        net = self._check_fitted()
        path = _as_path(path)
        state = {k: v.detach().cpu() for k, v in net.state_dict().items()}
        bad = [k for k, v in state.items() if not bool(torch.isfinite(v).all())]
        if bad:
            raise IdaeError(f"cannot save: the network holds non-finite weights in {bad[:3]}")
        not_text = [c for c in self.design.columns if not isinstance(c, str)]
        if not_text:
            raise IdaeError(
                f"cannot save: clinical column names must be strings to be stored in {CONFIG}, got "
                f"{not_text[:5]}; rename the clinical columns (idae.align does) and fit again"
            )
        buffer = io.BytesIO()
        torch.save(state, buffer)
        raw = buffer.getvalue()
        payload = {
            "format_version": FORMAT_VERSION,
            SHA256: hashlib.sha256(raw).hexdigest(),
            "config": dataclasses.asdict(self.config),
            "genes": self.genes,
            "standardizer": self.standardizer.to_dict(),
            "design": self.design.to_dict(),
            "latent_model": dataclasses.asdict(self.latent_model),
            "history": dataclasses.asdict(self.history) if self.history else None,
        }
        try:
            text = json.dumps(payload)
            # what load would refuse is refused now, while the fitted model is still in memory
            _check_payload(json.loads(text), CONFIG)
        except (TypeError, ValueError) as err:  # IdaeError is a ValueError
            raise IdaeError(f"cannot save this model, it could not be loaded back: {err}") from err
        try:
            restore_previous(path)
            _check_target(path)
            with replaced_folder(path) as tmp:
                (tmp / WEIGHTS).write_bytes(raw)
                (tmp / CONFIG).write_text(text)
        except OSError as err:
            raise IdaeError(f"cannot save the model to {path}: {err}") from err
        return path

    @classmethod
    def load(cls, path: str | Path, device: str | None = None) -> IDAE:
        """Read a model written by `save`, refusing (IdaeError naming the file) anything else.

        Weights are read with `weights_only=True`, so nothing in the file is ever executed; every
        tensor's name, shape, dtype and finiteness is checked against the model that config.json
        describes, then the file's SHA-256 against the one recorded at save time (last, so that a
        file with a wrong tensor is told which tensor, not just that it changed).
        """
        path = _as_path(path)
        restore_previous(path)  # a save killed between its two renames left the last version beside it
        if not path.is_dir():
            raise IdaeError(f"{path} is not a saved IDAE model: " + ("not a folder" if path.exists() else "not found"))
        for name in (CONFIG, WEIGHTS):
            if not (path / name).is_file():
                raise IdaeError(f"{path} is not a saved IDAE model: {path / name} is missing")
        config_file, weights_file = path / CONFIG, path / WEIGHTS
        try:
            payload = json.loads(config_file.read_bytes().decode("utf-8"), object_pairs_hook=_no_duplicate_keys)
        except (OSError, ValueError, RecursionError) as err:  # JSONDecodeError, UnicodeDecodeError: ValueError
            raise IdaeError(f"{config_file} is damaged or not an IDAE config: {err!r}") from err
        _check_payload(payload, str(config_file))
        config = dict(payload["config"], progress=False)
        if device is not None:
            config["device"] = device
        try:
            model = cls(**config)
        except IdaeError as err:  # the config itself was checked above: only the device argument is left
            raise IdaeError(f"cannot load {path} with device={device!r}: {err}") from err
        model.genes = list(payload["genes"])
        model.standardizer = Standardizer.from_dict(payload["standardizer"])
        model.design = ClinicalDesign.from_dict(payload["design"])
        model.latent_model = LatentModel(**payload["latent_model"])
        model.history = History(**payload["history"]) if payload["history"] is not None else None

        c = model.config
        misfit = f"{weights_file} does not fit the model in {CONFIG}"
        try:
            raw = weights_file.read_bytes()  # hashed and unpickled from the same bytes
            with warnings.catch_warnings():  # e.g. about the pickle protocol of a file refused just below
                warnings.simplefilter("ignore")
                state = torch.load(io.BytesIO(raw), map_location="cpu", weights_only=True)
        except Exception as err:  # torch raises many types for damaged or unsafe files
            raise IdaeError(f"{weights_file} is damaged or not a plain weights file: {_load_failure(err)}") from err
        if not isinstance(state, dict):
            raise IdaeError(f"{misfit}: it holds a {type(state).__name__}, not a state dict of tensors")
        odd = [k for k, v in state.items() if not isinstance(k, str) or not isinstance(v, torch.Tensor)]
        if odd:
            raise IdaeError(f"{misfit}: entries {odd[:5]} are not named tensors")
        # Refuse a config that describes a network larger than the file before allocating it: each
        # float32 weight takes 4 bytes of weights.pt (tensor sizes in the file are not to be trusted).
        n_genes, d, q = len(model.genes), c.latent_dim, model.design.width
        k = min(c.components_per_factor * d, n_genes) or n_genes
        n_out = 2 * d if c.head == "gaussian" else d * len(set(c.augmentation))
        paths = [[k, d], [d, n_genes], [q, *c.condition_hidden, n_out]]
        paths += [[k, *c.encoder_hidden, d]] * bool(c.encoder_hidden) + [[d, *c.decoder_hidden, n_genes]] * bool(
            c.decoder_hidden)
        n_weights = n_genes * k * (k < n_genes) + sum(
            a * b for sizes in paths for a, b in zip(sizes[:-1], sizes[1:], strict=False))
        if 4 * n_weights > len(raw):
            raise IdaeError(f"{misfit}: the config needs at least {n_weights} weights, the file has {len(raw)} bytes")
        net = model.build_network(n_genes, model.design.width)
        _check_state(state, net.state_dict(), misfit, model)
        if hashlib.sha256(raw).hexdigest() != payload[SHA256]:
            raise IdaeError(
                f"{weights_file} is not the file that was saved with {CONFIG}: its SHA-256 differs from "
                f"the recorded {SHA256} (modified, replaced or damaged after saving)"
            )
        try:
            net.load_state_dict(state)
            model.net = net.to(model.device).eval()
        except (RuntimeError, AssertionError, TypeError, ValueError) as err:  # e.g. cuda absent
            raise IdaeError(f"{path}: could not place the model on device {c.device!r}: {err}") from err
        return model


# ---------------------------------------------------------------------------------- model-file checks

SHA256 = "weights_sha256"
PAYLOAD_KEYS = ("format_version", SHA256, "config", "genes", "standardizer", "design", "latent_model", "history")


def _as_path(path: Any) -> Path:
    if not isinstance(path, (str, os.PathLike)) or not str(path):
        raise IdaeError(f"a model path must be a non-empty str or Path, got {path!r}")
    return Path(path)


def _check_target(path: Path) -> None:
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


def _load_failure(err: Exception) -> str:
    """torch.load's reason, without its advice to retry with weights_only=False (never do that here)."""
    text = str(err)
    if "Weights only load failed" in text:
        parts = [p.strip() for p in text.split("\n\n") if p.strip()]
        detail = next((p for p in parts[1:] if not p.startswith("Check the documentation")), "")
        return f"it holds objects other than tensors, refused without running them ({detail})"
    return text.split(". ")[0] or type(err).__name__


def _no_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    keys = [k for k, _ in pairs]
    repeated = sorted({k for k in keys if keys.count(k) > 1})
    if repeated:
        raise ValueError(f"duplicate keys {repeated}")
    return dict(pairs)


def _is_number(value: Any, finite: bool = True) -> bool:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return False
    try:
        return math.isfinite(value) or not finite
    except OverflowError:  # an integer too large for a float
        return False


def _check_payload(payload: Any, where: str) -> None:
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
        if not isinstance(value, list) or not all(_is_number(v, finite) for v in value):
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
        value, default = config[f.name], f.default
        if isinstance(default, bool):
            ok = isinstance(value, bool)
        elif isinstance(default, int):
            ok = isinstance(value, int) and not isinstance(value, bool)
        elif isinstance(default, float):
            ok = _is_number(value)
        elif isinstance(default, str):
            ok = isinstance(value, str)
        else:  # a tuple of str or int, stored as a JSON list
            kind = type(default[0]) if default else int  # the empty default is a tuple of layer sizes
            ok = isinstance(value, list) and all(isinstance(v, kind) and not isinstance(v, bool) for v in value)
        if not ok:
            if isinstance(default, tuple):
                kind = type(default[0]).__name__ if default else "int"
                raise fail(f"config[{f.name!r}] must be of type list of {kind}, got {value!r}")
            raise fail(f"config[{f.name!r}] must be of type {type(default).__name__}, got {value!r}")
    try:
        Config(**{k: tuple(v) if isinstance(v, list) else v for k, v in config.items()}).check()
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
                ok = isinstance(value, list) and all(_is_number(v, finite=False) for v in value)
            if not ok:
                raise fail(f"history[{f.name!r}] has the wrong type")


def _check_state(state: dict[str, torch.Tensor], expected: dict[str, torch.Tensor], misfit: str, model: IDAE) -> None:
    """Raise IdaeError unless `state` holds exactly the tensors `expected` names, same shapes, finite."""
    missing, extra = [k for k in expected if k not in state], [k for k in state if k not in expected]
    if missing or extra:
        problems = [f"missing tensors {missing[:5]}"] * bool(missing)
        problems += [f"unexpected tensors {extra[:5]}"] * bool(extra)
        raise IdaeError(f"{misfit}: {', '.join(problems)}")
    c = model.config
    sizes = f"{len(model.genes)} genes, design width {model.design.width}, latent_dim {c.latent_dim}"
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
