"""User errors at the command line: one paragraph on stderr and exit status 2, no traceback.

A user error is a problem with what the user gave (a config value or override, a file or
folder, a checkpoint, the data) whose message names it and the fix; a traceback would only
bury that message. Every other exception is a bug and keeps its full traceback (exit 1).

Hydra catches exceptions inside `@hydra.main` and exits 1 after printing them, with the
traceback trimmed, or not at all for errors it raised while instantiating; `run_command` has
it re-raise them instead (`HYDRA_FULL_ERROR=1`) and sorts them here.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from typing import NoReturn

from hydra.errors import CompactHydraException, InstantiationException
from lightning_fabric.utilities.exceptions import MisconfigurationException
from omegaconf.errors import MissingMandatoryValue, OmegaConfBaseException

from datamodules.errors import CorruptDataError
from invgan.checkpoints.safe_load import CheckpointError
from invgan.utils.config_checks import ConfigValueError

EXIT_USER_ERROR = 2
USER_ERRORS: tuple[type[BaseException], ...] = (
    ConfigValueError,  # a config value that cannot work
    CheckpointError,  # a checkpoint or weights file that cannot be used
    CorruptDataError,  # a data file that is unreadable, corrupt or not permitted
    FileNotFoundError,  # a path given on the command line or in the config (data too)
    FileExistsError,  # an output that would overwrite something
    NotADirectoryError,
    IsADirectoryError,
    MissingMandatoryValue,  # a `???` key left unset
    CompactHydraException,  # Hydra: an override typo, an unknown config group option, ...
    MisconfigurationException,  # Lightning: e.g. trainer=gpu on a machine without one
)
# Hydra reports errors raised while instantiating as this; what was raised decides.
_WRAPPERS = (InstantiationException,)
# DataLoader workers re-raise an error with the worker's traceback inside its message.
_WORKER_TRACEBACK = "Original Traceback (most recent call last):"


def user_error(error: BaseException) -> BaseException | None:
    """`error`, or the error it was raised from (`raise ... from`), when that is a user error."""
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, USER_ERRORS) and not isinstance(current, _WRAPPERS):
            return current
        current = current.__cause__
    return None


def user_error_message(error: BaseException) -> str:
    """The message of a user error, without a worker's traceback (and with the details Hydra
    keeps in the OmegaConf error its own errors were raised from)."""
    message = str(error)
    if _WORKER_TRACEBACK in message:
        last = message.rstrip().splitlines()[-1]
        message = last.split(": ", 1)[-1]
    if isinstance(error.__cause__, OmegaConfBaseException):
        message = f"{message}\n{error.__cause__}"
    return message.strip() or type(error).__name__


def exit_for_user_error(error: BaseException, name: str) -> NoReturn:
    """Print `<name>: error: <message>` on stderr and exit with status 2."""
    print(f"{name}: error: {user_error_message(error)}", file=sys.stderr)
    raise SystemExit(EXIT_USER_ERROR) from None


def run_command(main: Callable[[], object], name: str) -> None:
    """Run a command's entry point (a `@hydra.main` function or any other `main`): a user
    error prints `<name>: error: <message>` on stderr and exits with status 2."""
    previous = os.environ.get("HYDRA_FULL_ERROR")
    os.environ["HYDRA_FULL_ERROR"] = "1"  # Hydra re-raises instead of printing and exiting 1
    try:
        main()
    except Exception as error:
        found = user_error(error)
        if found is None:
            raise
        exit_for_user_error(found, name)
    finally:
        if previous is None:
            os.environ.pop("HYDRA_FULL_ERROR", None)
        else:
            os.environ["HYDRA_FULL_ERROR"] = previous
