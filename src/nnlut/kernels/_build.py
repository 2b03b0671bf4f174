"""Compile and load the fused CPU kernels (``csrc/``) with the system C compiler.

The C source is one translation unit made of parts (``csrc/*.h`` included by
``csrc/nnlut_kernels.c``). It is compiled once per machine into nnlut's cache folder
(``$NNLUT_CACHE`` or ``~/.cache/nnlut``), keyed by every part, the compiler, its flags and the
CPU's instruction set. Without a working compiler, or with ``NNLUT_KERNELS=0``,
:func:`library` is None and callers use the reference evaluation.
"""

from __future__ import annotations

import ctypes
import hashlib
import os
import platform
import shutil
import subprocess
import tempfile
import threading
from pathlib import Path

from .._files import cache_dir
from .._logging import logger
from ._pack import FIX, PWL32

SRC_DIR = Path(__file__).with_name("csrc")
MAIN = SRC_DIR / "nnlut_kernels.c"
ABI = 3
_LOCK = threading.Lock()
_LIB: ctypes.CDLL | None = None
_FAILED: str | None = None


def _cpu_flags() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith(("flags", "Features")):
                return line
    except OSError:
        pass
    return platform.processor()


def source_key(cc: str, flags: list[str]) -> str:
    """Hash of every source part (name and bytes), the compiler, its flags and the CPU."""
    h = hashlib.sha256()
    for part in sorted(SRC_DIR.glob("*.[ch]")):
        h.update(part.name.encode() + b"\0" + part.read_bytes() + b"\0")
    h.update(" ".join([cc, *flags, platform.machine(), _cpu_flags()]).encode())
    return h.hexdigest()[:16]


def _compile() -> ctypes.CDLL:
    cc = os.environ.get("CC") or shutil.which("gcc") or shutil.which("cc")
    if cc is None:
        raise RuntimeError("no C compiler (gcc/cc) found")
    flags = ["-O3", "-march=native", "-ffp-contract=off", "-fno-math-errno", "-fopenmp", "-shared", "-fPIC", "-std=c99"]
    # extra flags, e.g. -mno-avx512f to build (and test) the portable path on an AVX-512 machine
    flags += os.environ.get("NNLUT_KERNELS_FLAGS", "").split()
    out_dir = cache_dir() / "kernels"
    lib_path = out_dir / f"nnlut_kernels_{source_key(cc, flags)}.so"
    if not lib_path.exists():
        out_dir.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(suffix=".so", dir=out_dir)
        os.close(fd)
        try:
            res = subprocess.run([cc, *flags, f"-I{SRC_DIR}", str(MAIN), "-o", tmp, "-lm"], capture_output=True, text=True)
            if res.returncode != 0:
                raise RuntimeError(f"compiling the nnlut kernels failed: {res.stderr.strip()[:500]}")
            os.replace(tmp, lib_path)
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
    lib = ctypes.CDLL(str(lib_path))
    _declare(lib)
    if lib.nnlut_kernels_abi() != ABI:
        raise RuntimeError("nnlut kernels ABI mismatch")
    return lib


def _declare(lib: ctypes.CDLL) -> None:
    p32, fix, ptr, i64, i32, f32 = (ctypes.POINTER(PWL32), ctypes.POINTER(FIX), ctypes.c_void_p, ctypes.c_int64,
                                    ctypes.c_int, ctypes.c_float)
    signatures = {
        "nnlut_pwl_f32": [p32, ptr, ptr, i64, i32],
        "nnlut_pwl_bf16": [p32, ptr, ptr, i64, i32],
        "nnlut_softmax_f32": [p32, p32, ptr, ptr, i64, i64, i32],
        "nnlut_attn_softmax_f32": [p32, p32, ptr, ptr, i64, i64, i64, i64, f32, ptr, i64, i64, i64, i64, i32],
        "nnlut_layernorm_f32": [p32, ptr, ptr, ptr, ptr, i64, i64, f32, i32],
        "nnlut_rmsnorm_f32": [p32, ptr, ptr, f32, ptr, i64, i64, f32, i32],
        "nnlut_fixed_f32": [fix, ptr, ptr, i64, i32],
        "nnlut_fixed_lut": [fix, ptr],
        "nnlut_flash_attn": [p32, p32, ptr, i32],
    }
    for name, args in signatures.items():
        fn = getattr(lib, name)
        fn.argtypes = args
        fn.restype = None


def library() -> ctypes.CDLL | None:
    """The compiled kernels, or None (with the reason logged once) when unavailable."""
    global _LIB, _FAILED
    if _LIB is not None or _FAILED is not None:
        return _LIB
    with _LOCK:
        if _LIB is None and _FAILED is None:
            if os.environ.get("NNLUT_KERNELS", "1").strip() in ("0", "false", "off", "no"):
                _FAILED = "disabled by NNLUT_KERNELS=0"
            else:
                try:
                    _LIB = _compile()
                except Exception as e:  # any build/load problem means: use the reference path
                    _FAILED = str(e)
                    logger.warning("nnlut fused CPU kernels unavailable, using the reference evaluation: %s", e)
    return _LIB


def available() -> bool:
    """Whether the compiled CPU kernels load on this machine."""
    return library() is not None


def unavailable_reason() -> str | None:
    """Why the CPU kernels are unavailable (None when they are available)."""
    library()
    return _FAILED
