"""What image datasets do with a file they cannot read (`data.on_bad_file`).

`fail` (the default) raises the `CorruptDataError` that names the file and the fix, which
depends on the problem (a corrupt file, one this user may not read, an oversized image). `skip`
lets the dataset serve another item instead (so batches keep their size), warns once per file,
and appends the file's name to `data.bad_files_log`: one short line per file, which is safe from
several DataLoader workers and DDP processes at once. The number of distinct names in that file
is the number of files skipped in the run.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

from datamodules.errors import CorruptDataError

log = logging.getLogger(__name__)
ON_BAD_FILE = ("fail", "skip")


def skipped_files(log_path: str | os.PathLike) -> list[str]:
    """The distinct files listed in a bad-files log, in the order first listed."""
    path = Path(log_path)
    if not path.is_file():
        return []
    return list(dict.fromkeys(line for line in path.read_text().splitlines() if line))


class BadFilePolicy:
    """The `data.on_bad_file` choice and the file that lists skipped files; pickles for workers."""

    def __init__(
        self, on_bad_file: str = "fail", log_path: str | os.PathLike | None = None
    ) -> None:
        if on_bad_file not in ON_BAD_FILE:
            raise ValueError(
                f"data.on_bad_file={on_bad_file!r} is not one of the allowed values "
                f"{', '.join(ON_BAD_FILE)}"
            )
        self.skip = on_bad_file == "skip"
        self.log_path = None if log_path is None else Path(log_path)
        self.seen: set[str] = set()

    def handle(self, name: str, error: CorruptDataError) -> None:
        """Raise ``error`` with the fix under `fail`; under `skip`, record ``name`` instead."""
        if not self.skip:
            # The same class, so callers can still tell a permission problem from corruption.
            raise type(error)(
                f"{error}. {error.fix}; or set data.on_bad_file=skip to use the next readable "
                "image in its place"
            ) from error
        self.record(name, error)

    def record(self, name: str, error: CorruptDataError) -> None:
        """Warn about a skipped file and list it in the log file, once per file and run."""
        if name in self.seen:
            return
        self.seen.add(name)
        if self.log_path is None:
            count = len(self.seen)
        else:
            listed = skipped_files(self.log_path)
            if name in listed:  # already reported by another worker, process or epoch
                return
            self.log_path.parent.mkdir(parents=True, exist_ok=True)
            with open(self.log_path, "a", encoding="utf-8") as file:
                file.write(f"{name}\n")
            count = len(listed) + 1
        where = "" if self.log_path is None else f", listed in {self.log_path}"
        log.warning(
            "Skipping unreadable image %s (data.on_bad_file=skip; %d skipped so far%s): %s",
            name,
            count,
            where,
            error,
        )
