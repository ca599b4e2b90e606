"""`rnn export`: one network of a checkpoint as a self-contained ONNX file."""

from __future__ import annotations

import os

import click

from .common import checkpoint_option, reports_errors, usage


@click.command()
@checkpoint_option
@click.option(
    "--output",
    "-o",
    "output",
    required=True,
    type=click.Path(dir_okay=False),
    metavar="FILE.onnx",
    help="Where to write the model (refused when it exists, unless --overwrite).",
)
@click.option("--overwrite", is_flag=True, help="Replace FILE.onnx when it exists.")
@click.option(
    "--direction",
    type=click.Choice(["forward", "backward"]),
    default="forward",
    show_default=True,
    help="Which network of the checkpoint: forward (next word) or backward (word before, model.direction).",
)
@click.option(
    "--int8",
    is_flag=True,
    help="Quantize the weights to int8 (onnxruntime's dynamic quantization; see below which runtimes run it).",
)
@reports_errors
def export(checkpoint, output, overwrite, direction, int8):
    """Write one network of a checkpoint as an ONNX model (float32, or int8) that runs in onnxruntime.

    \b
    inputs:  input_ids int64 (T, B), h0 float32 (L, B, H), c0 (LSTM)
    outputs: log_probs float32 (T, B, V), hn (L, B, H), cn (LSTM)

    T and B are dynamic. The file's metadata carries the vocabulary (rnn.vocab, a JSON list in id
    order), the tokenizer settings (rnn.tokenizer), rnn.units, rnn.cell and rnn.direction; a
    word-piece model's file also its piece model (rnn.pieces, base64), so it still speaks words.
    Needs the onnx extra: pip install -e ".[onnx]".

    --int8 stores the embedding, output and LSTM weights as int8 (dynamic quantization: activations
    are quantized at run time); RNN and GRU layers stay float32. An RNN or GRU file uses standard
    ONNX ops only (DequantizeLinear, DynamicQuantizeLinear, MatMulInteger); an LSTM file uses
    onnxruntime's contrib op com.microsoft.DynamicQuantizeLSTM, so only onnxruntime runs it.
    """
    from ..onnx_export import check_destination, require_onnx, require_onnxruntime

    require_onnx()  # before loading: a missing package is said first
    if int8:
        require_onnxruntime()
    if os.path.exists(output) and not overwrite:
        raise usage(f"{output} exists; pass --overwrite to replace it")
    check_destination(output)  # before loading: a wrong path is said first
    from .streams import open_model

    if checkpoint and str(checkpoint).endswith(".onnx"):
        raise usage(f"{checkpoint} is already an ONNX file: export reads a checkpoint folder (-c DIR)")
    model = open_model(checkpoint)
    network = model.forward if direction == "forward" else model.backward
    if network is None:
        held = "backward" if direction == "forward" else "forward"
        raise usage(f"{model.path} holds no {direction} network (only a {held} one); pass --direction {held}")
    model.export(output, direction=direction, int8=int8)
    kind = "int8 " if int8 else ""
    click.echo(f"rnn: {kind}{network.shape.cell} model written to {output}", err=True)
