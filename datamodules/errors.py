"""Errors raised by the datamodules when data is missing, unreadable, or unusable.

Each message names the file or folder, what is wrong with it and the fix. Errors about one
image carry their fix in ``fix``, which the `data.on_bad_file=fail` policy and the apply
command's inputs append, each with what else can be done in its context.
"""

from __future__ import annotations

import getpass
import os


class CorruptDataError(ValueError):
    """A data file is present but unreadable: truncated, corrupt, or of the wrong format.

    The message always names the offending file. The constructor takes a single message so the
    error survives being re-raised from a DataLoader worker process.
    """

    #: What to do about the file.
    fix = "Replace or delete the file"


class DataPermissionError(CorruptDataError):
    """A data file or folder exists but this process may not read it: a permission problem,
    not corruption (so the fix is never to replace or delete the file)."""

    fix = (
        "Make it readable by this user (chmod a+r <file>; chmod -R a+rX <folder> for a folder "
        "and everything in it, plus a+x on the folders above it), or run as a user who can read it"
    )


class OversizedImageError(CorruptDataError):
    """An image whose header declares more pixels, or a longer side relative to its shorter
    one, than the configured limits: refused before any pixel is decoded."""

    fix = "Replace it with a downscaled or cropped copy, or delete it"


class DataNotFoundError(FileNotFoundError):
    """The data a config points to is not there. ``problem`` says what is missing and ``fix``
    how to point the config at it; code that builds the data config differently (evaluation
    of a checkpoint) re-raises ``problem`` with the fix that works there."""

    def __init__(self, problem: str, fix: str) -> None:
        super().__init__(f"{problem}. {fix}")
        self.problem = problem
        self.fix = fix

    def __reduce__(self) -> tuple[type, tuple[str, str]]:
        # Rebuilt from both parts: the default would call the constructor with the message.
        return type(self), (self.problem, self.fix)


def _user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # a uid without a passwd entry, as in some containers
        return f"uid {os.geteuid()}"


def permission_denied(error: PermissionError, with_fix: bool = True) -> DataPermissionError:
    """The error for a data path that ``error`` says this process may not read.

    Without ``with_fix`` the message only states the problem, for callers that append
    :attr:`DataPermissionError.fix` along with choices of their own.
    """
    path = error.filename if error.filename is not None else "a data file or folder"
    problem = (
        f"{path} cannot be read: permission denied for user {_user()} (a permission problem, "
        "not missing or corrupt data)"
    )
    return DataPermissionError(f"{problem}. {DataPermissionError.fix}" if with_fix else problem)
