"""Errors raised for bad input; each message names the file or argument at fault."""


class TrecxError(ValueError):
    """A known bad input: the programs print its message on one line and exit 2."""


class DataError(TrecxError):
    """A dataset root, file, class or split is missing, corrupt or inconsistent."""


class DataNotFound(DataError):
    """No local copy of a dataset (the tensorflow-datasets download may then be tried)."""


class ConfigError(TrecxError):
    """An option value is out of range, unknown, or contradicts an existing run."""


class ModelFileError(TrecxError):
    """A model file (.keras, .tflite) is missing, truncated, of another format, or breaks the contract."""


class ModelError(ModelFileError):
    """A model the API cannot attach an exit to, or count: one line naming the model and the layer."""
