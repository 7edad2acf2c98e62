"""A full disk under any writer (predict, measure, import, evaluate, export, upgrade): one line naming
the file and `no space left on device`, exit 1, no traceback, and no partial file left behind."""

from __future__ import annotations

import builtins
import errno
import io
import os
from pathlib import Path

import pytest


class FullDisk:
    """`open` for a disk holding `free` more bytes under `root`: a write past that writes what fits and
    raises ENOSPC, as a real full filesystem does (the file is left as far as it got)."""

    def __init__(self, real_open, root: Path, free: int):
        self.real_open, self.root, self.free = real_open, root.resolve(), free

    def __call__(self, file, mode="r", *args, **kwargs):
        handle = self.real_open(file, mode, *args, **kwargs)
        under = isinstance(file, (str, os.PathLike)) and Path(file).resolve().is_relative_to(self.root)
        return _Filling(handle, self) if under and any(c in mode for c in "wax+") else handle


class _Filling:
    def __init__(self, handle, disk: FullDisk):
        self._handle, self._disk = handle, disk

    def write(self, data):
        size = memoryview(data).nbytes
        if size > self._disk.free:
            fits, self._disk.free = self._disk.free, 0
            self._handle.write(bytes(memoryview(data).cast("B")[:fits]))
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        self._disk.free -= size
        return self._handle.write(data)

    def __getattr__(self, name):
        return getattr(self._handle, name)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self._handle.close()

    def __iter__(self):
        return iter(self._handle)


@pytest.fixture
def full_disk(monkeypatch):
    """Make the disk under a folder full after `free` bytes: `full_disk(folder, free)`."""
    def fill(root: Path, free: int = 0) -> None:
        root.mkdir(parents=True, exist_ok=True)
        disk = FullDisk(io.open, root, free)
        monkeypatch.setattr(builtins, "open", disk)
        monkeypatch.setattr(io, "open", disk)
    return fill


def files_under(folder: Path) -> dict[str, int]:
    """Every file under `folder` (relative name -> size)."""
    return {str(p.relative_to(folder)): p.stat().st_size for p in folder.rglob("*") if p.is_file()}


def assert_no_space_line(result, names: str) -> str:
    """The run ends in one `Error:` line saying the disk is full (after the lines a run prints first)."""
    lines = result.output.strip().splitlines()
    assert result.exit_code == 1 and "Traceback" not in result.output, result.output
    assert [n for n, text in enumerate(lines) if text.startswith("Error: ")] == [len(lines) - 1], result.output
    line = lines[-1]
    assert "no space left on device" in line and names in line and "free some space" in line, line
    return line


@pytest.fixture(scope="module")
def pngs(tmp_path_factory, tiny_library) -> Path:
    """The tiny library exported as micro/ and label/ PNGs."""
    from pipeline.interchange import export_pairs

    folder = tmp_path_factory.mktemp("png") / "png"
    export_pairs(tiny_library, folder, count=4)
    return folder


def test_predict_onto_a_full_disk_stops_in_one_line_and_leaves_whole_pngs_only(run_cli, tmp_path, pngs, full_disk):
    disk = tmp_path / "disk"
    full_disk(disk, free=600)  # about one 64 px map
    result = run_cli("predict", pngs / "label", "--method", "bridge", "--out", disk / "out", "--no-progress")
    assert result.exit_code == 1, result.output
    line = assert_no_space_line(result, str(disk / "out"))
    assert "of 4 images were written" in line
    import cv2

    for name in files_under(disk):  # every PNG left is whole: no 0-byte or cut-off output
        assert name.endswith(".png") and cv2.imread(str(disk / name)) is not None, name


def test_measure_onto_a_full_disk_is_one_line_without_a_traceback(run_cli, tmp_path, pngs, full_disk):
    disk = tmp_path / "disk"
    full_disk(disk)
    result = run_cli("measure", pngs / "label" / "0.png", pngs / "label" / "1.png", "--out", disk / "m")
    assert result.exit_code == 1
    assert_no_space_line(result, str(disk / "m"))
    assert not any(name.endswith(".partial") for name in files_under(disk))
    assert not (disk / "m" / "summary.csv").exists()


def test_import_onto_a_full_disk_leaves_no_store(run_cli, tmp_path, pngs, full_disk):
    disk = tmp_path / "disk"
    full_disk(disk, free=2000)
    result = run_cli("import", pngs, "--out", disk / "new.zarr")
    line = assert_no_space_line(result, str(disk / "new.zarr"))
    assert "nothing written" in line and list(disk.iterdir()) == []


def test_evaluate_onto_a_full_disk_keeps_the_earlier_results_whole(run_cli, tmp_path, tiny_library, full_disk):
    out = tmp_path / "disk" / "eval"
    first = run_cli("evaluate", "--data", tiny_library, "--baseline", "identity", "--out", out, "--no-progress")
    assert first.exit_code == 0, first.output
    before = {name: (out / name).read_bytes() for name in files_under(out)}
    full_disk(tmp_path / "disk", free=1000)  # room for metrics.json, not for the rest
    result = run_cli("evaluate", "--data", tiny_library, "--baseline", "bridge", "--out", out, "--no-progress")
    assert "nothing written" in assert_no_space_line(result, str(out))
    assert {name: (out / name).read_bytes() for name in files_under(out)} == before


def test_evaluate_onto_a_full_disk_makes_no_out_folder(run_cli, tmp_path, tiny_library, full_disk):
    full_disk(tmp_path / "disk")
    result = run_cli("evaluate", "--data", tiny_library, "--baseline", "identity", "--out", tmp_path / "disk" / "ev",
                     "--no-progress")
    assert_no_space_line(result, "ev")
    assert list((tmp_path / "disk").iterdir()) == []


def test_export_onto_a_full_disk_leaves_whole_pngs_only(run_cli, tmp_path, tiny_library, full_disk):
    disk = tmp_path / "disk"
    full_disk(disk, free=1500)
    result = run_cli("export", tiny_library, "--out", disk / "png")
    assert_no_space_line(result, str(disk / "png"))
    import cv2

    for name in files_under(disk):
        assert name.endswith(".png") and cv2.imread(str(disk / name)) is not None, name
