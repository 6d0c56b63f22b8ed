"""The one exception type idae raises for bad input."""


class IdaeError(ValueError):
    """Bad input or state, with a message that names the offending column, sample or parameter."""
