"""The README's measuring commands: the path they recommend is the first command's, and their figures are a benchmark's.

The figures the README quotes for `measure --restore` on raw gray micrographs are the lines
`benchmarks/gray_micrographs.py` printed, recorded in docs/benchmarks.md ("Raw gray
micrographs"); that benchmark runs the README's first command as written, through the CLI.
"""

from __future__ import annotations

import re

from tests.conftest import REPO

PREPARATION = ("--method", "--denoise", "--binarize", "--threshold", "--model", "--scale", "--min-speck")
RECORD = re.compile(r"^(\w+)\s+grains\s+(\d+) \(truth\s+(\d+),\s+([+-]\d+\.\d) %\)\s+G\s+([\d.]+) \(truth\s+([\d.]+),"
                    r" ([+-]\d+\.\d\d)\)$", re.M)


def section(text: str, title: str) -> str:
    """The README's text from `## title` to the next second-level title."""
    start = text.index(f"## {title}\n")
    end = text.find("\n## ", start + 1)
    return text[start:end if end > 0 else None]


def measure_lines(text: str) -> list[str]:
    """Every `cli.py measure` command of the bash blocks in `text` (continuation lines joined)."""
    blocks = re.findall(r"```bash\n(.*?)```", text, re.S)
    commands = "\n".join(blocks).replace("\\\n", " ")
    return [line.split("#")[0] for line in commands.splitlines() if "cli.py measure" in line]


def test_measuring_grains_recommends_the_first_commands_path() -> None:
    readme = (REPO / "README.md").read_text()
    first = measure_lines(section(readme, "Your micrographs, restored and measured"))
    examples = measure_lines(section(readme, "Measuring grains")) + measure_lines(
        (REPO / "docs" / "measure.md").read_text())
    assert first and examples
    for command in first + examples:
        assert not [flag for flag in PREPARATION if flag in command.split()], command
        assert "--restore" in command.split() or "restored/" in command, command


def test_the_gray_micrograph_benchmark_runs_the_first_command_as_written() -> None:
    source = (REPO / "benchmarks" / "gray_micrographs.py").read_text()
    assert 'cli("measure", "--restore", str(micrographs), "--out"' in source
    assert 'method_args = [] if method == "default" else ["--method", method]' in source
    assert 'add_argument("--method", default="default"' in source


def test_readme_figures_are_the_benchmarks_last_record() -> None:
    readme = (REPO / "README.md").read_text()
    benchmarks = (REPO / "docs" / "benchmarks.md").read_text()
    records = RECORD.findall(section(benchmarks, "Raw gray micrographs (`benchmarks/gray_micrographs.py`)"))
    last = {name: (int(found), int(truth), float(error), float(g), float(true_g), float(g_error))
            for name, found, truth, error, g, true_g, g_error in records[-5:]}
    steel = last.pop("nist_steel_optical")
    errors = [v[2] for v in last.values()]
    quoted = re.search(r"NIST's etched steel, (\d+) grains where NIST's\s+reference has (\d+) \(planimetric G "
                       r"([\d.]+) against ([\d.]+)\); four rendered micrographs, ([+-][\d.]+) % to\s+"
                       r"([+-][\d.]+) % \(G within ([\d.]+)\)", readme)
    assert quoted, "the README's sentence on raw gray micrographs moved: update this test"
    assert (int(quoted[1]), int(quoted[2]), float(quoted[3]), float(quoted[4])) == (steel[0], steel[1], steel[3],
                                                                                    steel[4])
    assert (float(quoted[5]), float(quoted[6])) == (min(errors), max(errors))
    assert float(quoted[7]) == max(abs(v[5]) for v in last.values())
