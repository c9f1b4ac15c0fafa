"""Known pretrained files (`registry.yaml`): `registry:<name>` in place of a weights path
downloads the file once into the cache, checks its SHA-256 and returns the cached path.

A file is only ever used after its hash matched: a download is hashed before it is moved into
place (a mismatch is deleted and refused), and a cached or hand-placed file is hashed again on
every use. Offline, the error names the URL and the exact path to put the file at. Entries
whose hash no public source states carry none; those need `registry:<name>@<sha256>`.
"""

from __future__ import annotations

import hashlib
import os
import re
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import yaml

from invgan.checkpoints.safe_load import CheckpointError

REGISTRY_PREFIX = "registry:"
REGISTRY_FILE = Path(__file__).with_name("registry.yaml")
CACHE_ENV = "INVGAN_CACHE_DIR"
DEFAULT_CACHE = Path("~/.cache/invgan")
CACHE_SUBDIR = "pretrained"
FORMATS = ("nvidia_pickle", "rosinality", "psp")
SHA256_PATTERN = re.compile(r"[0-9a-f]{64}")
HASH_CHUNK = 1 << 20


@dataclass(frozen=True)
class RegistryEntry:
    """One known pretrained file: where it comes from, what it is and its SHA-256 (if known)."""

    name: str
    url: str
    filename: str
    format: str
    resolution: int
    sha256: str | None = None
    size: int | None = None
    sha256_source: str | None = None
    description: str = ""


def _entry(name: str, fields: Mapping[str, Any], source: Path) -> RegistryEntry:
    """A validated entry of the registry file."""
    try:
        entry = RegistryEntry(name=name, **fields)
    except TypeError as error:
        raise ValueError(f"{source}: entry {name!r} is malformed ({error})") from error
    if entry.format not in FORMATS:
        raise ValueError(f"{source}: entry {name!r} has format {entry.format!r}; use {FORMATS}")
    if entry.sha256 is not None and not SHA256_PATTERN.fullmatch(entry.sha256):
        raise ValueError(f"{source}: entry {name!r} has a sha256 that is not 64 hex digits")
    if entry.size is not None and (not isinstance(entry.size, int) or entry.size <= 0):
        raise ValueError(f"{source}: entry {name!r} has a size that is not a byte count")
    if Path(entry.filename).name != entry.filename:
        raise ValueError(f"{source}: entry {name!r} has a filename with a folder in it")
    return entry


def registry_entries(source: Path = REGISTRY_FILE) -> dict[str, RegistryEntry]:
    """The entries of the registry file by name."""
    with source.open(encoding="utf-8") as file:
        data = yaml.safe_load(file) or {}
    return {str(name): _entry(str(name), fields, source) for name, fields in data.items()}


def is_registry_reference(value: Any) -> bool:
    """Whether `value` is a `registry:<name>` reference rather than a path."""
    return isinstance(value, str) and value.startswith(REGISTRY_PREFIX)


def cache_dir() -> Path:
    """Where downloads are kept: $INVGAN_CACHE_DIR, else ~/.cache/invgan (then `pretrained/`)."""
    root = os.environ.get(CACHE_ENV) or DEFAULT_CACHE
    return Path(root).expanduser() / CACHE_SUBDIR


def sha256_of(path: Path) -> str:
    """The SHA-256 of a file's bytes, as 64 lowercase hex digits."""
    digest = hashlib.sha256()
    with path.open("rb") as file:
        while chunk := file.read(HASH_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def _parse(reference: str, entries: Mapping[str, RegistryEntry]) -> tuple[RegistryEntry, str]:
    """The entry a reference names and the SHA-256 its file must have."""
    name, _, given = reference[len(REGISTRY_PREFIX) :].partition("@")
    if name not in entries:
        raise ValueError(
            f"{reference}: no registry entry {name!r}; known: {', '.join(sorted(entries))} "
            f"(see {REGISTRY_FILE})"
        )
    entry = entries[name]
    given = given.lower().removeprefix("sha256:")
    if given and not SHA256_PATTERN.fullmatch(given):
        raise ValueError(f"{reference}: the hash after '@' must be 64 hex digits (a SHA-256)")
    if entry.sha256 and given and given != entry.sha256:
        raise CheckpointError(
            f"{reference}: the given SHA-256 differs from the registry's {entry.sha256} "
            f"({entry.sha256_source}); drop '@{given}' to use the registry's"
        )
    expected = entry.sha256 or given
    if not expected:
        raise CheckpointError(
            f"registry entry {name!r} ({entry.url}) lists no SHA-256, since no public source "
            "states one, and a file is never used unchecked: pass "
            f"{REGISTRY_PREFIX}{name}@<sha256> with the hash of a copy you trust (e.g. "
            "`sha256sum <file>`)"
        )
    return entry, expected


def _mismatch(path: Path, entry: RegistryEntry, expected: str) -> str | None:
    """Why `path` is not the registered file (size first: it costs no read), or None."""
    found_size = path.stat().st_size
    if entry.size is not None and found_size != entry.size:
        return (
            f"it holds {found_size:,} bytes, not the registered {entry.size:,} (a cut-off "
            "download or another file)"
        )
    found = sha256_of(path)
    if found != expected:
        return f"its SHA-256 is {found}, not {expected}"
    return None


def _verified(path: Path, entry: RegistryEntry, expected: str) -> Path:
    """The cached `path` if it is the registered file; else `CheckpointError` (left as is)."""
    reason = _mismatch(path, entry, expected)
    if reason:
        raise CheckpointError(
            f"refusing {path} (cached copy of registry entry {entry.name!r}): {reason}; the "
            "file is damaged or not the registered one. Delete it and try again, or place the "
            "right file there."
        )
    return path


def _size_note(entry: RegistryEntry) -> str:
    return "" if entry.size is None else f", {entry.size:,} bytes"


def _download(entry: RegistryEntry, target: Path, expected: str, download: Callable) -> Path:
    """Download `entry` next to `target`, hash it, and move it into place only if it matches."""
    target.parent.mkdir(parents=True, exist_ok=True)
    handle, partial_name = tempfile.mkstemp(prefix=f".{target.name}.", dir=target.parent)
    os.close(handle)
    partial = Path(partial_name)
    try:
        try:
            download(entry.url, str(partial), progress=True)
        except OSError as error:  # URLError, HTTPError, timeouts, refused connections
            raise FileNotFoundError(
                f"cannot download registry entry {entry.name!r} from {entry.url} ({error}). "
                f"Offline: fetch that URL elsewhere and put the file at {target} "
                f"(SHA-256 {expected}{_size_note(entry)})."
            ) from error
        reason = _mismatch(partial, entry, expected)
        if reason:
            raise CheckpointError(
                f"refusing the download of {entry.url}: {reason}; nothing was kept in "
                f"{target.parent}"
            )
        os.replace(partial, target)
        return target
    finally:
        partial.unlink(missing_ok=True)


def resolve_pretrained(
    reference: str,
    entries: Mapping[str, RegistryEntry] | None = None,
    download: Callable[..., Any] = torch.hub.download_url_to_file,
) -> Path:
    """The verified local file of `registry:<name>[@<sha256>]`, downloaded on first use."""
    entries = registry_entries() if entries is None else entries
    entry, expected = _parse(reference, entries)
    target = cache_dir() / entry.filename
    if target.is_file():
        return _verified(target, entry, expected)
    return _download(entry, target, expected, download)


def local_weights_path(value: str | os.PathLike) -> Path:
    """A weights path as given, or the verified cached file of a `registry:` reference."""
    if is_registry_reference(value):
        return resolve_pretrained(str(value))
    return Path(value)
