"""`rnn quantize`: an int8 copy of a checkpoint, which every command loads as any checkpoint."""

from __future__ import annotations

import click

from .common import checkpoint_option, reports_errors, usage


@click.command()
@checkpoint_option
@click.option(
    "--output",
    "-o",
    "output",
    required=True,
    type=click.Path(),
    metavar="OUT_DIR",
    help="The run folder to write (refused when it exists, unless --overwrite).",
)
@click.option("--overwrite", is_flag=True, help="Replace the checkpoint in OUT_DIR when it exists.")
@reports_errors
def quantize(checkpoint, output, overwrite):
    """Write an int8 copy of a checkpoint: about a quarter of the size of model.safetensors.

    Every 2-D weight is stored as int8 with a float32 scale per row (per-row symmetric: scale =
    max|row| / 127); biases stay float32. predict, eval, score, fill and tokenize load OUT_DIR as
    any checkpoint; it holds no optimizer state, so training cannot resume from it.
    """
    from pathlib import Path

    from ..checkpoint import MODEL_FILE, default_checkpoint
    from ..quantize import quantize_checkpoint

    if checkpoint and str(checkpoint).endswith(".onnx"):
        raise usage(
            f"{checkpoint} is an ONNX file: quantize reads a checkpoint folder (-c DIR); for an int8 ONNX file, "
            "use rnn export --int8"
        )
    written = quantize_checkpoint(default_checkpoint(checkpoint), Path(output), overwrite=overwrite)
    size = (written / MODEL_FILE).stat().st_size
    click.echo(f"rnn: int8 checkpoint written to {written} ({MODEL_FILE}: {size / 1e6:.2f} MB)", err=True)
