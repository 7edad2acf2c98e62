"""The last traceback paths of the hostile run (issue 33, item 8): one line, a non-zero exit, nothing left."""

from __future__ import annotations

from pathlib import Path

from conftest import one_error_line


def test_import_with_out_under_proc_is_one_line(run_cli, tmp_path, tiny_library):
    png = tmp_path / "png"
    assert run_cli("export", tiny_library, "--out", png, "--count", 2).exit_code == 0
    line = one_error_line(run_cli("import", png, "--out", "/proc/x.zarr"))
    assert line.startswith("Error: cannot write /proc/x.zarr: ") and "nothing written" in line, line
    assert not Path("/proc/x.zarr").exists()


def test_evaluate_with_out_under_proc_is_one_line(run_cli, tiny_library):
    result = run_cli("evaluate", "--data", tiny_library, "--baseline", "identity", "--out", "/proc/ev",
                     "--no-progress")
    line = result.output.strip().splitlines()[-1]
    assert result.exit_code == 1 and "Traceback" not in result.output, result.output
    assert line.startswith("Error: ") and "/proc/ev" in line and "nothing written" in line, line


def test_info_on_a_name_too_long_for_the_filesystem_is_one_short_line(run_cli, tmp_path):
    line = one_error_line(run_cli("info", tmp_path / ("a" * 5000)))
    assert "File name too long" in line and len(line) < 300, line
