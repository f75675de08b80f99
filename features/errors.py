"""The error for input that cannot be read at all, shared by the readers and the contract."""


class DataError(ValueError):
    """An input file cannot be read at all (missing, empty, wrong format or encoding)."""
