"""Reconstruction-GB command line: `python cli.py --help`."""

from __future__ import annotations

import gc
import math
import os
import re
import shlex
import signal
import sys
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, NoReturn


def _stopped_before_start(signum: int, frame: object) -> None:
    """Ctrl-C or SIGTERM while cli.py loads (its imports, its commands' definitions): one line, 130 or 143.
    The try below caught a KeyboardInterrupt of the imports only; the click decorators that follow
    printed a traceback, and SIGTERM killed the process without a line (exit -15)."""
    word, status = ("interrupted", 130) if signum == signal.SIGINT else ("terminated", 143)
    os.write(2, f"{word} before the command started: nothing was done\n".encode())
    os._exit(status)


# Only for `python cli.py` itself (not Dask's spawned workers, which load this file as __mp_main__,
# nor an import), and only where Python's own handling is in force: a job started with SIGINT
# ignored keeps ignoring it.
_EARLY = {signum: signal.signal(signum, _stopped_before_start) for signum, usual in
          ((signal.SIGINT, signal.default_int_handler), (signal.SIGTERM, signal.SIG_DFL))
          if __name__ == "__main__" and signal.getsignal(signum) is usual}

try:
    import click

    import model.commands as model_commands  # TensorFlow itself is imported only by the commands that need it
    import pipeline.commands as pipeline_commands
    from pipeline import __version__
    from pipeline.clusters import DEFAULT_JOBS, SCHEDULERS
    from pipeline.commands import CommandError
    from pipeline.config import MAX_SIZE, MIN_SIZE, PRESETS, TASKS
except KeyboardInterrupt:  # Ctrl-C while the modules load: nothing has started
    sys.stderr.write("interrupted before the command started: nothing was done\n")
    sys.exit(130)
except ModuleNotFoundError as missing:  # a Python without the dependencies: one line, no traceback
    if (missing.name or "").split(".")[0] in ("pipeline", "model"):  # e.g. `python -I`: cli.py's folder not on sys.path
        sys.exit(f"error: cannot import the project's own {missing.name!r}; run `python cli.py` as it is, "
                 "without -I or -P, or `pip install .` and run reconstruction-gb")
    sys.exit(f"error: this Python ({sys.executable}) lacks the module {missing.name!r}; run `make install` "
             "and use .venv/bin/python cli.py, or `pip install .` and run reconstruction-gb")

DEFAULT_OUT = Path("generated_data") / "reconstruction.zarr"


def _refuse_empty(value: Any, kind: click.ParamType, param: click.Parameter | None, ctx: click.Context | None) -> None:
    """An empty path is no path: Path("") is the current folder, where `--out "$DIR"` with DIR unset
    would write (or `measure ""` read) everything."""
    if isinstance(value, str) and not value.strip():
        kind.fail("is empty (an unset shell variable?): give a path; '.' for this folder", param, ctx)


class GivenPath(click.Path):
    """click.Path that refuses an empty string."""

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        _refuse_empty(value, self, param, ctx)
        return super().convert(value, param, ctx)


def _outside_stores(out: Any, *, is_store: bool) -> None:
    """One line, before anything is written, when --out lies inside a Zarr store (a folder with
    zarr.json above it): its files would change the store. `is_store`: --out is a store itself, so
    a store there is the one to continue, not a container."""
    if not isinstance(out, Path):
        return  # a URL: object storage has no folders to look up
    absolute = Path(os.path.abspath(out))
    around = absolute.parents if is_store else (absolute, *absolute.parents)
    try:
        holder = next((folder for folder in around if (folder / "zarr.json").is_file()), None)
    except OSError:
        return  # a name the filesystem refuses: the command says so itself
    if holder == absolute:
        raise click.ClickException(f"--out {out} is the Zarr store {holder} itself; choose a folder outside it")
    if holder is not None:
        raise click.ClickException(f"--out {out} is inside the Zarr store {holder}; choose a folder outside it")


class StorePath(click.ParamType):
    """A library store: a folder (Path), or an object-storage URL kept as it is (`s3://bucket/lib.zarr`)."""

    name = "STORE"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        from pipeline.store import is_url  # the store's own rule for what a URL is

        _refuse_empty(value, self, param, ctx)

        if isinstance(value, str) and is_url(value):
            return value
        return Path(value)


class JsonObject(click.ParamType):
    """--storage-options: a JSON object (fsspec's options of the store's filesystem)."""

    name = "JSON"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        import json

        if isinstance(value, dict):
            return value
        try:
            parsed = json.loads(value)
        except ValueError as exc:
            self.fail(f"not JSON ({exc})", param, ctx)
        if not isinstance(parsed, dict):
            self.fail(f"expected a JSON object such as '{{\"endpoint_url\": \"http://host:9000\"}}', got {value!r}",
                      param, ctx)
        return parsed


STORE = StorePath()
STORAGE_OPTIONS = click.option(
    "--storage-options", type=JsonObject(), default=None,
    help="JSON options of the store's filesystem when it is a URL (s3fs: endpoint_url, key, secret, anon, "
         "client_kwargs...); credentials otherwise come from the usual environment variables and files.")


def _located(store: Any, storage_options: dict[str, Any] | None) -> Any:
    """The store argument and --storage-options as one location (a Path, or a URL with its options)."""
    if store is None:
        return None
    from pipeline.store import StoreError, store_location

    try:
        return store_location(store, storage_options)
    except StoreError as exc:
        raise click.UsageError(str(exc)) from None


class OneLineErrors(click.Group):
    """Usage errors print only `Error: ...` (no usage block), and so does a command's CommandError:
    one clear line. Commands are listed in the order of a first run (generate ... predict), not
    alphabetically."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return list(self.commands)

    def make_context(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        with _one_line():
            return super().make_context(*args, **kwargs)

    def invoke(self, ctx: click.Context):  # type: ignore[no-untyped-def]
        with _one_line(), _stopped_in_one_line(ctx):
            return super().invoke(ctx)


@contextmanager
def _one_line() -> Iterator[None]:
    """A usage error without its usage block, a library's CommandError as click's `Error: ...` line."""
    try:
        yield
    except click.exceptions.NoArgsIsHelpError:
        raise  # no arguments: click prints the help, as every click program does
    except click.UsageError as exc:
        exc.ctx = None
        exc.message = _shortened(exc.message)
        raise
    except CommandError as exc:
        raise click.ClickException(_shortened(str(exc))) from None
    except OSError as exc:  # a full disk, a name too long, a place that takes no files: still one line
        from pipeline.store import os_error_line

        raise click.ClickException(_shortened(os_error_line(exc))) from None


LONGEST_WORD = 200


def _shortened(message: str) -> str:
    """`message` as one readable line: each word (value, path, number) longer than LONGEST_WORD characters
    cut to its start and its length, and control characters (a newline in a file name) escaped."""
    def cut(match: re.Match[str]) -> str:
        word = match.group()
        return f"{word[:60]}...({len(word):,} characters)"

    message = re.sub(r"[\x00-\x1f\x7f]", lambda m: repr(m.group())[1:-1], message)
    return re.sub(rf"\S{{{LONGEST_WORD + 1},}}", cut, message)


@click.group(cls=OneLineErrors, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, "--version", prog_name="reconstruction-gb", message="%(prog)s %(version)s")
def cli() -> None:
    """Reconstruction-GB: synthetic grain-boundary libraries and the Attention U-Net that restores them.

    A first run: generate a small library, train the small model on it, then evaluate and predict
    (README.md walks through it; `make demo` does the first two).
    """


def main() -> None:
    """The `reconstruction-gb` console command (the same group as `python cli.py`)."""
    for signum, usual in _EARLY.items():  # loaded: Ctrl-C is KeyboardInterrupt again, for the commands to handle
        signal.signal(signum, usual)
    try:
        cli()
    except _Stopped as stop:
        # Objects the interruption left half-made (an event loop whose constructor Ctrl-C cut short)
        # complain as they are collected at exit ("Exception ignored in ... BaseEventLoop.__del__"):
        # nothing the user needs. Native threads a stopped command leaves running (OpenCV's,
        # TensorFlow's) can abort Python's finalization ("Fatal Python error: PyThreadState_Get",
        # exit -6 instead of 143), so such a command leaves at once: the stop has already unwound
        # every writer. `generate` finalizes: Dask's exit handlers take its cluster down.
        sys.unraisablehook = lambda unraisable: None
        if not stop.finalize:
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(stop.code)
        raise
    finally:
        # Nothing is left to clean up that the OS does not: the interpreter's final garbage
        # collections over every module (Dask's, zarr's) took about 0.4 s of CPU after a run.
        gc.freeze()


# SIGTERM (what SLURM, Kubernetes and `kill` send) stops a run as Ctrl-C does; the exit status
# stays the conventional 128 + 15.
SIGTERM_EXIT = 143

# What a command stopped by Ctrl-C or SIGTERM leaves, and how to go on (generate says it itself).
STOPPED = {
    "train": "the run keeps its last finished epoch; to continue, run: {command} --resume",
    "predict": "the images restored so far are kept, whole; run the same command to restore them all",
    "measure": ("the images measured so far are kept, whole, but no summary was written; "
                "run the same command again"),
    "evaluate": "nothing was written; run the same command again",
    "tune": "no settings were written; run the same command again",
}


class _Stopped(SystemExit):
    """The exit of a command stopped by Ctrl-C or SIGTERM, after its one line (`main` ends the process)."""

    def __init__(self, code: int, finalize: bool):
        super().__init__(code)
        self.finalize = finalize


def _exit_stopped(code: int, finalize: bool = True) -> NoReturn:
    """Exit with `code` after the one line of a stopped command; without `finalize`, `main` leaves
    the interpreter at once (see there). In-process callers (tests) get an ordinary SystemExit."""
    raise _Stopped(code, finalize)


class _Terminated(KeyboardInterrupt):
    """SIGTERM, raised where the main thread is, as Ctrl-C's KeyboardInterrupt is."""


@contextmanager
def _stopped_in_one_line(ctx: click.Context) -> Iterator[None]:
    """Ctrl-C or SIGTERM during any command: one line saying what is kept and how to go on, exit 130
    (143: SIGTERM), instead of click's "Aborted!" and exit 1 (or a silent death on SIGTERM)."""
    def on_sigterm(signum: int, frame: object) -> None:
        raise _Terminated()

    previous = signal.signal(signal.SIGTERM, on_sigterm)
    try:
        yield
    except KeyboardInterrupt as stop:
        command = _resume_command().removesuffix(" --resume")
        what = STOPPED.get(ctx.invoked_subcommand or "", "run the same command again").format(command=command)
        click.echo(f"{'terminated' if isinstance(stop, _Terminated) else 'interrupted'}: {what}", err=True)
        _exit_stopped(SIGTERM_EXIT if isinstance(stop, _Terminated) else 130,
                      finalize=ctx.invoked_subcommand == "generate")
    finally:
        signal.signal(signal.SIGTERM, previous)


@contextmanager
def _run_that_may_stop() -> Iterator[None]:
    """A run stopped part-way keeps what finished. SIGTERM stops it as Ctrl-C does, ending it with one
    line and exit 130 (143: SIGTERM); lost workers end it with one line saying how to continue."""
    from pipeline.generate import Interrupted, RunStopped  # imported when a run starts: `--help` stays fast

    received: list[int] = []

    def on_sigterm(signum: int, frame: object) -> None:
        received.append(signum)
        raise _Terminated()

    previous = signal.signal(signal.SIGTERM, on_sigterm)
    try:
        yield
    except Interrupted as exc:
        line = str(exc)
        click.echo(("terminated" + line[len("interrupted"):]) if received and line.startswith("interrupted") else line,
                   err=True)
        _exit_stopped(SIGTERM_EXIT if received else 130)
    except RunStopped as exc:  # the workers are gone
        raise click.ClickException(f"{exc.reason}: stopped with {exc.done} of {exc.count} pairs done (kept); "
                                   f"to continue, run: {_resume_command()}") from None
    finally:
        signal.signal(signal.SIGTERM, previous)


def _resume_command() -> str:
    """The command line of this run, less --overwrite (which would start the library again)."""
    argv = [arg for arg in getattr(sys, "orig_argv", sys.argv) if arg != "--overwrite"]
    return shlex.join(argv)


def _flag(name: str) -> str:
    """The option of the parameter `name`: model_path -> --model, min_speck -> --min-speck."""
    return "--" + name.removesuffix("_path").replace("_", "-")


def _given(ctx: click.Context, names: Iterable[str]) -> list[str]:
    """Those of the parameters `names` that the command line set (not left at their defaults)."""
    return [name for name in names if ctx.get_parameter_source(name) is not click.core.ParameterSource.DEFAULT]


@cli.command(short_help="Generate a library of fragmented/true boundary pairs.")
@click.option("--task", type=click.Choice(TASKS), default="reconstruction", show_default=True,
              help="Library kind (the study's denoising library is not available).")
@click.option("--count", type=click.IntRange(min=1), required=True, help="Number of pairs.")
@click.option("--size", type=click.IntRange(min=MIN_SIZE, max=MAX_SIZE), default=512, show_default=True, help="Image side in pixels.")
@click.option("--out", type=STORE, default=DEFAULT_OUT, show_default=True,
              help="Zarr store: a folder, or a URL of object storage (s3://bucket/prefix/lib.zarr; docs/store.md).")
@STORAGE_OPTIONS
@click.option("--seed", type=click.IntRange(min=0), default=0, show_default=True, help="Library seed.")
@click.option("--workers", type=click.IntRange(min=0), default=None,
              help="Local Dask worker processes [default: number of cores]; 0 runs serially in this process.")
@click.option("--scheduler", metavar="ADDRESS", default=None,
              help="Existing Dask scheduler, e.g. tcp://host:8786 [default: DASK_SCHEDULER_ADDRESS when set and "
                   "--workers is not given].")
@click.option("--cluster", type=click.Choice(list(SCHEDULERS)), default=None,
              help="Start the workers as batch jobs through dask-jobqueue (see docs/cluster.md).")
@click.option("--jobs", type=click.IntRange(min=1), default=None,
              help=f"With --cluster: jobs to submit, each of the configured cores [default: {DEFAULT_JOBS}].")
@click.option("--block", type=click.IntRange(min=1), default=None, help="Pairs per task [default: ~50 tasks per worker, at most 32].")
@click.option("--preset", type=click.Choice(PRESETS), default="study", show_default=True,
              help="How a sample is made: the study's method, `general` (wide grain sizes and shapes, twins, "
                   "1-6 px lines, pockets, four gap styles) or `aligned` (half general, half elongated, aligned "
                   "small grains); docs/store.md.")
@click.option("--nucleation-rate", type=(int, int), default=None, metavar="MIN MAX",
              help="polySim nucleation rate range (integers, inclusive) [default: 10 20; general: 5 60; aligned: 40 120].")
@click.option("--growth-rate", type=(int, int), default=None, metavar="MIN MAX",
              help="polySim growth rate range (integers, inclusive) [default: 1 3; general and aligned: 1 8].")
@click.option("--overwrite", is_flag=True, help="Replace an existing store of this project.")
@click.option("--no-progress", is_flag=True, help="No progress bar.")
def generate(no_progress: bool, **options: Any) -> None:
    """Generate COUNT fragmented/true boundary pairs into a Zarr store (continues an unfinished one)."""
    from model.network.presets import untrainable_size_warning  # no Keras there

    if sum(options[name] is not None for name in ("workers", "scheduler", "cluster")) > 1:
        raise click.UsageError("give only one of --workers, --scheduler, --cluster")
    if options["jobs"] is not None and options["cluster"] is None:
        raise click.UsageError("--jobs goes with --cluster")
    _outside_stores(options["out"], is_store=True)
    warning = untrainable_size_warning(options["size"])
    if warning:
        click.echo(warning, err=True)
    options["out"] = _located(options["out"], options.pop("storage_options"))
    with _run_that_may_stop():
        pipeline_commands.generate(**options, progress=not no_progress, echo=click.echo)


@cli.command(short_help="Describe a library store.")
@click.argument("store", type=STORE)
@STORAGE_OPTIONS
def info(store: Path, storage_options: dict[str, Any] | None) -> None:
    """Describe the library store STORE: samples per split, size, seed, source, versions."""
    pipeline_commands.info(_located(store, storage_options), echo=click.echo)


@cli.command(short_help="Write a store's pairs as PNGs (the study's layout).")
@click.argument("store", type=STORE)
@STORAGE_OPTIONS
@click.option("--out", type=GivenPath(path_type=Path), required=True,
              help="Folder for micro/<i>.png and label/<i>.png (created if missing; no file is overwritten).")
@click.option("--start", type=click.IntRange(min=0), default=0, show_default=True, help="First sample index.")
@click.option("--count", type=click.IntRange(min=1), default=None, help="Samples from --start [default: to the end].")
def export(store: Path, storage_options: dict[str, Any] | None, out: Path, start: int, count: int | None) -> None:
    """Write the done pairs of STORE as 8-bit gray PNGs (the published study's layout)."""
    pipeline_commands.export(_located(store, storage_options), out, start, count, echo=click.echo)


@cli.command("import", short_help="Make a store from micro/ and label/ PNG pairs.")
@click.argument("directory", type=GivenPath(path_type=Path))
@click.option("--out", type=STORE, required=True, help="New Zarr store, a folder or a URL (never overwritten).")
@STORAGE_OPTIONS
@click.option("--strict", is_flag=True, help="Import nothing if any file cannot be imported.")
@click.option("--seed", type=click.IntRange(min=0), default=0, show_default=True,
              help="Library seed: decides the train/val/test split.")
def import_(directory: Path, out: Path, storage_options: dict[str, Any] | None, strict: bool, seed: int) -> None:
    """Build a new store from DIRECTORY/micro/<n>.png and DIRECTORY/label/<n>.png pairs."""
    pipeline_commands.import_pngs(directory, _located(out, storage_options), seed=seed, strict=strict, echo=click.echo)


@cli.command(short_help="Re-read and check every done sample of a store.")
@click.argument("store", type=STORE)
@STORAGE_OPTIONS
@click.option("--repair", is_flag=True,
              help="Make the bad samples of a generated store again, in place (an imported one is left unchanged).")
def verify(store: Path, storage_options: dict[str, Any] | None, repair: bool) -> None:
    """Re-read every done sample of STORE and check it (checksums included); exit status 1 if any is bad."""
    if not pipeline_commands.verify(_located(store, storage_options), repair, echo=click.echo):
        click.get_current_context().exit(1)


@cli.command(short_help="Rewrite a format-1 store as a verified format-2 store.")
@click.argument("store", type=GivenPath(path_type=Path))
@click.option("--out", type=STORE, required=True, help="New format-2 store, a folder or a URL (never overwritten).")
@STORAGE_OPTIONS
def upgrade(store: Path, out: Path, storage_options: dict[str, Any] | None) -> None:
    """Rewrite the format-1 store STORE as a new format-2 store, and verify it (STORE is not changed)."""
    _outside_stores(out, is_store=True)
    pipeline_commands.upgrade(store, _located(out, storage_options), echo=click.echo)


@cli.command(short_help="Train the Attention U-Net on a store (prints its run directory).")
@click.option("--data", type=STORE, help="Library store to train from, a folder or a URL (not needed with --resume).")
@STORAGE_OPTIONS
@click.option("--out", type=GivenPath(path_type=Path), required=True, help="Run directory.")
@click.option("--epochs", type=click.IntRange(min=1), default=100, show_default=True,
              help="Most epochs (early stopping may end the run sooner).")
@click.option("--batch", type=click.IntRange(min=1), default=4, show_default=True, help="Global batch size.")
@click.option("--limit", type=click.IntRange(min=1), default=None,
              help="Use only the first N done samples of the library (all splits).")
@click.option("--preset", type=click.Choice(["paper", "medium", "small"]), default="paper", show_default=True,
              help="paper: the study's 157.6 M-parameter model (a GPU job); medium and small: train on a CPU.")
@click.option("--filters", type=click.IntRange(min=1), default=None, help="Base width [default: preset's].")
@click.option("--depth", type=click.IntRange(min=1), default=None, help="Pooling levels [default: preset's].")
@click.option("--kernel-size", type=click.IntRange(min=1), default=None, help="Conv kernel side [default: preset's].")
@click.option("--loss", type=click.Choice(["bce", "dice", "bce+dice", "bce+cldice"]), default="bce", show_default=True,
              help="Training loss (bce+cldice: a topology-aware clDice term beside BCE).")
@click.option("--cldice-weight", type=click.FloatRange(min=0), default=0.5, show_default=True,
              help="Weight of the clDice term in --loss bce+cldice.")
@click.option("--crop", type=click.IntRange(min=1), default=None,
              help="Train on random CROP x CROP crops (validation and test stay on whole images).")
@click.option("--corrupt", is_flag=True, help="Add random dark specks and boundary holes to training inputs.")
@click.option("--corrupt-scale", type=click.FloatRange(min=0, min_open=True), default=1.0, show_default=True,
              help="With --corrupt: multiply the largest speck (3 px) and hole (9 px) sides by this.")
@click.option("--lr", type=click.FloatRange(min=0, min_open=True), default=1e-3, show_default=True,
              help="Adam learning rate.")
@click.option("--patience", type=click.IntRange(min=1), default=10, show_default=True,
              help="Epochs without a lower validation loss before stopping.")
@click.option("--augment/--no-augment", default=True, show_default=True, help="Random flips and quarter turns.")
@click.option("--mixed-precision", is_flag=True, help="float16 compute (for GPUs with tensor cores).")
@click.option("--seed", type=click.IntRange(min=0), default=0, show_default=True,
              help="Weight initialisation, shuffling and augmentation.")
@click.option("--shuffle-window", type=click.IntRange(min=0, max=2**31), default=None,
              help="Shuffle the train split by windows of N shards (up to 32 samples each): a window's samples in random "
              "order, the windows in random order; 0: the whole split at once [default: 8 for a library in object "
              "storage, which then reads each shard in one request; 0 for a folder].")
@click.option("--init", type=GivenPath(path_type=Path), default=None,
              help="Start from this trained model's weights (fine-tuning; same preset and sizes).")
@click.option("--resume", is_flag=True, help="Continue the interrupted run in --out with its own options.")
@click.option("--dry-run", is_flag=True, help="Print the model's size and the samples per split, then exit.")
@click.pass_context
def train(ctx: click.Context, resume: bool, dry_run: bool, **options: object) -> None:
    """Train the Attention U-Net on a library's train split (selection on val, score on test)."""
    if not resume and options["data"] is None:
        raise click.UsageError("Missing option '--data'.")
    _outside_stores(options["out"], is_store=False)
    model_commands.train(options, _given(ctx, options), resume=resume, dry_run=dry_run, echo=click.echo)


LINK_HELP = ("Centre line of the reading at this background probability joins the boundary (closes gaps one "
             "pixel wide; at or below the threshold: off) [default: the model's settings, else off].")

RESTORE_OPTIONS = [
    click.option("--method", type=click.Choice(["model", "bridge", "model+bridge", "none"]), default=None,
                 help="model: the network alone; bridge: the classical gap closer; model+bridge: the network, then "
                 "the bridge; none: only the preparation and speck filter [default: the model's own choice, from "
                 "its settings: model+bridge for the bundled model]."),
    click.option("--model", "model_path", type=GivenPath(path_type=Path), default=None,
                 help="A trained model (.keras) [default: the bundled model]."),
    click.option("--threshold", type=click.FloatRange(0, 1), default=None,
                 help="Background probability at or above which a pixel is background [default: the model's settings, else 0.5]."),
    click.option("--link-threshold", type=click.FloatRange(0, 1), default=None, help=LINK_HELP),
    click.option("--min-speck", type=click.IntRange(min=0), default=None,
                 help="Remove boundary specks smaller than N px touching no other boundary [default: the model's settings, else 30]."),
    click.option("--tta/--no-tta", default=None,
                 help="Mean over the 8 flips and quarter turns (8x slower) [default: the model's settings]."),
    click.option("--binarize", type=click.Choice(["auto", "none", "otsu", "adaptive"]), default="auto",
                 show_default=True, help="Turn a micrograph into a boundary/background image first (otsu: global; "
                 "adaptive: local; auto: adaptive for gray, 16-bit and colour micrographs, none for binary maps)."),
    click.option("--denoise", type=click.Choice(["auto", "none", "median", "nlmeans"]), default="auto",
                 show_default=True, help="Denoise a micrograph first (3x3 median or OpenCV non-local means; "
                 "auto: nlmeans for gray, 16-bit and colour micrographs, none for binary maps)."),
    click.option("--scale", type=click.FloatRange(min=0, min_open=True), default=1.0, show_default=True,
                 help="Resample by F before restoring and back after (docs/predict.md: choosing F)."),
    click.option("--invert", is_flag=True, help="For images whose boundaries are bright."),
    click.option("--tile", type=int, default=None,
                 help="Tile side [default: the model's input size; 256 for a model that takes any size]."),
    click.option("--overlap", type=int, default=None, help="Pixels shared by neighbouring tiles [default: tile / 4]."),
    click.option("--batch", type=click.IntRange(min=1), default=4, show_default=True, help="Tiles per model call."),
]
RESTORE_KEYS = ("method", "model_path", "threshold", "link_threshold", "min_speck", "tta", "binarize", "denoise", "scale",
                "invert", "tile", "overlap", "batch")


def restore_options(command):  # type: ignore[no-untyped-def]
    """Add the restoration options shared by `predict` and `measure --restore`."""
    for option in reversed(RESTORE_OPTIONS):
        command = option(command)
    return command


@cli.command(short_help="Choose a model's threshold and speck filter on validation.")
@click.option("--model", "model_path", type=GivenPath(path_type=Path), required=True,
              help="A trained model (.keras); its settings are written beside it (M.settings.json).")
@click.option("--data", type=STORE, required=True, help="Library store, a folder or a URL (its val split is used).")
@STORAGE_OPTIONS
@click.option("--samples", type=click.IntRange(min=1), default=200, show_default=True,
              help="First N validation samples to score.")
@click.option("--tta-sweep", is_flag=True, help="Also try test-time augmentation (8x the model's time).")
@click.option("--batch", type=click.IntRange(min=1), default=4, show_default=True, help="Model batch size.")
@click.option("--no-progress", is_flag=True, help="No progress bar.")
def tune(model_path: Path, data: Path, storage_options: dict[str, Any] | None, samples: int, tta_sweep: bool,
         batch: int, no_progress: bool) -> None:
    """Choose a model's thresholds and speck filter on the validation split (never on test)."""
    model_commands.tune(model_path, _located(data, storage_options), samples=samples, tta_sweep=tta_sweep, batch=batch,
                        progress=not no_progress, echo=click.echo)


@cli.command(short_help="Restore your own micrographs (bundled model, bridge or both).")
@click.argument("inputs", nargs=-1, required=True, type=GivenPath(path_type=Path))
@click.option("--out", type=GivenPath(path_type=Path), required=True,
              help="Folder for the restored images: <name>.png for every input, whatever its format.")
@restore_options
@click.option("--save-probability", is_flag=True, help="Also write <name>_probability.tif (float32; model methods).")
@click.option("--no-progress", is_flag=True, help="No progress bar.")
@click.pass_context
def predict(ctx: click.Context, no_progress: bool, **options: Any) -> None:
    """Restore the boundary network of your own micrographs: INPUTS are image files or folders, any size.

    The model expects a binary boundary map: dark boundaries (0) on a bright background. Each input's
    kind is detected: a binary map goes to the model as it is; a gray, 16-bit or colour micrograph is
    denoised and binarised first (--denoise/--binarize auto; give them to choose). The first lines
    printed say which. Outputs are 8-bit PNGs (0 boundary, 255 background), DIR/<input name>.png.

    Without --method the bundled model runs model+bridge (its settings say so). Where it is not
    ahead: on independent-generator maps with elongated, aligned grains, --method bridge
    miscounts as many grains (model/pretrained/README.md, "Limits").
    """
    _outside_stores(options["out"], is_store=False)
    if not model_commands.predict(**options, progress=not no_progress, echo=click.echo):
        ctx.exit(1)


def _angles(ctx: click.Context, param: click.Parameter, value: str) -> tuple[float, ...]:
    """--angles "0,45,90,135" as a tuple of degrees."""
    try:
        angles = tuple(float(part) for part in value.split(",") if part.strip())
    except ValueError:
        raise click.BadParameter(f"expected degrees separated by commas, got {value!r}") from None
    if not angles or not all(math.isfinite(a) for a in angles):
        raise click.BadParameter(f"expected degrees separated by commas, got {value!r}")
    return angles


@cli.command(short_help="Grain counts, sizes and ASTM G of boundary images.")
@click.argument("inputs", nargs=-1, required=True, type=GivenPath(path_type=Path))
@click.option("--out", type=GivenPath(path_type=Path), required=True, help="Folder for the grain tables and summary.csv.")
@click.option("--pixel-size", type=click.FloatRange(min=0, min_open=True), default=None,
              help="Micrometres per pixel [default: read from TIFF/ImageJ/OME tags; without any, G is left empty].")
@click.option("--min-grain", type=click.IntRange(min=1), default=None,
              help="Smaller background pieces (px) are specks, not grains "
                   "[default: from each image: the gap between debris and grains in its size histogram, "
                   "else 1/100 of the area-weighted median grain area; at least 5].")
@click.option("--angles", default="0,45,90,135", show_default=True, callback=_angles,
              help="Directions of the straight test lines, degrees (0 = rows, 90 = columns).")
@click.option("--pattern", type=click.Choice(["lines", "circles"]), default="lines", show_default=True,
              help="Intercept test pattern: straight lines at --angles, or E112's three concentric circles.")
@click.option("--intercepts", "intercepts_csv", is_flag=True,
              help="Also write <name>_intercepts.csv: the length of every intercept.")
@click.option("--exclude-border", is_flag=True, help="Leave grains cut by the image border out of tables and sizes.")
@click.option("--pooled", is_flag=True, help="One histogram of all images instead of one per image.")
@click.option("--specimens", "specimens_csv", type=GivenPath(path_type=Path, dir_okay=False), default=None,
              help="CSV with rows image,specimen [default: one specimen per folder, or per subfolder].")
@click.option("--mask", type=GivenPath(path_type=Path, dir_okay=False), default=None,
              help="PNG the size of the images: white is measured, black left out.")
@click.option("--roi", default=None, help="Measure only the rectangle x,y,w,h (pixels from the top-left corner).")
@click.option("--keep-data-bar", is_flag=True, help="Measure a data bar found at an image edge (left out by default).")
@click.option("--twins", type=click.Choice(["none", "count", "merge"]), default="none", show_default=True,
              help="Twin bands inside grains: count them, or merge them into their grain (E112, annealed fcc).")
@click.option("--report", "html_report", is_flag=True, help="Also write report.html, one page for the run.")
@click.option("--restore", is_flag=True, help="Inputs are raw micrographs: restore them first (options as predict).")
@restore_options
@click.pass_context
def measure(ctx: click.Context, **options: Any) -> None:
    """Grain counts, sizes and ASTM E112 G: INPUTS are boundary images (dark boundaries; bright ones are
    detected, or say --invert), files or folders, or raw micrographs restored first with --restore."""
    given = _given(ctx, [name for name in RESTORE_KEYS if name != "invert"])
    if given and not options["restore"]:
        raise click.UsageError(f"{_flag(given[0])} needs --restore")
    _outside_stores(options["out"], is_store=False)
    if not model_commands.measure(**options, echo=click.echo):
        ctx.exit(1)


@cli.command(short_help="Score a model, predictions or a baseline on a split.")
@click.option("--data", type=STORE, required=True, help="Library store, a folder or a URL.")
@STORAGE_OPTIONS
@click.option("--split", type=click.Choice(["test", "val", "all"]), default="test", show_default=True,
              help="Samples to score: the held-out test split, validation, or every done sample.")
@click.option("--model", "model_path", type=GivenPath(path_type=Path),
              help="A trained model (.keras) [default: the bundled model, when no other method is given].")
@click.option("--predictions", type=GivenPath(path_type=Path),
              help="A folder of <i>.png predictions (any method), one per sample of the split.")
@click.option("--baseline", type=click.Choice(["identity", "bridge", "prep+bridge", "prep"]),
              help="A classical baseline: identity or bridge on boundary maps; on gray micrographs "
                   "prep+bridge (predict --method bridge) or prep (the preparation alone).")
@click.option("--threshold", type=click.FloatRange(0, 1), default=None,
              help="Model methods: background probability at or above which a pixel is background "
                   "[default: the model's validation-chosen value, else 0.5].")
@click.option("--link-threshold", type=click.FloatRange(0, 1), default=None,
              help="Model methods only. " + LINK_HELP)
@click.option("--min-speck", type=click.IntRange(min=0), default=None,
              help="Model methods: remove boundary specks smaller than this (px) [default: the model's].")
@click.option("--tta/--no-tta", default=None,
              help="Model methods: mean over the 8 flips and quarter turns [default: the model's].")
@click.option("--plus-bridge", is_flag=True,
              help="Model methods: also report model+bridge (the model's output, then the bridge) as its own row "
                   "[always, as the first row, when the model's settings say bridge].")
@click.option("--limit", type=click.IntRange(min=1), default=None, help="Score only the first N samples of the split.")
@click.option("--out", type=GivenPath(path_type=Path), default=Path("evaluation"), show_default=True,
              help="Folder for metrics.json, report.md and evaluation.png.")
@click.option("--batch", type=click.IntRange(min=1), default=4, show_default=True, help="Model batch size.")
@click.option("--no-progress", is_flag=True, help="No progress bar.")
@click.pass_context
def evaluate(ctx: click.Context, no_progress: bool, **options: Any) -> None:
    """Score a model, a folder of predictions or a baseline on a split, beside the baselines."""
    chosen = [_flag(name) for name in ("model_path", "predictions", "baseline") if options[name] is not None]
    if len(chosen) > 1:
        raise click.UsageError(f"give one of --model, --predictions, --baseline (got {', '.join(chosen)})")
    model_only = _given(ctx, ("threshold", "link_threshold", "min_speck", "tta", "plus_bridge"))
    if model_only and chosen and options["model_path"] is None:
        raise click.UsageError(f"{', '.join(map(_flag, model_only))} apply only to a model")
    _outside_stores(options["out"], is_store=False)
    options["data"] = _located(options["data"], options.pop("storage_options"))
    model_commands.evaluate(**options, progress=not no_progress, echo=click.echo)


if __name__ == "__main__":  # Dask spawns worker processes: the guard is required
    main()
