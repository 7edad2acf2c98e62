"""The recorded image checksums (`image_crc`) are part of a format-2 store: lost or damaged, every reader
says so in one line, `verify` exits 1, and `verify --repair` rebuilds them from the samples made again
(or refuses in one line where it cannot)."""

from __future__ import annotations

import shutil

import pytest

from conftest import one_error_line, tree

DAMAGE = {
    "array removed": (lambda s: shutil.rmtree(s / "image_crc"), "are missing"),
    "chunk removed": (lambda s: (s / "image_crc" / "c.0.0").unlink(), "of samples 0-31 are missing"),
    "garbage zarr.json": (lambda s: (s / "image_crc" / "zarr.json").write_bytes(b"garbage"),
                          "have metadata that cannot be read (image_crc/zarr.json: JSONDecodeError)"),
}
READERS = {
    "info": lambda s, tmp: ["info", s],
    "export": lambda s, tmp: ["export", s, "--out", tmp / "png"],
    "evaluate": lambda s, tmp: ["evaluate", "--data", s, "--baseline", "identity", "--out", tmp / "eval",
                                "--no-progress"],
    "generate": lambda s, tmp: ["generate", "--count", 40, "--size", 64, "--out", s, "--workers", 0, "--no-progress"],
    "train": lambda s, tmp: ["train", "--data", s, "--out", tmp / "run", "--preset", "small", "--dry-run"],
}


def flip_a_bit(store):
    chunk = store / "image_crc" / "c.0.0"
    data = bytearray(chunk.read_bytes())
    data[len(data) // 2] ^= 4
    chunk.write_bytes(bytes(data))


def swap_first_micro_shards(store):
    """Shard files of samples 0-1 and 2-3 trade places: valid chunks, of other samples."""
    first, second = store / "micro" / "c.0.0.0", store / "micro" / "c.1.0.0"
    data = first.read_bytes()
    first.write_bytes(second.read_bytes())
    second.write_bytes(data)


@pytest.mark.parametrize("damage", DAMAGE)
@pytest.mark.parametrize("command", READERS)
def test_every_reader_names_lost_checksums_in_one_line(run_cli, tmp_path, tiny_library, damage, command):
    store = shutil.copytree(tiny_library, tmp_path / "lib.zarr")
    damage_store, problem = DAMAGE[damage]
    damage_store(store)
    before = tree(tmp_path)
    line = one_error_line(run_cli(*READERS[command](store, tmp_path)))
    assert f"its recorded image checksums (image_crc) {problem}" in line, line
    assert f"verify {store} --repair" in line
    assert tree(tmp_path) == before


@pytest.mark.parametrize("damage", [*DAMAGE, "bit flipped"])
def test_verify_fails_on_damaged_checksums_and_repair_rebuilds_them(run_cli, tmp_path, tiny_library, damage):
    store = shutil.copytree(tiny_library, tmp_path / "lib.zarr")
    (flip_a_bit if damage == "bit flipped" else DAMAGE[damage][0])(store)
    result = run_cli("verify", store)
    assert result.exit_code == 1 and "Traceback" not in result.output, result.output
    assert result.output.strip().splitlines()[-1] == \
        "verified 32 samples: all good; the recorded checksums (image_crc) are damaged"
    result = run_cli("verify", store, "--repair")
    assert result.exit_code == 0 and "Traceback" not in result.output, result.output
    assert "rebuilt image_crc from 32 done samples made again" in result.output
    assert run_cli("verify", store).output.strip() == "verified 32 samples: all good"
    swap_first_micro_shards(store)  # the rebuilt record catches what it is there for
    line = one_error_line(run_cli("export", store, "--out", tmp_path / "png"))
    assert "sample 0: micro: shard file micro/c.0.0.0 holds another image" in line, line


def test_swapped_shards_without_checksums_are_not_exported_as_other_samples(run_cli, tmp_path, tiny_library):
    store = shutil.copytree(tiny_library, tmp_path / "lib.zarr")
    shutil.rmtree(store / "image_crc")
    swap_first_micro_shards(store)
    one_error_line(run_cli("export", store, "--out", tmp_path / "png"))
    assert not (tmp_path / "png").exists()


def test_an_imported_store_cannot_rebuild_its_checksums_and_says_so(run_cli, tmp_path, tiny_library):
    png = tmp_path / "png"
    assert run_cli("export", tiny_library, "--out", png, "--count", 4).exit_code == 0
    store = tmp_path / "imported.zarr"
    assert run_cli("import", png, "--out", store).exit_code == 0
    shutil.rmtree(store / "image_crc")
    before = tree(tmp_path)
    result = run_cli("verify", store, "--repair")
    assert result.exit_code == 1 and "Traceback" not in result.output, result.output
    assert "not repaired: an imported store cannot make its pairs again, so its checksums cannot be rebuilt" \
        in result.output
    assert tree(tmp_path) == before
