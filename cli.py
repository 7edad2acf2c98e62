"""Reconstruction-GB command line: `python cli.py --help`."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from pipeline.batch import DEFAULT_JOBS, SCHEDULERS, BatchExecutor
from pipeline.config import ConfigError, GenerationConfig, TASKS
from pipeline.executors import DaskExecutor, ExecutorError, SerialExecutor
from pipeline.generate import GenerationError, generate as generate_library
from pipeline.interchange import InterchangeError, export_pairs, import_pairs
from pipeline.store import LibraryStore, StoreError
from pipeline.verify import VerifyError, verify as verify_store
from model import quiet_tensorflow  # TensorFlow itself is imported only by the commands that need it

DEFAULT_OUT = Path("generated_data") / "reconstruction.zarr"
LIBRARY_ERRORS = (ConfigError, ExecutorError, GenerationError, StoreError)


class OneLineErrors(click.Group):
    """Usage errors print only `Error: ...` (no usage block): one clear line."""

    def make_context(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        try:
            return super().make_context(*args, **kwargs)
        except click.UsageError as exc:
            exc.ctx = None
            raise

    def invoke(self, ctx: click.Context):  # type: ignore[no-untyped-def]
        try:
            return super().invoke(ctx)
        except click.UsageError as exc:
            exc.ctx = None
            raise


@click.group(cls=OneLineErrors, context_settings={"help_option_names": ["-h", "--help"]})
def cli() -> None:
    """Synthetic grain-boundary reconstruction library: generate, inspect, train, evaluate."""


def _progress_bar(total: int, only_on_terminal: bool = False):  # type: ignore[no-untyped-def]
    """Pairs done, pairs/s and ETA on stderr (with only_on_terminal, nothing unless stderr is a terminal)."""
    from tqdm import tqdm

    return tqdm(total=total, unit="pair", dynamic_ncols=True, file=sys.stderr,
                disable=None if only_on_terminal else False)


@cli.command()
@click.option("--task", type=click.Choice(TASKS), default="reconstruction", show_default=True,
              help="Library kind (the study's denoising library is not available).")
@click.option("--count", type=click.IntRange(min=1), required=True, help="Number of pairs.")
@click.option("--size", type=click.IntRange(min=64), default=512, show_default=True, help="Image side in pixels.")
@click.option("--out", type=click.Path(path_type=Path), default=DEFAULT_OUT, show_default=True, help="Zarr store.")
@click.option("--seed", type=click.IntRange(min=0), default=0, show_default=True, help="Library seed.")
@click.option("--workers", type=click.IntRange(min=0), default=None,
              help="Local Dask worker processes [default: number of cores]; 0 runs serially in this process.")
@click.option("--scheduler", metavar="ADDRESS", default=None, help="Existing Dask scheduler, e.g. tcp://host:8786.")
@click.option("--cluster", type=click.Choice(list(SCHEDULERS)), default=None,
              help="Start the workers as batch jobs through dask-jobqueue (see docs/cluster.md).")
@click.option("--jobs", type=click.IntRange(min=1), default=None,
              help=f"With --cluster: jobs to submit, each of the configured cores [default: {DEFAULT_JOBS}].")
@click.option("--block", type=click.IntRange(min=1), default=None, help="Pairs per task [default: ~50 tasks per worker, at most 32].")
@click.option("--nucleation-rate", type=(int, int), default=(10, 20), show_default=True, metavar="MIN MAX",
              help="polySim nucleation rate range (integers, inclusive).")
@click.option("--growth-rate", type=(int, int), default=(1, 3), show_default=True, metavar="MIN MAX",
              help="polySim growth rate range (integers, inclusive).")
@click.option("--overwrite", is_flag=True, help="Replace an existing store of this project.")
@click.option("--no-progress", is_flag=True, help="No progress bar.")
def generate(task: str, count: int, size: int, out: Path, seed: int, workers: int | None, scheduler: str | None,
             cluster: str | None, jobs: int | None, block: int | None, nucleation_rate: tuple[int, int], growth_rate: tuple[int, int],
             overwrite: bool, no_progress: bool) -> None:
    """Generate COUNT fragmented/true boundary pairs into a Zarr store (continues an unfinished one)."""
    if sum(option is not None for option in (workers, scheduler, cluster)) > 1:
        raise click.UsageError("give only one of --workers, --scheduler, --cluster")
    if jobs is not None and cluster is None:
        raise click.UsageError("--jobs goes with --cluster")
    try:
        config = GenerationConfig(size=size, task=task, nucleation_rate=nucleation_rate, growth_rate=growth_rate)
        if cluster is not None:
            executor = BatchExecutor(cluster, jobs or DEFAULT_JOBS)
        else:
            executor = SerialExecutor() if workers == 0 else DaskExecutor(workers=workers, scheduler=scheduler)
        report = generate_library(
            out, count, config, seed=seed, executor=executor, block_size=block, overwrite=overwrite,
            progress=None if no_progress else _progress_bar, echo=click.echo,
        )
    except LIBRARY_ERRORS as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(report.summary())


@cli.command()
@click.argument("store", type=click.Path(path_type=Path))
def info(store: Path) -> None:
    """Describe a library store."""
    try:
        library = LibraryStore.open(store)
    except StoreError as exc:
        raise click.ClickException(str(exc)) from None
    attrs = library.attrs
    done = library.done()
    splits = library.metadata("split")[done]
    n_done = int(done.sum())
    size = library.config.size
    pair_bytes = library.bytes_on_disk(["micro", "label"])
    click.echo(f"store:     {library.path} (format version {attrs['format_version']})")
    if library.source_kind == "import":
        source = attrs["source"]
        click.echo(f"source:    imported from {source['directory']} ({len(source.get('skipped', []))} files skipped)")
    else:
        click.echo("source:    generated by polySim")
    click.echo(f"samples:   {n_done} done / {library.count} planned "
               f"(train {int((splits == 0).sum())}, val {int((splits == 1).sum())}, test {int((splits == 2).sum())})")
    click.echo(f"size:      {size} x {size}")
    click.echo(f"seed:      {library.seed}")
    click.echo(f"created:   {attrs['created']}")
    click.echo(f"config:    {json.dumps(attrs['config'])}")
    click.echo(f"versions:  {json.dumps(attrs['versions'])}")
    if n_done:
        click.echo(f"bytes per pair: {pair_bytes / n_done:,.0f} (micro + label), "
                   f"{library.bytes_on_disk() / n_done:,.0f} (whole store)")


@cli.command()
@click.argument("store", type=click.Path(path_type=Path))
@click.option("--out", type=click.Path(path_type=Path), required=True,
              help="Folder for micro/<i>.png and label/<i>.png (created if missing; no file is overwritten).")
@click.option("--start", type=click.IntRange(min=0), default=0, show_default=True, help="First sample index.")
@click.option("--count", type=click.IntRange(min=1), default=None, help="Samples from --start [default: to the end].")
def export(store: Path, out: Path, start: int, count: int | None) -> None:
    """Write the done pairs of a store as 8-bit gray PNGs (the published study's layout)."""
    try:
        report = export_pairs(store, out, start=start, count=count)
    except (InterchangeError, StoreError) as exc:
        raise click.ClickException(str(exc)) from None
    if report.not_done:
        click.echo(f"skipped {report.not_done} samples not done")
    click.echo(report.summary())


@cli.command("import")
@click.argument("directory", type=click.Path(path_type=Path))
@click.option("--out", type=click.Path(path_type=Path), required=True, help="New Zarr store (never overwritten).")
@click.option("--strict", is_flag=True, help="Import nothing if any file cannot be imported.")
@click.option("--seed", type=click.IntRange(min=0), default=0, show_default=True,
              help="Library seed: decides the train/val/test split.")
def import_(directory: Path, out: Path, strict: bool, seed: int) -> None:
    """Build a new store from DIRECTORY/micro/<n>.png and DIRECTORY/label/<n>.png pairs."""
    try:
        report = import_pairs(directory, out, seed=seed, strict=strict)
    except (InterchangeError, StoreError, ConfigError) as exc:
        raise click.ClickException(str(exc)) from None
    for line in report.skipped:
        click.echo(f"skipped {line}")
    click.echo(report.summary())


@cli.command()
@click.argument("store", type=click.Path(path_type=Path))
def verify(store: Path) -> None:
    """Re-read every done sample and check it; exit status 1 if any is bad."""
    try:
        report = verify_store(store, echo=click.echo)
    except (VerifyError, StoreError) as exc:
        raise click.ClickException(str(exc)) from None
    if report.not_done:
        click.echo(f"not checked: {report.not_done} samples not done")
    click.echo(report.summary())
    if report.bad:
        click.get_current_context().exit(1)


@cli.command()
@click.option("--data", type=click.Path(path_type=Path), help="Library store to train from.  [required]")
@click.option("--out", type=click.Path(path_type=Path), required=True, help="Run directory.")
@click.option("--epochs", type=click.IntRange(min=1), default=100, show_default=True)
@click.option("--batch", type=click.IntRange(min=1), default=4, show_default=True, help="Global batch size.")
@click.option("--limit", type=click.IntRange(min=1), default=None,
              help="Use only the first N done samples of the library (all splits).")
@click.option("--preset", type=click.Choice(["paper", "small"]), default="paper", show_default=True)
@click.option("--filters", type=click.IntRange(min=1), default=None, help="Base width [default: preset's].")
@click.option("--depth", type=click.IntRange(min=1), default=None, help="Pooling levels [default: preset's].")
@click.option("--kernel-size", type=click.IntRange(min=1), default=None, help="Conv kernel side [default: preset's].")
@click.option("--loss", type=click.Choice(["bce", "dice", "bce+dice"]), default="bce", show_default=True)
@click.option("--lr", type=click.FloatRange(min=0, min_open=True), default=1e-3, show_default=True)
@click.option("--patience", type=click.IntRange(min=1), default=10, show_default=True,
              help="Epochs without a lower validation loss before stopping.")
@click.option("--augment/--no-augment", default=True, show_default=True, help="Random flips and quarter turns.")
@click.option("--mixed-precision", is_flag=True, help="float16 compute (for GPUs with tensor cores).")
@click.option("--seed", type=click.IntRange(min=0), default=0, show_default=True,
              help="Weight initialisation, shuffling and augmentation.")
@click.option("--resume", is_flag=True, help="Continue the interrupted run in --out with its own options.")
@click.option("--dry-run", is_flag=True, help="Print the model's size and the samples per split, then exit.")
@click.pass_context
def train(ctx: click.Context, resume: bool, dry_run: bool, **options: object) -> None:
    """Train the Attention U-Net on a library's train split (selection on val, score on test)."""
    quiet_tensorflow()
    from model.train import TrainError, TrainOptions, resumed_options, train as train_model

    values = {k: str(v) if isinstance(v, Path) else v for k, v in options.items()}
    given = {k: v for k, v in values.items() if ctx.get_parameter_source(k) is not click.core.ParameterSource.DEFAULT}
    try:
        if resume:
            run_options = resumed_options(values["out"], given)
        elif values["data"] is None:
            raise click.UsageError("Missing option '--data'.")
        else:
            run_options = TrainOptions(**values)
        train_model(run_options, echo=click.echo, dry_run=dry_run, resume=resume,
                    progress=lambda total: _progress_bar(total, only_on_terminal=True))
    except TrainError as exc:
        raise click.ClickException(str(exc)) from None


@cli.command()
@click.option("--model", "model_path", type=click.Path(path_type=Path), required=True,
              help="A trained model (.keras), e.g. RUN_DIR/best_reconstruction_model.keras.")
@click.argument("inputs", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--out", type=click.Path(path_type=Path), required=True, help="Folder for the restored images.")
@click.option("--tile", type=int, default=None,
              help="Tile side [default: the model's input size; 256 for a model that takes any size].")
@click.option("--overlap", type=int, default=None, help="Pixels shared by neighbouring tiles [default: tile / 4].")
@click.option("--threshold", type=click.FloatRange(0, 1), default=0.5, show_default=True,
              help="Background probability at or above which a pixel is background.")
@click.option("--binarize", type=click.Choice(["none", "otsu"]), default="none", show_default=True,
              help="otsu: turn a gray micrograph into a boundary/background image first.")
@click.option("--invert", is_flag=True, help="For images whose boundaries are bright.")
@click.option("--save-probability", is_flag=True, help="Also write <name>_probability.tif (float32).")
@click.option("--batch", type=click.IntRange(min=1), default=4, show_default=True, help="Tiles per model call.")
@click.option("--no-progress", is_flag=True, help="No progress bar.")
@click.pass_context
def predict(ctx: click.Context, model_path: Path, inputs: tuple[Path, ...], out: Path, tile: int | None,
            overlap: int | None, threshold: float, binarize: str, invert: bool, save_probability: bool,
            batch: int, no_progress: bool) -> None:
    """Restore the boundary network of your own micrographs (files or folders), any image size."""
    quiet_tensorflow()
    from model.predict import PredictError, predict_files

    try:
        report = predict_files(model_path, inputs, out, tile=tile, overlap=overlap, threshold=threshold,
                               binarize=binarize, invert=invert, save_probability=save_probability, batch=batch,
                               progress=not no_progress)
    except PredictError as exc:
        raise click.ClickException(str(exc)) from None
    for line in report.messages():
        click.echo(line, err=line.startswith("failed"))
    click.echo(report.summary())
    if not report.ok:
        ctx.exit(1)


@cli.command()
@click.option("--data", type=click.Path(path_type=Path), required=True, help="Library store.")
@click.option("--split", type=click.Choice(["test", "val", "all"]), default="test", show_default=True)
@click.option("--model", "model_path", type=click.Path(path_type=Path), help="A trained model (.keras).")
@click.option("--predictions", type=click.Path(path_type=Path),
              help="A folder of <i>.png predictions (any method), one per sample of the split.")
@click.option("--baseline", type=click.Choice(["identity", "bridge"]), help="A classical baseline.")
@click.option("--limit", type=click.IntRange(min=1), default=None, help="Score only the first N samples of the split.")
@click.option("--out", type=click.Path(path_type=Path), default=Path("evaluation"), show_default=True,
              help="Folder for metrics.json, report.md and evaluation.png.")
@click.option("--batch", type=click.IntRange(min=1), default=4, show_default=True, help="Model batch size.")
@click.option("--no-progress", is_flag=True, help="No progress bar.")
def evaluate(data: Path, split: str, model_path: Path | None, predictions: Path | None, baseline: str | None,
             limit: int | None, out: Path, batch: int, no_progress: bool) -> None:
    """Score a model, a folder of predictions or a baseline on a split, beside the baselines."""
    chosen = [name for name, value in (("--model", model_path), ("--predictions", predictions),
                                       ("--baseline", baseline)) if value is not None]
    if len(chosen) != 1:
        raise click.UsageError("give exactly one of --model, --predictions, --baseline"
                               + (f" (got {', '.join(chosen)})" if chosen else ""))
    if model_path is not None:
        quiet_tensorflow()
    from model import evaluate as evaluation

    try:
        if model_path is not None:
            method = evaluation.saved_model(model_path, batch)
        elif predictions is not None:
            method = evaluation.prediction_folder(predictions)
        else:
            method = evaluation.baseline(baseline)
        result = evaluation.evaluate(data, method, out, split, limit,
                                     progress=None if no_progress else _progress_bar)
    except evaluation.EvaluationError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(result.table())
    click.echo(f"{split} split, {int(result.results[method.name]['images'])} samples -> {out}")


if __name__ == "__main__":  # Dask spawns worker processes: the guard is required
    cli()
