"""The work of the library commands (generate, info, export, import, verify, upgrade) as plain functions.

cli.py parses the options, calls one of these and turns a CommandError into one `Error: ...`
line. Each takes an `echo` for what the user reads (click.echo fits; a test passes a function
that keeps the lines), so it runs and is tested without click. model/commands.py does the same
for the commands that use a model.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, Protocol

from .clusters import DEFAULT_JOBS
from .config import PRESET_RATES, ConfigError, GenerationConfig
from .describe import describe_store
from .interchange import InterchangeError, export_pairs, import_pairs, png_folder_hint
from .store import StoreError, is_no_space, no_space_line
from .verify import VerifyError, verify as verify_store

if TYPE_CHECKING:  # Dask loads with the executors: only `generate` imports them, when it runs
    from .executors import Executor

# A worker process killed mid-run (or stopped with its cluster on SIGTERM) leaves the semaphores
# multiprocessing made for it: the resource tracker frees them at exit, and would say so in a
# "leaked semaphore objects" warning that tells the user nothing they can act on.
QUIET_TRACKER = "ignore::UserWarning:multiprocessing.resource_tracker"


class CommandError(Exception):
    """A command that cannot do its work; the message is one line for the user."""


class Echo(Protocol):
    """Where a command's lines go: standard output, or standard error with `err=True` (as click.echo)."""

    def __call__(self, message: str, *, err: bool = False) -> Any: ...


@contextmanager
def command_errors(*errors: type[Exception], store: str | os.PathLike[str] | None = None) -> Iterator[None]:
    """Raise any of `errors` as a CommandError, and a full disk as one line; a `store` that is a folder of PNG
    pairs gets a pointer to `import`."""
    try:
        yield
    except errors as exc:
        raise CommandError(str(exc) + png_folder_hint(store)) from None
    except OSError as exc:
        if not is_no_space(exc):
            raise
        raise CommandError(no_space_line(exc)) from None


def progress_bar(total: int, only_on_terminal: bool = False) -> Any:
    """Pairs done, pairs/s and ETA on stderr (with only_on_terminal, nothing unless stderr is a terminal)."""
    from tqdm import tqdm

    return tqdm(total=total, unit="pair", dynamic_ncols=True, file=sys.stderr,
                disable=None if only_on_terminal else False)


def generation_config(size: int, task: str = "reconstruction", preset: str = "study",
                      nucleation_rate: tuple[int, int] | None = None,
                      growth_rate: tuple[int, int] | None = None) -> GenerationConfig:
    """The config of `generate`'s options: rates not given are the preset's own (PRESET_RATES), else the study's."""
    rates = {"nucleation_rate": nucleation_rate, "growth_rate": growth_rate}
    defaults = PRESET_RATES.get(preset, {})
    return GenerationConfig(size=size, task=task, preset=preset,
                            **{k: v or defaults.get(k) for k, v in rates.items() if v or k in defaults})


def choose_executor(workers: int | None = None, scheduler: str | None = None, cluster: str | None = None,
                    jobs: int | None = None, notify: Callable[[str], None] = lambda line: None) -> Executor:
    """Batch jobs with `cluster`, this process with `workers` 0, else Dask (local workers, or `scheduler`'s;
    without --workers and --scheduler, DASK_SCHEDULER_ADDRESS names an existing cluster)."""
    # Dask is imported here, not at start-up: `cli.py --help` and the other commands stay fast.
    from .batch import BatchExecutor
    from .executors import DaskExecutor, SerialExecutor

    if cluster is not None:
        return BatchExecutor(cluster, jobs or DEFAULT_JOBS, notify=notify)
    if workers == 0:
        return SerialExecutor()
    if scheduler is None and workers is None:  # Dask's own variable: what dask-gateway, Coiled and operators set
        scheduler = os.environ.get("DASK_SCHEDULER_ADDRESS") or None
    return DaskExecutor(workers=workers, scheduler=scheduler, notify=notify)


def quiet_resource_tracker() -> None:
    """Keep multiprocessing's resource tracker from warning of the semaphores of killed workers."""
    if QUIET_TRACKER not in os.environ.get("PYTHONWARNINGS", ""):  # inherited by the resource tracker process
        os.environ["PYTHONWARNINGS"] = ",".join(filter(None, (os.environ.get("PYTHONWARNINGS"), QUIET_TRACKER)))


def generate(out: str | os.PathLike[str], count: int, *, size: int = 512, task: str = "reconstruction",
             preset: str = "study", nucleation_rate: tuple[int, int] | None = None,
             growth_rate: tuple[int, int] | None = None, seed: int = 0, workers: int | None = None,
             scheduler: str | None = None, cluster: str | None = None, jobs: int | None = None,
             block: int | None = None, overwrite: bool = False, progress: bool = True, echo: Echo) -> None:
    """Make (or continue) the library of `generate`'s options in `out`; its summary line last.

    RunStopped and Interrupted pass through as they are: what finished is kept, and the caller
    says how to continue (and with which exit status).
    """
    from .executors import ExecutorError
    from .generate import GenerationError, RunStopped, generate as generate_library

    quiet_resource_tracker()
    try:
        config = generation_config(size, task, preset, nucleation_rate, growth_rate)
        executor = choose_executor(workers, scheduler, cluster, jobs, notify=lambda line: echo(line, err=True))
        report = generate_library(out, count, config, seed=seed, executor=executor, block_size=block,
                                  overwrite=overwrite, progress=progress_bar if progress else None, echo=echo)
    except RunStopped:
        raise
    except (ConfigError, ExecutorError, GenerationError, StoreError) as exc:
        raise CommandError(str(exc)) from None
    echo(report.summary())


def info(store: str | os.PathLike[str], echo: Echo) -> None:
    """Print the description of the library store `store` (pipeline/describe.py)."""
    with command_errors(StoreError, store=store):
        text = describe_store(store)
    echo(text)


def export(store: str | os.PathLike[str], out: str | os.PathLike[str], start: int = 0, count: int | None = None,
           *, echo: Echo) -> None:
    """Write the done pairs of `store` in [start, start + count) as PNGs in `out`; the samples skipped, then a summary."""
    with command_errors(InterchangeError, StoreError):
        report = export_pairs(store, out, start=start, count=count)
    if report.not_done:
        echo(f"skipped {report.not_done} samples not done")
    echo(report.summary())


def import_pngs(directory: str | os.PathLike[str], out: str | os.PathLike[str], seed: int = 0, strict: bool = False,
                *, echo: Echo) -> None:
    """Make the store `out` of the PNG pairs in `directory`; every file skipped, then a summary."""
    with command_errors(InterchangeError, StoreError, ConfigError):
        report = import_pairs(directory, out, seed=seed, strict=strict)
    for line in report.skipped:
        echo(f"skipped {line}")
    echo(report.summary())


def verify(store: str | os.PathLike[str], repair: bool = False, *, echo: Echo) -> bool:
    """Check (and with `repair` remake) every done sample of `store`; True when all are good now."""
    with command_errors(VerifyError, StoreError, store=store):
        report = verify_store(store, echo=echo, repair=repair)
    if report.not_done:
        echo(f"not checked: {report.not_done} samples not done")
    echo(report.summary())
    return report.ok


def upgrade(store: str | os.PathLike[str], out: str | os.PathLike[str], *, echo: Echo) -> None:
    """Rewrite the format-1 store `store` as the verified format-2 store `out`; its summary line last."""
    from .upgrade import UpgradeError, upgrade as upgrade_store

    with command_errors(UpgradeError, StoreError):
        report = upgrade_store(store, out, echo=echo)
    echo(report.summary())

