"""`cli.py evaluate` on a store of gray micrographs: the classical route as the baselines, no gap recall."""

from __future__ import annotations

import json
import shutil

import pytest

from conftest import one_error_line


@pytest.fixture(scope="module")
def micrographs(tmp_path_factory):
    """12 micrograph pairs at 128 px, and their inputs and truths exported as PNGs."""
    from click.testing import CliRunner

    from cli import cli

    folder = tmp_path_factory.mktemp("micrographs")
    store, png = folder / "m.zarr", folder / "png"
    runner = CliRunner()
    for args in (["generate", "--preset", "micrograph", "--count", "12", "--size", "128", "--out", store,
                  "--workers", "0", "--no-progress"], ["export", store, "--out", png]):
        result = runner.invoke(cli, [str(a) for a in args])
        assert result.exit_code == 0, result.output
    return store, png


def test_truth_as_predictions_scores_perfectly_beside_the_classical_route(run_cli, tmp_path, micrographs):
    store, png = micrographs
    result = run_cli("evaluate", "--data", store, "--predictions", png / "label", "--split", "all",
                     "--out", tmp_path, "--no-progress")
    assert result.exit_code == 0, result.output
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert list(metrics["rows"]) == ["predictions label", "prep+bridge", "prep"]
    assert metrics["samples"] == 12 and metrics["grain_count_error"] == 0 and metrics["grain_match"] == 1
    assert metrics["grain_ari"] == 1 and metrics["boundary_f1"] == 1
    # A gray input has no erased pixel: gap recall is undefined (JSON null, n/a in the table).
    assert metrics["gap_recall"] is None and metrics["rows"]["prep"]["gap_recall"] is None
    assert "| predictions label | 1.0000 | 1.0000 | n/a |" in result.output
    # The classical route finds grains, but not all of them one-to-one; the bridge closes some gaps.
    prep, bridged = metrics["rows"]["prep"], metrics["rows"]["prep+bridge"]
    assert 0 < prep["grain_match"] < 1 and 0 < bridged["grain_match"] < 1
    assert "gray micrographs" in (tmp_path / "report.md").read_text()


def test_the_prep_bridge_baseline_is_what_predict_method_bridge_writes(run_cli, tmp_path, micrographs):
    """The baseline row is the user's own command: predictions from `predict --method bridge` on the
    exported micrographs score exactly as `--baseline prep+bridge`."""
    store, png = micrographs
    predicted = run_cli("predict", "--method", "bridge", png / "micro", "--out", tmp_path / "bridge", "--no-progress")
    assert predicted.exit_code == 0, predicted.output
    assert sorted(p.name for p in (tmp_path / "bridge").iterdir())[:2] == ["0.png", "1.png"]
    scored = {}
    for name, args in {"png": ["--predictions", tmp_path / "bridge"],
                       "baseline": ["--baseline", "prep+bridge"]}.items():
        result = run_cli("evaluate", "--data", store, *args, "--split", "all", "--out", tmp_path / name,
                         "--no-progress")
        assert result.exit_code == 0, result.output
        scored[name] = json.loads((tmp_path / name / "metrics.json").read_text())
    assert list(scored["baseline"]["rows"]) == ["prep+bridge", "prep"]
    for key in ("miou", "boundary_f1", "grain_count_error", "grain_match", "grain_ari", "astm_g_error"):
        assert scored["png"][key] == scored["baseline"][key], key


def test_a_boundary_map_baseline_on_micrographs_is_one_line(run_cli, tmp_path, micrographs, tiny_library):
    store, _ = micrographs
    line = one_error_line(run_cli("evaluate", "--data", store, "--baseline", "bridge", "--out", tmp_path / "a",
                                  "--no-progress"))
    assert "holds gray micrographs" in line and "prep+bridge" in line
    line = one_error_line(run_cli("evaluate", "--data", tiny_library, "--baseline", "prep", "--out", tmp_path / "b",
                                  "--no-progress"))
    assert "holds binary boundary maps" in line
    assert not any(tmp_path.iterdir())


def test_without_model_the_headline_is_what_predict_does_to_the_micrographs(run_cli, tmp_path, micrographs,
                                                                            monkeypatch):
    """No --model on a gray store: the headline row is predict's own route (here, with no micrograph
    model installed: the automatic preparation, the bundled model and the bridge), and it scores
    exactly as the PNGs `predict` writes with no option."""
    import model.inference.restore

    monkeypatch.setattr(model.inference.restore, "MICROGRAPH_MODEL", tmp_path / "none.keras")
    store, png = micrographs
    predicted = run_cli("predict", png / "micro", "--out", tmp_path / "default", "--no-progress")
    assert predicted.exit_code == 0, predicted.output
    scored = {}
    for name, args in {"png": ["--predictions", tmp_path / "default"], "route": []}.items():
        result = run_cli("evaluate", "--data", store, *args, "--split", "all", "--out", tmp_path / name,
                         "--no-progress")
        assert result.exit_code == 0, result.output
        scored[name] = json.loads((tmp_path / name / "metrics.json").read_text())
    assert list(scored["route"]["rows"]) == ["prep+model+bridge", "prep+bridge", "prep"]
    for key in ("miou", "boundary_f1", "grain_count_error", "grain_match", "grain_ari", "astm_g_error"):
        assert scored["png"][key] == scored["route"][key], key


def test_exported_micrographs_import_as_a_micrograph_store(run_cli, tmp_path, micrographs):
    """export -> import keeps micro and clean gray byte for byte and the label's two values; the store
    verifies, reads as gray, and scores as the original on the same samples."""
    import cv2

    from pipeline.store import LibraryStore

    store, png = micrographs
    out = tmp_path / "imported.zarr"
    result = run_cli("import", png, "--out", out)
    assert result.exit_code == 0, result.output
    original, imported = LibraryStore.open(store), LibraryStore.open(out)
    assert imported.gray and imported.images == ("micro", "label", "grains", "clean")
    for index in range(12):
        for name in ("micro", "label", "clean"):
            assert (imported.read(name, index) == original.read(name, index)).all(), (name, index)
    assert len(set(cv2.imread(str(png / "micro" / "3.png"), cv2.IMREAD_UNCHANGED).ravel())) > 2  # truly gray
    assert run_cli("verify", out).exit_code == 0
    scored = {}
    for name, path in {"original": store, "imported": out}.items():
        result = run_cli("evaluate", "--data", path, "--baseline", "prep", "--split", "all", "--out",
                         tmp_path / name, "--no-progress")
        assert result.exit_code == 0, result.output
        scored[name] = json.loads((tmp_path / name / "metrics.json").read_text())["rows"]
    assert scored["original"] == scored["imported"]
    # Without clean/ the folder is boundary maps as before: micro is thresholded to two values.
    pairs = tmp_path / "pairs"
    for name in ("micro", "label"):
        shutil.copytree(png / name, pairs / name)
    binary = tmp_path / "binary.zarr"
    assert run_cli("import", pairs, "--out", binary).exit_code == 0
    assert not LibraryStore.open(binary).gray
    assert set(LibraryStore.open(binary).read("micro", 3).ravel()) <= {0, 255}
