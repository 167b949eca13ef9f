"""Meta's SAM 2 / 2.1 checkpoints by model name: where they are cached, and downloading them with the
SHA-256 checked (``tracker-download``). No torch here: a run asks :func:`cached` before building a model.

The cache is ``$TRACKER_HOME/checkpoints`` (``TRACKER_HOME`` defaults to ``~/.cache/tracker``). The
expected SHA-256 of a file comes from a second place, never from the server that sends the file: a
``<sha256>  <file>`` line in the sums file (``TRACKER_SHA256_FILE``, default the one shipped in the
package) or else the Git LFS object id Hugging Face publishes for the same file (an LFS oid is the file's
SHA-256)."""

from __future__ import annotations

import hashlib
import http.client
import json
import os
import sys
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

BASE_URL = "https://dl.fbaipublicfiles.com/segment_anything_2"
HF_API = "https://huggingface.co/api/models"
SUMS_FILE = Path(__file__).resolve().parent / "weights" / "checkpoints.sha256"
CHUNK = 1 << 20


class DownloadError(RuntimeError):
    """A checkpoint could not be had: the line says why and what to do."""


class _RangeDone(Exception):
    """The server has nothing after the bytes asked from (HTTP 416)."""


@dataclass(frozen=True)
class Weights:
    """A published checkpoint: the ``model=`` config it fits, its file name and Meta's release folder."""

    model: str  # config name, e.g. sam2.1_hiera_t
    file: str  # e.g. sam2.1_hiera_tiny.pt
    release: str  # e.g. 092824

    @property
    def hf_repo(self) -> str:
        stem = self.file.removesuffix(".pt").replace("_hiera_", "-hiera-").replace("base_plus", "base-plus")
        return f"facebook/{stem}"


_SIZES = {"t": "tiny", "s": "small", "b+": "base_plus", "l": "large"}
WEIGHTS: dict[str, Weights] = {
    f"{family}_hiera_{short}": Weights(f"{family}_hiera_{short}", f"{family}_hiera_{long}.pt", release)
    for family, release in (("sam2.1", "092824"), ("sam2", "072824"))
    for short, long in _SIZES.items()
}


def lookup(name: str) -> Weights:
    """The checkpoint for a model config name (``sam2.1_hiera_t``) or a file stem (``sam2.1_hiera_tiny``)."""
    for w in WEIGHTS.values():
        if name in (w.model, w.file, w.file.removesuffix(".pt")):
            return w
    raise DownloadError(f"no published checkpoint is called {name!r}: use one of {', '.join(WEIGHTS)}")


def home() -> Path:
    return Path(os.environ.get("TRACKER_HOME") or Path.home() / ".cache" / "tracker").expanduser()


def cache_dir() -> Path:
    return home() / "checkpoints"


def cached(model: str) -> Path | None:
    """The cached checkpoint of a model config, or None (also for models nobody publishes, e.g. toy)."""
    w = next((w for w in WEIGHTS.values() if w.model == model), None)
    if w is None:
        return None
    path = cache_dir() / w.file
    return path if path.is_file() else None


def download_command(model: str) -> str:
    return f"tracker-download {model}"


def _sums(path: Path) -> dict[str, str]:
    sums = {}
    if path.is_file():
        for line in path.read_text().splitlines():
            parts = line.split()
            if len(parts) == 2 and not line.startswith("#"):
                sums[parts[1].lstrip("*")] = parts[0].lower()
    return sums


def _open(url: str, headers: dict[str, str] | None = None, timeout: float = 30.0):
    req = urllib.request.Request(url, headers={"User-Agent": "tracker", **(headers or {})})
    try:
        return urllib.request.urlopen(req, timeout=timeout)  # noqa: S310 (http/https/file URLs only)
    except urllib.error.HTTPError as e:
        if e.code == 416 and headers and "Range" in headers:
            raise _RangeDone from None
        raise DownloadError(f"{url} answered HTTP {e.code}: check the address (--base-url)") from None
    except (urllib.error.URLError, OSError) as e:
        why = getattr(e, "reason", None) or e
        raise DownloadError(f"cannot reach {url} ({why}): check the network, or pass --base-url for a mirror") from None


def expected_sha256(w: Weights, sums_file: Path | None = None, hf_api: str | None = None) -> str:
    sums = _sums(Path(sums_file or os.environ.get("TRACKER_SHA256_FILE") or SUMS_FILE))
    if w.file in sums:
        return sums[w.file]
    api = (hf_api or os.environ.get("TRACKER_HF_API") or HF_API).rstrip("/")
    url = f"{api}/{w.hf_repo}/tree/main"
    with _open(url) as r:
        try:
            entries = json.loads(r.read())
        except ValueError:
            entries = []
    for e in entries if isinstance(entries, list) else []:
        if isinstance(e, dict) and e.get("path") == w.file and isinstance(e.get("lfs"), dict):
            oid = str(e["lfs"].get("oid", "")).lower()
            if len(oid) == 64 and all(c in "0123456789abcdef" for c in oid):
                return oid
    raise DownloadError(
        f"no SHA-256 is known for {w.file} (none in the sums file, none at {url}): not downloading it unchecked"
    )


def sha256_of(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(CHUNK):
            h.update(block)
    return h.hexdigest()


Progress = Callable[[int, int | None], None]


def _fetch(url: str, partial: Path, progress: Progress | None) -> None:
    """Append the rest of ``url`` to ``partial`` (a ranged request when part of it is there already)."""
    have = partial.stat().st_size if partial.exists() else 0
    try:
        r = _open(url, {"Range": f"bytes={have}-"} if have else None)
    except _RangeDone:
        return  # nothing after what we have: the part is whole, its checksum decides
    with r:
        if have and r.status != 206:  # the server ignored the range: start again
            have = 0
        length = r.headers.get("Content-Length")
        total = have + int(length) if length and length.isdigit() else None
        with open(partial, "ab" if have else "wb") as f:
            got = have
            try:
                while block := r.read(CHUNK):
                    f.write(block)
                    got += len(block)
                    if progress is not None:
                        progress(got, total)
            except (OSError, http.client.HTTPException) as e:  # a dropped connection: IncompleteRead, reset
                raise DownloadError(
                    f"the download of {url} stopped at {got} bytes ({type(e).__name__}): "
                    "run the same command again to resume it"
                ) from None
    if total is not None and got < total:
        raise DownloadError(
            f"the download of {url} stopped at {got} of {total} bytes: run the same command again to resume it"
        )


def download(
    name: str,
    *,
    folder: Path | None = None,
    base_url: str | None = None,
    sums_file: Path | None = None,
    hf_api: str | None = None,
    progress: Progress | None = None,
) -> Path:
    """Download a checkpoint into ``folder`` (the cache by default) and return its path. A file already
    there with the right SHA-256 is kept; a part downloaded before is resumed (``<file>.partial``); a
    download whose SHA-256 differs is deleted."""
    w = lookup(name)
    folder = Path(folder) if folder is not None else cache_dir()
    sha = expected_sha256(w, sums_file, hf_api)
    target = folder / w.file
    if target.is_file() and sha256_of(target) == sha:
        return target
    folder.mkdir(parents=True, exist_ok=True)
    partial = folder / (w.file + ".partial")
    if partial.is_symlink():
        partial.unlink()
    base = (base_url or os.environ.get("TRACKER_WEIGHTS_URL") or BASE_URL).rstrip("/")
    _fetch(f"{base}/{w.release}/{w.file}", partial, progress)
    got = sha256_of(partial)
    if got != sha:
        partial.unlink()
        raise DownloadError(f"{w.file} has SHA-256 {got}, expected {sha}: the download was deleted")
    os.replace(partial, target)
    return target


def bar(label: str) -> Progress:
    """A progress bar on stderr (tqdm), made on the first call."""
    state: dict = {}

    def update(done: int, total: int | None) -> None:
        if "bar" not in state:
            from tqdm import tqdm

            state["bar"] = tqdm(total=total, unit="B", unit_scale=True, desc=label, file=sys.stderr, leave=False)
            state["bar"].update(done)
        else:
            state["bar"].update(done - state["bar"].n)

    return update
