"""Fetching dataset files from a list of mirrors, each file checked against its md5."""

from __future__ import annotations

import hashlib
import http.client
import logging
import os
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from pathlib import Path

log = logging.getLogger(__name__)

# Seconds a mirror may stay silent (connecting or between reads) before it counts as down.
TIMEOUT_SECONDS = 30
_CHUNK = 1 << 20


class DownloadError(OSError):
    """No mirror delivered a file intact; the message lists every address tried and why."""

    #: Whether no mirror could be reached at all (this machine is probably offline).
    offline: bool = False


def _fetch(url: str, destination: Path, md5: str) -> None:
    """Download `url` to `destination` (written whole or not at all), checking its md5."""
    partial = destination.with_name(f".{destination.name}.part")
    digest = hashlib.md5()
    try:
        with urllib.request.urlopen(url, timeout=TIMEOUT_SECONDS) as response:
            with partial.open("wb") as out:
                while chunk := response.read(_CHUNK):
                    digest.update(chunk)
                    out.write(chunk)
        if digest.hexdigest() != md5:
            raise DownloadError(f"md5 {digest.hexdigest()} instead of {md5}: a damaged copy")
        os.replace(partial, destination)
    finally:
        partial.unlink(missing_ok=True)


def download_files(files: Mapping[str, str], mirrors: Sequence[str], folder: Path) -> None:
    """Put every file of `files` (name -> md5) into `folder`, each from the first of `mirrors`
    (base addresses) that delivers it intact; a mirror that cannot be reached is not asked
    again. Raises `DownloadError` naming each address tried and why it failed."""
    folder.mkdir(parents=True, exist_ok=True)
    unreachable: set[str] = set()
    for name, md5 in files.items():
        failures: list[str] = []
        for mirror in mirrors:
            url = f"{str(mirror).rstrip('/')}/{name}"
            if mirror in unreachable:
                failures.append(f"{url}: not asked (unreachable before)")
                continue
            log.info("downloading %s into %s", url, folder)
            try:
                _fetch(url, folder / name, md5)
                break
            except (DownloadError, urllib.error.HTTPError) as error:  # this file only
                failures.append(f"{url}: {error}")
            except (OSError, http.client.HTTPException, ValueError) as error:
                # ValueError: an address that is not a URL at all.
                unreachable.add(mirror)
                failures.append(f"{url}: {getattr(error, 'reason', None) or error}")
        else:
            tried = "; ".join(failures) or "no mirror given"
            failed = DownloadError(f"{name} could not be downloaded ({tried})")
            failed.offline = bool(mirrors) and unreachable >= set(mirrors)
            raise failed
