"""The registry of pretrained files: a download served from 127.0.0.1 is fetched once, checked
against its SHA-256 and cached; a wrong checksum, a tampered cache and a missing checksum are
refused; offline, the error names the URL and the exact path to put the file at."""

from __future__ import annotations

import functools
import hashlib
import http.server
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

from invgan.checkpoints import registry
from invgan.checkpoints.format import CheckpointError
from invgan.checkpoints.generator_import import load_frozen_generator
from invgan.checkpoints.registry import (
    CACHE_ENV,
    FORMATS,
    RegistryEntry,
    registry_entries,
    resolve_pretrained,
)
from invgan.nn.stylegan2.generator import StyleGAN2Generator


class _CountingHandler(http.server.SimpleHTTPRequestHandler):
    """Serves a folder and counts GET requests per path."""

    counts: dict[str, int]

    def do_GET(self) -> None:
        self.counts[self.path] = self.counts.get(self.path, 0) + 1
        super().do_GET()

    def log_message(self, *args) -> None:
        pass


@pytest.fixture
def server(tmp_path) -> Iterator[tuple[str, Path, dict[str, int]]]:
    """(base URL, served folder, request counts) of an HTTP server on 127.0.0.1."""
    folder = tmp_path / "served"
    folder.mkdir()
    counts: dict[str, int] = {}
    handler = type("Handler", (_CountingHandler,), {"counts": counts})
    httpd = http.server.ThreadingHTTPServer(
        ("127.0.0.1", 0), functools.partial(handler, directory=str(folder))
    )
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}", folder, counts
    httpd.shutdown()
    httpd.server_close()


@pytest.fixture
def cache(monkeypatch, tmp_path) -> Path:
    monkeypatch.setenv(CACHE_ENV, str(tmp_path / "cache"))
    return tmp_path / "cache" / "pretrained"


def _entry(
    url: str, sha256: str | None, filename: str = "weights.pt", size: int | None = None
) -> RegistryEntry:
    return RegistryEntry("tiny", url, filename, "rosinality", 16, sha256=sha256, size=size)


def test_download_is_verified_cached_and_fetched_once(server, cache):
    url, folder, counts = server
    (folder / "weights.pt").write_bytes(b"pretrained bytes")
    digest = hashlib.sha256(b"pretrained bytes").hexdigest()
    entries = {"tiny": _entry(f"{url}/weights.pt", digest)}
    path = resolve_pretrained("registry:tiny", entries)
    assert path == cache / "weights.pt" and path.read_bytes() == b"pretrained bytes"
    assert resolve_pretrained("registry:tiny", entries) == path
    assert counts == {"/weights.pt": 1}
    assert sorted(p.name for p in cache.iterdir()) == ["weights.pt"]


def test_wrong_checksum_is_refused_and_nothing_is_kept(server, cache):
    url, folder, _ = server
    (folder / "weights.pt").write_bytes(b"someone else's bytes")
    entries = {"tiny": _entry(f"{url}/weights.pt", "0" * 64)}
    with pytest.raises(CheckpointError, match="refusing the download .* its SHA-256 is"):
        resolve_pretrained("registry:tiny", entries)
    assert list(cache.iterdir()) == []


def test_a_download_of_the_wrong_size_is_refused_before_hashing(server, cache, monkeypatch):
    url, folder, _ = server
    (folder / "weights.pt").write_bytes(b"pretrained by")  # cut off
    digest = hashlib.sha256(b"pretrained bytes").hexdigest()
    entries = {"tiny": _entry(f"{url}/weights.pt", digest, size=len(b"pretrained bytes"))}
    hashed: list[Path] = []
    monkeypatch.setattr(registry, "sha256_of", lambda path: hashed.append(path) or digest)
    with pytest.raises(CheckpointError, match="holds 13 bytes, not the registered 16"):
        resolve_pretrained("registry:tiny", entries)
    assert hashed == [] and list(cache.iterdir()) == []


def test_a_cached_file_of_the_wrong_size_is_refused(cache):
    digest = hashlib.sha256(b"pretrained bytes").hexdigest()
    entries = {"tiny": _entry("http://127.0.0.1:9/weights.pt", digest, size=16)}
    cache.mkdir(parents=True)
    (cache / "weights.pt").write_bytes(b"pretrained bytes and more")
    with pytest.raises(CheckpointError, match="cached copy .* holds 25 bytes, not the registered"):
        resolve_pretrained("registry:tiny", entries)
    assert (cache / "weights.pt").read_bytes() == b"pretrained bytes and more"


def test_a_tampered_cached_file_is_refused(server, cache):
    url, folder, _ = server
    (folder / "weights.pt").write_bytes(b"pretrained bytes")
    entries = {
        "tiny": _entry(f"{url}/weights.pt", hashlib.sha256(b"pretrained bytes").hexdigest())
    }
    path = resolve_pretrained("registry:tiny", entries)
    path.write_bytes(b"pretrained bytes, changed")
    with pytest.raises(CheckpointError, match=f"refusing {path} .*cached copy"):
        resolve_pretrained("registry:tiny", entries)


def test_offline_names_the_url_and_the_exact_path(cache, tmp_path):
    digest = hashlib.sha256(b"pretrained bytes").hexdigest()
    url = "http://127.0.0.1:9/weights.pt"  # the discard port: nothing listens there
    entries = {"tiny": _entry(url, digest)}
    with pytest.raises(FileNotFoundError) as error:
        resolve_pretrained("registry:tiny", entries)
    message = str(error.value)
    assert url in message and f"put the file at {cache / 'weights.pt'}" in message
    # Placing the file there by hand is what the message asks for: it is then used.
    (cache / "weights.pt").write_bytes(b"pretrained bytes")
    assert resolve_pretrained("registry:tiny", entries) == cache / "weights.pt"


def test_an_entry_without_checksum_needs_one_from_the_user(server, cache):
    url, folder, _ = server
    (folder / "weights.pt").write_bytes(b"pretrained bytes")
    entries = {"tiny": _entry(f"{url}/weights.pt", None)}
    with pytest.raises(CheckpointError, match=r"lists no SHA-256.*pass registry:tiny@<sha256>"):
        resolve_pretrained("registry:tiny", entries)
    assert not cache.exists() or list(cache.iterdir()) == []
    digest = hashlib.sha256(b"pretrained bytes").hexdigest()
    assert resolve_pretrained(f"registry:tiny@{digest}", entries).read_bytes() == (
        b"pretrained bytes"
    )
    with pytest.raises(ValueError, match="no registry entry 'other'"):
        resolve_pretrained("registry:other", entries)


def test_generator_path_takes_a_registry_reference(server, cache, monkeypatch):
    url, folder, _ = server
    torch.manual_seed(0)
    generator = StyleGAN2Generator(
        w_dim=16, resolution=16, n_mlp=2, channel_multiplier=1, channel_base=256, channel_max=16
    )
    latent_avg = torch.randn(16)
    torch.save({"g_ema": generator.state_dict(), "latent_avg": latent_avg}, folder / "g.pt")
    digest = hashlib.sha256((folder / "g.pt").read_bytes()).hexdigest()
    entries = {"tiny": _entry(f"{url}/g.pt", digest, filename="g.pt")}
    monkeypatch.setattr(registry, "registry_entries", lambda: entries)
    frozen = load_frozen_generator("registry:tiny", resolution=16)
    assert torch.equal(frozen.latent_avg, latent_avg)
    w = torch.randn(2, 16)
    assert torch.equal(frozen.synthesize(w), generator.eval()(w))


def test_shipped_registry_is_well_formed():
    entries = registry_entries()
    assert {"stylegan2-ffhq-1024", "stylegan2-celebahq-256", "psp-ffhq-encode"} <= set(entries)
    assert {"e4e-ffhq-encode"} <= set(entries)
    for entry in entries.values():
        assert entry.url.startswith("https://") and entry.format in FORMATS
        assert entry.resolution in (256, 1024)
        # A listed hash must say where it comes from.
        assert entry.sha256 is None or entry.sha256_source
    checked = ["stylegan2-ada-ffhq-1024", "stylegan2-ffhq-config-f-rosinality"]
    checked += ["psp-ffhq-encode", "e4e-ffhq-encode"]
    assert all(entries[name].sha256 and entries[name].size for name in checked)
    assert len({entry.filename for entry in entries.values()}) == len(entries)


def test_a_registry_entry_with_a_bad_size_is_refused(tmp_path):
    source = tmp_path / "registry.yaml"
    source.write_text(
        "tiny: {url: 'https://x/w.pt', filename: w.pt, format: rosinality, resolution: 16, "
        "size: -3}\n"
    )
    with pytest.raises(ValueError, match="entry 'tiny' has a size that is not a byte count"):
        registry_entries(source)
