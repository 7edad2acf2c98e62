"""polySim's fprintf made a no-op: identical structures, a fallback that says so, nothing left in cwd."""

from __future__ import annotations

import hashlib
import os
import platform
import subprocess
import sys
import warnings

import pytest

from conftest import REPO
from pipeline import polysim
from pipeline.polysim import NO_PATCH_ENV, PolySimUnpatched, simulate

PATCHABLE = sys.platform.startswith("linux") and platform.machine() in ("x86_64", "aarch64")
needs_patch = pytest.mark.skipif(not PATCHABLE, reason="the fprintf patch exists on Linux x86-64/aarch64 only")
# polySim 0.1.2 at 128 px, rates 15 and 2, height 300, srand(20261124): the grain map's SHA-256.
KNOWN = ((128, 15, 2, 300, 20261124), "1dcd3bfa2c178bee85acaba50d7b6df466d8033de419212b8dff329406bd8b55", 8)


@pytest.fixture
def remuted():
    """Whatever a test does to the patch, later tests run with it in place again."""
    yield
    polysim.mute_fprintf()


def _digest(structure: polysim.Structure) -> str:
    return hashlib.sha256(structure.grains.tobytes()).hexdigest()


@needs_patch
def test_patched_and_plain_polysim_give_identical_structures(remuted):
    cases = [(64, 10, 1, 300, 1), (128, 20, 3, 300, 2), (200, 12, 2, 150, 3), (256, 17, 1, 300, 4),
             (512, 15, 2, 300, 5)]
    assert polysim.mute_fprintf() is None and polysim.fprintf_muted()
    patched = [simulate(*case) for case in cases] + [simulate(*KNOWN[0])]
    polysim.unmute_fprintf()
    assert not polysim.fprintf_muted()
    plain = [simulate(*case) for case in cases] + [simulate(*KNOWN[0])]
    for a, b in zip(patched, plain):
        assert a.grains.tobytes() == b.grains.tobytes()
        assert (a.num_grains, a.avrami_exponent) == (b.num_grains, b.avrami_exponent)
    assert _digest(plain[-1]) == _digest(patched[-1]) == KNOWN[1] and plain[-1].num_grains == KNOWN[2]
    assert polysim.mute_fprintf() is None and polysim.fprintf_muted()  # and it can be put back


SCRIPT = f"""
import sys
sys.path.insert(0, {str(REPO)!r})
from pipeline import polysim
a = polysim.simulate(*{KNOWN[0]!r})
b = polysim.simulate(96, 12, 3, 300, 7)
print(polysim.fprintf_muted(), a.grains.sum(), b.grains.sum(), a.avrami_exponent)
"""


def _run(tmp_path, **env: str) -> subprocess.CompletedProcess[str]:
    environ = {k: v for k, v in os.environ.items() if k != NO_PATCH_ENV}
    return subprocess.run([sys.executable, "-c", SCRIPT], cwd=tmp_path, env={**environ, **env},
                          capture_output=True, text=True, timeout=120)


@needs_patch
def test_the_environment_variable_keeps_the_plain_call_and_says_so_once(tmp_path):
    patched, plain = _run(tmp_path), _run(tmp_path, **{NO_PATCH_ENV: "1"})
    assert patched.returncode == plain.returncode == 0, patched.stderr + plain.stderr
    assert patched.stdout.split()[0] == "True" and plain.stdout.split()[0] == "False"
    assert patched.stdout.split()[1:] == plain.stdout.split()[1:]  # same structures either way
    assert "PolySimUnpatched" not in patched.stderr and "starting" not in patched.stdout + plain.stdout
    assert plain.stderr.count("PolySimUnpatched") == 1, plain.stderr
    assert f"polySim keeps its own fprintf ({NO_PATCH_ENV} is set)" in plain.stderr
    assert os.listdir(tmp_path) == []  # polySim's three files went to the scratch directory


def _canary_that_changes():
    calls = iter(range(1_000))
    return lambda scratch: (b"", next(calls), 0.0)


@pytest.mark.parametrize("breakage, reason", [
    (lambda mp: mp.setattr(polysim, "_NOOP_CANDIDATES", ("getpid",)), "no libc function found whose code is"),
    (lambda mp: mp.setattr(polysim, "_ARCHES", {}), "unexpected platform or library"),
    (lambda mp: mp.setattr(polysim, "_canary", _canary_that_changes()), "a canary sample differed"),
    (lambda mp: mp.setattr(polysim.sys, "platform", "darwin"), "not on Linux"),
])
def test_when_patching_is_impossible_polysim_runs_plain_and_says_so_once(monkeypatch, remuted, breakage, reason):
    polysim.unmute_fprintf()
    before = _slot_value()
    breakage(monkeypatch)
    monkeypatch.setattr(polysim, "_fprintf_state", None)  # as in a fresh process
    with pytest.warns(PolySimUnpatched, match=reason):
        first = simulate(*KNOWN[0])
    monkeypatch.undo()
    assert not polysim.fprintf_muted()
    assert _slot_value() == before  # the slot was never changed, or was put back
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # said once: not again
        second = simulate(*KNOWN[0])
    assert _digest(first) == _digest(second) == KNOWN[1]


def _slot_value() -> int | None:
    if not PATCHABLE:
        return None
    import ctypes

    return ctypes.c_void_p.from_address(polysim._fprintf_slot().slot).value


def test_simulate_leaves_the_working_directory_empty(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    simulate(96, 12, 2, 300, 1)
    assert os.listdir(tmp_path) == []
