"""The two kinds of failure the CLI distinguishes: the user's mistake (``UserError``, exit status 2) and a
failure of the work itself (``WorkError``, 1). Each carries one line naming the file or option at fault."""

from __future__ import annotations


class SlimdeployError(Exception):
    exit_code = 1

    def __init__(self, message: str):
        super().__init__(" ".join(str(message).split()))


class UserError(SlimdeployError):
    """Bad input from the user: options, paths, files. Exit status 2."""

    exit_code = 2


class DataError(UserError):
    """A data file is missing, corrupt or inconsistent."""


class ModelFileError(UserError):
    """A model file is missing, corrupt, unsafe or of an unsupported shape."""


class WorkError(SlimdeployError):
    """The work itself failed (verification, a runtime crash). Exit status 1."""
