"""The one exception type idae raises for bad input."""


class IdaeError(ValueError):
    """Bad input or state, with a message that names the offending column, sample or parameter."""


class IdentifiabilityWarning(UserWarning):
    """The clinical data cannot identify as many factors as asked for (see `IDAE.condition_report`)."""
