"""The work of the commands that use a model (tune, predict, measure, evaluate, train) as plain functions.

As pipeline/commands.py: cli.py parses the options, calls one of these and turns a CommandError
into one `Error: ...` line; `echo` takes what the user reads. Nothing here imports TensorFlow
at import time: a function that runs a network loads it first (require_tensorflow), and bridge,
a folder of predictions or a baseline never do.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pipeline.commands import CommandError, Echo, command_errors, progress_bar

from model import quiet_tensorflow


def require_tensorflow(command: str) -> None:
    """Import TensorFlow quietly, or raise a CommandError saying how to get it."""
    try:
        quiet_tensorflow()
    except ModuleNotFoundError as missing:
        raise CommandError(
            f"{command} needs TensorFlow, and this Python lacks {missing.name!r}: run `make install` and use "
            ".venv/bin/python, or `pip install \".[cpu]\"` (\".[gpu]\" on a GPU machine)") from None


def tune(model_path: str | os.PathLike[str], data: str | os.PathLike[str], *, samples: int = 200,
         tta_sweep: bool = False, batch: int = 4, progress: bool = True, echo: Echo) -> None:
    """Choose the model's inference settings on the validation split, write them beside it, and print them."""
    require_tensorflow("tune")
    from model.training.tune import TuneError, tune_saved

    with command_errors(TuneError):
        tuning = tune_saved(model_path, data, samples=samples, batch=batch,
                            tta_choices=(False, True) if tta_sweep else (False,),
                            progress=progress_bar if progress else None)
    echo(f"{tuning.settings.describe()} ({tuning.settings.chosen_on})")


def predict(inputs: Sequence[str | os.PathLike[str]], out: str | os.PathLike[str], *,
            model_path: str | os.PathLike[str] | None = None, save_probability: bool = False, progress: bool = True,
            echo: Echo, **options: Any) -> bool:
    """Restore `inputs` into `out` with the model at `model_path` (the bundled one when None) or without
    one (options: RestoreOptions' other fields); True when every image was restored."""
    from model.methods import uses_model

    if uses_model(options.get("method")):  # bridge and none never load TensorFlow
        require_tensorflow("predict")
    from model.inference.predict import PredictError, predict_files

    with command_errors(PredictError):
        report = predict_files(model_path, inputs, out, save_probability=save_probability, progress=progress,
                               echo=echo, **options)
    for line in report.messages():
        echo(line, err=line.startswith("failed"))
    echo(report.summary())
    return report.ok


def measure(inputs: Sequence[str | os.PathLike[str]], out: str | os.PathLike[str], *,
            pixel_size: float | None = None, min_grain: int | None = None, angles: tuple[float, ...] | None = None,
            pattern: str = "lines", intercepts_csv: bool = False, exclude_border: bool = False, pooled: bool = False,
            specimens_csv: str | os.PathLike[str] | None = None, mask: str | os.PathLike[str] | None = None,
            roi: str | None = None, keep_data_bar: bool = False, twins: str = "none", html_report: bool = False,
            restore: bool = False, model_path: str | os.PathLike[str] | None = None, echo: Echo,
            **restore_options: Any) -> bool:
    """Measure the grains of `inputs` into `out`, restoring them first with `restore` (restore_options:
    RestoreOptions' fields); specimens from folders or `specimens_csv`, `mask`/`roi` and data bars left
    out, `twins` counted or merged, report.html with `html_report`. True when every image was measured."""
    from model.measure.run import LINE_ANGLES, MeasureError, MeasureOptions, measure_files

    restore_with = None
    if restore:
        from model.inference.restore import RestoreOptions
        from model.methods import uses_model

        if uses_model(restore_options.get("method")):  # bridge and none never load TensorFlow
            require_tensorflow("measure --restore")
        restore_with = RestoreOptions(model=model_path, **restore_options)
    # --invert says the boundaries are bright; with --restore it goes to the restoration instead.
    settings = MeasureOptions(pixel_size_um=pixel_size, min_grain=min_grain, exclude_border=exclude_border,
                              pooled=pooled, angles=LINE_ANGLES if angles is None else angles, pattern=pattern,
                              intercepts_csv=intercepts_csv,
                              invert=bool(restore_options.get("invert")) and not restore,
                              specimens_csv=str(specimens_csv) if specimens_csv else None,
                              mask=str(mask) if mask else None, roi=roi, keep_data_bar=keep_data_bar, twins=twins,
                              report=html_report)
    with command_errors(MeasureError):
        report = measure_files(inputs, out, settings, restore_with, echo=echo)
    for line in report.messages():
        echo(line, err=True)
    echo(report.summary())
    return report.ok


def evaluate(data: str | os.PathLike[str], *, split: str = "test", model_path: str | os.PathLike[str] | None = None,
             predictions: str | os.PathLike[str] | None = None, baseline: str | None = None,
             threshold: float | None = None, link_threshold: float | None = None, min_speck: int | None = None,
             tta: bool | None = None, plus_bridge: bool = False, limit: int | None = None,
             out: str | os.PathLike[str] = Path("evaluation"), batch: int = 4, progress: bool = True,
             echo: Echo) -> None:
    """Score one method on a split of `data` beside the baselines: a folder of `predictions`, a `baseline`,
    else the model at `model_path` (the bundled one when None) with its settings, any of threshold,
    link_threshold, min_speck and tta replacing them. Prints the table, then where the files went."""
    use_model = predictions is None and baseline is None
    if use_model:
        require_tensorflow("evaluate --model")
    from model.scoring import evaluate as evaluation

    with command_errors(evaluation.EvaluationError, store=data):
        reader = None  # opened here only when the store decides the method, then used for the scoring
        if use_model:
            overrides = {"threshold": threshold, "link_threshold": link_threshold, "min_speck": min_speck, "tta": tta}
            if model_path is None and (reader := evaluation.open_reader(data)).gray:  # predict's own route
                method = evaluation.default_route(batch, overrides)
            else:
                method = evaluation.saved_model(model_path, batch, overrides, plus_bridge)
        elif predictions is not None:
            method = evaluation.prediction_folder(predictions)
        else:
            method = evaluation.baseline(str(baseline))
        result = evaluation.evaluate(data, method, out, split, limit, progress=progress_bar if progress else None,
                                     reader=reader)
    echo(result.table())
    echo(f"{split} split, {int(result.results[result.headline]['images'])} samples -> {out}")


def train(options: dict[str, Any], given: Sequence[str] = (), *, resume: bool = False, dry_run: bool = False,
          echo: Echo) -> None:
    """Train (or with `resume` continue) a run of TrainOptions `options`; `given`: the options the user
    named, which a resumed run checks against its own. Prints the files written last."""
    require_tensorflow("train")
    from model.training.train import TrainError, TrainOptions, resumed_options, train as train_model

    values = {k: str(v) if isinstance(v, Path) else v for k, v in options.items()}
    with command_errors(TrainError, store=options.get("data")):
        run_options = (resumed_options(values["out"], {k: values[k] for k in given}) if resume
                       else TrainOptions(**values))
        report = train_model(run_options, echo=echo, dry_run=dry_run, resume=resume,
                             progress=lambda total: progress_bar(total, only_on_terminal=True))
    if report is not None:
        written = sorted(p.name + "/" * p.is_dir() for p in report.run_dir.iterdir())
        echo(f"wrote {report.run_dir}: {', '.join(written)}")
