"""The README's figures are those of the benchmark or test that made them (issue 35, item 8).

Each figure the README quotes is checked against where it was recorded: the bundled model's scores
against the first tables of its card (model/pretrained/README.md, from `cli.py evaluate` and
`benchmarks/generalisation.py`), `make demo`'s minutes against docs/benchmarks.md ("The README's
two commands"), the paper preset's size against the count `train` prints, the napari claim
against the test that asserts it. The gray-micrograph figures
are checked by tests/test_measure_readme.py.
"""

from __future__ import annotations

import re

from tests.conftest import REPO

README = (REPO / "README.md").read_text()


def table_rows(text: str) -> dict[str, list[str]]:
    """The first Markdown table of `text`: first cell (bold marks dropped) -> the other cells."""
    rows: dict[str, list[str]] = {}
    for line in text.splitlines():
        if line.startswith("| ---"):
            continue
        if line.startswith("|"):
            cells = [cell.strip().strip("*").strip() for cell in line.strip("|").split("|")]
            rows.setdefault(cells[0], cells[1:])
        elif rows:
            break
    return rows


def card_tables() -> tuple[dict[str, list[str]], dict[str, list[str]]]:
    """The card's latest test-split table and generalisation table (the first of each in the file)."""
    card = (REPO / "model" / "pretrained" / "README.md").read_text()
    start = card.index("On the study's own test images")
    test = table_rows(card[start:])
    general = table_rows(card[card.index("Away from the study's library", start):])
    return test, general


def test_the_bundled_models_test_split_figures_are_its_cards() -> None:
    test, _ = card_tables()
    ours = next(cells for name, cells in test.items() if name.startswith("this model"))
    bridge = test["bridge"]
    columns = ["mIoU", "boundary IoU", "gap recall", "spurious", "boundary F1", "grain count err"]
    quoted = re.search(r"grain-count error ([\d.]+) against ([\d.]+), mIoU\s+([\d.]+) against ([\d.]+)", README)
    assert quoted, "the README's sentence on the held-out test images moved: update this test"
    count, miou = columns.index("grain count err"), columns.index("mIoU")
    assert (quoted[1], quoted[2]) == (ours[count].strip("*"), bridge[count])
    assert (float(quoted[3]), float(quoted[4])) == (round(float(ours[miou]), 3), round(float(bridge[miou]), 3))


def test_the_bundled_models_generalisation_figures_are_its_cards() -> None:
    _, general = card_tables()

    def counts(name: str) -> tuple[str, str]:  # (this model's, bridge's) grain-count error on one set
        bridge, ours = general[name][0], general[name][1]
        return ours.split()[0].strip("*"), bridge.split()[0]

    steel = re.search(r"bridge\s+on NIST's steel \(([\d.]+) against ([\d.]+)\)", README)
    elongated = re.search(r"elongated, aligned grains \(([\d.]+) against ([\d.]+);", README)
    assert steel and elongated, "the README's sentence on sets from outside polySim moved: update this test"
    assert (steel[1], steel[2]) == counts("nist-steel")
    assert (elongated[1], elongated[2]) == counts("msp-elongated")


def test_make_demos_minutes_are_the_recorded_runs() -> None:
    quoted = re.search(r"About (\d+) minutes on a 2-core machine", README)
    assert quoted, "the README's `make demo` time moved: update this test"
    benchmarks = (REPO / "docs" / "benchmarks.md").read_text()
    found = re.findall(r"`make demo` in that clone[^:]*: (\d+) min (\d+) s", benchmarks)
    found += re.findall(r"`make demo` in that clone (\d+) min (\d+) s", benchmarks)
    runs = [int(minutes) + int(seconds) / 60 for minutes, seconds in found]
    assert runs
    assert all(abs(run - int(quoted[1])) <= 1 for run in runs), runs


def test_the_napari_figure_is_the_tests() -> None:
    assert "the widgets count within 3 % of the truth (`tests/test_napari.py`)" in README.replace("\n  ", " ")
    source = (REPO / "tests" / "test_napari.py").read_text()
    assert "def test_defaults_on_a_gray_micrograph_count_its_grains(" in source
    assert "abs(grains - truth_grains) <= 0.03 * truth_grains" in source


def test_the_paper_presets_size_is_the_one_train_prints() -> None:
    from model.network.presets import PAPER_PARAMETERS  # train prints it (tests/test_train.py)

    quoted = re.search(r"The study's model is the default `paper` preset: ([\d.]+) M parameters", README)
    assert quoted, "the README's sentence on the paper preset moved: update this test"
    assert float(quoted[1]) == round(PAPER_PARAMETERS / 1e6, 1)
