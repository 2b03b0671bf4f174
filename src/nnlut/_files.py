"""Safe file writing: single files and whole result folders, published atomically.

Every file nnlut writes goes through here:

- :func:`atomic_write_bytes` / :func:`atomic_write_text`: one file, written to a hidden
  temporary in the same folder and renamed over the target.
- :class:`OutputFolder`: a multi-file result (calibration, export, hardware, study). Files are
  written into a hidden staging folder beside the target; on success the staging folder is
  swapped with the target in one atomic exchange (``renameat2(RENAME_EXCHANGE)`` on Linux), so
  readers see the previous result or the new one, never a mix. A ``.nnlut-output.json`` marker
  lists the files nnlut wrote; anything else already in the folder (the user's notes, data) is
  carried over untouched, and a non-empty folder without the marker is refused.

Modes honour the umask (files ``0o666 & ~umask``, folders ``0o777 & ~umask``). Temporaries
carry the writing process id in their name; leftovers of processes that no longer run (a kill,
a power cut) are swept by the next write to the same place. ``NNLUT_FAULT_AT=k`` makes the
process exit abruptly at the k-th write/rename step (fault-injection tests only).
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import json
import os
import re
import secrets
import shutil
from pathlib import Path
from types import TracebackType
from typing import Any

from ._errors import NNLUTError

MARKER = ".nnlut-output.json"
FAULT_ENV = "NNLUT_FAULT_AT"
FAULT_EXIT = 86  # exit status of a fault-injected process
_steps = 0


def fault_point() -> None:
    """Count one write/rename step; exit at once (no cleanup) at step ``$NNLUT_FAULT_AT``."""
    global _steps
    _steps += 1
    k = os.environ.get(FAULT_ENV)
    if k and k.isdigit() and _steps == int(k):
        os._exit(FAULT_EXIT)


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def file_mode() -> int:
    """Mode of a new file: ``0o666`` less the process umask."""
    return 0o666 & ~_umask()


def dir_mode() -> int:
    """Mode of a new folder: ``0o777`` less the process umask."""
    return 0o777 & ~_umask()


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True  # exists, owned by someone else
    return True


def _oserror(path: Path | str, e: OSError) -> NNLUTError:
    return NNLUTError(f"cannot write {str(path)!r}: {e.strerror or e}")


# ----------------------------------------------------------------------------- single files
def _tmp_name(name: str) -> str:
    return f".{name}.nnlut-{os.getpid()}-{secrets.token_hex(4)}.tmp"


def _sweep_tmp(folder: Path, name: str | None = None) -> None:
    """Remove temporaries of dead writers in ``folder``: those of file ``name``, or of any file."""
    stem = re.escape(name) if name is not None else ".+"
    pat = re.compile(rf"^\.{stem}\.nnlut-(\d+)-[0-9a-f]+\.tmp$")
    with contextlib.suppress(OSError):
        for entry in folder.iterdir():
            m = pat.match(entry.name)
            if m and not _alive(int(m.group(1))):
                with contextlib.suppress(OSError):
                    entry.unlink()


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes) -> None:
    """Write ``data`` to ``path`` through a temporary file in the same folder and a rename.

    The file gets mode ``0o666 & ~umask``. The folder must exist. Errors (a full disk, no
    permission) raise :class:`NNLUTError`; no temporary is left behind.
    """
    path = Path(path)
    folder = path.parent if str(path.parent) else Path(".")
    if not folder.is_dir():
        raise NNLUTError(f"cannot write {str(path)!r}: folder {str(folder)!r} does not exist")
    _sweep_tmp(folder, path.name)
    tmp = folder / _tmp_name(path.name)
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)  # the umask applies
    except OSError as e:
        raise _oserror(path, e) from None
    try:
        with os.fdopen(fd, "wb") as f:
            fault_point()
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        fault_point()
        os.replace(tmp, path)
        fault_point()
    except BaseException as e:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        if isinstance(e, OSError):
            raise _oserror(path, e) from None
        raise


def atomic_write_text(path: str | os.PathLike[str], text: str) -> None:
    """UTF-8 :func:`atomic_write_bytes`."""
    atomic_write_bytes(path, text.encode("utf-8"))


def read_json(path: str | os.PathLike[str], what: str) -> Any:
    """Read a JSON file; every problem (missing, a folder, unreadable, bad UTF-8, bad JSON, too
    deep, numbers out of range) raises one :class:`NNLUTError` naming ``what`` and the file."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise NNLUTError(f"{what} {str(p)!r} does not exist") from None
    except IsADirectoryError:
        raise NNLUTError(f"{what} {str(p)!r} is a folder, not a file") from None
    except (OSError, UnicodeDecodeError) as e:
        raise NNLUTError(f"cannot read {what} {str(p)!r}: {getattr(e, 'strerror', None) or e}") from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as e:
        raise NNLUTError(f"{what} {str(p)!r} is not valid JSON: {e}") from None
    except RecursionError:
        raise NNLUTError(f"{what} {str(p)!r} is nested too deeply") from None
    except ValueError as e:  # e.g. an integer with more digits than Python converts
        raise NNLUTError(f"{what} {str(p)!r} has an invalid value: {e}") from None


# ----------------------------------------------------------------------------- folders
def _leftover_pattern(name: str) -> re.Pattern[str]:
    return re.compile(rf"^\.{re.escape(name)}\.nnlut-(stage|old)-(\d+)-[0-9a-f]+$")


def sweep_leftovers(folder: str | os.PathLike[str]) -> int:
    """Remove staging folders that a killed nnlut process left beside ``folder``, and put a
    previous result back if a kill hit between the two renames of the fallback swap. Only
    entries named as nnlut names its own temporaries, of processes no longer running, are
    touched. Returns how many were removed."""
    folder = Path(folder)
    parent = folder.parent if str(folder.parent) else Path(".")
    pat = _leftover_pattern(folder.name)
    removed = 0
    try:
        entries = sorted(parent.iterdir())
    except OSError:
        return 0
    for entry in entries:
        m = pat.match(entry.name)
        if not m or _alive(int(m.group(2))):
            continue
        if m.group(1) == "old" and not folder.exists():
            with contextlib.suppress(OSError):
                entry.rename(folder)
                continue
        shutil.rmtree(entry, ignore_errors=True)
        removed += 1
    if folder.is_dir():
        _sweep_tmp(folder)
    return removed


def output_files(folder: Path) -> list[str] | None:
    """The files nnlut wrote into ``folder`` (from its marker), or None without a marker."""
    try:
        data = json.loads((folder / MARKER).read_text(encoding="utf-8"))
        files = data["files"]
        if isinstance(files, list) and all(isinstance(f, str) for f in files):
            return files
    except (OSError, ValueError, KeyError, TypeError, RecursionError):
        pass
    return None


def check_output_folder(path: str | os.PathLike[str]) -> Path:
    """Fail early (before any work) if ``path`` cannot receive a result folder: its parent
    must exist and be writable, and ``path`` must be absent, an empty folder, or a folder
    nnlut wrote before (its own files are replaced, everything else is kept)."""
    p = Path(path)
    parent = p.parent if str(p.parent) else Path(".")
    if str(path) == "" or p.name in ("", ".", ".."):
        raise NNLUTError(f"output folder {str(path)!r} must name a folder, not {p.name or str(path)!r}")
    if p.is_symlink():
        raise NNLUTError(f"output folder {str(path)!r} is a symbolic link; give the folder it points to")
    if p.exists() and not p.is_dir():
        raise NNLUTError(f"output folder {str(path)!r} exists and is not a folder")
    if not parent.is_dir():
        raise NNLUTError(f"cannot write {str(path)!r}: folder {str(parent)!r} does not exist")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise NNLUTError(f"cannot write {str(path)!r}: folder {str(parent)!r} is not writable")
    if p.is_dir() and output_files(p) is None:
        try:
            content = [e.name for e in p.iterdir()]
        except OSError as e:
            raise _oserror(p, e) from None
        if content:
            raise NNLUTError(f"output folder {str(path)!r} is not empty and was not written by nnlut "
                             f"(it holds {len(content)} entries, e.g. {sorted(content)[0]!r}); choose a new or empty folder")
    return p


_libc: Any = None


def _exchange(a: Path, b: Path) -> bool:
    """Atomically swap two paths (Linux ``renameat2`` with ``RENAME_EXCHANGE``); False when the
    system cannot."""
    global _libc
    if _libc is None:
        try:
            _libc = ctypes.CDLL(None, use_errno=True)
            _libc.renameat2  # noqa: B018
        except (OSError, AttributeError):
            _libc = False
    if _libc is False:
        return False
    at_fdcwd, rename_exchange = -100, 2
    rc = _libc.renameat2(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), rename_exchange)
    if rc == 0:
        return True
    err = ctypes.get_errno()
    if err in (errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP, errno.EPERM):
        return False
    raise OSError(err, os.strerror(err), str(b))


def _carry_user_files(old: Path, stage: Path, ours: set[str]) -> None:
    """Hard-link (or copy) every entry of ``old`` that nnlut did not write into ``stage``."""
    for root, dirs, files in os.walk(old):
        rel_root = Path(root).relative_to(old)
        for d in dirs:
            rel = rel_root / d
            if (old / rel).is_symlink():  # a link to a folder: keep the link, never its target
                if not (stage / rel).exists():
                    os.symlink(os.readlink(old / rel), stage / rel)
            elif str(rel) not in ours:
                (stage / rel).mkdir(exist_ok=True)
        for f in files:
            rel = rel_root / f
            if str(rel) in ours or str(rel) == MARKER or (stage / rel).exists():
                continue
            fault_point()
            try:
                os.link(old / rel, stage / rel, follow_symlinks=False)
            except OSError:
                shutil.copy2(old / rel, stage / rel, follow_symlinks=False)


class OutputFolder:
    """Write a multi-file result that becomes visible whole or not at all.

    Usage::

        with OutputFolder("calib", kind="calibration") as out:
            out.write_text("manifest.json", text)   # or write into out.path directly
        # here "calib" holds the new result; on an exception it still holds the old one

    Args:
        folder: the result folder; checked at construction (see :func:`check_output_folder`).
        kind: what the result is (recorded in the marker file).
    """

    def __init__(self, folder: str | os.PathLike[str], kind: str) -> None:
        self.folder = check_output_folder(folder)
        self.kind = kind
        self.path = Path()

    def __enter__(self) -> OutputFolder:
        sweep_leftovers(self.folder)
        parent = self.folder.parent if str(self.folder.parent) else Path(".")
        self.path = parent / f".{self.folder.name}.nnlut-stage-{os.getpid()}-{secrets.token_hex(4)}"
        try:
            os.mkdir(self.path, 0o777)
        except OSError as e:
            raise _oserror(self.folder, e) from None
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        if exc_type is None:
            try:
                self._commit()
            except OSError as e:
                shutil.rmtree(self.path, ignore_errors=True)
                raise _oserror(self.folder, e) from None
        else:
            shutil.rmtree(self.path, ignore_errors=True)

    def write_bytes(self, rel: str, data: bytes) -> Path:
        """Write one file of the result (``rel``: a path inside the folder)."""
        target = self.path / rel
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            fault_point()
            with open(target, "xb") as f:
                f.write(data)
        except OSError as e:
            raise _oserror(self.folder / rel, e) from None
        return target

    def write_text(self, rel: str, text: str) -> Path:
        return self.write_bytes(rel, text.encode("utf-8"))

    def _commit(self) -> None:
        files = sorted(str(p.relative_to(self.path)) for p in self.path.rglob("*") if p.is_file() or p.is_symlink())
        self.write_text(MARKER, json.dumps({"format": "nnlut.output", "kind": self.kind, "files": files}, indent=1) + "\n")
        exists = self.folder.is_dir()
        if exists:
            old_files = output_files(self.folder)
            if old_files is None:  # an empty folder (checked before): nothing to keep
                old_files = []
            _carry_user_files(self.folder, self.path, set(old_files))
        for d, _, fs in os.walk(self.path):
            for f in fs:
                with contextlib.suppress(OSError), open(os.path.join(d, f), "rb") as fh:
                    os.fsync(fh.fileno())
        fault_point()
        if not exists:
            os.rename(self.path, self.folder)
            fault_point()
            return
        if _exchange(self.path, self.folder):
            fault_point()
            shutil.rmtree(self.path, ignore_errors=True)
            fault_point()
            return
        old = self.path.with_name(f".{self.folder.name}.nnlut-old-{os.getpid()}-{secrets.token_hex(4)}")
        os.rename(self.folder, old)
        fault_point()
        os.rename(self.path, self.folder)
        fault_point()
        shutil.rmtree(old, ignore_errors=True)
