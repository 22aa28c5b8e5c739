"""The two kinds of failure the CLI distinguishes, and their exit codes.

A ``UserError`` is the user's mistake (bad option, missing or corrupt input file):
exit status 2. A ``WorkError`` is a failure of the work itself (an export that does
not match Keras, a runtime that crashed): exit status 1. Both carry a one-line
message that names the file or option at fault; the CLI prints it without a
traceback unless ``--debug`` is given.
"""

from __future__ import annotations


class SlimdeployError(Exception):
    exit_code = 1

    def __init__(self, message: str):
        # One line, always: the CLI prints exactly this.
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
