"""`Config`: every setting of `IDAE`, with its default and its checks."""

from __future__ import annotations

import dataclasses
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


def finite(value: numbers.Real) -> bool:
    try:
        return math.isfinite(value)
    except OverflowError:  # an int beyond float's range
        return False


@dataclasses.dataclass(frozen=True)
class Rule:
    """What values one setting takes: its `kind` ("int", "float", "bool", "str" (one of `options`), "device", "ints"
    or "strs": a tuple of positive integers or of `options`), an inclusive or exclusive range for numbers, and the
    words its error message and `help(IDAE)` use for them. `Config.check` and the model-file checks read it."""

    kind: str
    words: str
    low: float | None = None
    high: float | None = None
    low_open: bool = False
    high_open: bool = False
    options: tuple[str, ...] = ()

    def allows_type(self, value: Any) -> bool:
        """Whether `value` has this rule's type (bool is not a number; tuples and lists are sequences)."""
        if self.kind == "bool":
            return isinstance(value, bool)
        if self.kind in ("str", "device"):
            return isinstance(value, str)
        if self.kind in ("int", "float"):
            kind = numbers.Integral if self.kind == "int" else numbers.Real
            return isinstance(value, kind) and not isinstance(value, bool) and (self.kind == "int" or finite(value))
        item = int if self.kind == "ints" else str
        return isinstance(value, (tuple, list)) and all(isinstance(v, item) and not isinstance(v, bool) for v in value)

    def allows(self, value: Any) -> bool:
        if not self.allows_type(value):
            return False
        if self.kind in ("int", "float"):
            low_ok = self.low is None or (value > self.low if self.low_open else value >= self.low)
            return low_ok and (self.high is None or (value < self.high if self.high_open else value <= self.high))
        if self.kind == "str":
            return value in self.options
        if self.kind == "device":
            return value in ("auto", "cpu") or value.startswith("cuda")
        if self.kind == "ints":
            return all(v > 0 for v in value)
        if self.kind == "strs":
            return bool(value) and not set(value) - set(self.options)
        return True

    def check(self, name: str, value: Any) -> None:
        if not self.allows(value):
            raise IdaeError(f"{name} must be {self.words}, got {value!r}")


def integer(low: int, high: int | None = None, words: str = "a positive integer") -> Rule:
    return Rule("int", words, low=low, high=high, high_open=True)


def real(words: str, low: float = 0.0, high: float | None = None, low_open: bool = False,
         high_open: bool = False) -> Rule:  # fmt: skip
    return Rule("float", words, low=low, high=high, low_open=low_open, high_open=high_open)


def choice(options: tuple[str, ...]) -> Rule:
    return Rule("str", f"one of {options}", options=options)


BOOLEAN = Rule("bool", "True or False")
WIDTHS = Rule("ints", "a tuple of positive integers")
TERMS = Rule("strs", f"a non-empty subset of {AUGMENTATIONS}", options=AUGMENTATIONS)
CORRUPTION = real("a number of sds of its input in [0, 100]", high=100.0)  # beyond 100 the corruption is all there is
NON_NEGATIVE = real("a non-negative finite number")
POSITIVE = real("a positive finite number", low_open=True)


def setting(default: Any, rule: Rule, doc: str) -> Any:
    """A `Config` field: its default, the one line `help(IDAE)` shows for it and the `Rule` its values follow."""
    return dataclasses.field(default=default, metadata={"doc": doc, "rule": rule})


@dataclasses.dataclass
class Config:
    """Every constructor argument of `IDAE`; the defaults are the project's best known settings (notebook 04)."""

    latent_dim: int = setting(6, integer(1), "number of factors d")
    objective: str = setting("ivae", choice(OBJECTIVES), '"ivae" (evidence lower bound), "infonce" or "dsm" (the '
                             "seed's energy estimators)")
    head: str = setting("gaussian", choice(HEADS), '"gaussian" (positive precision, exact log-partition) or "energy" '
                        "(the seed's free natural parameters)")
    augmentation: tuple[str, ...] = setting(AUGMENTATIONS, TERMS, 'T(z) of the "energy" head; the Gaussian head uses '
                                            "[z, z²]")
    components_per_factor: int = setting(2, integer(0, words="a non-negative integer"), "whitened principal "
                                         "components the encoder reads, per factor; 0: every gene")
    encoder_hidden: tuple[int, ...] = setting((128, 128), WIDTHS, "hidden layer widths of the encoder MLP")
    condition_hidden: tuple[int, ...] = setting((), WIDTHS, "hidden layer widths of the condition encoder (empty: "
                                                "linear)")
    decoder_hidden: tuple[int, ...] = setting((128, 128), WIDTHS, "hidden layer widths of the decoder MLP")
    spectral_norm: bool = setting(True, BOOLEAN, "spectral normalisation of the encoder's layers")
    linear_stage: bool = setting(True, BOOLEAN, "the conditional maximum-likelihood linear map after training "
                                 "(idae.unmixing)")
    noise: float = setting(0.0, CORRUPTION, "corruption sd of the genes the encoder reads, in units of each gene's sd")
    component_noise: float = setting(0.0, CORRUPTION, "corruption sd of the whitened components the encoder reads "
                                     "(their sds)")
    decoder_noise: float = setting(0.0, CORRUPTION, "noise sd added to the factors the decoder reads while training")
    reconstruction_weight: float = setting(1.0, NON_NEGATIVE, 'weight of the reconstruction term ("infonce" and '
                                           '"dsm")')
    contrastive_weight: float = setting(50.0, NON_NEGATIVE, '"ivae": weight of the InfoNCE term beside the ELBO (both '
                                        "nats per patient, divided by the gene count)")
    detach_decoder: bool = setting(False, BOOLEAN, '"infonce" / "dsm": the reconstruction term does not train the '
                                   "encoder")
    max_epochs: int = setting(1000, integer(1), "upper bound on training epochs (early stopping usually ends sooner)")
    batch_size: int = setting(256, integer(1), "patients per optimisation step")
    learning_rate: float = setting(1e-3, POSITIVE, "Adam step size")
    weight_decay: float = setting(1e-4, NON_NEGATIVE, "Adam weight decay")
    warmup_epochs: int = setting(10, integer(1), "epochs of linear learning-rate warm-up (then cosine decay to 5% at "
                                 "max_epochs)")
    patience: int = setting(40, integer(1), "epochs without a better validation objective before training stops")
    clip_norm: float = setting(1.0, POSITIVE, "gradient norm clipping threshold")
    val_fraction: float = setting(0.15, real("a share in [0, 0.5)", high=0.5, high_open=True), "share of the "
                                  "training patients held out for early stopping when fit gets no validation set")
    missing_weight: float = setting(0.5, real("a share in [0, 1)", high=1.0, high_open=True), "a patient with every "
                                    "clinical cell missing counts 1 - this")
    inversion: str = setting("design", choice(METHODS), 'regressors of the factors\' clinical model: "design" or '
                             '"energy"')
    inversion_shrinkage: bool = setting(True, BOOLEAN, "empirical-Bayes shrinkage of the coefficients of the factors' "
                                        "clinical model (idae.invert)")
    latent_interactions: bool = setting(True, BOOLEAN, "that model also has products of two clinical columns where a "
                                        "test keeps them")
    direct_path: bool = setting(True, BOOLEAN, "inversion also moves genes by the clinical effects the factors do not "
                                "carry")
    state_path: bool = setting(True, BOOLEAN, "inversion also moves genes by the part of the direct effects that "
                               "depends on the patient's state")
    state_basis: str = setting("factors", choice(STATE_BASES), 'the state the state path reads: the factors z '
                               '("factors") or their position given y ("position")')
    state_direction_null: float = setting(
        0.1, real("a probability of no effect in (0, 0.5] (the state path's genes are those below 0.5)", high=0.5,
                  low_open=True),
        "the state path's direction is read off the genes whose posterior probability of no effect is below this",
    )  # fmt: skip
    direct_basis: str = setting("surer", choice(DIRECT_BASES), 'the direct path\'s effects: on the decoder\'s '
                                'residuals ("residuals"), anchored to the total effects ("totals"), or per gene the '
                                'one surer that the gene moves ("surer"; idae.invert)')
    device: str = setting("auto", Rule("device", "'auto', 'cpu' or 'cuda[:n]'"), '"auto" (a GPU when there is one), '
                          '"cpu" or "cuda[:n]"')
    seed: int = setting(0, integer(0, 2**32, words="an integer in [0, 2**32)"), "seed of every random draw of fit "
                        "(initialisation, batches, corruption, splits)")
    progress: bool = setting(True, BOOLEAN, "progress bar while training")

    def check(self) -> None:
        """Each setting against its `Rule`, then the rules that tie settings together; IdaeError naming the first
        setting that breaks one."""
        for f in dataclasses.fields(self):
            f.metadata["rule"].check(f.name, getattr(self, f.name))
        if self.objective == "ivae" and self.head != "gaussian":
            raise IdaeError("objective 'ivae' needs head='gaussian' (its prior is the Gaussian head)")
        if self.objective == "ivae" and self.detach_decoder:
            raise IdaeError("objective 'ivae' trains the encoder through its decoder: detach_decoder must be False")
        if self.objective == "dsm" and not self.noise > 0:
            raise IdaeError(f"objective 'dsm' needs a positive noise (its corruption), got {self.noise!r}")


def checked_config(settings: dict[str, Any]) -> Config:
    """The `Config` of `settings` (every field by name), checked; IdaeError naming the setting else. Sequences of
    augmentation terms or layer widths (lists from a caller or a JSON model file) become tuples."""
    settings = dict(settings)
    for key in ("augmentation", "encoder_hidden", "condition_hidden", "decoder_hidden"):
        if not isinstance(settings[key], str):
            try:
                settings[key] = tuple(settings[key])
            except TypeError:
                raise IdaeError(f"{key} must be a sequence, got {settings[key]!r}") from None
    config = Config(**settings)
    config.check()
    return config


FIELDS = tuple(f.name for f in dataclasses.fields(Config))  # the settings, in `IDAE.__init__`'s order


def parameters_doc(indent: str = "    ") -> str:
    """The numpydoc "Parameters" entries of every `Config` field: name, type, default, its line, a number's range."""
    lines = []
    for f in dataclasses.fields(Config):
        kind = f.type if isinstance(f.type, str) else getattr(f.type, "__name__", str(f.type))
        rule = f.metadata["rule"]  # the docs name the choices; the range of a number is worth adding
        words = f"; {rule.words}" if rule.kind in ("int", "float") else ""
        lines += [f"{indent}{f.name} : {kind}, default {f.default!r}", f"{indent}    {f.metadata['doc']}{words}"]
    return "\n".join(lines)

