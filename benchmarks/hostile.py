"""Hostile run (issue 33): >= 1,000 bad inputs, damaged stores, bad images and models, signals, kill -9 and
full disks thrown at `cli.py`, one subprocess a case, each in a temporary folder of its own.

Run from the repo root: `nice -n 19 .venv/bin/python benchmarks/hostile.py [--only FAMILY] [--limit N]`.
Every case is classed:
  clean          a non-zero exit with exactly one stderr line and no traceback (130/143 for signals), or an
                 expected success whose result was checked;
  traceback      'Traceback', 'Exception ignored', 'Fatal Python error' or a death by a signal;
  hang           still running at the case's timeout;
  wrong_result   exit 0 where an error was due, a wrong exit status, or a wrong or unchecked output;
  data_loss      a file the case started with was changed or removed (the user's input);
  stray_output   a failed run left a file or folder behind (or a partial file, or a leftover process);
  unclear        a non-zero exit without a traceback, but not exactly one line naming the problem.
The last line printed is one JSON object: counts per class, cases run, seconds, date, machine.
Deterministic: every random choice comes from one seeded generator.
"""

from __future__ import annotations

import argparse
import collections
import datetime
import hashlib
import json
import os
import platform
import random
import re
import shlex
import shutil
import signal
import struct
import subprocess
import sys
import tempfile
import time
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

CLI = [sys.executable, str(ROOT / "cli.py")]
SEED = 33
STANDINS = ROOT / "tests" / "standins"
CLASSES = ["clean", "traceback", "hang", "wrong_result", "data_loss", "stray_output", "unclear"]
BUNDLED = ROOT / "model" / "pretrained" / "reconstruction_gb.keras"
HAS_UNSHARE = shutil.which("unshare") is not None and os.geteuid() == 0


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


# ----------------------------------------------------------------------------------------------- cases

@dataclass
class Case:
    family: str
    name: str
    argv: list[str]                      # cli.py arguments, relative to the case folder
    needs: tuple[str, ...] = ()          # fixtures copied into the case folder first
    setup: Callable[[Path], None] | None = None
    expect: str = "error"                # error | ok | either
    check: Callable[["Ctx"], str | None] | None = None   # an exit-0 result: a problem, or None
    mutable: tuple[str, ...] = ()        # relative paths the command may change (verify --repair's store)
    allow_new: Callable[[str, "Ctx"], bool] | None = None  # new paths a failed run may leave
    lines: str = "one"                   # one | last (the last stderr line is the Error line) | verify
    words: tuple[str, ...] = ()          # the error line must say these
    env: dict[str, str] | None = None
    wrap: tuple | None = None            # ("ro", dir) | ("disk", dir, kilobytes)
    timeout: float = 60.0
    runner: Callable[["Case", Path], "Ctx"] | None = None  # signal and kill -9 cases


@dataclass
class Ctx:
    case: Case
    folder: Path
    rc: int | None = None
    out: str = ""
    err: str = ""
    seconds: float = 0.0
    before: dict[str, str] = field(default_factory=dict)
    after: dict[str, str] = field(default_factory=dict)
    verdict: str = ""
    why: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def new(self) -> list[str]:
        return sorted(set(self.after) - set(self.before))


def snapshot(folder: Path) -> dict[str, str]:
    """relative path -> sha256 of a file, 'dir' for a folder, 'link' for a symlink, 'other' otherwise."""
    state = {}
    for dirpath, dirnames, filenames in os.walk(folder):
        for name in dirnames + filenames:
            p = Path(dirpath) / name
            rel = str(p.relative_to(folder))
            if p.is_symlink():
                state[rel] = "link"
            elif p.is_dir():
                state[rel] = "dir"
            elif p.is_file():
                state[rel] = hashlib.sha256(p.read_bytes()).hexdigest()
            else:
                state[rel] = "other"
    return state


def run_process(argv: list[str], cwd: Path, env: dict[str, str] | None, timeout: float) -> tuple[int | None, str, str,
                                                                                                     float]:
    start = time.monotonic()
    process = subprocess.Popen(argv, cwd=cwd, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True, errors="replace", start_new_session=True)
    try:
        out, err = process.communicate(timeout=timeout)
        rc = process.returncode
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        out, err = process.communicate()
        rc = None
    kill_group(process.pid)
    return rc, out, err, time.monotonic() - start


def kill_group(pgid: int) -> bool:
    """Kill what is left of a case's process group; True if anything was left."""
    try:
        os.killpg(pgid, 0)
    except (ProcessLookupError, PermissionError):
        return False
    time.sleep(0.5)
    try:
        os.killpg(pgid, signal.SIGKILL)
        return True
    except (ProcessLookupError, PermissionError):
        return False


def wrapped(case: Case, folder: Path) -> list[str]:
    command = [*CLI, *case.argv]
    if case.wrap is None:
        return command
    if case.wrap[0] == "ro":
        script = 'mount --bind -o ro "$0" "$0" && exec "$@"'
        return ["unshare", "-m", "sh", "-c", script, str(folder / case.wrap[1]), *command]
    _, disk, kb = case.wrap
    script = ('mount -t tmpfs -o size="$1"k tmpfs "$0" || exit 99; shift; "$@"; rc=$?; '
              'cp -a "$0"/. "$0.after"/ 2>/dev/null; exit $rc')
    (folder / f"{disk}.after").mkdir()
    return ["unshare", "-m", "sh", "-c", script, str(folder / disk), str(kb), *command]


def run_case(case: Case, folder: Path, fixtures: Path) -> Ctx:
    folder.mkdir(parents=True)
    for need in case.needs:
        source = fixtures / need
        if source.is_dir():
            shutil.copytree(source, folder / need, symlinks=True)
        else:
            shutil.copy(source, folder / need)
    if case.setup:
        case.setup(folder)
    ctx = Ctx(case, folder)
    ctx.before = snapshot(folder)
    if case.runner:
        case.runner(case, folder, ctx)
    else:
        env = {**os.environ, **(case.env or {})}
        ctx.rc, ctx.out, ctx.err, ctx.seconds = run_process(wrapped(case, folder), folder, env, case.timeout)
    ctx.after = snapshot(folder)
    classify(ctx)
    return ctx


# A Python exception's name in a message: an internal error passed off as one.
INTERNAL = re.compile(r"\b(OverflowError|ValueError|TypeError|KeyError|IndexError|AttributeError|ZeroDivisionError|"
                      r"AssertionError|NameError|UnboundLocalError|RecursionError|MemoryError|NotImplementedError)\b")
TRACE = ("Traceback (most recent call last)", "Exception ignored", "Fatal Python error", "Segmentation fault")


def classify(ctx: Ctx) -> None:
    case, text = ctx.case, ctx.out + ctx.err

    def verdict(kind: str, why: str = "") -> None:
        ctx.verdict, ctx.why = kind, why

    if ctx.extra.get("verdict"):
        return verdict(*ctx.extra["verdict"])
    if ctx.rc is None:
        return verdict("hang", f"still running after {case.timeout:.0f} s")
    if any(t in text for t in TRACE) or ctx.rc < 0:
        return verdict("traceback", f"exit {ctx.rc}")
    lost = [p for p, h in ctx.before.items() if not any(p == m or p.startswith(m + "/") for m in case.mutable)
            and ctx.after.get(p) != h and not p.endswith(".after")]
    if lost:
        return verdict("data_loss", f"{len(lost)} input paths changed or gone: {lost[:3]}")
    disk_after = [p for p in ctx.new if ".after/" in p]
    if ctx.rc == 0:
        if case.expect == "error":
            return verdict("wrong_result", "exit 0 where an error was due")
        if case.expect in ("ok", "either"):
            partial = [p for p in ctx.new if re.search(r"(\.partial|\.tmp|~)$|/\.tmp|^\.tmp", p)]
            if partial:
                return verdict("stray_output", f"partial files left: {partial[:3]}")
            problem = case.check(ctx) if case.check else None
            if problem:
                return verdict("wrong_result", problem)
            return verdict("clean")
        return verdict("wrong_result", f"exit 0, expected {case.expect}")
    if case.expect == "ok":
        return verdict("wrong_result", f"exit {ctx.rc} where success was due: {last_line(ctx.err or ctx.out)}")
    if case.lines == "usage":  # no arguments at all: click's usage block (exit 2) is the answer
        if ctx.rc == 2 and "Usage: " in ctx.err and not ctx.new:
            return verdict("clean")
        return verdict("unclear", f"exit {ctx.rc} without a usage block")
    # a failure: exactly one line naming the problem, and nothing left behind
    new = [p for p in ctx.new if not (case.allow_new and case.allow_new(p, ctx))
           and not (p.endswith(".after") and case.wrap) and p not in disk_after]
    new += [p for p in disk_after if not (case.allow_new and case.allow_new(p, ctx))]
    if new:
        return verdict("stray_output", f"exit {ctx.rc} but left {len(new)} new paths: {new[:4]}")
    err_lines = [line for line in ctx.err.splitlines() if line.strip()]
    internal = [line for line in err_lines if INTERNAL.search(line)]
    if internal:
        return verdict("unclear", f"an internal error shown as the message: {internal[0][:200]}")
    per_input = err_lines and all(line.startswith(("failed: ", "skipped ")) for line in err_lines[:-1]) and (
        err_lines[-1].startswith(("failed: ", "skipped ", "Error: ")))
    if case.lines == "one" and len(err_lines) != 1 and not per_input:
        return verdict("unclear", f"{len(err_lines)} stderr lines (stdout {len(ctx.out.splitlines())} lines)")
    if case.lines == "last" and not (err_lines and err_lines[-1].startswith("Error: ")):
        return verdict("unclear", "the last stderr line is not an Error line")
    if case.lines == "verify":
        shown = [line for line in (ctx.out + ctx.err).splitlines() if line.strip()]
        if not shown or any(len(line) > 2000 for line in shown):
            return verdict("unclear", "verify named no sample")
    line = err_lines[-1] if err_lines else last_line(ctx.out)
    missing = [w for w in case.words if not any(alternative.lower() in line.lower() for alternative in w.split("|"))]
    if missing:
        return verdict("unclear", f"the line does not say {missing}: {line[:200]}")
    if len(line) > 3000:
        return verdict("unclear", f"a {len(line)}-character line")
    return verdict("clean")


def last_line(text: str) -> str:
    lines = [line for line in text.splitlines() if line.strip()]
    return lines[-1] if lines else ""


# ------------------------------------------------------------------------------------ fixtures (built once)

def build_fixtures(fixtures: Path, ref: dict[str, Any]) -> None:
    """S.zarr (16 x 64 px), png/ (its export), v1.zarr (format 1), img/ (4 maps, 1 gray micrograph), models."""
    import cv2
    import numpy as np

    def cli(*args: str, cwd: Path = fixtures) -> subprocess.CompletedProcess:
        run = subprocess.run([*CLI, *args], cwd=cwd, capture_output=True, text=True)
        assert run.returncode == 0, (args, run.stdout, run.stderr)
        return run

    fixtures.mkdir(parents=True)
    cli("generate", "--count", "16", "--size", "64", "--out", "S.zarr", "--workers", "0", "--no-progress")
    cli("export", "S.zarr", "--out", "png")
    ref["S"] = store_state(fixtures / "S.zarr")
    ref["S16"] = samples_state(fixtures / "S.zarr")
    ref["export"] = {p: h for p, h in snapshot(fixtures / "png").items()}
    ref["info"] = normal(cli("info", "S.zarr").stdout, fixtures)
    ref["dry"] = normal(cli("train", "--data", "S.zarr", "--out", "run", "--preset", "small", "--dry-run").stdout,
                        fixtures)
    cli("evaluate", "--data", "S.zarr", "--split", "all", "--baseline", "identity", "--out", "ev", "--no-progress")
    ref["metrics"] = (fixtures / "ev" / "metrics.json").read_text()
    shutil.rmtree(fixtures / "ev")
    shutil.rmtree(fixtures / "run", ignore_errors=True)
    # A format-1 store, as tests/test_upgrade.py writes it.
    from pipeline.config import GenerationConfig
    from test_upgrade import write_format1
    done = [True] * 10
    done[7] = False
    write_format1(fixtures / "v1.zarr", GenerationConfig(size=64), 3, 10, done)
    cli("upgrade", "v1.zarr", "--out", "v2.zarr")
    ref["upgrade"] = store_state(fixtures / "v2.zarr")
    shutil.rmtree(fixtures / "v2.zarr")
    img = fixtures / "img"
    img.mkdir()
    for k in range(4):
        shutil.copy(fixtures / "png" / "label" / f"{k}.png", img / f"{k}.png")
    shutil.copy(fixtures / "png" / "micro" / "0.png", fixtures / "gray.png")
    # 400 maps for the signal cases (far more than a run gets through before its signal)
    many = fixtures / "many"
    many.mkdir()
    for k in range(400):
        shutil.copy(fixtures / "png" / "label" / f"{k % 16}.png", many / f"{k}.png")
    make_models(fixtures / "models")
    log("fixtures ready")


def store_state(path: Path) -> dict[str, Any] | None:
    """Every array of a store (bytes digest) and its root attributes but 'created': None if unreadable."""
    import zarr
    try:
        group = zarr.open_group(str(path), mode="r")
        arrays = {name: hashlib.sha256(array[:].tobytes()).hexdigest() + str(array.dtype) for name, array in
                  group.arrays()}
        attrs = {k: v for k, v in dict(group.attrs).items() if k not in ("created", "versions")}
        return {"arrays": arrays, "attrs": json.dumps(attrs, sort_keys=True)}
    except Exception:  # noqa: BLE001 - a damaged store is what it is
        return None


def samples_state(path: Path, count: int = 16) -> dict[str, str] | None:
    """The first `count` rows of every array: what a reader of a `count`-sample store reads."""
    import zarr
    try:
        group = zarr.open_group(str(path), mode="r")
        return {name: hashlib.sha256(array[:count].tobytes()).hexdigest() + str(array.dtype)
                for name, array in group.arrays()}
    except Exception:  # noqa: BLE001
        return None


def normal(text: str, folder: Path) -> str:
    return text.replace(str(folder.resolve()), "<F>").replace(str(folder), "<F>")


MODEL_SCRIPT = r"""
import sys, warnings, zipfile
from pathlib import Path
import keras
from conftest import nan_models
out = Path(sys.argv[1]); out.mkdir()
paths = nan_models(out)
def save(name, model):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        model.save(out / f"{name}.keras")
x = keras.Input((None, None, 3)); save("in3", keras.Model(x, keras.layers.Conv2D(1, 1, activation="sigmoid")(x)))
x = keras.Input((None, None, 1)); save("out2", keras.Model(x, keras.layers.Conv2D(2, 1, activation="sigmoid")(x)))
x = keras.Input((32, 32, 1)); save("fixed32", keras.Model(x, keras.layers.Conv2D(1, 1, activation="sigmoid")(x)))
x = keras.Input((None, None, 1)); save("rank2", keras.Model(x, keras.layers.GlobalAveragePooling2D()(x)))
x = keras.Input((None, None, 1))
save("ok", keras.Model(x, keras.layers.Conv2D(1, 1, activation="sigmoid")(x)))
data = (out / "ok.keras").read_bytes()
(out / "truncated.keras").write_bytes(data[: len(data) // 2])
(out / "text.keras").write_text("this is not a model\n")
(out / "empty.keras").write_bytes(b"")
with zipfile.ZipFile(out / "zipjunk.keras", "w") as z:
    z.writestr("hello.txt", "no config here")
(out / "model.h5").write_bytes(b"\x89HDF\r\n\x1a\n" + b"\0" * 100)
(out / "folder.keras").mkdir()
"""


def make_models(folder: Path) -> None:
    env = {**os.environ, "PYTHONPATH": f"{ROOT / 'tests'}{os.pathsep}{ROOT}"}
    run = subprocess.run([sys.executable, "-c", MODEL_SCRIPT, str(folder)], env=env, capture_output=True, text=True)
    assert run.returncode == 0, run.stderr[-3000:]


# -------------------------------------------------------------------------------------------- bad images

def png_bytes(image) -> bytes:
    import cv2
    ok, data = cv2.imencode(".png", image)
    assert ok
    return data.tobytes()


def declared_png(width: int, height: int) -> bytes:
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\0" * (width + 1)))
            + chunk(b"IEND", b""))


def declared_tiff(width: int, height: int) -> bytes:
    """A little-endian TIFF whose header declares width x height 8-bit pixels, with 64 bytes of data."""
    tags = [(256, 4, 1, width), (257, 4, 1, height), (258, 3, 1, 8), (259, 3, 1, 1), (262, 3, 1, 1),
            (273, 4, 1, 8 + 2 + 12 * 10 + 4), (277, 3, 1, 1), (278, 4, 1, height), (279, 4, 1, 64),
            (284, 3, 1, 1)]
    body = struct.pack("<H", len(tags)) + b"".join(struct.pack("<HHII", *t) for t in tags) + struct.pack("<I", 0)
    return b"II*\x00" + struct.pack("<I", 8) + body + b"\x80" * 64


def image_kinds(fixtures: Path) -> dict[str, tuple[str, Callable[[Path], None]]]:
    """name -> (bad | odd, writer of that image at a path). bad: no image; odd: an image, but a strange one."""
    import cv2
    import numpy as np
    good = (fixtures / "png" / "label" / "0.png").read_bytes()
    label = cv2.imread(str(fixtures / "png" / "label" / "0.png"), cv2.IMREAD_GRAYSCALE)

    def write(data: bytes) -> Callable[[Path], None]:
        return lambda p: p.write_bytes(data)

    def tif(array) -> Callable[[Path], None]:
        def make(p: Path) -> None:
            ok, data = cv2.imencode(".tiff", array)
            assert ok
            p.write_bytes(data.tobytes())
        return make

    nan = label.astype(np.float32) / 255
    nan[::3, ::3] = np.nan
    inf = label.astype(np.float32)
    inf[0, :] = np.inf
    big = np.tile(label, (1, 1))
    ok_tif = tif(label)
    tiff_data = cv2.imencode(".tiff", label)[1].tobytes()

    def fifo(p: Path) -> None:
        os.mkfifo(p)

    def loop(p: Path) -> None:
        os.symlink(p.name, p)

    def folder(p: Path) -> None:
        p.mkdir()

    return {
        "empty.png": ("bad", write(b"")),
        "text.png": ("bad", write(b"not a png at all\n")),
        "truncated.png": ("bad", write(good[: len(good) // 2])),
        "header-only.png": ("bad", write(good[:33])),
        "declared-32000.png": ("bad", write(declared_png(32000, 32000))),
        "declared-huge.png": ("bad", write(declared_png(2 ** 31 - 1, 2 ** 31 - 1))),
        "declared-thin.png": ("bad", write(declared_png(2 ** 30, 1))),
        "empty.tif": ("bad", write(b"")),
        "truncated.tif": ("bad", write(tiff_data[: len(tiff_data) // 2])),
        "declared-huge.tif": ("bad", write(declared_tiff(100000, 100000))),
        "garbage.jpg": ("bad", write(bytes(random.Random(1).randrange(256) for _ in range(2000)))),
        "fifo.png": ("bad", fifo),
        "loop.png": ("bad", loop),
        "folder.png": ("bad", folder),
        "1x1.png": ("odd", write(png_bytes(np.full((1, 1), 255, np.uint8)))),
        "2x2.png": ("odd", write(png_bytes(np.array([[0, 255], [255, 0]], np.uint8)))),
        "1x4096.png": ("odd", write(png_bytes(np.tile(np.array([0, 255], np.uint8), 2048)[None, :]))),
        "black.png": ("odd", write(png_bytes(np.zeros((64, 64), np.uint8)))),
        "white.png": ("odd", write(png_bytes(np.full((64, 64), 255, np.uint8)))),
        "16bit.png": ("odd", write(png_bytes(label.astype(np.uint16) * 257))),
        "colour.png": ("odd", write(png_bytes(np.dstack([label, label // 2, 255 - label])))),
        "rgba.png": ("odd", write(png_bytes(np.dstack([label, label, label, np.full_like(label, 128)])))),
        "nan.tif": ("odd", tif(nan)),
        "inf.tif": ("odd", tif(inf)),
        "float.tif": ("odd", tif(label.astype(np.float32) / 255)),
        "map.tif": ("odd", ok_tif),
        "noise.png": ("odd", write(png_bytes(np.random.default_rng(0).integers(0, 256, (64, 64), dtype=np.uint8)))),
        "big-ok.png": ("odd", write(png_bytes(np.tile(big, (8, 8))))),
    }


# ------------------------------------------------------------------------------------------------ checks

def read_png(path: Path):
    import cv2
    return cv2.imread(str(path), cv2.IMREAD_UNCHANGED)


def check_help(ctx: Ctx) -> str | None:
    if not ctx.out.startswith("Usage: ") or ctx.err.strip():
        return "help is not a Usage block on stdout"
    return None


def verify_store(ctx: Ctx, name: str) -> str | None:
    store = ctx.folder / name
    if not store.exists():
        return f"{name} was not written"
    run = subprocess.run([*CLI, "verify", str(store)], capture_output=True, text=True)
    if run.returncode != 0:
        return f"verify of {name}: {last_line(run.stdout + run.stderr)}"
    return None


def check_export(ctx: Ctx, out: str = "out", ref: dict | None = None) -> str | None:
    folder = ctx.folder / out
    names = [p for p in snapshot(folder) if p.endswith(".png")] if folder.exists() else []
    if not names:
        return "exit 0 but no PNG exported"
    for name in names:
        if read_png(folder / name) is None:
            return f"{name} does not decode"
    if ref is not None:
        for name in names:
            if ref.get(name) != hashlib.sha256((folder / name).read_bytes()).hexdigest():
                return f"exported {name} differs from the pristine store's"
    return None


def check_predict(ctx: Ctx, out: str = "out") -> str | None:
    import numpy as np
    folder = ctx.folder / out
    pngs = sorted(folder.glob("*.png")) if folder.exists() else []
    if not pngs:
        return "exit 0 but nothing predicted"
    for p in pngs:
        image = read_png(p)
        if image is None:
            return f"{p.name} does not decode"
        values = set(np.unique(image).tolist())
        if not values <= {0, 255}:
            return f"{p.name} is not binary: {sorted(values)[:5]}"
    return None


def check_table(ctx: Ctx, name: str) -> str | None:
    files = list(ctx.folder.rglob(name))
    if not files:
        return f"exit 0 but no {name}"
    for f in files:
        text = f.read_text(errors="replace")
        if re.search(r"(?i)(^|[,:\s\[])(-?nan|-?inf(inity)?)([,\s\]}]|$)", text):
            return f"{f.relative_to(ctx.folder)} holds nan or inf"
    return None


def check_measure(ctx: Ctx) -> str | None:
    return check_table(ctx, "summary.csv") or check_table(ctx, "summary.json")


def check_evaluate(ctx: Ctx) -> str | None:
    return check_table(ctx, "metrics.json")


def check_train(ctx: Ctx) -> str | None:
    if not list(ctx.folder.rglob("*.keras")):
        return "exit 0 but no model written"
    return check_table(ctx, "history.csv")


def check_tune(ctx: Ctx) -> str | None:
    return check_table(ctx, "*.settings.json")


def check_nonempty(ctx: Ctx) -> str | None:
    return None if ctx.out.strip() else "exit 0 and nothing printed"


def generic_check(argv: list[str]) -> Callable[[Ctx], str | None]:
    command = argv[0]
    if "--help" in argv or "-h" in argv:
        return check_help
    out = argv[argv.index("--out") + 1] if "--out" in argv else None
    if command == "generate":
        return lambda ctx: verify_store(ctx, out or "generated_data/reconstruction.zarr")
    if command in ("import", "upgrade"):
        return lambda ctx: verify_store(ctx, out)
    if command == "export":
        return lambda ctx: check_export(ctx, out)
    if command == "predict":
        return lambda ctx: check_predict(ctx, out)
    if command == "measure":
        return check_measure
    if command == "evaluate":
        return check_evaluate
    if command == "train":
        return check_nonempty if "--dry-run" in argv else check_train
    if command == "tune":
        return check_tune
    return check_nonempty


# --------------------------------------------------------------------------------------------- families

BASE = {  # a valid command of each kind, small
    "generate": ["generate", "--count", "4", "--size", "64", "--out", "new.zarr", "--workers", "0", "--no-progress"],
    "info": ["info", "S.zarr"],
    "verify": ["verify", "S.zarr"],
    "verify --repair": ["verify", "S.zarr", "--repair"],
    "export": ["export", "S.zarr", "--out", "out"],
    "import": ["import", "png", "--out", "new.zarr"],
    "upgrade": ["upgrade", "v1.zarr", "--out", "new.zarr"],
    "evaluate": ["evaluate", "--data", "S.zarr", "--baseline", "identity", "--out", "ev", "--no-progress"],
    "predict": ["predict", "img", "--out", "out", "--method", "bridge", "--no-progress"],
    "measure": ["measure", "img", "--out", "out"],
    "tune": ["tune", "--model", "models/ok.keras", "--data", "S.zarr", "--no-progress", "--samples", "1"],
    "train": ["train", "--data", "S.zarr", "--out", "run", "--preset", "small", "--epochs", "1", "--limit", "16"],
}
NEEDS = {"generate": (), "info": ("S.zarr",), "verify": ("S.zarr",), "verify --repair": ("S.zarr",),
         "export": ("S.zarr",), "import": ("png",), "upgrade": ("v1.zarr",), "evaluate": ("S.zarr",),
         "predict": ("img",), "measure": ("img",), "tune": ("models", "S.zarr"), "train": ("S.zarr",)}

LONG = "x" * 5000
BAD_INT = ["nan", "inf", "-1", "0", "99999999999999999999", "1.5", "", "abc", "1e3", "9" * 400, LONG, "-0"]
BAD_FLOAT = ["nan", "inf", "-inf", "-1", "0", "1e308", "1e-308", "", "abc", "1e999", "-0.0", LONG]
# option -> (command, kind); kind: int or float with the values above
OPTIONS = [
    ("generate", "--count", "int"), ("generate", "--size", "int"), ("generate", "--seed", "int"),
    ("generate", "--workers", "int"), ("generate", "--block", "int"), ("generate", "--jobs", "int"),
    ("export", "--start", "int"), ("export", "--count", "int"), ("import", "--seed", "int"),
    ("train", "--epochs", "int"), ("train", "--batch", "int"), ("train", "--limit", "int"),
    ("train", "--filters", "int"), ("train", "--depth", "int"), ("train", "--kernel-size", "int"),
    ("train", "--cldice-weight", "float"), ("train", "--crop", "int"), ("train", "--corrupt-scale", "float"),
    ("train", "--lr", "float"), ("train", "--patience", "int"), ("train", "--seed", "int"),
    ("tune", "--samples", "int"), ("tune", "--batch", "int"),
    ("predict", "--threshold", "float"), ("predict", "--link-threshold", "float"),
    ("predict", "--min-speck", "int"), ("predict", "--scale", "float"), ("predict", "--tile", "int"),
    ("predict", "--overlap", "int"), ("predict", "--batch", "int"),
    ("measure", "--pixel-size", "float"), ("measure", "--min-grain", "int"), ("measure", "--scale", "float"),
    ("measure", "--min-speck", "int"),
    ("evaluate", "--limit", "int"), ("evaluate", "--threshold", "float"), ("evaluate", "--min-speck", "int"),
    ("evaluate", "--batch", "int"), ("evaluate", "--link-threshold", "float"),
]
TRAIN_DRY = {"--epochs", "--batch", "--limit", "--patience", "--seed", "--crop"}


def option_cases(rng: random.Random) -> list[Case]:
    cases = []
    for command, option, kind in OPTIONS:
        values = BAD_INT if kind == "int" else BAD_FLOAT
        for value in values:
            argv = list(BASE[command])
            if command == "train" and option in TRAIN_DRY:
                argv += ["--dry-run"]
            if command in ("evaluate",) and option in ("--threshold", "--min-speck", "--batch", "--link-threshold"):
                argv = ["evaluate", "--data", "S.zarr", "--model", "models/ok.keras", "--out", "ev", "--no-progress",
                        "--limit", "1"]
            if command == "predict" and option in ("--tile", "--overlap", "--batch", "--threshold",
                                                   "--link-threshold"):
                argv = ["predict", "img/0.png", "--out", "out", "--model", "models/ok.keras", "--no-progress"]
            if option in argv:
                i = argv.index(option)
                del argv[i:i + 2]
            if command == "generate" and option == "--jobs":
                argv += ["--cluster", "slurm"]
            argv += [option, value]
            number = parse_number(value, kind)
            expect = "either" if number is not None and number >= 0 else "error"
            if command == "generate" and option == "--count" and expect == "either" and number > 10 ** 6:
                expect = "error"  # a trillion pairs at 64 px: must be refused, not started
            cases.append(Case("options", f"{command} {option} {value[:20]!r}", argv, NEEDS[command], expect=expect,
                              check=generic_check(argv), timeout=90, lines=progress_lines(argv)))
    return cases


def progress_lines(argv: list[str]) -> str:
    """train prints its epochs (and tune and evaluate nothing but their result) before a late failure:
    for a training run, the Error line must be the last line, not the only one."""
    return "last" if argv[0] == "train" and "--dry-run" not in argv else "one"


def parse_number(value: str, kind: str) -> float | None:
    try:
        return int(value) if kind == "int" else float(value)
    except ValueError:
        return None


def path_cases() -> list[Case]:
    """Missing, strange and forbidden paths for every reader and writer."""
    cases = []
    bad_stores = {"missing": "nothing.zarr", "empty-name": "", "file": "file.txt", "plain-folder": "plain",
                  "proc": "/proc/self", "dev-null": "/dev/null", "long-name": LONG, "newline": "a\nb.zarr",
                  "png-folder": "png", "proc-status": "/proc/self/status", "dev-zero": "/dev/zero",
                  "fifo": "pipe.zarr", "loop": "loop.zarr", "store-sub": "S.zarr/micro"}

    def prepare(folder: Path) -> None:
        (folder / "file.txt").write_text("hello\n")
        (folder / "plain").mkdir()
        os.mkfifo(folder / "pipe.zarr")
        os.symlink("loop.zarr", folder / "loop.zarr")

    for command in ("info", "verify", "verify --repair", "export", "upgrade", "evaluate", "train", "tune"):
        for kind, path in bad_stores.items():
            argv = list(BASE[command])
            if command in ("evaluate", "train", "tune"):
                argv[argv.index("--data") + 1] = path
            else:
                argv[1] = path
            if command == "train":
                argv += ["--dry-run"]
            cases.append(Case("paths", f"{command} store={kind}", argv, ("S.zarr", "png", "models"), setup=prepare))
    for command in ("predict", "measure"):
        for kind, path in {"missing": "nothing.png", "empty-name": "", "proc-status": "/proc/self/status",
                           "dev-null": "/dev/null", "dev-zero": "/dev/zero", "long-name": LONG,
                           "fifo": "pipe.zarr", "loop": "loop.zarr", "plain-folder": "plain",
                           "file": "file.txt"}.items():
            argv = [command, path, *BASE[command][2:]]
            cases.append(Case("paths", f"{command} input={kind}", argv, ("img",), setup=prepare, timeout=60))
    cases.append(Case("paths", "import dir=missing", ["import", "nothing", "--out", "new.zarr"]))
    cases.append(Case("paths", "import dir=file", ["import", "file.txt", "--out", "new.zarr"], setup=prepare))
    cases.append(Case("paths", "import dir=plain", ["import", "plain", "--out", "new.zarr"], setup=prepare))
    cases.append(Case("paths", "import dir=proc", ["import", "/proc/self", "--out", "new.zarr"]))
    # writers: --out where it cannot or must not go
    outs = {"proc": "/proc/x", "proc-deep": "/proc/self/nope/x", "dev-null": "/dev/null", "long-name": LONG,
            "in-store": "S.zarr/sub", "existing-file": "file.txt", "under-file": "file.txt/x",
            "empty": "", "sys": "/sys/x"}
    for command in ("generate", "export", "import", "upgrade", "evaluate", "predict", "measure", "train"):
        for kind, path in outs.items():
            argv = list(BASE[command])
            argv[argv.index("--out") + 1] = path
            needs = tuple(dict.fromkeys(NEEDS[command] + ("S.zarr",)))
            if command == "train":
                argv += ["--dry-run"] if kind not in ("in-store",) else []
            expect = "error"
            if command == "train" and kind != "in-store":
                expect = "either"  # a dry run writes nothing: --out is not used
            cases.append(Case("paths", f"{command} --out={kind}", argv, needs, setup=prepare, expect=expect,
                              check=generic_check(argv), timeout=90))
    # --out is the input itself
    for command in ("export", "predict", "measure", "evaluate", "import"):
        argv = list(BASE[command])
        argv[argv.index("--out") + 1] = {"export": "S.zarr", "predict": "img", "measure": "img", "evaluate": "S.zarr",
                                         "import": "png"}[command]
        cases.append(Case("paths", f"{command} --out=its input", argv, tuple(dict.fromkeys(NEEDS[command] + ("S.zarr",))),
                          expect="either" if command in ("predict", "measure") else "error",
                          check=generic_check(argv), mutable=("img",) if command == "predict" else ()))
    # storage options
    for command in ("info", "verify", "export", "generate", "import", "evaluate", "upgrade", "train", "tune"):
        for kind, value in {"empty": "", "broken": "{", "list": "[1]", "null": "null", "number": "3",
                            "long": "{" + LONG, "unknown-key": '{"endpoint_url": "http://127.0.0.1:1"}'}.items():
            argv = list(BASE[command]) + ["--storage-options", value]
            if command == "train":
                argv += ["--dry-run"]
            expect = "error"
            cases.append(Case("storage-options", f"{command} --storage-options {kind}", argv,
                              tuple(dict.fromkeys(NEEDS[command] + ("S.zarr",))), expect=expect,
                              check=generic_check(argv)))
    return cases


def choice_cases() -> list[Case]:
    cases = []
    for argv in (["generate", "--count", "4", "--size", "64", "--out", "n.zarr", "--preset", "nope"],
                 ["generate", "--count", "4", "--size", "64", "--out", "n.zarr", "--task", "denoise"],
                 ["generate", "--count", "4", "--size", "64", "--out", "n.zarr", "--nucleation-rate", "20", "10"],
                 ["generate", "--count", "4", "--size", "64", "--out", "n.zarr", "--nucleation-rate", "-1", "5"],
                 ["generate", "--count", "4", "--size", "64", "--out", "n.zarr", "--nucleation-rate", "0", "0"],
                 ["generate", "--count", "4", "--size", "64", "--out", "n.zarr", "--nucleation-rate", "nan", "5"],
                 ["generate", "--count", "4", "--size", "64", "--out", "n.zarr", "--growth-rate", "5000", "5000"],
                 ["generate", "--count", "4", "--size", "64", "--out", "n.zarr", "--growth-rate", "0", "0"],
                 ["generate", "--count", "4", "--size", "64", "--out", "n.zarr", "--growth-rate", "3", "1"],
                 ["generate", "--count", "4", "--size", "64", "--out", "n.zarr", "--nucleation-rate", "100000",
                  "100000", "--workers", "0"],
                 ["generate", "--count", "4", "--size", "64", "--out", "n.zarr", "--scheduler", "tcp://127.0.0.1:1"],
                 ["generate", "--count", "4", "--size", "64", "--out", "n.zarr", "--scheduler", "nonsense"],
                 ["generate", "--count", "4", "--size", "64", "--out", "n.zarr", "--cluster", "condor"],
                 ["generate", "--count", "4", "--size", "100000", "--out", "n.zarr", "--workers", "0"],
                 ["generate", "--count", "4", "--size", "64", "--out", "S.zarr", "--workers", "0"],
                 ["generate", "--count", "8", "--size", "64", "--out", "S.zarr", "--workers", "0"],
                 ["generate", "--count", "16", "--size", "128", "--out", "S.zarr", "--workers", "0"],
                 ["generate", "--count", "16", "--size", "64", "--seed", "5", "--out", "S.zarr", "--workers", "0"],
                 ["generate", "--count", "16", "--size", "64", "--out", "S.zarr", "--workers", "0", "--preset",
                  "general"],
                 ["generate", "--count", "4", "--size", "64", "--out", "png", "--workers", "0"],
                 ["generate", "--count", "4", "--size", "64", "--out", "png", "--workers", "0", "--overwrite"],
                 ["generate", "--count", "4", "--size", "64", "--out", "v1.zarr", "--workers", "0", "--overwrite"],
                 ["generate", "--count", "4", "--size", "64", "--out", "n.zarr", "--bogus"],
                 ["generate", "--size", "64", "--out", "n.zarr"],
                 ["export", "S.zarr", "--out", "out", "--start", "16"],
                 ["export", "S.zarr", "--out", "out", "--start", "99999999999999999999"],
                 ["export", "S.zarr"],
                 ["export", "S.zarr", "--out", "png"],
                 ["import", "png", "--out", "n.zarr", "--strict", "--seed", "-5"],
                 ["import", "png"],
                 ["import", "png", "--out", "S.zarr"],
                 ["upgrade", "S.zarr", "--out", "n.zarr"],
                 ["upgrade", "v1.zarr", "--out", "v1.zarr"],
                 ["upgrade", "v1.zarr", "--out", "S.zarr"],
                 ["upgrade", "v1.zarr", "--out", "v1.zarr/new.zarr"],
                 ["train", "--data", "S.zarr", "--out", "run", "--preset", "huge"],
                 ["train", "--data", "S.zarr", "--out", "run", "--loss", "l2"],
                 ["train", "--out", "run"],
                 ["train", "--out", "run", "--resume"],
                 ["train", "--data", "S.zarr", "--out", "run", "--resume"],
                 ["train", "--data", "S.zarr", "--out", "png", "--resume"],
                 ["train", "--data", "S.zarr", "--out", "run", "--preset", "small", "--init", "nothing.keras"],
                 ["train", "--data", "S.zarr", "--out", "run", "--preset", "small", "--init", "models/text.keras",
                  "--epochs", "1", "--limit", "16"],
                 ["train", "--data", "S.zarr", "--out", "run", "--preset", "small", "--init", "models/in3.keras",
                  "--epochs", "1", "--limit", "16"],
                 ["train", "--data", "S.zarr", "--out", "run", "--preset", "small", "--limit", "1", "--epochs", "1"],
                 ["train", "--data", "S.zarr", "--out", "run", "--preset", "small", "--filters", "100000",
                  "--epochs", "1", "--limit", "16"],
                 ["train", "--data", "S.zarr", "--out", "run", "--preset", "small", "--kernel-size", "1000",
                  "--epochs", "1", "--limit", "16"],
                 ["train", "--data", "S.zarr", "--out", "run", "--preset", "small", "--depth", "50",
                  "--epochs", "1", "--limit", "16"],
                 ["train", "--data", "S.zarr", "--out", "run", "--preset", "small", "--crop", "100000",
                  "--epochs", "1", "--limit", "16"],
                 ["train", "--data", "S.zarr", "--out", "run", "--preset", "small", "--loss", "bce+cldice",
                  "--cldice-weight", "inf", "--epochs", "1", "--limit", "16"],
                 ["train", "--data", "S.zarr", "--out", "run", "--preset", "small", "--lr", "1e308",
                  "--epochs", "1", "--limit", "16"],
                 ["train", "--data", "S.zarr", "--out", "run", "--preset", "small", "--corrupt", "--corrupt-scale",
                  "1e308", "--epochs", "1", "--limit", "16"],
                 ["predict", "img", "--out", "out", "--method", "magic"],
                 ["predict", "img", "--out", "out", "--binarize", "magic"],
                 ["predict", "img", "--out", "out", "--denoise", "magic"],
                 ["predict", "img", "--out", "out"],
                 ["predict", "--out", "out"],
                 ["predict", "img", "--out", "out", "--method", "bridge", "--scale", "200"],
                 ["predict", "img", "--out", "out", "--method", "bridge", "--scale", "1e6"],
                 ["predict", "img", "--out", "out", "--method", "bridge", "--scale", "1e-6"],
                 ["predict", "img", "--out", "out", "--method", "bridge", "--tile", "64", "--overlap", "64"],
                 ["predict", "img", "--out", "out", "--model", "models/ok.keras", "--tile", "64", "--overlap", "64"],
                 ["predict", "img", "--out", "out", "--model", "models/ok.keras", "--tile", "1"],
                 ["predict", "img", "--out", "out", "--model", "models/ok.keras", "--tile", "100000"],
                 ["predict", "img", "--out", "out", "--model", "models/ok.keras", "--tile", "8", "--overlap", "7"],
                 ["measure", "img", "--out", "out", "--angles", ""],
                 ["measure", "img", "--out", "out", "--angles", "abc"],
                 ["measure", "img", "--out", "out", "--angles", "nan"],
                 ["measure", "img", "--out", "out", "--angles", "inf,0"],
                 ["measure", "img", "--out", "out", "--angles", "1e308"],
                 ["measure", "img", "--out", "out", "--angles", ",,,"],
                 ["measure", "img", "--out", "out", "--angles", "0,0,0"],
                 ["measure", "img", "--out", "out", "--angles", "-45,720"],
                 ["measure", "img", "--out", "out", "--angles", LONG],
                 ["measure", "img", "--out", "out", "--roi", ""],
                 ["measure", "img", "--out", "out", "--roi", "a,b,c,d"],
                 ["measure", "img", "--out", "out", "--roi", "0,0,0,0"],
                 ["measure", "img", "--out", "out", "--roi", "-1,0,10,10"],
                 ["measure", "img", "--out", "out", "--roi", "0,0,100000,100000"],
                 ["measure", "img", "--out", "out", "--roi", "nan,0,10,10"],
                 ["measure", "img", "--out", "out", "--roi", "60,60,10,10"],
                 ["measure", "img", "--out", "out", "--roi", "0,0,1,1"],
                 ["measure", "img", "--out", "out", "--roi", "1,2,3"],
                 ["measure", "img", "--out", "out", "--roi", "99999999999999999999,0,1,1"],
                 ["measure", "img", "--out", "out", "--mask", "nothing.png"],
                 ["measure", "img", "--out", "out", "--mask", "file.txt"],
                 ["measure", "img", "--out", "out", "--mask", "gray.png"],
                 ["measure", "img", "--out", "out", "--mask", "small.png"],
                 ["measure", "img", "--out", "out", "--mask", "black.png"],
                 ["measure", "img", "--out", "out", "--specimens", "nothing.csv"],
                 ["measure", "img", "--out", "out", "--specimens", "file.txt"],
                 ["measure", "img", "--out", "out", "--specimens", "empty.csv"],
                 ["measure", "img", "--out", "out", "--specimens", "wrong.csv"],
                 ["measure", "img", "--out", "out", "--twins", "all"],
                 ["measure", "img", "--out", "out", "--pattern", "squares"],
                 ["measure", "img", "--out", "out", "--pixel-size", "1e300"],
                 ["measure", "img", "--out", "out", "--pixel-size", "1e-300"],
                 ["measure", "img", "--out", "out", "--min-grain", "1000000000000"],
                 ["measure", "img", "--out", "out", "--pattern", "circles", "--exclude-border"],
                 ["measure", "img", "--out", "out", "--restore", "--method", "bridge", "--scale", "1e6"],
                 ["evaluate", "--data", "S.zarr", "--out", "ev", "--baseline", "magic"],
                 ["evaluate", "--data", "S.zarr", "--out", "ev", "--split", "train"],
                 ["evaluate", "--data", "S.zarr", "--out", "ev", "--predictions", "nothing"],
                 ["evaluate", "--data", "S.zarr", "--out", "ev", "--predictions", "plain"],
                 ["evaluate", "--data", "S.zarr", "--out", "ev", "--predictions", "file.txt"],
                 ["evaluate", "--data", "S.zarr", "--out", "ev", "--predictions", "img", "--baseline", "identity"],
                 ["evaluate", "--data", "S.zarr", "--out", "ev", "--limit", "99999999999999999999",
                  "--baseline", "identity"],
                 ["tune", "--model", "nothing.keras", "--data", "S.zarr"],
                 ["tune", "--model", "models/ok.keras", "--data", "nothing.zarr"],
                 ["tune", "--model", "models/ok.keras", "--data", "S.zarr", "--samples", "99999999999999999999"],
                 ):
        expect, check = "error", generic_check(argv)
        ok_when = {"--scale 200", "--tile 64 --overlap 64", "--tile 8 --overlap 7", "--tile 100000", "--tile 1",
                   "--angles 0,0,0", "--angles -45,720", "--roi 0,0,1,1", "--roi 60,60,10,10", "--start 16",
                   "--growth-rate 0 0", "--nucleation-rate 0 0", "--mask black.png", "--limit 99999999999999999999",
                   "--samples 99999999999999999999", "--crop 100000", "--pattern circles --exclude-border",
                   "--preset general", "--count 8 --size 64 --out S.zarr", "--nucleation-rate 100000 100000",
                   "--lr 1e308", "--corrupt-scale 1e308", "--depth 50", "--limit 1",
                   "--angles 1e308",  # an angle, if a large one: directions are taken modulo 360
                   "--mask gray.png"}  # a gray mask is thresholded (white measured)
        joined = " ".join(argv)
        if any(k in joined for k in ok_when):
            expect = "either"
        if joined == "predict img --out out":  # the bundled model: a plain, working run
            expect = "ok"
        if "--out v1.zarr --workers 0 --overwrite" in joined:  # replacing a store of this project: as asked
            expect = "ok"
        needs = ("S.zarr", "png", "img", "v1.zarr", "models", "gray.png")
        cases.append(Case("choices", joined[:80], argv, needs, setup=_choice_setup, expect=expect, check=check,
                          timeout=120, lines=progress_lines(argv),
                          mutable=("S.zarr",) if joined.startswith("generate --count 16 --size 64 --out S.zarr --workers 0 "
                                                                   "--preset") else ("v1.zarr",) if "--overwrite" in joined
                          else ()))
    return cases


def _choice_setup(folder: Path) -> None:
    import cv2
    import numpy as np
    (folder / "file.txt").write_text("hello\n")
    (folder / "plain").mkdir()
    cv2.imwrite(str(folder / "small.png"), np.full((8, 8), 255, np.uint8))
    cv2.imwrite(str(folder / "black.png"), np.zeros((64, 64), np.uint8))
    (folder / "empty.csv").write_text("")
    (folder / "wrong.csv").write_text("who,what\n\x00\x01,\"unclosed\n")


def help_cases() -> list[Case]:
    cases = [Case("help", "cli --help", ["--help"], expect="ok", check=check_help),
             Case("help", "cli -h", ["-h"], expect="ok", check=check_help),
             Case("help", "cli --version", ["--version"], expect="ok", check=check_nonempty),
             Case("help", "cli (no command)", [], expect="either", check=check_help, lines="usage"),
             Case("help", "cli nope", ["nope"])]
    for command in ("generate", "info", "export", "import", "verify", "upgrade", "train", "tune", "predict", "measure",
                    "evaluate"):
        cases.append(Case("help", f"{command} --help", [command, "--help"], expect="ok", check=check_help))
        cases.append(Case("help", f"{command} -h", [command, "-h"], expect="ok", check=check_help))
        cases.append(Case("help", f"{command} --help --bogus", [command, "--bogus", "--help"]))
        cases.append(Case("help", f"{command} (no arguments)", [command], expect="either", check=check_help,
                          lines="one"))
    return cases


# ------------------------------------------------------------------------------------------ store damage

DAMAGE_COMMANDS = ["verify", "verify --repair", "info", "export", "evaluate", "train --dry-run", "generate"]


def damage_argv(command: str) -> list[str]:
    return {"verify": ["verify", "S.zarr"], "verify --repair": ["verify", "S.zarr", "--repair"],
            "info": ["info", "S.zarr"], "export": ["export", "S.zarr", "--out", "out"],
            "evaluate": ["evaluate", "--data", "S.zarr", "--split", "all", "--baseline", "identity", "--out", "ev",
                         "--no-progress"],
            "train --dry-run": ["train", "--data", "S.zarr", "--out", "run", "--preset", "small", "--dry-run"],
            "generate": ["generate", "--count", "16", "--size", "64", "--out", "S.zarr", "--workers", "0",
                         "--no-progress"]}[command]


def damage_check(command: str, ref: dict[str, Any]) -> Callable[[Ctx], str | None]:
    """An exit 0 on a damaged store: right only if what the command gave is what the pristine store gives."""
    def check(ctx: Ctx) -> str | None:
        state = store_state(ctx.folder / "S.zarr")
        if command == "generate" and ctx.before == {k: v for k, v in ctx.after.items() if k in ctx.before} and \
                "16 of 16 pairs done" in ctx.out:
            # generate makes the pairs not done; it reads no chunk of a done one (verify does): the
            # damage stays where it was, unreported, and nothing else changed.
            ctx.extra["harmless"] = "generate left a complete, damaged store as it was"
            return None
        if command in ("verify", "verify --repair") and state != ref["S"] and ctx.before == {
                k: v for k, v in ctx.after.items() if k in ctx.before} and samples_state(
                ctx.folder / "S.zarr") == ref["S16"]:
            # every sample reads as it was made; what changed is metadata no reader uses for them
            ctx.extra["harmless"] = "a metadata edit verify does not report; every sample reads as made"
            return None
        if command in ("verify", "verify --repair", "generate"):
            if state != ref["S"]:
                return f"{command} exit 0 but the store's arrays are not the pristine ones: {last_line(ctx.out)}"
            return None
        if command == "info":
            got, want = normal(ctx.out, ctx.folder).splitlines(), ref["info"].splitlines()
            diff = [(a, b) for a, b in zip(got, want) if a != b] + ([("lines", "")] if len(got) != len(want) else [])
            # info reads the metadata and sizes of the files (it checks no chunk: verify does)
            if any(not a.startswith(("created:", "versions:", "bytes per pair:")) for a, _ in diff):
                return f"info differs from the pristine store's: {diff[:1]}"
            ctx.extra["harmless"] = bool(diff)
            return None
        if command == "export":
            return check_export(ctx, "out", ref["export"]) or (
                None if len([p for p in snapshot(ctx.folder / "out") if p.endswith(".png")]) == 32
                else "export exit 0 but not all 16 pairs")
        if command == "evaluate":
            got = (ctx.folder / "ev" / "metrics.json")
            if not got.exists():
                return "evaluate exit 0 and no metrics.json"
            a, b = json.loads(got.read_text()), json.loads(ref["metrics"])
            for d in (a, b):
                d.pop("data", None), d.pop("store", None), d.pop("created", None)
            return None if strip_paths(a) == strip_paths(b) else "evaluate's metrics differ from the pristine store's"
        if command == "train --dry-run":
            return None if normal(ctx.out, ctx.folder) == ref["dry"] else "train --dry-run output differs"
        return None
    return check


def strip_paths(document: Any) -> Any:
    """A metrics document without paths and the store's recorded config (it describes the store as it is)."""
    if isinstance(document, dict):
        return {k: strip_paths(v) for k, v in document.items() if (not isinstance(v, str) or "/" not in v)
                and k != "config"}
    if isinstance(document, list):
        return [strip_paths(v) for v in document]
    return document


def damage_cases(rng: random.Random, fixtures: Path, ref: dict[str, Any]) -> list[Case]:
    store = fixtures / "S.zarr"
    files = sorted(str(p.relative_to(store)) for p in store.rglob("*") if p.is_file())
    cases: list[Case] = []
    k = 0

    def add(kind: str, rel: str, damage: Callable[[Path], None], data: bool) -> None:
        nonlocal k
        command = DAMAGE_COMMANDS[k % len(DAMAGE_COMMANDS)]
        k += 1
        argv = damage_argv(command)
        repair = command in ("verify --repair", "generate")
        case = Case("store-damage", f"{kind} {rel} | {command}", argv, ("S.zarr",), setup=damage,
                    expect="either", check=damage_check(command, ref), mutable=("S.zarr",) if repair else (),
                    lines="verify" if command.startswith("verify") else "one",
                    allow_new=_export_partial if command == "export" else None)
        cases.append(case)

    for rel in files:
        size = (store / rel).stat().st_size
        for _ in range(2):
            bit = rng.randrange(size * 8)
            add("flip", f"{rel}@bit{bit}", _flipper(rel, bit), not rel.endswith("zarr.json"))
        add("removed", rel, lambda f, rel=rel: (f / "S.zarr" / rel).unlink(), not rel.endswith("zarr.json"))
        cut = rng.randrange(1, max(2, size))
        add("truncated", f"{rel}@{cut}", lambda f, rel=rel, cut=cut: _truncate(f / "S.zarr" / rel, cut),
            not rel.endswith("zarr.json"))
    # wrong zarr.json documents and whole arrays gone
    edits = {
        "micro shape 8": ("micro/zarr.json", lambda d: d.update(shape=[8, 64, 64])),
        "micro shape 32": ("micro/zarr.json", lambda d: d.update(shape=[32, 64, 64])),
        "micro chunk 2": ("micro/zarr.json", lambda d: d["chunk_grid"]["configuration"].update(chunk_shape=[2, 64, 64])),
        "micro no codecs": ("micro/zarr.json", lambda d: d.update(codecs=[{"name": "bytes"}])),
        "micro fill 0": ("micro/zarr.json", lambda d: d.update(fill_value=0)),
        "micro float32": ("micro/zarr.json", lambda d: d.update(data_type="float32")),
        "label as micro": ("label/zarr.json", lambda d: d.update(attributes={"x": 1})),
        "done int8": ("done/zarr.json", lambda d: d.update(data_type="int8")),
        "done shape 4": ("done/zarr.json", lambda d: d.update(shape=[4])),
        "root zarr_format 2": ("zarr.json", lambda d: d.update(zarr_format=2)),
        "root node array": ("zarr.json", lambda d: d.update(node_type="array")),
        "root format other": ("zarr.json", lambda d: d["attributes"].update(format="other")),
        "root format_version 3": ("zarr.json", lambda d: d["attributes"].update(format_version=3)),
        "root format_version 1": ("zarr.json", lambda d: d["attributes"].update(format_version=1)),
        "root count 16->8": ("zarr.json", lambda d: d["attributes"].update(count=8)),
        "root count 16->32": ("zarr.json", lambda d: d["attributes"].update(count=32)),
        "root count -1": ("zarr.json", lambda d: d["attributes"].update(count=-1)),
        "root count text": ("zarr.json", lambda d: d["attributes"].update(count="16")),
        "root size 128": ("zarr.json", lambda d: d["attributes"]["config"].update(size=128)),
        "root size nan": ("zarr.json", lambda d: d["attributes"]["config"].update(size=float("nan"))),
        "root seed 5": ("zarr.json", lambda d: d["attributes"].update(seed=5)),
        "root seed text": ("zarr.json", lambda d: d["attributes"].update(seed="x")),
        "root shard 2": ("zarr.json", lambda d: d["attributes"].update(shard_samples=2)),
        "root shard 0": ("zarr.json", lambda d: d["attributes"].update(shard_samples=0)),
        "root complete false": ("zarr.json", lambda d: d["attributes"].update(complete=False)),
        "root no attributes": ("zarr.json", lambda d: d.pop("attributes")),
        "root attributes list": ("zarr.json", lambda d: d.update(attributes=[1, 2])),
        "root config null": ("zarr.json", lambda d: d["attributes"].update(config=None)),
        "root config growth 5000": ("zarr.json", lambda d: d["attributes"]["config"].update(growth_rate=[5000, 5000])),
        "root array list": ("zarr.json", lambda d: d.update(x=1) or None),
        "image_crc shape": ("image_crc/zarr.json", lambda d: d.update(shape=[8, 2])),
        "image_crc dtype": ("image_crc/zarr.json", lambda d: d.update(data_type="uint8")),
    }
    for e, (name, (rel, change)) in enumerate(edits.items()):
        for command in [DAMAGE_COMMANDS[(e + j) % len(DAMAGE_COMMANDS)] for j in range(0, 7, 2)]:
            argv = damage_argv(command)
            repair = command in ("verify --repair", "generate")
            cases.append(Case("store-damage", f"json {name} | {command}", argv, ("S.zarr",),
                              setup=lambda f, rel=rel, change=change: _edit_json(f / "S.zarr" / rel, change),
                              expect="either", check=damage_check(command, ref), mutable=("S.zarr",) if repair else (),
                              lines="verify" if command.startswith("verify") else "one",
                              allow_new=_export_partial if command == "export" else None))
    for name in ("image_crc", "done", "micro", "split", "seed", "grains"):
        for command in DAMAGE_COMMANDS:
            argv = damage_argv(command)
            repair = command in ("verify --repair", "generate")
            cases.append(Case("store-damage", f"array {name} removed | {command}", argv, ("S.zarr",),
                              setup=lambda f, name=name: shutil.rmtree(f / "S.zarr" / name), expect="either",
                              check=damage_check(command, ref), mutable=("S.zarr",) if repair else (),
                              lines="verify" if command.startswith("verify") else "one",
                              allow_new=_export_partial if command == "export" else None))
    return cases


def _export_partial(path: str, ctx: Ctx) -> bool:
    """export stops at the first bad sample and says how many whole pairs it wrote before it."""
    m = re.search(r"(\d+) pairs were exported before it", ctx.err)
    if not m or not path.startswith("out"):
        return False
    written = int(m.group(1))
    if path in ("out", "out/micro", "out/label"):
        return written > 0
    m2 = re.fullmatch(r"out/(micro|label)/(\d+)\.png", path)
    return bool(m2) and read_png(ctx.folder / path) is not None


def _flipper(rel: str, bit: int) -> Callable[[Path], None]:
    def flip(folder: Path) -> None:
        path = folder / "S.zarr" / rel
        data = bytearray(path.read_bytes())
        data[bit // 8] ^= 1 << (bit % 8)
        path.write_bytes(bytes(data))
    return flip


def _truncate(path: Path, size: int) -> None:
    path.write_bytes(path.read_bytes()[:size])


def _edit_json(path: Path, change: Callable[[dict], Any]) -> None:
    document = json.loads(path.read_text())
    change(document)
    path.write_text(json.dumps(document))


def upgrade_cases(ref: dict[str, Any]) -> list[Case]:
    cases = [Case("upgrade", "upgrade v1", ["upgrade", "v1.zarr", "--out", "new.zarr"], ("v1.zarr",), expect="ok",
                  check=lambda c: verify_store(c, "new.zarr"))]
    damages = {
        "done removed": lambda f: (f / "v1.zarr" / "done" / "c.0").unlink(),
        "config removed": lambda f: _edit_json(f / "v1.zarr" / "zarr.json", lambda d: d["attributes"].pop("config")),
        "micro chunk flipped": _v1flip("micro/c.2.0.0"),
        "label chunk flipped": _v1flip("label/c.0.0.0"),
        "grains chunk flipped": _v1flip("grains/c.5.0.0"),
        "done chunk flipped": _v1flip("done/c.0"),
        "seed chunk flipped": _v1flip("seed/c.0"),
        "micro chunk removed": lambda f: (f / "v1.zarr" / "micro" / "c.3.0.0").unlink(),
        "micro chunk empty": lambda f: (f / "v1.zarr" / "micro" / "c.3.0.0").write_bytes(b""),
        "root garbage": lambda f: (f / "v1.zarr" / "zarr.json").write_bytes(b"\x00"),
        "count 5": lambda f: _edit_json(f / "v1.zarr" / "zarr.json", lambda d: d["attributes"].update(count=5)),
        "size 32": lambda f: _edit_json(f / "v1.zarr" / "zarr.json",
                                        lambda d: d["attributes"]["config"].update(size=32)),
        "seed changed": lambda f: _edit_json(f / "v1.zarr" / "zarr.json", lambda d: d["attributes"].update(seed=4)),
    }
    def same_as_pristine(ctx: Ctx) -> str | None:
        """Format 1 has no checksums: a flip it cannot see must leave the upgrade what it is without it."""
        if store_state(ctx.folder / "new.zarr") != ref["upgrade"]:
            return "exit 0, and the upgraded store differs from the upgrade of the undamaged store"
        return None

    for name, damage in damages.items():
        cases.append(Case("upgrade", f"upgrade v1 {name}", ["upgrade", "v1.zarr", "--out", "new.zarr"], ("v1.zarr",),
                          setup=damage, expect="either" if "flipped" in name else "error",
                          check=same_as_pristine))
    return cases


def _v1flip(rel: str) -> Callable[[Path], None]:
    def flip(folder: Path) -> None:
        path = folder / "v1.zarr" / rel
        data = bytearray(path.read_bytes())
        data[len(data) // 2] ^= 0x10
        path.write_bytes(bytes(data))
    return flip


# -------------------------------------------------------------------------------------------- bad images

def image_cases(fixtures: Path, rng: random.Random) -> list[Case]:
    kinds = image_kinds(fixtures)
    cases = []
    model_kinds = {"empty.png", "truncated.png", "declared-32000.png", "1x1.png", "black.png", "white.png",
                   "16bit.png", "colour.png", "nan.tif", "inf.tif", "declared-huge.tif", "big-ok.png", "2x2.png"}
    for name, (kind, write) in kinds.items():
        commands = {
            "predict bridge": ["predict", "in", "--out", "out", "--method", "bridge", "--no-progress"],
            "predict file": ["predict", f"in/{name}", "--out", "out", "--method", "bridge", "--no-progress"],
            "measure": ["measure", "in", "--out", "out"],
            "measure circles": ["measure", "in", "--out", "out", "--pattern", "circles", "--exclude-border"],
            "measure restore": ["measure", "in", "--out", "out", "--restore", "--method", "bridge"],
            "import": ["import", "pairs", "--out", "new.zarr"],
            "evaluate predictions": ["evaluate", "--data", "S.zarr", "--split", "all", "--predictions", "pred",
                                     "--out", "ev", "--no-progress"],
            "measure mask": ["measure", "img", "--out", "out", "--mask", f"in/{name}"],
        }
        if name in model_kinds:
            commands["predict model"] = ["predict", "in", "--out", "out", "--model", "models/ok.keras", "--no-progress"]
        for label, argv in commands.items():
            def setup(folder: Path, write=write, name=name, label=label) -> None:
                if label.startswith("import"):
                    for sub in ("micro", "label"):
                        (folder / "pairs" / sub).mkdir(parents=True)
                        write(folder / "pairs" / sub / ("0" + Path(name).suffix))
                elif label.startswith("evaluate"):
                    (folder / "pred").mkdir()
                    for k in range(16):
                        write(folder / "pred" / f"{k}.png")
                else:
                    (folder / "in").mkdir()
                    write(folder / "in" / name)
            needs = ("models",) if "model" in label else ("S.zarr",) if label.startswith("evaluate") else \
                ("img",) if label == "measure mask" else ()
            expect = "error" if kind == "bad" else "either"
            if label == "predict file" and name == "folder.png":
                expect = "error"
            cases.append(Case("images", f"{label} {name}", argv, needs, setup=setup, expect=expect,
                              check=generic_check(argv), timeout=90))
    return cases


# -------------------------------------------------------------------------------------------- bad models

def model_cases() -> list[Case]:
    cases = []
    models = ["nan-weights", "overflow", "in3", "out2", "fixed32", "rank2", "truncated", "text", "empty", "zipjunk",
              "folder", "missing"]
    for name in models:
        path = f"models/{name}.keras"
        for label, argv in {
            "predict": ["predict", "img/0.png", "--out", "out", "--model", path, "--no-progress"],
            "evaluate": ["evaluate", "--data", "S.zarr", "--model", path, "--out", "ev", "--no-progress",
                         "--limit", "1"],
            "tune": ["tune", "--model", path, "--data", "S.zarr", "--no-progress", "--samples", "1"],
            "measure restore": ["measure", "img/0.png", "--out", "out", "--restore", "--model", path],
            "train init": ["train", "--data", "S.zarr", "--out", "run", "--preset", "small", "--init", path,
                           "--epochs", "1", "--limit", "16"],
        }.items():
            expect = "error"
            if name == "fixed32" and label != "train init":
                expect = "either"  # a model with a fixed 32 px input: tiles of 32
            cases.append(Case("models", f"{label} {name}", argv, ("models", "S.zarr", "img"), expect=expect,
                              check=generic_check(argv), timeout=120, lines=progress_lines(argv)))
    cases.append(Case("models", "predict model.h5", ["predict", "img/0.png", "--out", "out", "--model",
                                                     "models/model.h5", "--no-progress"], ("models", "img")))
    cases.append(Case("models", "predict ok model", ["predict", "img/0.png", "--out", "out", "--model",
                                                     "models/ok.keras", "--no-progress"], ("models", "img"),
                      expect="ok", check=lambda c: check_predict(c, "out")))
    return cases


# ------------------------------------------------------------------------------------------ environment

def env_cases() -> list[Case]:
    cases = []
    gen = ["generate", "--count", "4", "--size", "64", "--out", "n.zarr", "--no-progress"]
    for value in ("abc", "-5s", "", "1e999s", "nan"):
        for workers in ("0", "1"):
            cases.append(Case("environment", f"WORKER_TIMEOUT={value!r} workers {workers}",
                              gen + ["--workers", workers], env={"DASK_RECONSTRUCTION_GB__WORKER_TIMEOUT": value},
                              expect="either", check=generic_check(gen), timeout=120))

    def bad_yaml(text: str) -> Callable[[Path], None]:
        def make(folder: Path) -> None:
            (folder / "cfg").mkdir()
            (folder / "cfg" / "bad.yaml").write_text(text)
        return make
    for name, text in {"unclosed": "a: [1, 2\n", "tabs": "a:\n\t- b\n", "list": "- 1\n- 2\n",
                       "bad-timeout": "reconstruction-gb: {worker-timeout: forever}\n",
                       "resubmit-text": "reconstruction-gb: {resubmit-limit: many}\n",
                       "binary": "\x00\xff\xfe"}.items():
        for workers in ("0", "1"):
            cases.append(Case("environment", f"DASK_CONFIG {name} workers {workers}", gen + ["--workers", workers],
                              setup=bad_yaml(text), env={"DASK_CONFIG": "cfg"}, expect="either",
                              check=generic_check(gen), timeout=120,
                              allow_new=lambda p, c: p.startswith("cfg")))
    cases.append(Case("environment", "DASK_SCHEDULER_ADDRESS=tcp://127.0.0.1:1",
                      gen, env={"DASK_SCHEDULER_ADDRESS": "tcp://127.0.0.1:1"}, timeout=120))
    cases.append(Case("environment", "DASK_SCHEDULER_ADDRESS=garbage", gen, env={"DASK_SCHEDULER_ADDRESS": "garbage"},
                      timeout=120))
    # SLURM stand-ins (tests/test_cluster.py): no sbatch, a failing sbatch, no cores, jobs that die at once
    yaml_ok = ("reconstruction-gb:\n  worker-timeout: 2s\njobqueue:\n  slurm:\n    cores: 1\n    memory: 1GB\n"
               "    walltime: '00:10:00'\n    interface: lo\n    death-timeout: 30\n")

    def slurm(kind: str) -> Callable[[Path], None]:
        def make(folder: Path) -> None:
            (folder / "jobs").mkdir()
            (folder / "cfg").mkdir()
            text = yaml_ok
            if kind == "no-cores":
                text = "jobqueue: {slurm: {queue: short}}\n"
            if kind in ("exit-3", "exit-3-limit-0"):
                text += "    job-script-prologue: ['exit 3']\n"
                (folder / "cfg" / "limits.yaml").write_text(
                    "reconstruction-gb: {resubmit-limit: %d}\n" % (0 if kind.endswith("0") else 1))
            if kind == "fail-submit":
                (folder / "jobs" / "fail-submit").touch()
            (folder / "cfg" / "jobqueue.yaml").write_text(text)
        return make
    for kind in ("no-sbatch", "fail-submit", "no-cores", "exit-3", "exit-3-limit-0"):
        path = os.environ["PATH"] if kind == "no-sbatch" else f"{STANDINS}{os.pathsep}{os.environ['PATH']}"
        cases.append(Case("slurm", f"generate --cluster slurm {kind}",
                          ["generate", "--count", "6", "--size", "64", "--out", "n.zarr", "--no-progress",
                           "--cluster", "slurm", "--block", "1"], setup=slurm(kind),
                          env={"PATH": path, "DASK_CONFIG": "cfg", "STANDIN_JOBS": "jobs"},
                          lines="last" if kind.startswith("exit-3") else "one", timeout=180,
                          allow_new=lambda p, c: p.startswith(("jobs", "cfg")) or (
                              p.startswith("n.zarr") and "to continue" in c.err)))
    return cases


# --------------------------------------------------------------------------------- read-only and full disk

def readonly_cases() -> list[Case]:
    if not HAS_UNSHARE:
        return []
    cases = []
    writers = {
        "generate": ["generate", "--count", "4", "--size", "64", "--out", "ro/n.zarr", "--workers", "0",
                     "--no-progress"],
        "generate resume": ["generate", "--count", "20", "--size", "64", "--out", "ro/S.zarr", "--workers", "0",
                            "--no-progress"],
        "export": ["export", "S.zarr", "--out", "ro/out"],
        "import": ["import", "png", "--out", "ro/n.zarr"],
        "upgrade": ["upgrade", "v1.zarr", "--out", "ro/n.zarr"],
        "evaluate": ["evaluate", "--data", "S.zarr", "--baseline", "identity", "--out", "ro/ev", "--no-progress"],
        "predict": ["predict", "img", "--out", "ro/out", "--method", "bridge", "--no-progress"],
        "measure": ["measure", "img", "--out", "ro/out"],
        "train": ["train", "--data", "S.zarr", "--out", "ro/run", "--preset", "small", "--epochs", "1", "--limit",
                  "16"],
        "tune": ["tune", "--model", "ro/ok.keras", "--data", "S.zarr", "--no-progress", "--samples", "1"],
        "verify --repair": ["verify", "ro/S.zarr", "--repair"],
    }
    readers = {
        "info": ["info", "ro/S.zarr"], "verify": ["verify", "ro/S.zarr"],
        "export": ["export", "ro/S.zarr", "--out", "out"],
        "evaluate": ["evaluate", "--data", "ro/S.zarr", "--baseline", "identity", "--out", "ev", "--no-progress"],
        "predict": ["predict", "ro/img", "--out", "out", "--method", "bridge", "--no-progress"],
        "measure": ["measure", "ro/img", "--out", "out"],
        "upgrade": ["upgrade", "ro/v1.zarr", "--out", "n.zarr"],
        "import": ["import", "ro/png", "--out", "n.zarr"],
        "tune (model elsewhere)": ["tune", "--model", "models/ok.keras", "--data", "ro/S.zarr", "--no-progress",
                                   "--samples", "1"],
    }

    def setup(folder: Path) -> None:
        (folder / "ro").mkdir()
        for name in ("S.zarr", "img", "v1.zarr", "png"):
            shutil.copytree(folder / name, folder / "ro" / name)
        shutil.copy(folder / "models" / "ok.keras", folder / "ro" / "ok.keras")

    def damaged_setup(folder: Path) -> None:
        setup(folder)
        _flipper("micro/c.3.0.0", 100)(folder / "ro")

    needs = ("S.zarr", "img", "v1.zarr", "png", "models")
    for name, argv in writers.items():
        cases.append(Case("read-only", f"write into read-only: {name}", argv, needs,
                          setup=damaged_setup if name == "verify --repair" else setup, wrap=("ro", "ro"),
                          timeout=120, lines="verify" if name.startswith("verify") else "one"))
    for name, argv in readers.items():
        cases.append(Case("read-only", f"read from read-only: {name}", argv, needs, setup=setup, wrap=("ro", "ro"),
                          expect="ok", check=generic_check(argv), timeout=120))
    return cases


def disk_cases() -> list[Case]:
    if not HAS_UNSHARE:
        return []
    cases = []
    writers = {
        "generate": ["generate", "--count", "64", "--size", "64", "--out", "disk/n.zarr", "--workers", "0",
                     "--no-progress"],
        "export": ["export", "S.zarr", "--out", "disk/out"],
        "import": ["import", "png", "--out", "disk/n.zarr"],
        "upgrade": ["upgrade", "v1.zarr", "--out", "disk/n.zarr"],
        "evaluate": ["evaluate", "--data", "S.zarr", "--baseline", "identity", "--out", "disk/ev", "--no-progress"],
        "predict": ["predict", "png/label", "--out", "disk/out", "--method", "bridge", "--no-progress"],
        "measure": ["measure", "img", "--out", "disk/out"],
        "measure report": ["measure", "img", "--out", "disk/out", "--report"],
        "train": ["train", "--data", "S.zarr", "--out", "disk/run", "--preset", "small", "--epochs", "1", "--limit",
                  "16"],
    }

    def whole(path: str, ctx: Ctx) -> bool:
        """After a full disk: only whole files may stay (a PNG that decodes; a generate store to resume)."""
        if not path.startswith("disk.after/"):
            return path == "disk.after"
        rel = path[len("disk.after/"):]
        full = ctx.folder / path
        command = ctx.case.argv[0]
        if command == "generate" or full.is_dir() and command in ("predict", "export", "measure"):
            return True  # generate keeps what it made, to resume
        if command == "train" and "--resume" in ctx.err:  # a run to continue: whole files, no partial one
            return ".partial" not in rel
        if command in ("predict", "export") and rel.endswith(".png"):
            return read_png(full) is not None
        if command == "measure" and not rel.endswith((".partial", ".tmp")) and "summary" not in rel:
            return rel.endswith((".csv", ".tif", ".png", ".json")) and full.stat().st_size > 0 and (
                not rel.endswith(".png") or read_png(full) is not None)
        return False

    for name, argv in writers.items():
        for kb in (4, 16, 64, 256):
            cases.append(Case("full-disk", f"{name} onto {kb} kB", argv, ("S.zarr", "img", "v1.zarr", "png"),
                              setup=lambda f: (f / "disk").mkdir(), wrap=("disk", "disk", kb), expect="either",
                              check=lambda c: None, allow_new=whole, words=("no space left| free",), timeout=120,
                              lines="last" if name in ("generate", "train") else "one"))
    return cases


# ------------------------------------------------------------------------------------- signals, kill -9

def signal_runner(signum: int, moment: str, watch: str, resume_ref: dict | None = None):
    def run(case: Case, folder: Path, ctx: Ctx) -> None:
        argv = [*CLI, *case.argv]
        start = time.monotonic()
        process = subprocess.Popen(argv, cwd=folder, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                   stderr=subprocess.PIPE, text=True, start_new_session=True,
                                   preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
        if moment == "start-up":
            time.sleep(0.4)
        else:
            deadline = time.monotonic() + 60
            while process.poll() is None and time.monotonic() < deadline and not list(folder.glob(watch)):
                time.sleep(0.02)
            if moment == "later":
                time.sleep(0.7)
        sent = process.poll() is None
        if sent:
            os.kill(process.pid, signum)
        try:
            ctx.out, ctx.err = process.communicate(timeout=60)
            ctx.rc = process.returncode
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            ctx.out, ctx.err = process.communicate()
            ctx.rc = None
        ctx.seconds = time.monotonic() - start
        left = kill_group(process.pid)
        want = 130 if signum == signal.SIGINT else 143
        word = "interrupted" if signum == signal.SIGINT else "terminated"
        lines = [line for line in ctx.err.splitlines() if line.strip()]
        if ctx.rc is None:
            ctx.extra["verdict"] = ("hang", "no exit 60 s after the signal")
        elif any(t in ctx.out + ctx.err for t in TRACE) or ctx.rc < 0:
            ctx.extra["verdict"] = ("traceback", f"exit {ctx.rc}")
        elif left:
            ctx.extra["verdict"] = ("stray_output", "processes left running after the exit")
        elif not sent:
            ctx.extra["verdict"] = ("wrong_result", f"the run ended (exit {ctx.rc}) before the signal") \
                if ctx.rc != 0 else ("clean", "finished before the signal (checked below)")
        elif ctx.rc != want:
            ctx.extra["verdict"] = ("wrong_result", f"exit {ctx.rc}, not {want}")
        elif len(lines) != 1 or word not in lines[0]:
            ctx.extra["verdict"] = ("unclear", f"{len(lines)} stderr lines: {lines[-1:]}")
        partial = [p for p in snapshot(folder) if re.search(r"\.partial$|\.tmp$", p)]
        if partial and not ctx.extra.get("verdict"):
            ctx.extra["verdict"] = ("stray_output", f"partial files: {partial[:3]}")
        if resume_ref is not None and not ctx.extra.get("verdict"):
            rc, out, err, _ = run_process([*CLI, *case.argv], folder, None, 120)
            if rc != 0 or store_state(folder / "lib.zarr") != resume_ref["state"]:
                ctx.extra["verdict"] = ("wrong_result", f"resume after the signal: exit {rc}, store differs: "
                                                        f"{last_line(err or out)}")
        ctx.extra.setdefault("verdict", ("clean", ""))
    return run


def kill9_runner(delay: float, ref: dict):
    def run(case: Case, folder: Path, ctx: Ctx) -> None:
        argv = [*CLI, *case.argv]
        start = time.monotonic()
        process = subprocess.Popen(argv, cwd=folder, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                   stderr=subprocess.DEVNULL, start_new_session=True)
        try:
            process.wait(timeout=delay)
            finished = True
        except subprocess.TimeoutExpired:
            process.send_signal(signal.SIGKILL)  # the driver only, as `kill -9 PID` does
            process.wait()
            finished = False
        time.sleep(1.0)
        orphans = kill_group(process.pid)
        ctx.rc, ctx.out, ctx.err, seconds = run_process(argv, folder, None, case.timeout)
        ctx.seconds = time.monotonic() - start
        ctx.extra["finished_before_kill"] = finished
        if ctx.rc is None:
            ctx.extra["verdict"] = ("hang", "the resume did not finish")
        elif any(t in ctx.out + ctx.err for t in TRACE) or ctx.rc < 0:
            ctx.extra["verdict"] = ("traceback", f"resume exit {ctx.rc}")
        elif ctx.rc != 0:
            ctx.extra["verdict"] = ("wrong_result", f"resume exit {ctx.rc}: {last_line(ctx.err)}")
        elif store_state(folder / "lib.zarr") != ref["state"]:
            ctx.extra["verdict"] = ("wrong_result", "the resumed library differs from the uninterrupted one")
        elif orphans:
            ctx.extra["verdict"] = ("stray_output", "worker processes outlived the killed driver by 1 s")
        else:
            ctx.extra["verdict"] = ("clean", "")
    return run


def process_cases(rng: random.Random, fixtures: Path, ref: dict[str, Any], kills: int) -> list[Case]:
    cases = []
    gen = ["generate", "--count", "1500", "--size", "64", "--seed", "7", "--out", "lib.zarr", "--workers", "0",
           "--no-progress"]
    t0 = time.monotonic()
    folder = fixtures / "reference"
    folder.mkdir()
    rc, out, err, _ = run_process([*CLI, *gen], folder, None, 600)
    assert rc == 0, err
    ref["gen_seconds"] = time.monotonic() - t0
    ref["gen"] = {"state": store_state(folder / "lib.zarr")}
    gen2 = [*gen[:-3], "--workers", "2", "--no-progress"]
    for k in range(kills):
        workers2 = k % 10 == 9
        argv = gen2 if workers2 else gen
        delay = rng.uniform(0.2, ref["gen_seconds"] * (2.0 if workers2 else 1.0) + 0.3)
        cases.append(Case("kill-9", f"kill -9 generate{' --workers 2' if workers2 else ''} at {delay:.2f} s", argv,
                          runner=kill9_runner(delay, ref["gen"]), timeout=300))
    for signum in (signal.SIGINT, signal.SIGTERM):
        sig = "SIGINT" if signum == signal.SIGINT else "SIGTERM"
        for moment in ("start-up", "first-output", "later"):
            cases.append(Case("signals", f"{sig} generate at {moment}", gen,
                              runner=signal_runner(signum, moment, "lib.zarr/micro/c.*", ref["gen"])))
            cases.append(Case("signals", f"{sig} generate --workers 2 at {moment}", gen2,
                              runner=signal_runner(signum, moment, "lib.zarr/micro/c.*", ref["gen"])))
            cases.append(Case("signals", f"{sig} predict at {moment}",
                              ["predict", "many", "--out", "out", "--model", "models/ok.keras", "--no-progress"],
                              ("many", "models"), runner=signal_runner(signum, moment, "out/*.png")))
            cases.append(Case("signals", f"{sig} predict bridge at {moment}",
                              ["predict", "many", "--out", "out", "--method", "bridge", "--no-progress"],
                              ("many",), runner=signal_runner(signum, moment, "out/*.png")))
            cases.append(Case("signals", f"{sig} measure at {moment}", ["measure", "many", "--out", "out"],
                              ("many",), runner=signal_runner(signum, moment, "out/*_grains.csv")))
            cases.append(Case("signals", f"{sig} evaluate at {moment}",
                              ["evaluate", "--data", "S.zarr", "--split", "all", "--model", "models/ok.keras",
                               "--out", "ev", "--no-progress"], ("S.zarr", "models"),
                              runner=signal_runner(signum, moment, "ev")))
        cases.append(Case("signals", f"{sig} train at later",
                          ["train", "--data", "S.zarr", "--out", "run", "--preset", "small", "--epochs", "50",
                           "--limit", "16"], ("S.zarr",), runner=signal_runner(signum, "later", "run/*")))
    return cases


# ------------------------------------------------------------------------------------------------- main

def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", nargs="*", help="families to run")
    parser.add_argument("--match", help="run only cases whose name holds this")
    parser.add_argument("--limit", type=int)
    parser.add_argument("--kills", type=int, default=40)
    parser.add_argument("--keep", action="store_true", help="keep the case folders")
    parser.add_argument("--list", action="store_true")
    parser.add_argument("--details", type=Path, help="write every case's result as JSON lines here")
    parser.add_argument("--thin", nargs="*", default=[], metavar="FAMILY=K",
                        help="keep every K-th case of these families (e.g. options=2 images=3), for a shorter run")
    parser.add_argument("--first", nargs="*", default=[], metavar="FAMILY", help="run these families first")
    args = parser.parse_args()
    started = time.monotonic()
    work = Path(tempfile.mkdtemp(prefix="hostile-"))
    fixtures = work / "fixtures"
    ref: dict[str, Any] = {}
    rng = random.Random(SEED)
    build_fixtures(fixtures, ref)
    cases = (help_cases() + option_cases(rng) + path_cases() + choice_cases() + damage_cases(rng, fixtures, ref)
             + upgrade_cases(ref) + image_cases(fixtures, rng) + env_cases() + readonly_cases() + disk_cases()
             + model_cases())
    if not args.only or "kill-9" in args.only or "signals" in args.only:
        cases += process_cases(rng, fixtures, ref, args.kills)
    if args.only:
        cases = [c for c in cases if c.family in args.only]
    if args.match:
        cases = [c for c in cases if args.match in c.name]
    for rule in args.thin:
        family, every = rule.split("=")
        kept = [c for c in cases if c.family == family][:: int(every)]
        cases = [c for c in cases if c.family != family or any(c is k for k in kept)]
    if args.first:
        cases.sort(key=lambda c: args.first.index(c.family) if c.family in args.first else len(args.first))
    if args.limit:
        cases = cases[: args.limit]
    if args.list:
        for c in cases:
            print(c.family, "|", c.name)
        print(len(cases))
        return
    log(f"{len(cases)} cases in {work}")
    counts: dict[str, collections.Counter] = collections.defaultdict(collections.Counter)
    totals: collections.Counter = collections.Counter()
    problems = []
    slow = []
    undetected: collections.Counter = collections.Counter()  # clean: the damage changed nothing read, unreported
    details = args.details.open("w") if args.details else None
    for n, case in enumerate(cases):
        folder = work / "cases" / f"{n:04d}"
        try:
            ctx = run_case(case, folder, fixtures)
        except Exception as exc:  # noqa: BLE001 - a harness fault is reported, not hidden
            ctx = Ctx(case, folder, verdict="harness_error", why=repr(exc))
        counts[case.family][ctx.verdict] += 1
        if ctx.verdict == "clean" and ctx.extra.get("harmless"):
            undetected[case.family] += 1
        totals[ctx.verdict] += 1
        if ctx.seconds > 20:
            slow.append((round(ctx.seconds, 1), case.family, case.name))
        if ctx.verdict != "clean":
            problems.append(ctx)
            log(f"[{n}] {ctx.verdict}: {case.family} | {case.name} | {ctx.why} | argv {shlex.join(case.argv)[:300]} "
                f"| rc {ctx.rc} | {(ctx.err or ctx.out).strip()[-800:]!r}")
        elif n % 50 == 0:
            log(f"[{n}/{len(cases)}] {time.monotonic() - started:.0f} s, {dict(totals)}")
        if details:
            details.write(json.dumps({"n": n, "family": case.family, "name": case.name, "argv": case.argv,
                                      "verdict": ctx.verdict, "why": ctx.why, "rc": ctx.rc,
                                      "seconds": round(ctx.seconds, 2), "harmless": ctx.extra.get("harmless"),
                                      "stderr": ctx.err[-2000:], "stdout": ctx.out[-1000:]}) + "\n")
            details.flush()
        if not args.keep and ctx.verdict == "clean":
            shutil.rmtree(folder, ignore_errors=True)
    seconds = time.monotonic() - started
    print(f"{'family':<16}" + "".join(f"{c:>14}" for c in CLASSES))
    for family, counter in counts.items():
        print(f"{family:<16}" + "".join(f"{counter.get(c, 0):>14}" for c in CLASSES))
    print(f"{'all':<16}" + "".join(f"{totals.get(c, 0):>14}" for c in CLASSES))
    print(f"clean, damage not reported but nothing read from it changed: {dict(undetected)}")
    if totals.get("harness_error"):
        print(f"harness errors: {totals['harness_error']}")
    for ctx in problems:
        print(f"{ctx.verdict}: {ctx.case.family} | {ctx.case.name} | {ctx.why}")
    for s in sorted(slow, reverse=True)[:10]:
        print(f"slow: {s}")
    if not HAS_UNSHARE:
        print("read-only and full-disk cases skipped: they need `unshare -m` as root")
    print(json.dumps({"classes": {c: totals.get(c, 0) for c in CLASSES + ["harness_error"]},
                      "families": {f: dict(c) for f, c in counts.items()}, "cases": len(cases),
                      "clean_damage_unreported": dict(undetected),
                      "seconds": round(seconds, 1),
                      "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
                      "machine": {"host": platform.node(), "cpus": os.cpu_count(), "python": platform.python_version(),
                                  "system": platform.platform(), "load": os.getloadavg()},
                      "seed": SEED, "thin": args.thin, "kills": args.kills, "work": str(work)}))


if __name__ == "__main__":
    main()
