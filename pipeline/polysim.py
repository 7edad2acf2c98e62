"""The one place that touches polySim's process-global state.

polySim draws from C `rand()` without seeding it, keeps its state in C globals, writes three
files into the current directory and prints from C to file descriptor 1. Every call therefore
goes through `simulate`, which seeds `rand()`, holds a process-wide lock, runs inside a private
scratch directory whose three file names point at /dev/null, and sends fd 1 to /dev/null.

About a third of a call is spent formatting that text (one `fprintf("%u,")` per pixel of the
grain map). So, once per process, `simulate` points libpolySim's `fprintf` import (its slot in
the library's writable `.got.plt`, found through the library's own ELF relocation table) at a
libc function that ignores its arguments and returns 0; see `mute_fprintf`. fprintf draws no
random numbers: the results are unchanged, and a canary sample made before and after proves it
in every process. Set RECONSTRUCTION_GB_NO_FPRINTF_PATCH=1 to keep the plain call.
"""

from __future__ import annotations

import atexit
import ctypes
import ctypes.util
import os
import platform
import shutil
import struct
import sys
import tempfile
import threading
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import polySim

# The files polySim's generateStructure opens in the current directory.
POLYSIM_FILES = ("PlysimDebug.txt", "PlysimAvrami.csv", "img.csv")

_LOCK = threading.Lock()
_LIBC = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
_scratch: Path | None = None
# None until the first call of this process; then a FprintfPatch (muted) or the reason it is not.
_fprintf_state: FprintfPatch | str | None = None
NO_PATCH_ENV = "RECONSTRUCTION_GB_NO_FPRINTF_PATCH"


class PolySimError(RuntimeError):
    """polySim reported an internal error (a non-positive grain count)."""


@dataclass(frozen=True)
class Structure:
    """One simulated grain structure."""

    grains: np.ndarray  # (S, S) uint16 grain ids 1..num_grains
    num_grains: int
    avrami_exponent: float


def use_scratch_dir(path: str | os.PathLike[str]) -> Path:
    """Make `path` this process's polySim scratch directory (created if needed)."""
    global _scratch
    scratch = Path(path)
    scratch.mkdir(parents=True, exist_ok=True)
    for name in POLYSIM_FILES:
        link = scratch / name
        if not link.is_symlink():
            link.unlink(missing_ok=True)
            link.symlink_to(os.devnull)
    with _LOCK:
        _scratch = scratch
    return scratch


def _scratch_dir() -> Path:
    if _scratch is None:
        path = tempfile.mkdtemp(prefix="polysim-")
        atexit.register(shutil.rmtree, path, ignore_errors=True)
        use_scratch_dir(path)
    assert _scratch is not None
    return _scratch


def simulate(size: int, nucleation_rate: int, growth_rate: int, height: int, seed: int) -> Structure:
    """Run polySim once on a size x size image; the result is a pure function of the arguments."""
    if nucleation_rate <= 0 or growth_rate <= 0:
        raise ValueError("polySim loops forever unless both rates are > 0")
    scratch = _scratch_dir()
    with _LOCK:
        if _fprintf_state is None:
            _mute_fprintf_once(scratch)
        grains, num_grains, avrami = _call(scratch, size, nucleation_rate, growth_rate, height, seed)
    if num_grains <= 0:
        raise PolySimError(f"polySim failed with code {num_grains} (seed {seed})")
    return Structure(grains=grains, num_grains=int(num_grains), avrami_exponent=float(avrami))


def _call(scratch: Path, size: int, nucleation_rate: int, growth_rate: int, height: int,
          seed: int) -> tuple[np.ndarray, int, float]:
    """One seeded polySim call in the scratch directory, fd 1 silenced (the caller holds _LOCK)."""
    image = np.zeros((size, size), dtype=np.uint16)
    with _silenced_stdout(), _working_directory(scratch):
        _LIBC.srand(ctypes.c_uint(seed))
        return polySim.generate_structure(image, nucleation_rate, growth_rate, height=height,
                                          randomize_gray_values=True)


class _working_directory:
    def __init__(self, path: Path) -> None:
        self.path = path

    def __enter__(self) -> None:
        self.previous = os.getcwd()
        os.chdir(self.path)

    def __exit__(self, *exc: object) -> None:
        os.chdir(self.previous)


class _silenced_stdout:
    """Point fd 1 at /dev/null; C stdio is flushed on both sides so nothing leaks late."""

    def __enter__(self) -> None:
        _LIBC.fflush(None)
        self.saved = os.dup(1)
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, 1)
        os.close(devnull)

    def __exit__(self, *exc: object) -> None:
        _LIBC.fflush(None)
        os.dup2(self.saved, 1)
        os.close(self.saved)


# --- polySim's fprintf made a no-op ---------------------------------------------------------------

class PolySimUnpatched(RuntimeWarning):
    """polySim runs with its own fprintf: same results, about a third slower."""


@dataclass(frozen=True)
class FprintfPatch:
    """libpolySim's fprintf slot, what it held, and the no-op now in it."""

    slot: int
    original: int
    noop: str


# ELF machine -> (its PLT relocation type, accepted machine code of a function that returns 0).
_X86_RET0 = (b"\x31\xc0\xc3", b"\xf3\x0f\x1e\xfa\x31\xc0\xc3")  # [endbr64;] xor eax,eax; ret
_ARM_RET0 = (struct.pack("<II", 0x52800000, 0xD65F03C0), struct.pack("<III", 0xD503245F, 0x52800000, 0xD65F03C0))
_ARCHES = {62: ("x86_64", 7, _X86_RET0), 183: ("aarch64", 1026, _ARM_RET0)}  # [bti c;] mov w0,#0; ret
# glibc functions whose whole body is `return 0;` ("nothing to be done"); the first one whose
# code is checked to be exactly that becomes fprintf. A native function: no Python per call.
_NOOP_CANDIDATES = ("pthread_condattr_destroy", "pthread_rwlockattr_destroy", "pthread_spin_destroy",
                    "pthread_barrierattr_destroy")
# A small sample compared with and without the patch in every process (about 10 ms each way).
_CANARY = (128, 15, 2, 300, 20261124)


def fprintf_muted() -> bool:
    """Whether polySim's fprintf is a no-op in this process."""
    return isinstance(_fprintf_state, FprintfPatch)


def mute_fprintf() -> str | None:
    """Make libpolySim's fprintf a no-op in this process; None on success, else why not."""
    global _fprintf_state
    scratch = _scratch_dir()  # before taking the lock: use_scratch_dir takes it too
    with _LOCK:
        if not isinstance(_fprintf_state, FprintfPatch):
            _fprintf_state = _patch(scratch)
        return None if isinstance(_fprintf_state, FprintfPatch) else _fprintf_state


def unmute_fprintf() -> None:
    """Give libpolySim its own fprintf back (for measurements and tests)."""
    global _fprintf_state
    with _LOCK:
        if isinstance(_fprintf_state, FprintfPatch):
            ctypes.c_void_p.from_address(_fprintf_state.slot).value = _fprintf_state.original
        _fprintf_state = "restored by unmute_fprintf()"


def _mute_fprintf_once(scratch: Path) -> None:
    """First call of this process (with _LOCK held): patch unless told not to; say so if not."""
    global _fprintf_state
    if os.environ.get(NO_PATCH_ENV, "") not in ("", "0"):
        _fprintf_state = f"{NO_PATCH_ENV} is set"
    else:
        _fprintf_state = _patch(scratch)
    if not isinstance(_fprintf_state, FprintfPatch):
        warnings.warn(f"polySim keeps its own fprintf ({_fprintf_state}): same results, about a third slower",
                      PolySimUnpatched, stacklevel=3)


def _patch(scratch: Path) -> FprintfPatch | str:
    """Point libpolySim's fprintf slot at a native no-op if every check passes; else the reason."""
    try:
        target = _fprintf_slot()
        original = ctypes.c_void_p.from_address(target.slot).value or 0
        if original != target.libc_fprintf and original not in target.stubs:
            return f"its fprintf slot holds {original:#x}, neither libc's fprintf nor its own PLT stub"
        noop, name = _native_noop(target.return_0)
        before = _canary(scratch)
        ctypes.c_void_p.from_address(target.slot).value = noop
        if _canary(scratch) != before:
            ctypes.c_void_p.from_address(target.slot).value = original
            return "a canary sample differed with fprintf muted"
        return FprintfPatch(slot=target.slot, original=original, noop=name)
    except (OSError, ValueError, LookupError, AttributeError, struct.error) as exc:
        return str(exc) or type(exc).__name__


def _canary(scratch: Path) -> tuple[bytes, int, float]:
    grains, num_grains, avrami = _call(scratch, *_CANARY)
    return grains.tobytes(), int(num_grains), float(avrami)


@dataclass(frozen=True)
class _Slot:
    slot: int  # address of libpolySim's fprintf GOT entry
    libc_fprintf: int  # what it holds once bound
    stubs: range  # libpolySim's .plt: what it holds before the first call (lazy binding)
    return_0: tuple[bytes, ...]  # machine code of `return 0` on this architecture


def _fprintf_slot() -> _Slot:
    """Find libpolySim's fprintf GOT slot from its ELF relocations; checks platform and layout."""
    if not sys.platform.startswith("linux"):
        raise ValueError(f"not on Linux ({sys.platform})")
    path = sys.modules["polySim.libpolySim"].__file__
    if path is None:
        raise ValueError("libpolySim's file is unknown")
    elf = _Elf(Path(path).read_bytes())
    arch, jump_slot, return_0 = _ARCHES.get(elf.machine, (None, 0, ()))
    if arch is None or platform.machine() != arch or elf.type != 3:  # ET_DYN
        raise ValueError(f"unexpected platform or library ({platform.machine()}, ELF machine {elf.machine})")
    symbols = elf.dynamic_symbols()
    relocation = [r for r in elf.plt_relocations() if symbols[r[1]][0] == "fprintf"]
    if len(relocation) != 1 or relocation[0][2] != jump_slot:
        raise ValueError("libpolySim has no single PLT relocation for fprintf")
    anchor = next((value for name, value in symbols if name == "generateStructure" and value), None)
    if anchor is None:
        raise ValueError("libpolySim exports no generateStructure")
    # The copy Python loaded (RTLD_NOLOAD: never a second one); its load base from a known symbol.
    library = ctypes.CDLL(path, mode=os.RTLD_NOLOAD | os.RTLD_LAZY)
    base = (ctypes.cast(library.generateStructure, ctypes.c_void_p).value or 0) - anchor
    slot = base + relocation[0][0]
    mappings = _mappings(os.stat(path).st_ino)
    if not any(start == base and offset == 0 for start, _, _, offset in mappings):
        raise ValueError("libpolySim's load address does not match /proc/self/maps")
    if not any(start <= slot + 8 <= end and perms.startswith("rw") for start, end, perms, _ in mappings):
        raise ValueError("libpolySim's fprintf slot is not writable (full RELRO)")
    plt_address, _, plt_size = elf.section(".plt")
    return _Slot(slot=slot, libc_fprintf=ctypes.cast(_LIBC.fprintf, ctypes.c_void_p).value or 0,
                 stubs=range(base + plt_address, base + plt_address + plt_size), return_0=return_0)


def _mappings(inode: int) -> list[tuple[int, int, str, int]]:
    """(start, end, perms, file offset) of this process's mappings of the file with `inode`."""
    found = []
    for line in Path("/proc/self/maps").read_text().splitlines():
        fields = line.split()
        if len(fields) >= 6 and fields[4] == str(inode):
            start, end = (int(x, 16) for x in fields[0].split("-"))
            found.append((start, end, fields[1], int(fields[2], 16)))
    return found


def _native_noop(return_0: tuple[bytes, ...]) -> tuple[int, str]:
    """Address and name of a libc function whose machine code is exactly `return 0`."""
    for name in _NOOP_CANDIDATES:
        address = ctypes.cast(getattr(_LIBC, name), ctypes.c_void_p).value or 0
        if any(ctypes.string_at(address, len(code)) == code for code in return_0):
            return address, name
    raise ValueError("no libc function found whose code is `return 0`")


class _Elf:
    """Just enough of a 64-bit little-endian ELF shared object: sections, .dynsym, .rela.plt."""

    def __init__(self, data: bytes):
        if data[:4] != b"\x7fELF" or data[4] != 2 or data[5] != 1:
            raise ValueError("libpolySim is not a 64-bit little-endian ELF file")
        self.data = data
        (self.type, self.machine) = struct.unpack_from("<HH", data, 16)
        shoff, = struct.unpack_from("<Q", data, 40)
        entsize, count, names = struct.unpack_from("<HHH", data, 58)
        headers = [struct.unpack_from("<IIQQQQIIQQ", data, shoff + i * entsize) for i in range(count)]
        strtab = headers[names]
        self.sections = {self._string(strtab[4], h[0]): (h[3], h[4], h[5]) for h in headers}  # addr, offset, size

    def _string(self, table_offset: int, index: int) -> str:
        end = self.data.index(b"\0", table_offset + index)
        return self.data[table_offset + index : end].decode()

    def section(self, name: str) -> tuple[int, int, int]:
        """(address, file offset, size) of a section."""
        if name not in self.sections:
            raise ValueError(f"libpolySim has no {name} section")
        return self.sections[name]

    def dynamic_symbols(self) -> list[tuple[str, int]]:
        """(name, value) of every .dynsym entry, by index."""
        _, offset, size = self.section(".dynsym")
        _, strings, _ = self.section(".dynstr")
        return [(self._string(strings, name), value)
                for name, _, _, _, value, _ in struct.iter_unpack("<IBBHQQ", self.data[offset : offset + size])]

    def plt_relocations(self) -> list[tuple[int, int, int]]:
        """(offset, symbol index, type) of every .rela.plt entry."""
        _, offset, size = self.section(".rela.plt")
        return [(where, info >> 32, info & 0xFFFFFFFF)
                for where, info, _ in struct.iter_unpack("<QQq", self.data[offset : offset + size])]
