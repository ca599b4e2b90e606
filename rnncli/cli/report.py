"""`rnn report`: a training run's per-epoch table, and its learning curves."""

from __future__ import annotations

import sys

import click

from .. import strictjson
from .common import format_option, reports_errors, write_lines


@click.command()
@click.argument("run_dir", type=click.Path(file_okay=False), required=False)
@click.option(
    "--plot",
    "plot_path",
    type=click.Path(dir_okay=False),
    metavar="FILE.png",
    help="Also draw the learning curves into this image (needs matplotlib: pip install 'rnncli[plot]').",
)
@format_option("json: the metrics.jsonl records, one object per line.")
@reports_errors
def report(run_dir, plot_path, fmt):
    """Show a training run: one row per epoch (train/valid perplexity, lr, tokens/s, time).

    RUN_DIR is the folder `rnn train` wrote (checkpoint.dir) or one of its checkpoints  [default:
    $RNN_CHECKPOINT, else the last `rnn train` here, as predict finds it].
    """
    from pathlib import Path

    from ..report import format_table, plot, read_metrics, require_matplotlib, run_folder

    if run_dir is None:
        from ..checkpoint import locate_checkpoint

        found, found_by = locate_checkpoint(None)
        run_dir = run_folder(found)
        if sys.stderr.isatty():
            click.echo(f"rnn: run {run_dir.resolve()} (found through {found_by})", err=True)
    else:
        run_dir = run_folder(Path(run_dir))
    records = read_metrics(run_dir)
    if plot_path:
        require_matplotlib()  # before the table: a missing library is said first, not after the output
    try:
        if fmt == "json":
            write_lines([strictjson.dumps(r) for r in records])
        else:
            write_lines(format_table(records))
    finally:
        # the image is output the user asked for: drawn even when stdout went away (`| head -1`, `| true`)
        if plot_path:
            plot(records, Path(plot_path), title=str(run_dir))
            click.echo(f"rnn: learning curves written to {plot_path}", err=True)
