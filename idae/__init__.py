"""idae: an identifiable denoising autoencoder linking clinical variables to genomic profiles."""

from idae.data import Aligned, AlignReport, align
from idae.datasets import load_cohort
from idae.errors import IdaeError
from idae.estimator import IDAE
from idae.train import seed_everything

__all__ = ["IDAE", "AlignReport", "Aligned", "IdaeError", "align", "load_cohort", "seed_everything"]
__version__ = "0.1.0"
