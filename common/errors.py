"""Errors raised for bad input; each message names the file or argument at fault."""


class DataError(ValueError):
    """A dataset root, file, class or split is missing, corrupt or inconsistent."""
