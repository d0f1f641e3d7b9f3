"""The errors of mmext's checkpoint machinery."""


class CheckpointError(RuntimeError):
    """A checkpoint cannot be read, or does not fit the model it is loaded into."""


class UnsafeCheckpointError(CheckpointError):
    """A checkpoint would need to run pickled Python code to load; nothing from it was executed."""
