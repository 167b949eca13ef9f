"""Meta's SAM 2 / 2.1 checkpoints by model name: where they are cached, and downloading them with the
SHA-256 checked (``tracker-download``). No torch here: a run asks :func:`cached` before building a model.

The cache is ``$TRACKER_HOME/checkpoints`` (``TRACKER_HOME`` defaults to ``~/.cache/tracker``). The
expected SHA-256 of a file comes from a second place, never from the server that sends the file: a
``<sha256>  <file>`` line in the sums file (``TRACKER_SHA256_FILE``, default the one shipped in the
package) or else the Git LFS object id Hugging Face publishes for the same file (an LFS oid is the file's
SHA-256). The one exception is a mirror the user names (``--base-url``, ``TRACKER_WEIGHTS_URL``): a
``SHA256SUMS`` file beside its files is taken, so a mirror works with no access to Hugging Face; ``--sha256``
gives the sum outright."""

from __future__ import annotations

import hashlib
import http.client
import json
import os
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

BASE_URL = "https://dl.fbaipublicfiles.com/segment_anything_2"
HF_API = "https://huggingface.co/api/models"
SUMS_FILE = Path(__file__).resolve().parent / "weights" / "checkpoints.sha256"
CHUNK = 1 << 20
MAX_CHECKPOINT = 4 << 30  # no SAM 2 checkpoint comes near (large: 0.9 GB): the cap when no size is known
API_REPLY_CAP = 4 << 20  # a model's file list is a few kB
DEADLINE_S = 4 * 3600.0  # a whole download (resumable: running again goes on where it stopped)
STALL_S, MIN_RATE = 60.0, 1024  # under 1 kB/s for a minute is a server that drips, not a slow line


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


def _parse_sums(text: str) -> dict[str, tuple[str, int | None]]:
    """``<sha256>  <file>`` lines (a third column, if there, is the size in bytes): file name -> (sum,
    size). A name with folders (``092824/sam2.1_hiera_tiny.pt``) counts by its last part."""
    sums: dict[str, tuple[str, int | None]] = {}
    for line in text.splitlines():
        parts = line.split()
        if len(parts) in (2, 3) and not line.startswith("#") and _is_sha256(parts[0].lower()):
            size = int(parts[2]) if len(parts) == 3 and parts[2].isdigit() else None
            sums[parts[1].lstrip("*").rsplit("/", 1)[-1]] = (parts[0].lower(), size)
    return sums


def _is_sha256(text: str) -> bool:
    return len(text) == 64 and all(c in "0123456789abcdef" for c in text)


def _sums(path: Path) -> dict[str, tuple[str, int | None]]:
    try:
        if not path.is_file():
            return {}
        text = path.read_bytes()[: 1 << 20].decode("utf-8")
    except (OSError, UnicodeDecodeError) as e:
        why = getattr(e, "strerror", None) or "not UTF-8 text"
        raise DownloadError(
            f"the sums file {str(path)!r} cannot be read ({why}): fix or unset TRACKER_SHA256_FILE"
        ) from None
    return _parse_sums(text)


def _read_capped(url: str, r: Any, what: str) -> bytes:
    try:
        body = r.read(API_REPLY_CAP + 1)
    except (OSError, http.client.HTTPException) as e:
        raise DownloadError(f"the reply of {url} was cut ({type(e).__name__}): run the same command again") from None
    if len(body) > API_REPLY_CAP:
        raise DownloadError(f"the reply of {url} is over {API_REPLY_CAP >> 20} MiB, not {what}: check the address")
    return body


def _open(url: str, headers: dict[str, str] | None = None, timeout: float = 30.0, missing_ok: bool = False):
    """The response (None for a 404 when ``missing_ok``); any other failure is a DownloadError."""
    req = urllib.request.Request(url, headers={"User-Agent": "tracker", **(headers or {})})
    try:
        return urllib.request.urlopen(req, timeout=timeout)  # noqa: S310 (http/https/file URLs only)
    except urllib.error.HTTPError as e:
        if e.code == 416 and headers and "Range" in headers:
            raise _RangeDone from None
        if e.code == 404 and missing_ok:
            return None
        raise DownloadError(f"{url} answered HTTP {e.code}: check the address (--base-url)") from None
    except (urllib.error.URLError, OSError) as e:
        why = getattr(e, "reason", None) or e
        raise DownloadError(f"cannot reach {url} ({why}): check the network, or pass --base-url for a mirror") from None


@dataclass(frozen=True)
class Expected:
    """What the file must be, from a second place: its SHA-256 and (when known) its size in bytes."""

    sha256: str
    size: int | None = None

    @property
    def cap(self) -> int:
        """The most bytes a download may bring."""
        return self.size if self.size is not None else MAX_CHECKPOINT


def expected(
    w: Weights,
    sums_file: Path | None = None,
    hf_api: str | None = None,
    mirror: str | None = None,
    sha256: str | None = None,
) -> Expected:
    """The file's SHA-256 (and size), first found of: ``sha256`` (given), the sums file
    (``TRACKER_SHA256_FILE``, else the one shipped), the ``SHA256SUMS`` beside a mirror's files (``mirror``:
    the base URL the user chose), Hugging Face's LFS object id."""
    if sha256 is not None:
        if not _is_sha256(sha256.lower()):
            raise DownloadError(f"--sha256 {sha256!r} is not a SHA-256 (64 hex digits)")
        return Expected(sha256.lower())
    sums = _sums(Path(sums_file or os.environ.get("TRACKER_SHA256_FILE") or SUMS_FILE))
    if w.file in sums:
        return Expected(*sums[w.file])
    if mirror is not None:
        url = f"{mirror.rstrip('/')}/SHA256SUMS"
        r = _open(url, missing_ok=True)
        if r is not None:
            with r:
                text = _read_capped(url, r, "a sums file").decode("utf-8", errors="replace")
            if w.file in (mirrored := _parse_sums(text)):
                return Expected(*mirrored[w.file])
    api = (hf_api or os.environ.get("TRACKER_HF_API") or HF_API).rstrip("/")
    url = f"{api}/{w.hf_repo}/tree/main"
    try:
        r = _open(url)
    except DownloadError as e:
        raise DownloadError(
            f"{e} -- the SHA-256 comes from there unless you give it: --sha256 HEX, a SHA256SUMS file beside "
            "the mirror's files, or TRACKER_SHA256_FILE"
        ) from None
    with r:
        body = _read_capped(url, r, "a file list")
    try:
        entries = json.loads(body)
    except ValueError:
        entries = []
    for e in entries if isinstance(entries, list) else []:
        if isinstance(e, dict) and e.get("path") == w.file and isinstance(e.get("lfs"), dict):
            oid, size = str(e["lfs"].get("oid", "")).lower(), e["lfs"].get("size")
            if _is_sha256(oid):
                ok = isinstance(size, int) and not isinstance(size, bool) and 0 < size <= MAX_CHECKPOINT
                return Expected(oid, size if ok else None)
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


def _stopped(url: str, got: int, why: str) -> DownloadError:
    return DownloadError(
        f"the download of {url} stopped at {got} bytes ({why}): run the same command again to resume it"
    )


class _Pace:
    """Cuts a download that runs past its deadline (``time.monotonic()``) or gets under ``MIN_RATE`` bytes
    a second over ``STALL_S`` seconds (a server that drips bytes never trips a socket timeout)."""

    def __init__(self, deadline: float, got: int) -> None:
        self.deadline, self.since, self.at = deadline, time.monotonic(), got

    def check(self, url: str, got: int) -> None:
        now = time.monotonic()
        if now > self.deadline:
            raise _stopped(url, got, "the deadline passed")
        if now - self.since >= STALL_S:
            if got - self.at < MIN_RATE * (now - self.since):
                raise _stopped(url, got, f"under {MIN_RATE} bytes a second for {STALL_S:.0f} s")
            self.since, self.at = now, got


def _fetch(url: str, partial: Path, want: Expected, progress: Progress | None, deadline: float) -> None:
    """Append the rest of ``url`` to ``partial`` (a ranged request when part of it is there already): never
    more than ``want.cap`` bytes in all, within the deadline and the minimum pace (:class:`_Pace`)."""
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
        if total is not None and total > want.cap:
            raise DownloadError(f"{url} offers {total} bytes, the file has {want.cap}: check the address (--base-url)")
        got, pace = have, _Pace(deadline, have)
        # Unbuffered writes: on a full disk ``got`` is exactly what the file holds (a buffer would hide it).
        flags = os.O_WRONLY | os.O_CREAT | os.O_NOFOLLOW | (os.O_APPEND if have else os.O_TRUNC)
        fd = os.open(partial, flags, 0o644)
        try:
            while True:
                try:
                    block = memoryview(r.read1(CHUNK))  # what has come: a slow server is seen between blocks
                except (OSError, http.client.HTTPException) as e:  # a dropped connection: IncompleteRead, reset
                    raise _stopped(url, got, type(e).__name__) from None
                if not block:
                    break
                if got + len(block) > want.cap:
                    raise DownloadError(
                        f"{url} sent more than the file's {want.cap} bytes: check the address (--base-url)"
                    )
                while block:
                    try:
                        n = os.write(fd, block)
                    except OSError as e:
                        raise DownloadError(
                            f"cannot write {str(partial)!r} ({e.strerror}; {got} bytes kept): free space and run "
                            "the same command again to resume it, or pass --folder"
                        ) from None
                    got, block = got + n, block[n:]
                if progress is not None:
                    progress(got, total)
                pace.check(url, got)
        finally:
            os.close(fd)
    if total is not None and got < total:
        raise DownloadError(
            f"the download of {url} stopped at {got} of {total} bytes: run the same command again to resume it"
        )


def _usable_folder(folder: Path) -> None:
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except FileExistsError:
        pass
    except OSError as e:
        raise DownloadError(
            f"cannot make the folder {str(folder)!r} ({e.strerror}): set TRACKER_HOME or pass --folder a folder "
            "you can write"
        ) from None
    if not folder.is_dir() or not os.access(folder, os.W_OK | os.X_OK):
        what = "is not a folder" if not folder.is_dir() else "cannot be written"
        raise DownloadError(f"{str(folder)!r} {what}: set TRACKER_HOME or pass --folder a folder you can write")


def _not_a_file(path: Path) -> DownloadError | None:
    """A name a download writes that holds something else than a file (a folder, a device): refused."""
    if path.is_symlink() or not path.exists() or path.is_file():
        return None
    return DownloadError(f"{str(path)!r} is not a file: move it away, or pass --folder another folder")


def download(
    name: str,
    *,
    folder: Path | None = None,
    base_url: str | None = None,
    sums_file: Path | None = None,
    hf_api: str | None = None,
    progress: Progress | None = None,
    deadline_s: float = DEADLINE_S,
    sha256: str | None = None,
) -> Path:
    """Download a checkpoint into ``folder`` (the cache by default) and return its path. A file already
    there with the right SHA-256 is kept; a part downloaded before is resumed (``<file>.partial``); a
    download whose SHA-256 differs is deleted. Every failure is a DownloadError whose line says what to do."""
    w = lookup(name)
    deadline = time.monotonic() + deadline_s
    folder = Path(folder).expanduser() if folder is not None else cache_dir()
    mirror = base_url or os.environ.get("TRACKER_WEIGHTS_URL") or None  # a base the user chose
    want = expected(w, sums_file, hf_api, mirror, sha256)
    target, partial = folder / w.file, folder / (w.file + ".partial")
    for path in (target, partial):
        if (bad := _not_a_file(path)) is not None:
            raise bad
    if target.is_file() and not target.is_symlink() and sha256_of(target) == want.sha256:
        return target
    _usable_folder(folder)
    try:
        if partial.is_symlink() or (partial.exists() and partial.stat().st_size > want.cap):
            partial.unlink()  # a link is never written through; an oversized part cannot be this file
        base = (mirror or BASE_URL).rstrip("/")
        _fetch(f"{base}/{w.release}/{w.file}", partial, want, progress, deadline)
        got = sha256_of(partial)
        if got != want.sha256:
            partial.unlink()
            raise DownloadError(f"{w.file} has SHA-256 {got}, expected {want.sha256}: the download was deleted")
        os.replace(partial, target)
    except OSError as e:
        where = e.filename or folder
        raise DownloadError(
            f"cannot write {str(where)!r} ({e.strerror}): pass --folder a folder you can write"
        ) from None
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
