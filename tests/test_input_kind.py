"""What predict does with each kind of input: binary maps as they are, gray / 16-bit / colour micrographs
prepared first (denoise, binarise) unless the flags say otherwise; the pixel limit; no TensorFlow for bridge."""

from __future__ import annotations

import struct
import subprocess
import sys
import zlib
from pathlib import Path

import cv2
import numpy as np
import pytest

from conftest import REPO
from model.inference.images import ImageError, decode, input_kind, read_image
from model.inference.predict import PredictError, predict_files
from model.inference.prepare import ADAPTIVE_SIGMA, CLASSICAL_STRENGTH, MODEL_STRENGTH, prepare, strength_for


def boundary_map(shape: tuple[int, int] = (120, 160)) -> np.ndarray:
    """uint8, 255 background crossed by a few 2 px dark lines (0)."""
    image = np.full(shape, 255, np.uint8)
    h, w = shape
    for p, q in (((0, h // 3), (w - 1, h // 2)), ((w // 3, 0), (w // 2, h - 1)), ((0, h - 10), (w - 1, 5))):
        cv2.line(image, p, q, 0, 2)
    return image


def micrograph(shape: tuple[int, int] = (120, 160), seed: int = 0) -> np.ndarray:
    """float gray 0..255: the boundary map's lines at 60 on grains at 150 / 190, blurred, noisy."""
    rng = np.random.default_rng(seed)
    lines = boundary_map(shape) == 0
    gray = np.where(np.arange(shape[1])[None, :] < shape[1] // 2, 150.0, 190.0) * np.ones(shape)
    gray[lines] = 60.0
    gray = cv2.GaussianBlur(gray.astype(np.float32), (0, 0), 1.0)
    return gray + rng.normal(0, 6, shape).astype(np.float32)


def write(path: Path, image: np.ndarray) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    assert cv2.imwrite(str(path), image)
    return path


@pytest.fixture
def kinds(tmp_path: Path) -> dict[str, Path]:
    """One file of each kind: binary PNG, binary JPEG, gray PNG, 16-bit TIFF, colour PNG, gray saved as RGB."""
    gray = micrograph()
    tinted = np.dstack([gray * 0.8, gray, np.minimum(gray * 1.2, 255)])  # BGR, channels differ
    return {
        "binary": write(tmp_path / "map.png", boundary_map()),
        "binary_jpeg": write(tmp_path / "map.jpg", boundary_map()),
        "binary_16": write(tmp_path / "map16.tif", boundary_map().astype(np.uint16) * 257),
        "gray": write(tmp_path / "gray.png", np.clip(gray, 0, 255).astype(np.uint8)),
        "16-bit": write(tmp_path / "deep.tif", np.clip(gray * 257, 0, 65535).astype(np.uint16)),
        "colour": write(tmp_path / "colour.png", np.clip(tinted, 0, 255).astype(np.uint8)),
        "gray_rgb": write(tmp_path / "gray_rgb.png",
                          np.repeat(np.clip(gray, 0, 255).astype(np.uint8)[..., None], 3, axis=2)),
    }


def test_each_kind_is_detected(kinds) -> None:
    found = {name: input_kind(decode(path)) for name, path in kinds.items()}
    assert found == {"binary": "binary", "binary_jpeg": "binary", "binary_16": "binary", "gray": "gray",
                     "16-bit": "16-bit", "colour": "colour", "gray_rgb": "gray"}


def expected_prepared(path: Path) -> np.ndarray:
    """What auto preparation makes of a micrograph for bridge or none, worked out with OpenCV directly:
    non-local means (h 12) on the image rounded to 8 bits, then boundary where darker than the
    Gaussian local mean by more than 0.06."""
    eight = np.clip(np.rint(read_image(path) * 255), 0, 255).astype(np.uint8)
    image = cv2.fastNlMeansDenoising(eight, None, h=12).astype(np.float32) / np.float32(255)
    local = cv2.GaussianBlur(image, (0, 0), ADAPTIVE_SIGMA, borderType=cv2.BORDER_REFLECT_101)
    return np.where(image >= local - np.float32(0.06), 255, 0).astype(np.uint8)


def test_micrographs_are_prepared_and_maps_kept_unless_the_flags_say(kinds, tmp_path: Path) -> None:
    names = ["binary", "gray", "16-bit", "colour"]
    report = predict_files(None, [kinds[n] for n in names], tmp_path / "out", method="none", min_speck=0,
                           progress=False)
    assert report.ok
    auto = "denoise nlmeans (h 12), binarize adaptive (offset 0.06)"
    assert report.inputs_line.startswith(f"inputs: 1 binary boundary map -> as it is; 1 gray micrograph -> {auto}; "
                                         f"1 16-bit micrograph -> {auto}; 1 colour micrograph -> {auto}")
    out = {n: cv2.imread(str(tmp_path / "out" / (kinds[n].stem + ".png")), cv2.IMREAD_UNCHANGED) for n in names}
    np.testing.assert_array_equal(out["binary"], boundary_map())
    for name in ("gray", "16-bit", "colour"):
        np.testing.assert_array_equal(out[name], expected_prepared(kinds[name]), err_msg=name)
        assert (out[name] == 0).mean() < 0.3  # boundaries, not black blotches
    # Explicit flags win: no preparation at all leaves the gray image thresholded at 0.5 as it is.
    report = predict_files(None, [kinds["gray"]], tmp_path / "plain", method="none", min_speck=0,
                           denoise="none", binarize="none", progress=False)
    assert report.inputs_line.startswith("inputs: 1 gray micrograph -> as it is")
    plain = cv2.imread(str(tmp_path / "plain" / "gray.png"), cv2.IMREAD_UNCHANGED)
    np.testing.assert_array_equal(plain, np.where(read_image(kinds["gray"]) >= 0.5, 255, 0))


def test_the_network_is_given_faint_boundaries_the_bridge_is_not() -> None:
    """A 2 px boundary 0.17 darker than its grains, blurred (sigma 1 px) and noisy: the network's
    preparation (h 9, offset 0.04) keeps it as a line; the classical one (h 12, offset 0.06), meant
    for bridge, drops it."""
    rng = np.random.default_rng(3)
    gray = np.full((80, 120), 0.6, np.float32)
    gray[:, 59:61] -= 0.17
    gray = cv2.GaussianBlur(gray, (0, 0), 1.0) + rng.normal(0, 0.02, gray.shape).astype(np.float32)
    assert strength_for("model") == MODEL_STRENGTH and strength_for("bridge") == strength_for("none") == CLASSICAL_STRENGTH
    kept = {name: prepare(gray, denoise="nlmeans", binarize="adaptive", strength=strength)
            for name, strength in (("model", MODEL_STRENGTH), ("classical", CLASSICAL_STRENGTH))}
    column_dark = {name: (image[:, 57:63] == 0).any(axis=1).mean() for name, image in kept.items()}
    assert column_dark["model"] > 0.95  # the line is there in (nearly) every row
    assert column_dark["classical"] < 0.05
    assert (kept["model"][:, :50] == 0).mean() < 0.01  # and no specks away from it


def cli_subprocess(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """`cli.py ARGS` in a fresh Python that then says whether TensorFlow got imported (last line)."""
    code = ("import runpy, sys\n"
            f"sys.argv = ['cli.py', *{list(args)!r}]\n"
            "try:\n    runpy.run_path('cli.py', run_name='__main__')\n"
            "except SystemExit as exc:\n    status = exc.code\n"
            "print('tensorflow imported:', 'tensorflow' in sys.modules)\n"
            "sys.exit(status)\n")
    import os

    return subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True,
                          env={**os.environ, **(env or {})})


def test_predict_bridge_prints_what_it_does_first_and_never_imports_tensorflow(kinds, tmp_path: Path) -> None:
    run = cli_subprocess("predict", str(kinds["gray"]), str(kinds["binary"]), "--out", str(tmp_path / "out"),
                         "--method", "bridge")
    assert run.returncode == 0, run.stderr
    lines = run.stdout.splitlines()
    assert lines[0].startswith("method bridge: min-speck")
    assert lines[1].startswith("inputs: 1 binary boundary map -> as it is; 1 gray micrograph -> denoise nlmeans")
    assert lines[-1] == "tensorflow imported: False"
    assert "2/2" in run.stderr and "image" in run.stderr  # the bar counts images, not tiles
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["gray.png", "map.png"]


def test_help_imports_no_tensorflow() -> None:
    run = cli_subprocess("--help")
    assert run.returncode == 0 and run.stdout.splitlines()[-1] == "tensorflow imported: False"


def test_a_tiff_input_becomes_a_png_and_the_output_says_so(kinds, tmp_path: Path) -> None:
    run = cli_subprocess("predict", str(kinds["16-bit"]), "--out", str(tmp_path / "out"), "--method", "none",
                         "--no-progress")
    assert run.returncode == 0, run.stderr
    assert "note: outputs are PNG whatever the input's format: deep.tif -> deep.png" in run.stdout
    assert [p.name for p in (tmp_path / "out").iterdir()] == ["deep.png"]
    assert cv2.imread(str(tmp_path / "out" / "deep.png"), cv2.IMREAD_UNCHANGED).dtype == np.uint8


def bomb(path: Path, width: int, height: int) -> Path:
    """A valid gray PNG of width x height zero pixels: a few hundred KB on disk, declared huge."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    packer, row = zlib.compressobj(9), bytes(width + 1)
    body = b"".join(packer.compress(row) for _ in range(height)) + packer.flush()
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0))
                     + chunk(b"IDAT", body) + chunk(b"IEND", b""))
    return path


def test_a_decompression_bomb_is_refused_before_decoding(tmp_path: Path, run_cli) -> None:
    huge = bomb(tmp_path / "huge.png", 12_000, 9_000)  # 108 megapixels, above the 100 default
    assert huge.stat().st_size < 200_000
    with pytest.raises(ImageError, match=r"declares 12000 x 9000 px \(108 megapixels\), above the limit of 100 "
                                         r"megapixels \(set RECONSTRUCTION_GB_MAX_PIXELS to allow more\)"):
        read_image(huge)
    result = run_cli("predict", huge, "--out", tmp_path / "out", "--method", "bridge", "--no-progress")
    assert result.exit_code == 1
    assert f"failed: {huge}: declares 12000 x 9000 px" in result.output
    assert not (tmp_path / "out" / "huge.png").exists()
    result = run_cli("measure", huge, "--out", tmp_path / "measured")
    assert result.exit_code == 1 and "declares 12000 x 9000 px" in result.output


def test_the_pixel_limit_is_overridable(tmp_path: Path, monkeypatch, run_cli) -> None:
    small = write(tmp_path / "small.png", boundary_map((30, 40)))  # 1200 px
    monkeypatch.setenv("RECONSTRUCTION_GB_MAX_PIXELS", "1000")
    with pytest.raises(ImageError, match="above the limit of 0.001 megapixels"):
        read_image(small)
    monkeypatch.setenv("RECONSTRUCTION_GB_MAX_PIXELS", "1200")
    assert read_image(small).shape == (30, 40)
    monkeypatch.setenv("RECONSTRUCTION_GB_MAX_PIXELS", "lots")
    with pytest.raises(PredictError, match="RECONSTRUCTION_GB_MAX_PIXELS must be a positive whole number"):
        predict_files(None, [small], tmp_path / "out", method="bridge", progress=False)
    assert not (tmp_path / "out").exists()


def grains_of(summary: Path) -> int:
    import csv

    with open(summary, newline="") as handle:
        return int(next(csv.DictReader(handle))["grains"])


def test_measure_restore_prepares_a_micrograph_as_predict_does(tmp_path: Path, run_cli) -> None:
    # Shading from 45 % to 100 %: left of the middle the grains are darker than 0.5, so the image
    # as it is (no preparation) reads them as boundary; the adaptive threshold follows the shading.
    shade = np.linspace(0.45, 1.0, 160, dtype=np.float32)[None, :]
    gray = write(tmp_path / "shaded.png", np.clip(micrograph() * shade, 0, 255).astype(np.uint8))
    assert run_cli("predict", gray, "--out", tmp_path / "restored", "--method", "none").exit_code == 0
    assert run_cli("measure", tmp_path / "restored", "--out", tmp_path / "two_steps").exit_code == 0
    result = run_cli("measure", gray, "--out", tmp_path / "one_step", "--restore", "--method", "none")
    assert result.exit_code == 0, result.output
    assert run_cli("predict", gray, "--out", tmp_path / "as_is", "--method", "none", "--denoise", "none",
                   "--binarize", "none").exit_code == 0
    assert run_cli("measure", tmp_path / "as_is", "--out", tmp_path / "unprepared").exit_code == 0
    one_step = grains_of(tmp_path / "one_step" / "summary.csv")
    two_steps = grains_of(tmp_path / "two_steps" / "summary.csv")
    assert one_step == two_steps != grains_of(tmp_path / "unprepared" / "summary.csv")
