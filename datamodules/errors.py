"""Errors raised by the datamodules when a data file exists but cannot be used."""


class CorruptDataError(ValueError):
    """A data file is present but unreadable: truncated, corrupt, or of the wrong format.

    The message always names the offending file. The constructor takes a single message so the
    error survives being re-raised from a DataLoader worker process.
    """
