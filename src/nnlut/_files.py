"""Safe file writing: single files and whole result folders, published atomically.

Every file nnlut writes goes through here:

- :func:`atomic_write_bytes` / :func:`atomic_write_text`: one file, written to a hidden
  temporary in the same folder and renamed over the target.
- :class:`OutputFolder`: a multi-file result (calibration, export, hardware, study). Files are
  written into a hidden staging folder beside the target; on success the staging folder is
  swapped with the target in one atomic exchange (``renameat2(RENAME_EXCHANGE)`` on Linux), so
  readers see the previous result or the new one, never a mix. A ``.nnlut-output.json`` marker
  lists the files nnlut wrote with their SHA-256; only files that still match are replaced or
  removed by the next result. Anything else already in the folder (the user's notes, data, a
  file a forged marker lists) is carried over untouched, a file of the new result's name that
  nnlut did not write is refused, and a non-empty folder without the marker is refused.
- :func:`read_bytes` / :func:`read_json`: reading refuses, at once, anything but a regular file
  of at most ``$NNLUT_MAX_FILE_BYTES`` (32 MiB) and JSON that gives a key twice.

Modes honour the umask (files ``0o666 & ~umask``, folders ``0o777 & ~umask``). Temporaries
carry the writing process id in their name; leftovers of processes that no longer run (a kill,
a power cut) are swept by the next write to the same place. ``NNLUT_FAULT_AT=k`` makes the
process exit abruptly at the k-th write/rename step (fault-injection tests only).
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import hashlib
import json
import os
import re
import secrets
import shutil
import stat
from pathlib import Path
from types import TracebackType
from typing import Any

from ._errors import NNLUTError

MARKER = ".nnlut-output.json"
FAULT_ENV = "NNLUT_FAULT_AT"
FAULT_EXIT = 86  # exit status of a fault-injected process
_steps = 0


def cache_dir() -> Path:
    """nnlut's cache folder, the one root of every cache: ``$NNLUT_CACHE``, else
    ``~/.cache/nnlut`` (compiled kernels, fitted tables, models trained or unpacked for
    evaluation, data sets)."""
    return Path(os.environ.get("NNLUT_CACHE") or Path.home() / ".cache" / "nnlut")


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


MAX_FILE_BYTES = 32 << 20
"""Largest file nnlut reads (32 MiB; a 65,536-entry table, the most a table may hold, takes ~9 MiB).
Set ``NNLUT_MAX_FILE_BYTES`` to change it."""
MAX_FILE_ENV = "NNLUT_MAX_FILE_BYTES"


def max_file_bytes() -> int:
    """The read limit: ``$NNLUT_MAX_FILE_BYTES`` if set (a positive integer), else 32 MiB."""
    v = os.environ.get(MAX_FILE_ENV, "").strip()
    if not v:
        return MAX_FILE_BYTES
    if not v.isdigit() or int(v) <= 0:
        raise NNLUTError(f"{MAX_FILE_ENV}={v!r} must be a positive number of bytes")
    return int(v)


_KINDS = ((stat.S_ISDIR, "a folder"), (stat.S_ISFIFO, "a FIFO (named pipe)"), (stat.S_ISCHR, "a character device"),
          (stat.S_ISBLK, "a block device"), (stat.S_ISSOCK, "a socket"))


def read_bytes(path: str | os.PathLike[str], what: str) -> bytes:
    """The bytes of a regular file of at most :func:`max_file_bytes`; anything else (missing, a
    folder, a FIFO or device, too large, unreadable) raises one :class:`NNLUTError` at once,
    without blocking or reading more than the limit."""
    p = Path(path)
    limit = max_file_bytes()
    try:
        fd = os.open(p, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_NOCTTY", 0))
    except FileNotFoundError:
        raise NNLUTError(f"{what} {str(p)!r} does not exist") from None
    except IsADirectoryError:
        raise NNLUTError(f"{what} {str(p)!r} is a folder, not a file") from None
    except OSError as e:
        raise NNLUTError(f"cannot read {what} {str(p)!r}: {e.strerror or e}") from None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            kind = next((name for test, name in _KINDS if test(st.st_mode)), "not a regular file")
            raise NNLUTError(f"{what} {str(p)!r} is {kind}, not a regular file")
        if st.st_size > limit:
            raise NNLUTError(f"{what} {str(p)!r} has {st.st_size:,} bytes; at most {limit:,} are read "
                             f"(set {MAX_FILE_ENV} to change the limit)")
        chunks, got = [], 0
        while got <= limit:
            chunk = os.read(fd, min(1 << 20, limit + 1 - got))
            if not chunk:
                break
            chunks.append(chunk)
            got += len(chunk)
        if got > limit:
            raise NNLUTError(f"{what} {str(p)!r} grew beyond {limit:,} bytes while being read")
        return b"".join(chunks)
    except OSError as e:
        raise NNLUTError(f"cannot read {what} {str(p)!r}: {e.strerror or e}") from None
    finally:
        os.close(fd)


class _DuplicateKey(ValueError):
    pass


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    d: dict[str, Any] = {}
    for k, v in pairs:
        if k in d:
            raise _DuplicateKey(k)
        d[k] = v
    return d


def parse_json(data: bytes | str, what: str) -> Any:
    """Parse strict JSON; bad UTF-8, bad JSON, a key given twice in one object, nesting too deep
    and numbers out of range each raise one :class:`NNLUTError` naming ``what``."""
    try:
        text = data.decode("utf-8") if isinstance(data, bytes) else data
        return json.loads(text, object_pairs_hook=_unique_keys)
    except UnicodeDecodeError as e:
        raise NNLUTError(f"{what} is not UTF-8 text: {e}") from None
    except _DuplicateKey as e:
        raise NNLUTError(f"{what} gives the key {e.args[0]!r} twice in one object; each key may appear once") from None
    except json.JSONDecodeError as e:
        raise NNLUTError(f"{what} is not valid JSON: {e}") from None
    except RecursionError:
        raise NNLUTError(f"{what} is nested too deeply") from None
    except ValueError as e:  # e.g. an integer with more digits than Python converts
        raise NNLUTError(f"{what} has an invalid value: {e}") from None


def read_json(path: str | os.PathLike[str], what: str) -> Any:
    """Read a JSON file (see :func:`read_bytes` and :func:`parse_json`); every problem raises one
    :class:`NNLUTError` naming ``what`` and the file."""
    return parse_json(read_bytes(path, what), f"{what} {str(Path(path))!r}")


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


def _marker(folder: Path) -> dict[str, Any] | None:
    try:
        data = parse_json(read_bytes(folder / MARKER, "output marker"), "output marker")
    except NNLUTError:
        return None
    return data if isinstance(data, dict) else None


def output_files(folder: Path) -> list[str] | None:
    """The files nnlut wrote into ``folder`` (from its marker), or None without a marker."""
    data = _marker(folder)
    files = data.get("files") if data else None
    if isinstance(files, list) and all(isinstance(f, str) for f in files):
        return files
    return None


def _sha256_file(path: Path) -> str | None:
    try:
        if path.is_symlink() or not path.is_file():
            return None
        h = hashlib.sha256()
        with open(path, "rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                h.update(chunk)
        return h.hexdigest()
    except OSError:
        return None


def owned_files(folder: Path) -> set[str]:
    """The files of ``folder`` that nnlut wrote and that are unchanged since: listed in the marker
    with the SHA-256 it recorded for them. Only these may be replaced or removed by a new result;
    a marker that lists a file without its hash (forged, or edited) owns nothing."""
    data = _marker(folder)
    files = output_files(folder) or []
    hashes = data.get("sha256") if data else None
    if not isinstance(hashes, dict):
        return set()
    return {f for f in files if isinstance(hashes.get(f), str) and _sha256_file(folder / f) == hashes[f]}


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
            except NNLUTError:
                shutil.rmtree(self.path, ignore_errors=True)
                raise
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
        hashes = {f: _sha256_file(self.path / f) for f in files}
        self.write_text(MARKER, json.dumps({"format": "nnlut.output", "kind": self.kind, "files": files,
                                            "sha256": {f: h for f, h in hashes.items() if h}}, indent=1) + "\n")
        exists = self.folder.is_dir()
        if exists:
            ours = owned_files(self.folder)
            clash = sorted(f for f in files if f not in ours and os.path.lexists(self.folder / f))
            if clash:
                raise NNLUTError(f"output folder {str(self.folder)!r} holds {clash[0]!r}, which this result writes but "
                                 "nnlut did not write there (or it was changed since); move it or choose another folder")
            _carry_user_files(self.folder, self.path, ours)
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
