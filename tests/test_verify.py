"""`python cli.py verify`: every done sample re-read and checked; damage is reported by sample index."""

from __future__ import annotations

import re
import shutil

import numpy as np
import pytest
import zarr
from click.testing import CliRunner

from cli import cli
from conftest import one_error_line, tree

COUNT = 12


@pytest.fixture(scope="module")
def library(tmp_path_factory):
    """A small generated store and a store imported from its PNG export."""
    root = tmp_path_factory.mktemp("lib")
    runner = CliRunner()
    for args in (["generate", "--count", str(COUNT), "--size", "64", "--out", str(root / "lib.zarr"),
                  "--workers", "0", "--no-progress"],
                 ["export", str(root / "lib.zarr"), "--out", str(root / "png")],
                 ["import", str(root / "png"), "--out", str(root / "imported.zarr"), "--seed", "2"]):
        result = runner.invoke(cli, args)
        assert result.exit_code == 0, result.output
    return root / "lib.zarr", root / "imported.zarr"


@pytest.fixture
def store(tmp_path, library):
    """A private copy of the generated store, to damage."""
    return shutil.copytree(library[0], tmp_path / "lib.zarr")


def bad_samples(output: str) -> dict[int, str]:
    return {int(m.group(1)): m.group(2) for m in re.finditer(r"^sample (\d+): (.*)$", output, re.MULTILINE)}


@pytest.mark.parametrize("which", [0, 1])
def test_a_good_store_is_all_good(run_cli, library, which):
    result = run_cli("verify", library[which])
    assert result.exit_code == 0, result.output
    assert result.output.strip() == f"verified {COUNT} samples: all good"


def test_a_garbage_chunk_and_a_wrong_num_grains_are_exactly_the_bad_samples(run_cli, store):
    (store / "micro" / "c.3.0.0").write_bytes(b"garbage bytes, not a blosc frame" * 10)
    group = zarr.open_group(str(store), mode="r+")
    group["num_grains"][7] = group["num_grains"][7] + 1
    result = run_cli("verify", store)
    assert result.exit_code == 1, result.output
    bad = bad_samples(result.output)
    assert sorted(bad) == [3, 7], result.output
    assert bad[3] == "micro: index of shard file micro/c.3.0.0 fails its CRC32C checksum"
    assert re.fullmatch(r"num_grains \d+, but the grain map has \d+ ids", bad[7])
    assert result.output.strip().splitlines()[-1] == f"verified {COUNT} samples: 2 bad"
    assert "Traceback" not in result.output


def unrecorded(group, index):
    """As a store made before `image_crc` existed: the content checks below are what catch the damage."""
    group["image_crc"][index] = 0


def erase_label_chunk(store, group):
    (store / "label" / "c.5.0.0").unlink()


def gray_pixel(store, group):
    micro = group["micro"][5]
    micro[0, 0] = 17
    group["micro"][5] = micro
    unrecorded(group, 5)


def gap_in_grain_ids(store, group):
    grains = group["grains"][5]
    grains[grains == grains.max()] = grains.max() + 1
    group["grains"][5] = grains
    unrecorded(group, 5)


def grain_id_zero(store, group):
    grains = group["grains"][5]
    grains[0, 0] = 0
    group["grains"][5] = grains
    unrecorded(group, 5)


def test_an_image_rewritten_behind_the_stores_back_is_caught_by_its_recorded_checksum(run_cli, store):
    group = zarr.open_group(str(store), mode="r+")
    micro = group["micro"][5]
    micro[0, 0] = 255 - micro[0, 0]  # still 0/255, a valid chunk: only the recorded checksum tells
    group["micro"][5] = micro
    bad = bad_samples(run_cli("verify", store).output)
    assert list(bad) == [5] and bad[5].startswith("micro: shard file micro/c.5.0.0 holds another image than the one "
                                                  "committed for this sample"), bad


@pytest.mark.parametrize("damage, reason", [
    (erase_label_chunk, "label: shard file label/c.5.0.0 is missing"),
    (gray_pixel, "micro: 1 pixels are neither 0 nor 255"),
    (gap_in_grain_ids, "grains: largest id"),
    (grain_id_zero, "grains: smallest id 0, expected 1"),
    (lambda store, group: group["erased_fraction"].__setitem__(5, 0.75), "erased_fraction 0.75, recomputed"),
    (lambda store, group: group["erased_fraction"].__setitem__(5, np.nan), "erased_fraction nan, recomputed"),
    (lambda store, group: group["split"].__setitem__(5, 3), "split 3 is not 0, 1 or 2"),
])
def test_each_kind_of_damage_is_named(run_cli, store, damage, reason):
    damage(store, zarr.open_group(str(store), mode="r+"))
    result = run_cli("verify", store)
    assert result.exit_code == 1, result.output
    bad = bad_samples(result.output)
    assert list(bad) == [5] and bad[5].startswith(reason), result.output


def test_a_split_off_the_seed_rule_is_bad(run_cli, store):
    group = zarr.open_group(str(store), mode="r+")
    split = int(group["split"][5])
    group["split"][5] = (split + 1) % 3
    result = run_cli("verify", store)
    assert result.exit_code == 1, result.output
    assert bad_samples(result.output) == {5: f"split {(split + 1) % 3}, but the library seed gives {split}"}


def test_samples_not_done_are_not_checked(run_cli, store):
    (store / "micro" / "c.4.0.0").write_bytes(b"garbage")
    zarr.open_group(str(store), mode="r+")["done"][4] = False
    result = run_cli("verify", store)
    assert result.exit_code == 0, result.output
    assert result.output.splitlines() == ["not checked: 1 samples not done", f"verified {COUNT - 1} samples: all good"]


def test_an_imported_store_must_have_no_grain_map(run_cli, tmp_path, library):
    store = shutil.copytree(library[1], tmp_path / "imported.zarr")
    group = zarr.open_group(str(store), mode="r+")
    group["num_grains"][2] = 4
    grains = np.zeros((64, 64), np.uint16)
    grains[:, 32:] = 1
    group["grains"][9] = grains
    unrecorded(group, 9)
    result = run_cli("verify", store)
    assert result.exit_code == 1, result.output
    assert bad_samples(result.output) == {
        2: "num_grains 4, expected 0 (no grain map)",
        9: "grains: non-zero ids in an imported store (no grain map)",
    }


def flip_bit(path, bit):
    data = bytearray(path.read_bytes())
    data[bit // 8] ^= 1 << (bit % 8)
    path.write_bytes(bytes(data))


def test_a_single_bit_flip_in_an_image_chunk_is_a_bad_sample(run_cli, store):
    flip_bit(store / "label" / "c.6.0.0", 8 * 20 + 3)  # inside the Blosc frame: it may well still decode
    result = run_cli("verify", store)
    assert result.exit_code == 1, result.output
    assert bad_samples(result.output) == {6: "label: chunk fails its CRC32C checksum"}


def test_a_bad_sample_is_an_error_naming_it_in_export(run_cli, store, tmp_path):
    (store / "micro" / "c.4.0.0").unlink()  # a done sample's image lost: never the all-white fill value
    result = run_cli("export", store, "--out", tmp_path / "png")
    line = one_error_line(result)
    assert "sample 4: micro: shard file micro/c.4.0.0 is missing" in line and "verify" in line


def test_repair_remakes_bad_samples_byte_identical_and_names_them(run_cli, store, library):
    (store / "micro" / "c.3.0.0").write_bytes(b"garbage")
    flip_bit(store / "grains" / "c.8.0.0", 100)
    (store / "label" / "c.10.0.0").unlink()
    result = run_cli("verify", store, "--repair")
    assert result.exit_code == 0, result.output
    assert "repaired sample 3\nrepaired sample 8\nrepaired sample 10\n" in result.output
    assert result.output.strip().splitlines()[-1] == f"verified {COUNT} samples: 3 bad, 3 repaired"
    assert tree(store) == tree(library[0])
    for path in library[0].rglob("*"):
        if path.is_file() and path.name != "zarr.json":
            assert (store / path.relative_to(library[0])).read_bytes() == path.read_bytes(), path
    assert run_cli("verify", store).exit_code == 0


def test_repair_of_an_imported_store_names_the_bad_samples_and_changes_nothing(run_cli, tmp_path, library):
    store = shutil.copytree(library[1], tmp_path / "imported.zarr")
    (store / "micro" / "c.2.0.0").write_bytes(b"garbage")
    before = {p: p.read_bytes() for p in store.rglob("*") if p.is_file()}
    result = run_cli("verify", store, "--repair")
    assert result.exit_code == 1, result.output
    assert "not repaired: an imported store cannot make its pairs again (samples 2); nothing was changed" in result.output
    assert {p: p.read_bytes() for p in store.rglob("*") if p.is_file()} == before


@pytest.mark.parametrize("target, message", [
    ("missing.zarr", "does not exist"),
    ("plain", "is not a Reconstruction-GB store"),
    ("broken.zarr", "cannot read the done markers"),
    ("lost-done.zarr", "the done markers of samples 0-11 are missing; no sample can be checked"),
    ("garbage-meta.zarr", "array 'split' is missing or its metadata cannot be read"),
    ("garbage-seed.zarr", "cannot read the per-sample array 'seed'"),
    ("garbage-root.zarr", "garbage-root.zarr/zarr.json (JSONDecodeError): the store's metadata is damaged"),
    ("empty-root.zarr", "empty-root.zarr/zarr.json (JSONDecodeError): the store's metadata is damaged"),
])
def test_bad_input_is_one_clear_line(run_cli, tmp_path, library, target, message):
    (tmp_path / "plain").mkdir()
    for name in ("broken", "lost-done", "garbage-meta", "garbage-seed", "garbage-root", "empty-root"):
        shutil.copytree(library[0], tmp_path / f"{name}.zarr")
    (tmp_path / "broken.zarr" / "done" / "c.0").write_bytes(b"garbage")
    (tmp_path / "lost-done.zarr" / "done" / "c.0").unlink()  # verify used to say "verified 0 samples: all good"
    (tmp_path / "garbage-meta.zarr" / "split" / "zarr.json").write_bytes(b"{garbage")
    data = bytearray((tmp_path / "garbage-seed.zarr" / "seed" / "c.0").read_bytes())
    data[5] ^= 1  # one bit: caught by the chunk's CRC32C
    (tmp_path / "garbage-seed.zarr" / "seed" / "c.0").write_bytes(bytes(data))
    (tmp_path / "garbage-root.zarr" / "zarr.json").write_bytes(b"\x00garbage")
    (tmp_path / "empty-root.zarr" / "zarr.json").write_bytes(b"")
    before = tree(tmp_path)
    result = run_cli("verify", tmp_path / target)
    lines = result.output.strip().splitlines()
    assert result.exit_code == 1 and len(lines) == 1 and lines[0].startswith("Error: "), result.output
    assert message in lines[0] and "Traceback" not in result.output
    assert tree(tmp_path) == before


def test_repair_never_remakes_intact_samples_from_a_damaged_root_seed(run_cli, store):
    # A root `seed` changed from 0 to 5 makes the split of most samples "off the seed rule": the
    # repair made all of them again from seed 5, replacing good samples with other ones (exit 0).
    import json

    document = json.loads((store / "zarr.json").read_text())
    document["attributes"]["seed"] += 5
    (store / "zarr.json").write_text(json.dumps(document))
    before = {p: p.read_bytes() for p in store.rglob("*") if p.is_file()}
    result = run_cli("verify", store, "--repair")
    assert result.exit_code == 1 and "Traceback" not in result.output, result.output
    assert bad_samples(result.output), result.output
    assert ("are intact (their images match the checksums recorded when they were made), but this store's seed and "
            "config make other images for them: its root zarr.json is likely damaged") in result.output
    assert "repaired sample" not in result.output
    assert {p: p.read_bytes() for p in store.rglob("*") if p.is_file()} == before
