"""nbval plugin (`pytest -p tests.nbval_numbers --nbval ...`): decimals match within float noise across CPUs.

nbval compares each re-executed cell's outputs with the stored ones as text. On one machine the report repeats
bit for bit, but another CPU's maths libraries take other code paths (MKL chooses its kernels by CPU vendor and
honours a fixed instruction set only on Intel), sum floats in another order, and training drifts from there: the
same run then differs in the third decimal. Here an output also matches when its text differs from the stored one
only in decimal numbers, each within `ABS_TOL` or `REL_TOL` of the stored value. Everything else (words, table
layout, integers such as gene counts and "8 of 8") must match exactly, and the notebooks' claims cells assert
the scientific results with their own margins. A cell whose numbers are known to move more (a method stopped
before convergence amplifies the last bits of its input) says so with a comment `# nbval-decimals-within: 0.1`
and the reason beside it.
"""

from __future__ import annotations

import re

from nbval.plugin import IPyNbCell

WITHIN = re.compile(r"#\s*nbval-decimals-within:\s*([0-9.]+)")
DECIMAL = re.compile(r"(?<![\w.])[-−]?\d+\.\d+(?:e[-+]?\d+)?(?![\w.])", re.IGNORECASE)
ABS_TOL = 0.05  # in the units printed: MCC, r, R², coverage and p-values are all on [0, 1] or [-1, 1]
REL_TOL = 0.05


def _value(text: str) -> float:
    return float(text.replace("−", "-"))


def align_numbers(test: str, reference: str, abs_tol: float = ABS_TOL) -> str:
    """`test` with each decimal number that is within tolerance (`abs_tol`, or `REL_TOL` of the reference value) of
    its counterpart in `reference` replaced by that counterpart; `test` unchanged when the two differ in anything
    but decimal numbers."""
    test_numbers, reference_numbers = DECIMAL.findall(test), DECIMAL.findall(reference)
    if len(test_numbers) != len(reference_numbers) or DECIMAL.split(test) != DECIMAL.split(reference):
        return test
    close = iter(
        r if abs(_value(t) - _value(r)) <= max(abs_tol, REL_TOL * abs(_value(r))) else t
        for t, r in zip(test_numbers, reference_numbers, strict=True)
    )
    return DECIMAL.sub(lambda _: next(close), test)


def _align(test, reference, abs_tol: float):
    """Align every text field of `test` (an output, or a list or dict of them) with the same field of `reference`."""
    if isinstance(test, str) and isinstance(reference, str):
        return align_numbers(test, reference, abs_tol)
    if isinstance(test, list) and isinstance(reference, list) and len(test) == len(reference):
        return [_align(t, r, abs_tol) for t, r in zip(test, reference, strict=True)]
    if isinstance(test, dict) and isinstance(reference, dict):
        return {k: _align(v, reference[k], abs_tol) if k in reference else v for k, v in test.items()}
    return test


_compare_exactly = IPyNbCell.compare_outputs


def compare_outputs(self, test, ref, skip_compare=None):
    """nbval's comparison, run again on `test` aligned to `ref` when the exact comparison fails."""
    if _compare_exactly(self, test, ref, skip_compare):
        return True
    stated = WITHIN.search(self.cell.source)
    abs_tol = float(stated.group(1)) if stated else ABS_TOL
    if len(test) != len(ref):
        return False  # nbval's message for it stands
    aligned = [type(t)(_align(dict(t), dict(r), abs_tol)) for t, r in zip(test, ref, strict=True)]  # new objects
    return _compare_exactly(self, aligned, ref, skip_compare)


IPyNbCell.compare_outputs = compare_outputs
