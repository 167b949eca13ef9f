"""A run's outputs as one transaction: staged, then committed all together, or not at all.

    with OutputTransaction(out) as tx:
        write everything under tx.staging
        tx.commit()

Everything a run writes goes into ``OUT/.staging-PID/``. ``commit()`` replaces the earlier run's whole
set (named in its ``.outputs.json``) with the new one; leaving the ``with`` block without a commit
removes the staging folder, so a failed or interrupted run leaves ``OUT`` as it was. An exclusive
``flock`` on ``OUT`` refuses a second run at once. ``OUT/.resume/`` is reserved for resume state and
never touched here.

A commit is a handful of renames. Its plan is written to the staging folder first (``.commit``), so
if the process dies half-way the next run into ``OUT`` rolls it forward before anything else.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import logging
import os
import shutil
import signal
import stat
import time
from collections.abc import Iterable, Sequence
from pathlib import Path
from types import TracebackType

from ..files import links_under, write_atomic

log = logging.getLogger(__name__)

MANIFEST = ".outputs.json"
RESUME = ".resume"
_STAGING = ".staging-"
_JOURNAL = ".commit"
_OLD = ".old"
_HELD_SIGNALS = {signal.SIGINT, signal.SIGTERM, signal.SIGHUP}


class ResumeRefused(ValueError):
    """resume=true cannot continue from ``OUT/.resume/`` (other inputs, no checkpoint): it is kept."""


class OutputError(ValueError):
    """The output folder cannot be used for this run."""


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    elif path.exists() or path.is_symlink():
        path.unlink()


def _plain(name: object) -> bool:
    """A name a commit may move: one entry of OUT itself, never a path, ``.resume`` or a staging folder."""
    return (
        isinstance(name, str)
        and name not in ("", ".", "..", RESUME)
        and "/" not in name
        and "\0" not in name
        and not name.startswith(_STAGING)
    )


def _open_dir(parent_fd: int, name: str) -> int | None:
    """A folder ``name`` in ``parent_fd``, opened without following a link (None: none, or not a folder)."""
    try:
        return os.open(name, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW, dir_fd=parent_fd)
    except (FileNotFoundError, NotADirectoryError):
        return None
    except OSError as e:
        if e.errno == errno.ELOOP:
            return None
        raise


def _exists(dir_fd: int, name: str) -> bool:
    try:
        os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
        return True
    except FileNotFoundError:
        return False


def _read_json(dir_fd: int, name: str, limit: int = 1 << 20) -> object:
    """The JSON in a regular file ``name`` of ``dir_fd`` (not through a link; at most ``limit`` bytes),
    or None when it is missing, not regular, too large or not JSON."""
    try:
        fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW, dir_fd=dir_fd)
    except OSError:
        return None
    with os.fdopen(fd, "rb") as f:
        if not stat.S_ISREG(os.fstat(f.fileno()).st_mode):
            return None
        data = f.read(limit + 1)
    try:
        return json.loads(data) if len(data) <= limit else None
    except (ValueError, UnicodeDecodeError):
        return None


def _manifest_names(dir_fd: int | None) -> set[str]:
    doc = _read_json(dir_fd, MANIFEST) if dir_fd is not None else None
    files = doc.get("files") if isinstance(doc, dict) else None
    return {n for n in files if _plain(n)} if isinstance(files, list) else set()


def _read_plan(out_fd: int, staging_fd: int) -> tuple[list[str], list[str]] | None:
    """A dead run's journal, if it is one :meth:`OutputTransaction.commit` could have written: plain names;
    every new one staged (or already moved in); every old one named by the committed manifest (in OUT, or
    parked in ``.old``) or a new one. None otherwise."""
    plan = _read_json(staging_fd, _JOURNAL)
    if not isinstance(plan, dict) or set(plan) != {"new", "old"}:
        return None
    new, old = plan["new"], plan["old"]
    if not (isinstance(new, list) and isinstance(old, list) and all(map(_plain, new + old))):
        return None
    if not all(_exists(staging_fd, n) or _exists(out_fd, n) for n in new):
        return None
    parked_fd = _open_dir(staging_fd, _OLD)
    try:
        known = _manifest_names(out_fd) | _manifest_names(parked_fd) | set(new) | {MANIFEST}
    finally:
        if parked_fd is not None:
            os.close(parked_fd)
    return (new, old) if set(old) <= known else None


def committed_set(out: Path) -> list[str]:
    """Top-level names of the last committed set in ``out`` (empty when there is none)."""
    try:
        names = json.loads((Path(out) / MANIFEST).read_text())["files"]
    except (OSError, ValueError, KeyError, TypeError):
        return []
    return [n for n in names if isinstance(n, str) and n and "/" not in n and n not in (".", "..")]


def missing_dirs(path: str | Path) -> list[Path]:
    """``path`` and its ancestors that do not exist yet, deepest first."""
    p = Path(os.path.abspath(path))
    out = []
    while not p.exists() and p != p.parent:
        out.append(p)
        p = p.parent
    return out


def check_output_dir(path: str | Path, key: str = "output_dir") -> Path:
    """Raise OutputError (naming ``key``) unless ``path`` is, or can be created as, a writable folder, and
    is not the current folder while that holds files no run wrote (a run replaces the names it writes)."""
    if not str(path).strip():
        raise OutputError(f"{key} {str(path)!r} is not a folder path: give one, e.g. {key}=runs/clip")
    p = Path(path)
    if os.path.realpath(p) == os.path.realpath(os.getcwd()):
        # Under hydra.job.chdir=true the command runs in its output folder, beside Hydra's own files.
        own = set(committed_set(p)) | {MANIFEST, RESUME, ".hydra"}
        theirs = sorted(
            n
            for n in os.listdir(p)
            if n not in own and not n.startswith((_STAGING, ".set-aside-")) and not n.endswith(".log")
        )
        if theirs:
            raise OutputError(
                f"{key} {str(path)!r} is the current folder, which holds files no run wrote ({theirs[0]!r}, ...): "
                f"a run would replace its own names there; give a folder of its own, e.g. {key}=runs/clip"
            )
    for a in (p, *p.parents):
        if a.exists() or a.is_symlink():
            if not a.is_dir():
                what = "is a file" if a == p else f"lies under the file {str(a)!r}"
                raise OutputError(f"{key} {str(p)!r} {what}: give a folder path")
            if not os.access(a, os.W_OK | os.X_OK):
                raise OutputError(f"{key} {str(p)!r} cannot be written (no permission on {str(a)!r}): pick another")
            break
    return p


def check_not_in_outputs(out: Path, planned: Iterable[str], inputs: Sequence[tuple[str, str | Path | None]]) -> None:
    """Refuse an input that lies where the run will write or delete: the planned entries, the earlier
    set it replaces, or the output folder itself when the input is a folder. ``inputs``: (key, path)."""
    out = Path(os.path.realpath(out))
    names = set(planned) | set(committed_set(out)) | {MANIFEST}
    for key, value in inputs:
        if value is None or str(value) == "":
            continue
        p = Path(os.path.realpath(value))
        if p == out:
            raise OutputError(
                f"{key} {str(value)!r} is the output folder: outputs would mix with the input; pick another output_dir"
            )
        if out in p.parents:
            top = p.relative_to(out).parts[0]
            if top in names or top.startswith(_STAGING):
                raise OutputError(
                    f"{key} {str(value)!r} lies in the outputs this run replaces in {str(out)!r}: "
                    "copy it elsewhere or pick another output_dir"
                )


def check_no_earlier_outputs(out: Path, planned: Iterable[str]) -> None:
    """Refuse a folder that holds an earlier run's outputs for an online run: it writes under the final
    names as it goes, so it would replace the earlier set at its first frame, and a run that fails would
    leave neither."""
    out = Path(out)
    if not out.is_dir():
        return
    earlier = set(committed_set(out)) | {n for n in planned if (out / n).exists() or (out / n).is_symlink()}
    earlier = {n for n in earlier if n != RESUME and not n.startswith(_STAGING)}
    if earlier:
        shown = ", ".join(sorted(earlier)[:3]) + (", ..." if len(earlier) > 3 else "")
        raise OutputError(
            f"output_dir {str(out)!r} holds the outputs of an earlier run ({shown}): an online run writes as "
            "it goes and never replaces them; pick another output_dir, or remove them"
        )


class OutputTransaction:
    """Stage a run's outputs in ``out`` and commit them as one set (see the module docstring).

    ``created``: folders made for this run (deepest first); on failure those left empty are removed.
    """

    def __init__(
        self, out: str | Path, created: Sequence[Path] = (), resumable: bool = False, resuming: bool = False
    ) -> None:
        """``resumable``: stage in ``OUT/.resume/staging`` (it outlives the process: a resumed run goes on
        writing there) and keep it when the run fails after a checkpoint (``.resume/checkpoint.pt``)."""
        self.out = Path(out)
        self.resumable, self.resuming = resumable, resuming
        self.staging = self.out / RESUME / "staging" if resumable else self.out / f"{_STAGING}{os.getpid()}"
        self.created = list(created)
        self.committed = False
        self._lock_fd: int | None = None

    def _lock(self) -> None:
        """Make ``OUT`` if needed and take its lock; refused at once while another run holds it."""
        check_output_dir(self.out)
        self.out.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.out, os.O_RDONLY | os.O_DIRECTORY)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as e:
            os.close(fd)
            if e.errno in (errno.EWOULDBLOCK, errno.EAGAIN):
                raise OutputError(
                    f"output_dir {str(self.out)!r} is in use by another run: wait for it or pick another output_dir"
                ) from None
            raise
        self._lock_fd = fd

    def __enter__(self) -> OutputTransaction:
        self._lock()
        try:
            self._recover()
            if self.resumable and not self.resuming:
                _remove(self.out / RESUME)  # a fresh run starts over
            if self.resuming:
                links = links_under(self.out / RESUME)
                if links:
                    raise ResumeRefused(
                        f"resume=true: {str(links[0])!r} is a link, and a run never writes through one: "
                        f"remove it, or run without resume=true to start over"
                    )
            self.staging.mkdir(parents=True, exist_ok=self.resumable)
        except BaseException:
            self._unlock()
            raise
        return self

    def path(self, name: str) -> Path:
        return self.staging / name

    def _recover(self) -> None:
        """Under the lock every staging folder is a dead run's: finish its commit or drop it. A resumable
        run's staging is dropped only once its commit is finished (else a resumed run goes on in it).

        Whatever stands in ``OUT`` may have been planted there: the journal's names are checked (plain
        names, staged or committed ones) and every move is made relative to folders opened without
        following links, so a journal can only move this folder's own entries. One that fails the checks
        is set aside, never replayed."""
        assert self._lock_fd is not None
        out_fd = self._lock_fd
        resume_fd = _open_dir(out_fd, RESUME)
        if resume_fd is not None:
            try:
                staging_fd = _open_dir(resume_fd, "staging")
                if staging_fd is not None:
                    try:
                        done = self._finish(out_fd, staging_fd, f"{RESUME}/staging")
                    finally:
                        os.close(staging_fd)
                    if done:
                        _remove(self.out / RESUME)
                    elif done is False:
                        self._set_aside(out_fd, RESUME)
            finally:
                os.close(resume_fd)
        for name in sorted(n for n in os.listdir(out_fd) if n.startswith(_STAGING)):
            staging_fd = _open_dir(out_fd, name)
            if staging_fd is None:
                _remove(self.out / name)  # a link or a file under a staging name: never followed
                continue
            try:
                done = self._finish(out_fd, staging_fd, name)
            finally:
                os.close(staging_fd)
            if done is False:
                self._set_aside(out_fd, name)
            else:
                _remove(self.out / name)

    def _finish(self, out_fd: int, staging_fd: int, where: str) -> bool | None:
        """Roll forward the commit journaled in a dead run's staging folder: None when there is no
        journal, True once replayed, False when it fails the checks (then nothing was moved)."""
        try:
            os.stat(_JOURNAL, dir_fd=staging_fd, follow_symlinks=False)
        except FileNotFoundError:
            return None
        plan = _read_plan(out_fd, staging_fd)
        if plan is None:
            log.warning(
                "%s: a commit journal that is damaged or names entries outside the run's outputs; it was "
                "not replayed and is set aside (its staging folder is kept under a .set-aside- name)",
                self.out / where / _JOURNAL,
            )
            return False
        self._apply(out_fd, staging_fd, *plan)
        return True

    def _set_aside(self, out_fd: int, name: str) -> None:
        os.rename(name, f".set-aside-{name.lstrip('.')}-{time.time_ns()}", src_dir_fd=out_fd, dst_dir_fd=out_fd)

    def commit(self) -> list[str]:
        """Move the staged set into place, replacing the earlier set; returns the new set's names."""
        links = links_under(self.staging)
        if links:
            raise OutputError(
                f"{str(links[0])!r} is a link, planted where this run writes: a run never commits links; "
                "remove it and run again"
            )
        new = sorted(p.name for p in self.staging.iterdir() if p.name not in (_JOURNAL, _OLD))
        write_atomic(self.staging / MANIFEST, json.dumps({"files": new}) + "\n", fsync=True)
        new.append(MANIFEST)
        # The earlier set, and whatever already stands under a new name (e.g. from a pre-manifest run).
        old = sorted(set(committed_set(self.out)) | {n for n in new if (self.out / n).exists()})
        write_atomic(self.staging / _JOURNAL, json.dumps({"new": new, "old": old}), fsync=True)
        # A signal now would stop the renames half-way: hold it until the set is in place.
        held = signal.pthread_sigmask(signal.SIG_BLOCK, _HELD_SIGNALS)
        staging_fd = os.open(self.staging, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
        try:
            assert self._lock_fd is not None
            self._apply(self._lock_fd, staging_fd, new, old)
            self.committed = True
        finally:
            os.close(staging_fd)
            signal.pthread_sigmask(signal.SIG_SETMASK, held)
        return new

    def _apply(self, out_fd: int, staging_fd: int, new: list[str], old: list[str]) -> None:
        """Idempotent: park every old entry in ``staging/.old``, then move every staged entry in. Names
        are plain (checked by :func:`_read_plan` or made by :meth:`commit`); renames relative to the open
        folders move the entries themselves, links included, and never follow one."""
        with contextlib.suppress(FileExistsError):
            os.mkdir(_OLD, dir_fd=staging_fd)
        parked_fd = _open_dir(staging_fd, _OLD)
        if parked_fd is None:
            raise OutputError(
                f"{str(self.out)!r}: a staging folder's {_OLD!r} is not a folder: remove it and run again"
            )
        try:
            for name in old:
                if name == RESUME or name.startswith(_STAGING):
                    continue
                already_new = name in new and not _exists(staging_fd, name)
                if _exists(out_fd, name) and not already_new:
                    os.rename(name, name, src_dir_fd=out_fd, dst_dir_fd=parked_fd)
            for name in new:
                if _exists(staging_fd, name):
                    os.rename(name, name, src_dir_fd=staging_fd, dst_dir_fd=out_fd)
        finally:
            os.close(parked_fd)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(_JOURNAL, dir_fd=staging_fd)

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        try:
            if (self.staging / _JOURNAL).exists():
                return  # a commit stopped half-way: its journal lets the next run into OUT finish it
            if self.resumable:
                # Kept for resume=true when a signal stopped the run after a checkpoint (a kill keeps it
                # anyway) or a resume was refused; an error (bad input, full disk) would stop a resume again.
                stopped = exc_type is not None and issubclass(exc_type, (KeyboardInterrupt, ResumeRefused))
                if not self.committed and stopped and (self.out / RESUME / "checkpoint.pt").is_file():
                    log.info("kept %s: resume=true continues this run", self.out / RESUME)
                    if exc is not None:  # the door says what the stop left
                        exc.resume_kept = str(self.out / RESUME)  # type: ignore[attr-defined]
                    return
                _remove(self.out / RESUME)
            _remove(self.staging)
            if exc is not None and not self.committed:
                exc.run_removed = True  # type: ignore[attr-defined]
            if not self.committed:
                for d in self.created:
                    try:
                        d.rmdir()
                    except OSError:
                        break
        finally:
            self._unlock()

    def _unlock(self) -> None:
        if self._lock_fd is not None:
            fcntl.flock(self._lock_fd, fcntl.LOCK_UN)
            os.close(self._lock_fd)
            self._lock_fd = None


class LiveOutputs(OutputTransaction):
    """The outputs of a live (online) run: written under their final names while it runs, each valid up
    to the last completed frame, because they are the product while the stream lasts. Under the same
    lock as a transaction. A folder that holds an earlier run's outputs is refused (the run would replace
    them as it starts, and a failed run would leave neither); the manifest names the new set at once, so
    the next run into ``OUT`` replaces it as it would a committed one."""

    def __init__(self, out: str | Path, planned: Iterable[str], created: Sequence[Path] = ()) -> None:
        super().__init__(out, created)
        self.planned = sorted(set(planned))
        self.staging = self.out  # path(name) is the final name

    def __enter__(self) -> LiveOutputs:
        self._lock()
        try:
            self._recover()
            check_no_earlier_outputs(self.out, self.planned)
            write_atomic(self.out / MANIFEST, json.dumps({"files": [*self.planned, MANIFEST]}) + "\n", fsync=True)
        except BaseException:
            self._unlock()
            raise
        self.committed = True
        return self

    def commit(self) -> list[str]:
        return [*self.planned, MANIFEST]

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if exc is not None:  # the door says what the stop left
            exc.live_kept = str(self.out)  # type: ignore[attr-defined]
        self._unlock()
