"""idae: an identifiable denoising autoencoder linking clinical variables to genomic profiles."""

from idae.data import Aligned, AlignReport, align
from idae.errors import IdaeError, IdentifiabilityWarning
from idae.estimator import IDAE
from idae.train import seed_everything

__all__ = ["IDAE", "AlignReport", "Aligned", "IdaeError", "IdentifiabilityWarning", "align", "load_cohort",
           "seed_everything"]
__version__ = "0.1.0"


# `idae.metrics.mcc` works after a plain `import idae`
SUBMODULES = ("datasets", "metrics", "segments", "semisynthetic", "synthetic")


def __getattr__(name: str):
    # load_cohort and the submodules are imported on first use, so `python -m idae.datasets` does not find its
    # own module already imported by the package (runpy warns about that).
    if name == "load_cohort":
        from idae.datasets import load_cohort

        return load_cohort
    if name in SUBMODULES:
        import importlib

        return importlib.import_module(f"idae.{name}")
    raise AttributeError(f"module 'idae' has no attribute {name!r}")
