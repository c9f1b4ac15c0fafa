"""Image datasets in the StyleGAN2-ADA format: a folder or a zip file of images, plus an
optional ``dataset.json`` holding ``{"labels": [[name, label], ...]}``.

A zip file is opened lazily, once per process, and never pickled, so datasets built on an
:class:`ImageArchive` move freely to DataLoader workers and DDP spawn processes.
"""

import io
import json
import os
import zipfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any, BinaryIO

import torch

from datamodules.errors import CorruptDataError, DataPermissionError, permission_denied
from datamodules.image_files import (
    DEFAULT_EXTENSIONS,
    is_image_name,
    list_images,
    normalise_extensions,
)

LABELS_FILE = "dataset.json"


class ImageArchive:
    """A folder or zip file of images, addressed by posix paths relative to its root."""

    def __init__(self, root: str | Path, extensions: Sequence[str] = DEFAULT_EXTENSIONS) -> None:
        self.root = Path(root).expanduser()
        self.extensions = normalise_extensions(extensions)
        try:
            if self.root.is_dir():
                self.is_zip = False
            elif self.root.is_file():
                # Opened here, since is_zipfile reports a file it may not read as "not a zip".
                with open(self.root, "rb") as handle:
                    if not zipfile.is_zipfile(handle):
                        message = f"{self.root} is neither a folder nor a valid zip file"
                        raise CorruptDataError(message)
                self.is_zip = True
            else:
                raise FileNotFoundError(f"Image folder or zip file {self.root} does not exist")
        except PermissionError as error:
            raise permission_denied(error) from error
        self._zipfile: zipfile.ZipFile | None = None
        self._zip_pid: int | None = None

    def __getstate__(self) -> dict[str, Any]:
        # An open ZipFile cannot be pickled; each process opens its own on first access.
        return {**self.__dict__, "_zipfile": None, "_zip_pid": None}

    def _zip(self) -> zipfile.ZipFile:
        # A forked worker inherits the parent's handle, whose file offset the processes would
        # share; reopening when the process id changes keeps reads independent.
        if self._zipfile is None or self._zip_pid != os.getpid():
            try:
                self._zipfile = zipfile.ZipFile(self.root)
            except PermissionError as error:
                raise permission_denied(error) from error
            except (OSError, zipfile.BadZipFile) as error:
                raise CorruptDataError(f"Zip file {self.root} is unreadable: {error}") from error
            self._zip_pid = os.getpid()
        return self._zipfile

    def describe(self, name: str) -> str:
        """How error messages refer to the member ``name``."""
        return f"{self.root}/{name}"

    def image_names(self) -> list[str]:
        """Sorted relative names of all images (recursive, hidden entries skipped)."""
        if self.is_zip:
            names = sorted(
                info.filename
                for info in self._zip().infolist()
                if not info.is_dir() and is_image_name(info.filename, self.extensions)
            )
            if not names:
                raise ValueError(
                    f"No images found in {self.root} (looked for the extensions "
                    f"{', '.join(self.extensions)}): add images to it, or use another zip"
                )
            return names
        paths = list_images(self.root, self.extensions)
        return [path.relative_to(self.root).as_posix() for path in paths]

    def open(self, name: str) -> BinaryIO:
        """The member ``name`` as a binary file; the caller closes it.

        Errors about the member leave its fix to the caller (see :mod:`datamodules.errors`).
        """
        try:
            if not self.is_zip:
                return open(self.root / name, "rb")
            return io.BytesIO(self._zip().read(name))
        except PermissionError as error:
            raise permission_denied(error, with_fix=False) from error
        except (KeyError, OSError, zipfile.BadZipFile) as error:
            raise CorruptDataError(f"{self.describe(name)} is unreadable: {error}") from error

    def has(self, name: str) -> bool:
        """Whether the member ``name`` exists."""
        if not self.is_zip:
            return (self.root / name).is_file()
        try:
            self._zip().getinfo(name)
        except KeyError:
            return False
        return True


def read_labels(archive: ImageArchive, names: Sequence[str]) -> torch.Tensor | None:
    """Labels of ``names`` from ``dataset.json``: int64 (N,) class indices or float32 (N, D).

    Returns None when the file is absent or its ``labels`` is null (an unlabelled dataset).
    """
    if not archive.has(LABELS_FILE):
        return None
    where = archive.describe(LABELS_FILE)
    try:
        with archive.open(LABELS_FILE) as handle:
            meta = json.load(handle)
        entries = meta.get("labels")
        labels = None if entries is None else {str(n).replace("\\", "/"): v for n, v in entries}
    except DataPermissionError as error:
        raise DataPermissionError(f"{error}. {error.fix}") from error
    except (ValueError, TypeError, AttributeError) as error:
        raise CorruptDataError(
            f'{where} is malformed: expected {{"labels": [[name, label], ...]}} ({error})'
        ) from error
    if labels is None:
        return None
    missing = [name for name in names if name not in labels]
    if missing:
        raise CorruptDataError(
            f"{where} has no label for {len(missing)} images, e.g. {', '.join(missing[:5])}"
        )
    values = [labels[name] for name in names]
    try:
        if all(isinstance(v, int) and not isinstance(v, bool) for v in values):
            return torch.tensor(values, dtype=torch.int64)
        return torch.tensor(values, dtype=torch.float32).reshape(len(values), -1)
    except (ValueError, TypeError) as error:
        message = f"{where} holds labels of mixed or invalid types: {error}"
        raise CorruptDataError(message) from error
