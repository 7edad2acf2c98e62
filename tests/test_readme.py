"""The README's first run cannot drift: its quick commands run here, on what `make demo` leaves.

A fenced ```bash block right after the line `<!-- test: quick -->` is run as it is written,
with `.venv/bin/python` replaced by this interpreter, in a folder holding small stand-ins for the
demo's store and run directory (32 pairs at 64 px, a 3-epoch small model).
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys

import pytest

from tests.conftest import REPO

MARK = "<!-- test: quick -->"
BLOCK = re.compile(re.escape(MARK) + r"\s*\n```bash\n(.*?)```", re.S)


def quick_blocks() -> list[str]:
    return BLOCK.findall((REPO / "README.md").read_text())


def makefile_value(name: str) -> str:
    return re.search(rf"^{name} := (\S+)$", (REPO / "Makefile").read_text(), re.M).group(1)


def test_every_quick_mark_precedes_a_bash_block():
    readme = (REPO / "README.md").read_text()
    assert len(quick_blocks()) == readme.count(MARK) >= 3


def test_the_first_run_uses_the_demos_store_and_run():
    store, run = makefile_value("DEMO_STORE"), makefile_value("DEMO_RUN")
    commands = "\n".join(quick_blocks())
    assert store in commands and f"{run}/best_reconstruction_model.keras" in commands
    # Nothing the demo never made: every path under generated_data/ is one of the demo's.
    for path in re.findall(r"generated_data/[\w./-]+", commands):
        assert path.startswith("generated_data/demo-"), path


@pytest.fixture
def demo_folder(tmp_path, tiny_library, trained_run):
    """A folder as `make demo` leaves it, with small stand-ins for its store and run."""
    shutil.copytree(tiny_library, tmp_path / makefile_value("DEMO_STORE"))
    shutil.copytree(trained_run[0], tmp_path / makefile_value("DEMO_RUN"))
    return tmp_path


def test_quick_blocks_run_in_order(demo_folder):
    for block in quick_blocks():
        script = block.replace(".venv/bin/python cli.py", f"{sys.executable} {REPO / 'cli.py'}")
        result = subprocess.run(["bash", "-euo", "pipefail", "-c", script], cwd=demo_folder,
                                capture_output=True, text=True)
        assert result.returncode == 0, f"{block}\n{result.stdout}\n{result.stderr}"
        assert result.stdout.strip(), block
        assert "Traceback" not in result.stderr and "E0000" not in result.stderr, result.stderr
    assert len(list((demo_folder / "generated_data" / "demo-restored").glob("*.png"))) == 4
