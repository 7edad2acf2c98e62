"""A damaged store gives every command one clear line naming the damage, exit 1, and changes nothing."""

from __future__ import annotations

import json
import shutil

import pytest

from conftest import one_error_line

def _edit_json(path, change) -> None:
    document = json.loads(path.read_text())
    change(document)
    path.write_text(json.dumps(document))


DAMAGE = {
    "root zarr.json without config": (
        lambda s: _edit_json(s / "zarr.json", lambda d: d["attributes"].pop("config")),
        "is damaged: its root zarr.json attributes have no 'config'; restore that file from a copy"),
    "micro data_type uint16": (
        lambda s: _edit_json(s / "micro" / "zarr.json", lambda d: d.update(data_type="uint16")),
        "is damaged: array 'micro' has data type uint16, not uint8 as this format stores it (micro/zarr.json)"),
    "format_version as text": (
        lambda s: _edit_json(s / "zarr.json", lambda d: d["attributes"].update(format_version="2")),
        'its root zarr.json gives format_version "2", not a whole number (this version reads 2)'),
    "garbage root zarr.json": (lambda s: (s / "zarr.json").write_bytes(b"\x00garbage"),
                               "zarr.json (JSONDecodeError): the store's metadata is damaged"),
    "empty root zarr.json": (lambda s: (s / "zarr.json").write_bytes(b""),
                             "zarr.json (JSONDecodeError): the store's metadata is damaged"),
    "garbage array zarr.json": (lambda s: (s / "micro" / "zarr.json").write_bytes(b"{"),
                                "array 'micro' is missing or its metadata cannot be read"),
    "garbage per-sample chunk": (lambda s: (s / "done" / "c.0").write_bytes(b"garbage"),
                                 "cannot read the done markers"),
    "lost done markers": (lambda s: (s / "done" / "c.0").unlink(), "the done markers of samples 0-31 are missing"),
    "root count lowered": (lambda s: _edit_json(s / "zarr.json", lambda d: d["attributes"].update(count=16)),
                           "its root zarr.json gives count 16, but sample 31 is done"),
}
COMMANDS = {
    "info": lambda s, tmp: ["info", s],
    "export": lambda s, tmp: ["export", s, "--out", tmp / "png"],
    "verify": lambda s, tmp: ["verify", s],
    "verify --repair": lambda s, tmp: ["verify", s, "--repair"],
    "generate": lambda s, tmp: ["generate", "--count", 32, "--size", 64, "--out", s, "--workers", 0, "--no-progress"],
    "evaluate": lambda s, tmp: ["evaluate", "--data", s, "--baseline", "identity", "--out", tmp / "eval",
                                "--no-progress"],
    "train": lambda s, tmp: ["train", "--data", s, "--out", tmp / "run", "--preset", "small", "--dry-run"],
}


@pytest.mark.parametrize("damage", DAMAGE)
@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_names_the_damage_in_one_line(run_cli, tmp_path, tiny_library, damage, command):
    store = shutil.copytree(tiny_library, tmp_path / "lib.zarr")
    damage_store, message = DAMAGE[damage]
    damage_store(store)
    before = {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()}
    line = one_error_line(run_cli(*COMMANDS[command](store, tmp_path)))
    assert message in line, line
    assert {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()} == before


def _swap(a, b) -> None:
    held = a.read_bytes()
    a.write_bytes(b.read_bytes())
    b.write_bytes(held)


@pytest.mark.parametrize("command", ["export", "evaluate", "verify"])
def test_two_swapped_shard_files_are_named_not_read_as_other_samples(run_cli, tmp_path, tiny_library, command):
    # Each chunk's own checksum stays valid: only the checksums recorded at commit can tell.
    store = shutil.copytree(tiny_library, tmp_path / "lib.zarr")
    _swap(store / "micro" / "c.0.0.0", store / "micro" / "c.1.0.0")
    before = {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()}
    args = {"export": ["export", store, "--out", tmp_path / "png"],
            "evaluate": ["evaluate", "--data", store, "--split", "all", "--baseline", "identity", "--out",
                         tmp_path / "eval", "--no-progress"],
            "verify": ["verify", store]}[command]
    result = run_cli(*args)
    assert result.exit_code == 1 and "Traceback" not in result.output, result.output
    named = "micro: shard file micro/c.0.0.0 holds another image than the one committed for this sample"
    if command == "verify":  # every sample of both shards (2 a shard), one line each
        assert [line.split(": ", 1)[0] for line in result.output.splitlines() if named.split(": ")[1] in line
                or "micro/c.1.0.0 holds another" in line] == ["sample 0", "sample 1", "sample 2", "sample 3"]
    else:
        assert named in one_error_line(result) and "sample 0" in result.output
    assert {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()} == before


def test_an_export_that_fails_at_its_first_pair_leaves_no_empty_folders(run_cli, tmp_path, tiny_library):
    # It left out/, out/micro/ and out/label/ behind, empty, after "0 pairs were exported before it".
    store = shutil.copytree(tiny_library, tmp_path / "lib.zarr")
    chunk = store / "micro" / "c.0.0.0"
    data = bytearray(chunk.read_bytes())
    data[10] ^= 0x01
    chunk.write_bytes(bytes(data))
    line = one_error_line(run_cli("export", store, "--out", tmp_path / "new" / "png"))
    assert "fails its CRC32C checksum" in line and "0 pairs were exported before it" in line, line
    assert not (tmp_path / "new").exists()


@pytest.mark.parametrize("command", ["info", "export", "verify"])
def test_an_image_array_without_its_sharding_codec_is_named(run_cli, tmp_path, tiny_library, command):
    # `info` read the shard size from it: "TypeError: 'NoneType' object is not subscriptable".
    store = shutil.copytree(tiny_library, tmp_path / "lib.zarr")
    _edit_json(store / "micro" / "zarr.json", lambda d: d.update(codecs=[{"name": "bytes"}]))
    before = {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()}
    line = one_error_line(run_cli(*COMMANDS[command](store, tmp_path)))
    assert "array 'micro' does not have the codecs of format 2" in line, line
    assert {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()} == before
