"""One network of a checkpoint as a self-contained ONNX model (``rnn export``).

The graph is built from the weights with the ``onnx`` package's helpers (no torch) and computes
what ``RNNModel.hidden`` then ``RNNModel.log_probs`` compute, over a window of T tokens and B
streams, both dynamic::

    input_ids (T, B) int64 -> Gather(encoder.weight) -> RNN/LSTM/GRU per layer -> output layer
    h0 (L, B, H) [c0 (L, B, H)]                                      -> log_probs (T, B, V) float32
                                                                        hn (L, B, H) [cn (L, B, H)]

ONNX's recurrent ops take one layer each, ``W (1, G*H, in)``, ``R (1, G*H, H)``, ``B (1, 2*G*H)``
(the input bias, then the recurrent one), with their gates in another order than PyTorch's, whose
layout the checkpoint keeps (``cells.py``)::

    LSTM   torch i f g o  ->  ONNX i o f c
    GRU    torch r z n    ->  ONNX z r h   (linear_before_reset=1: r multiplies W_hn h + b_hn, as torch)
    RNN    one block, Tanh

The output is the full log-distribution: a full softmax (MatMul by the decoder weight transposed,
the encoder's when tied, plus the bias, LogSoftmax on the last axis) or an adaptive one (the
head's log-softmax for the shortlist; each tail cluster's log-softmax plus the head's entry for
that cluster, concatenated in id order, as ``softmax.AdaptiveSoftmax.log_probs``).

``metadata_props`` make the file usable without rnn: ``rnn.vocab`` (JSON list, id order),
``rnn.tokenizer`` (JSON of the tokenizer settings), ``rnn.units``, ``rnn.cell``, ``rnn.direction``,
and for a word-piece model (``rnn.units`` = ``pieces``: the vocabulary lists the units)
``rnn.pieces``, the SentencePiece model that spells words into those units (its protobuf bytes, base64).

``int8=True`` (``rnn export --int8``) then quantizes the weights with onnxruntime's dynamic quantization
(``quantize_dynamic``, int8 weights with a scale each, activations quantized at run time): first each
``Transpose`` of a weight is folded into a transposed initializer (the quantizer only takes a MatMul
whose weight is an initializer), then

    Gather (embedding)   -> DequantizeLinear of an int8 table, then Gather         standard ONNX
    MatMul (output)      -> DynamicQuantizeLinear, MatMulInteger, Cast, Mul         standard ONNX
    LSTM                 -> com.microsoft.DynamicQuantizeLSTM                        onnxruntime only
    RNN, GRU             -> left in float32 (the quantizer has no integer form of them)

so an RNN or GRU file holds only standard ops (opset 17: onnxruntime, onnxruntime-web, any runtime
with MatMulInteger), while an LSTM file needs onnxruntime's contrib ops (onnxruntime on every platform,
including mobile and web builds that keep them; not a runtime that implements the standard ops only).
The metadata is kept; ``onnx.checker`` runs without ``full_check`` when a contrib op is present (its
shape inference knows no ``com.microsoft`` op), with it otherwise.
"""

from __future__ import annotations

import base64
import json
import logging
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from .errors import UsageError
from .model import RNNModel

OPSET = 17
INSTALL_HINT = 'pip install -e ".[onnx]"'

# ONNX's gate blocks, as indices of PyTorch's blocks (see the module's docstring)
_GATE_ORDER = {"rnn": [0], "lstm": [0, 3, 1, 2], "gru": [1, 0, 2]}
_OP = {"rnn": "RNN", "lstm": "LSTM", "gru": "GRU"}


def require_onnx():
    """The ``onnx`` module; a UsageError naming the extra to install when it is missing."""
    try:
        import onnx
    except ImportError:
        raise UsageError(f"ONNX export needs the onnx package: {INSTALL_HINT}") from None
    return onnx


def require_onnxruntime():
    """``onnxruntime.quantization``; a UsageError naming the extra to install when it is missing."""
    try:
        from onnxruntime import quantization
    except ImportError:
        raise UsageError(f"--int8 needs the onnxruntime package: {INSTALL_HINT}") from None
    return quantization


def check_destination(path: str | os.PathLike) -> None:
    """A UsageError, before any work, when the folder an ``.onnx`` file is to be written into is missing."""
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        raise UsageError(f"{folder} is not a folder; make it first, or write the model elsewhere")


def onnx_gates(w: np.ndarray, cell: str) -> np.ndarray:
    """A torch-layout weight (G*H, ...) or bias (G*H,) with its gate blocks in ONNX's order."""
    blocks = np.split(w, len(_GATE_ORDER[cell]), axis=0)  # G blocks of (H, ...)
    return np.concatenate([blocks[i] for i in _GATE_ORDER[cell]], axis=0)


class _Graph:
    """The nodes and initializers of a graph being built; every name is an ONNX value name."""

    def __init__(self, params: dict[str, np.ndarray]):
        from onnx import helper, numpy_helper

        self.helper, self.numpy_helper = helper, numpy_helper
        self.params = params  # float32, under torch.nn names
        self.inits, self.nodes = [], []

    def init(self, name: str, array: np.ndarray | None = None) -> str:
        """An initializer: ``array``, or the parameter of that name."""
        array = self.params[name] if array is None else array
        self.inits.append(self.numpy_helper.from_array(np.ascontiguousarray(array), name))
        return name

    def ints(self, name: str, values: list[int]) -> str:
        return self.init(name, np.array(values, dtype=np.int64))

    def node(self, op: str, inputs: list[str], output: str | list[str], **attrs) -> str:
        """Add a node named as its (first) output; returns that output's name."""
        outputs = [output] if isinstance(output, str) else output
        self.nodes.append(self.helper.make_node(op, inputs, outputs, name=outputs[0], **attrs))
        return outputs[0]

    def linear(self, h: str, weight: str, out: str) -> str:
        """h (T, B, in) @ weight.T, weight (n, in) an initializer: (T, B, n)."""
        wt = self.node("Transpose", [weight], f"{out}.wT", perm=[1, 0])  # (in, n): folded once by the runtime
        return self.node("MatMul", [h, wt], out)


def _recurrent_layers(g: _Graph, model: RNNModel, x: str) -> str:
    """One ONNX RNN/LSTM/GRU node per layer over x (T, B, E), from h0 (and c0); outputs hn (and cn).
    Returns the top layer's output (T, B, H)."""
    cell, H = model.shape.cell, model.shape.hidden_size
    lstm = cell == "lstm"
    h_out, c_out = [], []
    for k in range(model.shape.layers):
        W = onnx_gates(g.params[f"rnn.weight_ih_l{k}"], cell)[None]  # (1, G*H, in)
        R = onnx_gates(g.params[f"rnn.weight_hh_l{k}"], cell)[None]  # (1, G*H, H)
        b_ih, b_hh = (onnx_gates(g.params[f"rnn.bias_{side}_l{k}"], cell) for side in ("ih", "hh"))
        b = np.concatenate([b_ih, b_hh])[None]  # (1, 2*G*H): ONNX's Wb then Rb
        pick = [g.ints(f"l{k}.start", [k]), g.ints(f"l{k}.end", [k + 1]), g.ints(f"l{k}.axis", [0])]
        h_init = g.node("Slice", ["h0", *pick], f"l{k}.h0")  # (1, B, H)
        inputs = [x, g.init(f"l{k}.W", W), g.init(f"l{k}.R", R), g.init(f"l{k}.B", b), "", h_init]
        outputs = [f"l{k}.Y", f"l{k}.Y_h"]
        if lstm:
            inputs.append(g.node("Slice", ["c0", *pick], f"l{k}.c0"))
            outputs.append(f"l{k}.Y_c")
            c_out.append(outputs[2])
        attrs = {"linear_before_reset": 1} if cell == "gru" else {}
        if cell == "rnn":
            attrs["activations"] = ["Tanh"]
        # the op always reads left to right: a backward network is fed the reversed stream, as in rnn
        g.node(_OP[cell], inputs, outputs, hidden_size=H, direction="forward", **attrs)  # Y (T, 1, B, H)
        h_out.append(outputs[1])  # (1, B, H)
        x = g.node("Squeeze", [outputs[0], g.ints(f"l{k}.squeeze", [1])], f"l{k}.out")  # (T, B, H)
    g.node("Concat", h_out, "hn", axis=0)  # (L, B, H)
    if lstm:
        g.node("Concat", c_out, "cn", axis=0)
    return x


def _full_output(g: _Graph, model: RNNModel, top: str) -> None:
    """log_probs (T, B, V) = LogSoftmax(top @ W.T + b), W the encoder's weight when tied."""
    weight = "encoder.weight" if model.shape.tie_weights else g.init("decoder.weight")
    logits = g.node("Add", [g.linear(top, weight, "decoder.mm"), g.init("decoder.bias")], "logits")
    g.node("LogSoftmax", [logits], "log_probs", axis=-1)  # (T, B, V)


def _adaptive_output(g: _Graph, model: RNNModel, top: str) -> None:
    """log_probs (T, B, V) of the adaptive softmax, as ``AdaptiveSoftmax.log_probs`` computes it."""
    out = model.output
    S = out.shortlist
    head = g.node("Add", [g.linear(top, g.init("decoder.head.weight"), "head.mm"), g.init("decoder.head.bias")], "head")
    head = g.node("LogSoftmax", [head], "head.log_probs", axis=-1)  # (T, B, S + clusters)
    last = g.ints("last_axis", [-1])
    parts = [g.node("Slice", [head, g.ints("short.start", [0]), g.ints("short.end", [S]), last], "short")]
    for i in range(out.n_clusters):
        z = g.linear(top, g.init(f"decoder.tail.{i}.0.weight"), f"tail{i}.z")  # (T, B, p_i)
        t = g.linear(z, g.init(f"decoder.tail.{i}.1.weight"), f"tail{i}.logits")  # (T, B, size_i)
        t = g.node("LogSoftmax", [t], f"tail{i}.log_probs", axis=-1)
        ends = [g.ints(f"tail{i}.start", [S + i]), g.ints(f"tail{i}.end", [S + i + 1])]
        cluster = g.node("Slice", [head, *ends, last], f"tail{i}.head")  # (T, B, 1): the cluster's log-prob
        parts.append(g.node("Add", [t, cluster], f"tail{i}.out"))
    g.node("Concat", parts, "log_probs", axis=-1)  # (T, B, V), ids in order: shortlist, then each cluster


def build_onnx(
    model: RNNModel,
    vocab: Sequence[str],
    tokenizer_settings: dict,
    *,
    direction: str = "forward",
    units: str = "words",
    pieces: bytes | None = None,
    opset: int = OPSET,
):
    """The ``onnx.ModelProto`` of one network (float32), checked by ``onnx.checker``; ``pieces``: the
    SentencePiece model of a word-piece network (``units="pieces"``), stored in the metadata."""
    onnx = require_onnx()
    from onnx import TensorProto, helper

    if units not in ("words", "pieces") or (units == "pieces") != (pieces is not None):
        raise ValueError(f"units {units!r} with{'out' if pieces is None else ''} a piece model")
    if direction not in ("forward", "backward"):
        raise ValueError(f"direction must be forward or backward, not {direction!r}")
    s = model.shape
    if len(vocab) != s.vocab_size:
        raise ValueError(f"the vocabulary has {len(vocab)} entries, the network {s.vocab_size}")
    g = _Graph({name: np.asarray(w, dtype=np.float32) for name, w in model.params.items()})
    x = g.node("Gather", [g.init("encoder.weight"), "input_ids"], "embedded", axis=0)  # (T, B, E)
    top = _recurrent_layers(g, model, x)  # (T, B, H)
    (_adaptive_output if s.softmax == "adaptive" else _full_output)(g, model, top)

    state = [s.layers, "B", s.hidden_size]  # (L, B, H): the layer count is fixed, the stream count dynamic
    names = ["h0", "c0"] if s.cell == "lstm" else ["h0"]
    inputs = [helper.make_tensor_value_info("input_ids", TensorProto.INT64, ["T", "B"])]
    inputs += [helper.make_tensor_value_info(n, TensorProto.FLOAT, state) for n in names]
    outputs = [helper.make_tensor_value_info("log_probs", TensorProto.FLOAT, ["T", "B", s.vocab_size])]
    outputs += [helper.make_tensor_value_info(n[0] + "n", TensorProto.FLOAT, state) for n in names]
    graph = helper.make_graph(g.nodes, f"rnn-{s.cell}-{direction}", inputs, outputs, initializer=g.inits)
    opsets = [helper.make_opsetid("", opset)]
    proto = helper.make_model(graph, opset_imports=opsets, producer_name="rnncli")
    proto.ir_version = helper.find_min_ir_version_for(opsets)  # the oldest that the opset allows: more runtimes
    props = {"rnn.vocab": json.dumps(list(vocab), ensure_ascii=False)}
    props["rnn.tokenizer"] = json.dumps(tokenizer_settings, ensure_ascii=False, sort_keys=True)
    props.update({"rnn.units": units, "rnn.cell": s.cell, "rnn.direction": direction})
    if pieces is not None:
        props["rnn.pieces"] = base64.b64encode(pieces).decode("ascii")
    helper.set_model_props(proto, props)
    onnx.checker.check_model(proto, full_check=True)
    return proto


def _fold_weight_transposes(proto) -> None:
    """Replace each Transpose of an initializer by the transposed initializer, in place, so that the
    MatMul after it reads an initializer (what ``quantize_dynamic`` needs to quantize it)."""
    from onnx import numpy_helper

    inits = {t.name: t for t in proto.graph.initializer}
    kept = []
    for node in proto.graph.node:
        if node.op_type == "Transpose" and node.input[0] in inits:
            perm = list(node.attribute[0].ints) if node.attribute else None
            array = np.transpose(numpy_helper.to_array(inits[node.input[0]]), perm)  # (in, n)
            proto.graph.initializer.append(numpy_helper.from_array(np.ascontiguousarray(array), node.output[0]))
        else:
            kept.append(node)
    del proto.graph.node[:]
    proto.graph.node.extend(kept)
    used = {name for node in proto.graph.node for name in node.input}
    unused = [t for t in proto.graph.initializer if t.name not in used]  # the untransposed weights (not a tied one)
    for t in unused:
        proto.graph.initializer.remove(t)


def quantize_int8(proto):
    """The int8 form of a float32 model from ``build_onnx`` (see the module's docstring), checked."""
    import tempfile

    onnx, quantization = require_onnx(), require_onnxruntime()

    folded = type(proto)()
    folded.CopyFrom(proto)
    _fold_weight_transposes(folded)
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "int8.onnx"
        logging.disable(logging.WARNING)  # its advice to pre-process (shape inference) goes to the root logger
        try:
            quantization.quantize_dynamic(folded, out, weight_type=quantization.QuantType.QInt8)
        finally:
            logging.disable(logging.NOTSET)
        quantized = onnx.load(str(out))
    have = {p.key for p in quantized.metadata_props}
    for p in proto.metadata_props:  # kept by onnxruntime 1.32; copied should a version drop them
        if p.key not in have:
            quantized.metadata_props.add(key=p.key, value=p.value)
    contrib = any(node.domain not in ("", "ai.onnx") for node in quantized.graph.node)
    onnx.checker.check_model(quantized, full_check=not contrib)
    return quantized


def export_onnx(
    model: RNNModel,
    vocab: Sequence[str],
    tokenizer_settings: dict,
    path: str | os.PathLike,
    *,
    direction: str = "forward",
    units: str = "words",
    pieces: bytes | None = None,
    opset: int = OPSET,
    int8: bool = False,
) -> None:
    """Write ``build_onnx``'s model (``quantize_int8``'s with ``int8``) to ``path`` atomically (a
    temporary file, then a rename): a reader sees the old file or the new one, never half of one."""
    from .checkpoint import write_atomic

    proto = build_onnx(model, vocab, tokenizer_settings, direction=direction, units=units, pieces=pieces, opset=opset)
    if int8:
        proto = quantize_int8(proto)
    write_atomic(Path(path), proto.SerializeToString())
