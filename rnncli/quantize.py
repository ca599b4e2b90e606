"""int8 checkpoints: a float32 checkpoint's weights stored as int8 with a scale per row, about a
quarter of the size, loaded by every command as any checkpoint is.

``rnn quantize -c CHECKPOINT -o OUT_DIR`` writes OUT_DIR as a run folder with one checkpoint,
through ``checkpoint.save_checkpoint`` (atomic, checksummed as any)::

    OUT_DIR/
        index.json        names the one checkpoint, ckpt-int8
        ckpt-int8/
            model.safetensors    every 2-D weight W (R, C) as int8 under its own name, and its scale,
                                 float32 (R,), under ``<name>.scale``; 1-D tensors (biases) as float32
            trainer.safetensors  empty: no optimizer state, so the checkpoint cannot be resumed
            vocab.json           copied
            pieces.model         copied (a word-piece checkpoint)
            checkpoint.json      the source's config, tokenizer and progress (no RNG state), and
                                 "quantized": {"dtype": "int8", "scheme": "per-row symmetric",
                                               "source_model_sha256": the float32 model.safetensors'}

Per-row symmetric: for row r of W, ``scale[r] = max|W[r]| / 127`` and ``q[r] = round(W[r] / scale[r])``
in [-127, 127] (a row of zeros has scale 0 and q 0); loading gives ``q * scale[:, None]`` in float32,
within ``scale / 2`` of W.  A row is one output unit (a gate's unit, a word's embedding or output
vector), so one large row does not coarsen the others.  The model is built from those float32 weights:
the saving is on disk and in transfer, not in the arithmetic.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .checkpoint import META, MODEL_FILE, Checkpoint, load_checkpoint, save_checkpoint
from .errors import CheckpointError, UsageError

DTYPE = "int8"
SCHEME = "per-row symmetric"
SCALE_SUFFIX = ".scale"
QMAX = 127
NAME = "ckpt-int8"  # the checkpoint's folder in OUT_DIR
_NOT_COPIED = ("files", "format_version", "versions", "meta_sha256", "rng")  # the writer's own, and trainer state


def quantize_weights(weights: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Float tensors -> int8 2-D tensors, each with its ``<name>.scale`` (float32, one per row); 1-D stay float32."""
    out: dict[str, np.ndarray] = {}
    for name, w in weights.items():
        if w.ndim != 2:
            out[name] = np.asarray(w, dtype=np.float32)
            continue
        w = np.asarray(w, dtype=np.float32)  # (R, C)
        scale = (np.abs(w).max(axis=1) / QMAX).astype(np.float32)  # (R,)
        safe = np.where(scale > 0, scale, 1.0).astype(np.float32)  # (R,): a zero row divides by 1
        out[name] = np.clip(np.rint(w / safe[:, None]), -QMAX, QMAX).astype(np.int8)  # (R, C)
        out[name + SCALE_SUFFIX] = scale
    return out


def is_quantized(ckpt: Checkpoint) -> bool:
    return "quantized" in ckpt.meta


def dequantize_weights(ckpt: Checkpoint) -> dict[str, np.ndarray]:
    """A quantized checkpoint's tensors as float32 (``q * scale``), under the original names.

    A scale that is missing, of the wrong shape or not finite, an int8 tensor that is not 2-D, or a
    scale without its int8 tensor is a CheckpointError naming the file and the tensor.
    """
    where = f"{ckpt.path}/{MODEL_FILE}"
    info = ckpt.meta.get("quantized")
    if not isinstance(info, dict) or info.get("dtype") != DTYPE or info.get("scheme") != SCHEME:
        raise CheckpointError(
            f"{ckpt.path}/{META}: unsupported quantization {info!r} (this rnn reads dtype {DTYPE}, scheme {SCHEME})"
        )
    weights = ckpt.weights
    out: dict[str, np.ndarray] = {}
    for name, q in weights.items():
        if name.endswith(SCALE_SUFFIX):
            base = weights.get(name[: -len(SCALE_SUFFIX)])
            if base is None or base.dtype != np.int8:
                raise CheckpointError(f"{where}: {name} scales no int8 tensor; the file is damaged")
            continue
        if q.dtype == np.float32:
            out[name] = q
            continue
        if q.dtype != np.int8 or q.ndim != 2:
            raise CheckpointError(f"{where}: tensor {name} is {q.dtype} of shape {q.shape}, expected 2-D int8")
        scale = weights.get(name + SCALE_SUFFIX)
        if scale is None:
            raise CheckpointError(f"{where}: the scale of {name} ({name}{SCALE_SUFFIX}) is missing; damaged file")
        if scale.dtype != np.float32 or scale.shape != (q.shape[0],) or not np.all(np.isfinite(scale)):
            raise CheckpointError(
                f"{where}: {name}{SCALE_SUFFIX} must be {q.shape[0]} finite float32 values, one per row of {name}"
            )
        out[name] = q.astype(np.float32) * scale[:, None]  # (R, C)
    return out


def quantize_checkpoint(source: Path, out_dir: Path, *, overwrite: bool = False, which: str = "best") -> Path:
    """Write the int8 copy of checkpoint ``source`` (a run folder or a ckpt-* folder) as the run folder
    ``out_dir``; returns the checkpoint folder written.

    An existing ``out_dir`` is a UsageError unless ``overwrite`` (then the new checkpoint replaces the
    one its index names, atomically); ``out_dir`` may not be the source's run or checkpoint folder.
    """
    out_dir = Path(out_dir)
    if out_dir.exists() and not overwrite:
        raise UsageError(f"{out_dir} exists; pass --overwrite to replace it")
    if out_dir.exists() and not out_dir.is_dir():
        raise UsageError(f"{out_dir} is not a folder; remove it or write elsewhere")
    if not out_dir.exists() and not out_dir.parent.is_dir():
        raise UsageError(f"{out_dir.parent} is not a folder; make it first, or write elsewhere")
    ckpt = load_checkpoint(Path(source), which)
    if is_quantized(ckpt):
        raise UsageError(f"{ckpt.path} is already an int8 checkpoint; quantize the float32 one it was made from")
    if out_dir.exists() and out_dir.resolve() in (ckpt.path.resolve(), ckpt.path.resolve().parent):
        raise UsageError(f"{out_dir} holds the checkpoint being quantized; write the int8 copy elsewhere")
    meta = {k: v for k, v in ckpt.meta.items() if k not in _NOT_COPIED}
    meta["quantized"] = {
        "dtype": DTYPE,
        "scheme": SCHEME,
        "source_model_sha256": ckpt.meta["files"].get(MODEL_FILE),
    }
    return save_checkpoint(
        out_dir,
        NAME,
        quantize_weights(ckpt.weights),
        {},
        ckpt.vocab,
        meta,
        is_best=True,
        keep=1,
        pieces=ckpt.pieces,
    )
