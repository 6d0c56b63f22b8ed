"""`Config`: every setting of `IDAE`, with its default and its checks."""

from __future__ import annotations

import dataclasses
import inspect
import math
import numbers
from typing import Any

from idae.errors import IdaeError
from idae.invert import DIRECT_BASES, METHODS, STATE_BASES
from idae.model import AUGMENTATIONS, HEADS
from idae.train import OBJECTIVES


def statistics_per_factor(head: str, linear_stage: bool, augmentation: tuple[str, ...] | list[str]) -> int:
    """Sufficient statistics per factor of the λ(y) that `IDAE.natural_parameters` returns: 2 ([z, z²]) with the
    Gaussian head or once the linear stage's Gaussian model replaces the head, else the energy head's terms."""
    return 2 if head == "gaussian" or linear_stage else len(set(augmentation))


def setting(default: Any, doc: str) -> Any:
    """A `Config` field: its default and the one line `help(IDAE)` shows for it."""
    return dataclasses.field(default=default, metadata={"doc": doc})


@dataclasses.dataclass
class Config:
    """Every constructor argument of `IDAE`; the defaults are the project's best known settings (notebook 04)."""

    latent_dim: int = setting(6, "number of factors d")
    objective: str = setting("ivae", '"ivae" (evidence lower bound), "infonce" or "dsm" (the seed\'s energy '
                             "estimators)")
    head: str = setting("gaussian", '"gaussian" (positive precision, exact log-partition) or "energy" (the '
                        "seed's free natural parameters)")
    augmentation: tuple[str, ...] = setting(AUGMENTATIONS, 'T(z) of the "energy" head; the Gaussian head uses [z, z²]')
    components_per_factor: int = setting(2, "whitened principal components the encoder reads, per factor; 0: every "
                                         "gene")
    encoder_hidden: tuple[int, ...] = setting((128, 128), "hidden layer widths of the encoder MLP")
    condition_hidden: tuple[int, ...] = setting((), "hidden layer widths of the condition encoder (empty: linear)")
    decoder_hidden: tuple[int, ...] = setting((128, 128), "hidden layer widths of the decoder MLP")
    spectral_norm: bool = setting(True, "spectral normalisation of the encoder's layers")
    linear_stage: bool = setting(True, "the conditional maximum-likelihood linear map after training (idae.unmixing)")
    noise: float = setting(0.0, "corruption sd of the genes the encoder reads, in units of each gene's sd")
    component_noise: float = setting(0.0, "corruption sd of the whitened components the encoder reads (their sds)")
    decoder_noise: float = setting(0.0, "noise sd added to the factors the decoder reads while training")
    reconstruction_weight: float = setting(1.0, 'weight of the reconstruction term ("infonce" and "dsm")')
    contrastive_weight: float = setting(50.0, '"ivae": weight of the InfoNCE term beside the ELBO (both nats per '
                                        "patient)")
    detach_decoder: bool = setting(False, '"infonce" / "dsm": the reconstruction term does not train the encoder')
    max_epochs: int = setting(1000, "upper bound on training epochs (early stopping usually ends sooner)")
    batch_size: int = setting(256, "patients per optimisation step")
    learning_rate: float = setting(1e-3, "Adam step size")
    weight_decay: float = setting(1e-4, "Adam weight decay")
    warmup_epochs: int = setting(10, "epochs of linear learning-rate warm-up (then cosine decay to 5% at max_epochs)")
    patience: int = setting(40, "epochs without a better validation objective before training stops")
    clip_norm: float = setting(1.0, "gradient norm clipping threshold")
    val_fraction: float = setting(0.15, "share of the training patients held out for early stopping when fit gets no "
                                  "validation set")
    missing_weight: float = setting(0.5, "a patient with every clinical cell missing counts 1 - this")
    inversion: str = setting("design", 'regressors of the factors\' clinical model: "design" or "energy"')
    inversion_shrinkage: bool = setting(True, "empirical-Bayes shrinkage of the coefficients of the factors' clinical "
                                          "model (idae.invert)")
    latent_interactions: bool = setting(True, "that model also has products of two clinical columns where a test "
                                          "keeps them")
    direct_path: bool = setting(True, "inversion also moves genes by the clinical effects the factors do not carry")
    state_path: bool = setting(True, "inversion also moves genes by the part of the direct effects that depends "
                                 "on the patient's state")
    state_basis: str = setting("factors", 'the state the state path reads: the factors z ("factors") or their '
                               'position given y ("position")')
    state_direction_null: float = setting(0.1, "the state path's direction is read off the genes whose posterior "
                                          "probability of no effect is below this, in (0, 0.5]")
    direct_basis: str = setting("surer", 'the direct path\'s effects: on the decoder\'s residuals ("residuals"), '
                                'anchored to the total effects ("totals"), or per gene the one surer that the gene '
                                'moves ("surer"; idae.invert)')
    device: str = setting("auto", '"auto" (a GPU when there is one), "cpu" or "cuda[:n]"')
    seed: int = setting(0, "seed of every random draw of fit (initialisation, batches, corruption, splits)")
    progress: bool = setting(True, "progress bar while training")

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
        for name in (f.name for f in dataclasses.fields(self) if isinstance(f.default, bool)):
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
        if self.device not in ("auto", "cpu") and not str(self.device).startswith("cuda"):
            raise IdaeError(f"device must be 'auto', 'cpu' or 'cuda[:n]', got {self.device!r}")


def parameters_doc(indent: str = "    ") -> str:
    """The numpydoc "Parameters" entries of every `Config` field: name, type, default and its line."""
    lines = []
    for f in dataclasses.fields(Config):
        kind = f.type if isinstance(f.type, str) else getattr(f.type, "__name__", str(f.type))
        lines += [f"{indent}{f.name} : {kind}, default {f.default!r}", f"{indent}    {f.metadata['doc']}"]
    return "\n".join(lines)


def signature(first: list[inspect.Parameter]) -> inspect.Signature:
    """`first` (self, latent_dim) then every other `Config` field as a keyword-only parameter with its default."""
    named = {p.name for p in first}
    rest = [inspect.Parameter(f.name, inspect.Parameter.KEYWORD_ONLY, default=f.default, annotation=f.type)
            for f in dataclasses.fields(Config) if f.name not in named]  # fmt: skip
    return inspect.Signature([*first, *rest])
