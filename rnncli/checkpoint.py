"""Checkpoints: self-contained, pickle-free, written atomically, verified when read.

A training run owns one folder (``checkpoint.dir``)::

    checkpoints/default/
        index.json           which checkpoint is the last and which the best
        metrics.jsonl        one JSON line per epoch
        ckpt-e0003-s0000412/ one checkpoint, never modified once in place:
            model.safetensors    weights under PyTorch's word_language_model names
            trainer.safetensors  optimizer moments and the carried hidden state
            vocab.json           the vocabulary (ids, training counts)
            checkpoint.json      resolved config, tokenizer, progress, RNG state,
                                 versions, the SHA-256 of the three files above
                                 and its own (``meta_sha256``, over its other keys)

A checkpoint is written under a temporary name, every file fsynced, then
renamed into place; only then is ``index.json`` replaced (write, fsync,
rename).  A crash at any moment leaves the previous checkpoint and index intact.
Weights are read with safetensors and the rest with json, so loading a
checkpoint can never run code.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from . import __version__, strictjson
from .errors import CheckpointError

FORMAT_VERSION = 1
INDEX = "index.json"
META = "checkpoint.json"
MODEL_FILE = "model.safetensors"
TRAINER_FILE = "trainer.safetensors"
VOCAB_FILE = "vocab.json"
PIECES_FILE = "pieces.model"  # a word-piece model's SentencePiece protobuf (tokenizer.units: pieces)
META_DIGEST = "meta_sha256"  # checkpoint.json's own checksum, over its other keys
LAST_RUN_POINTER = Path(".rnn") / "last_run"  # relative to the folder `rnn train` ran in


@dataclass(eq=False)  # arrays: no field-wise ==
class Checkpoint:
    path: Path
    weights: dict[str, np.ndarray]
    meta: dict  # config, tokenizer, progress, rng, versions
    vocab: dict
    trainer: dict[str, np.ndarray] = field(default_factory=dict)
    pieces: bytes | None = None  # the piece model's bytes, for a word-piece model


# ------------------------------------------------------------------ writing
def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _write_bytes(path: Path, data: bytes) -> str:
    with open(path, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    return hashlib.sha256(data).hexdigest()


def write_atomic(path: Path, data: bytes) -> None:
    """Replace a file so that readers see either the old or the new content, never a mix."""
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    _write_bytes(tmp, data)
    os.replace(tmp, path)
    _fsync_dir(path.parent)


def _tensor_bytes(arrays: dict[str, np.ndarray]) -> bytes:
    from safetensors.numpy import save

    return save({k: np.ascontiguousarray(v) for k, v in arrays.items()})


def _pause() -> None:
    """Test hook: $RNN_TEST_CHECKPOINT_PAUSE seconds of sleep between the steps of a save.

    The SIGKILL test sets it so that random kills often land in the middle of a save.
    """
    delay = os.environ.get("RNN_TEST_CHECKPOINT_PAUSE")
    if delay:
        time.sleep(float(delay))


def unique_name(run_dir: Path, name: str) -> str:
    """``name``, or ``name-2``, ``name-3``... when a checkpoint the index names already has it.

    A resumed run can reach the same step again (a periodic save at an epoch's last window,
    then the epoch-end save); the checkpoint the index points at is never deleted to make room.
    """
    index = read_index(run_dir) if (run_dir / INDEX).exists() else {}
    named = set(index.get("recent", [])) | {index.get("last"), index.get("best")}
    candidate, n = name, 1
    while candidate in named:
        n += 1
        candidate = f"{name}-{n}"
    return candidate


def save_checkpoint(
    run_dir: Path,
    name: str,
    weights: dict[str, np.ndarray],
    trainer: dict[str, np.ndarray],
    vocab: dict,
    meta: dict,
    *,
    is_best: bool,
    keep: int = 1,
    keep_best: bool = True,
    pieces: bytes | None = None,
) -> Path:
    """Write checkpoint ``name`` into run_dir, make it the last (and maybe the best), prune old ones.

    Keeps the ``keep`` most recent checkpoints, plus the best one when ``keep_best``.  Every
    failure (disk full, unwritable folder) is a CheckpointError that leaves the previous
    checkpoint and index.json as they were.
    """
    _refuse_non_finite(name, weights)
    name = unique_name(run_dir, name)
    final = run_dir / name
    tmp = run_dir / f".tmp-{name}-{os.getpid()}"
    payload = {
        MODEL_FILE: _tensor_bytes(weights),
        TRAINER_FILE: _tensor_bytes(trainer),
        VOCAB_FILE: json.dumps(vocab, ensure_ascii=False).encode(),
    }
    if pieces is not None:
        payload[PIECES_FILE] = pieces
    try:
        _write_checkpoint_dir(run_dir, tmp, final, payload, meta)
    except OSError as e:
        _rmtree(tmp, ignore_errors=True)
        size = sum(len(b) for b in payload.values())
        needs = f" (a checkpoint takes {size / 1e6:.1f} MB)" if size >= 1e5 else f" (a checkpoint takes {size:,} bytes)"
        raise CheckpointError(
            f"cannot write checkpoint in {run_dir}: {e.strerror or e}{needs}; {_what_is_kept(run_dir)}"
        ) from None
    index = _point_index_at(run_dir, name, final, is_best=is_best, keep=keep)
    _prune(run_dir, keep=set(index["recent"]) | ({index["best"]} if keep_best else set()))
    return final


def _refuse_non_finite(name: str, weights: dict[str, np.ndarray]) -> None:
    """Raise a CheckpointError naming the first weight that holds NaN or an infinity: such a
    checkpoint would only pass the divergence on to whoever loads it."""
    for key, a in weights.items():
        if not np.all(np.isfinite(a)):
            raise CheckpointError(f"refusing to save {name}: weight {key} holds NaN or infinite values")


def _write_checkpoint_dir(run_dir: Path, tmp: Path, final: Path, payload: dict[str, bytes], meta: dict) -> None:
    """Write ``payload`` and checkpoint.json into the folder ``tmp``, fsync it, then rename it to ``final``.

    Raises OSError (the caller removes ``tmp``); the rename is the moment the checkpoint appears, whole.
    """
    run_dir.mkdir(parents=True, exist_ok=True)
    if tmp.exists():
        _rmtree(tmp)
    tmp.mkdir()
    files = {}
    for fname, data in payload.items():
        files[fname] = _write_bytes(tmp / fname, data)
        _pause()
    meta = dict(meta, format_version=FORMAT_VERSION, files=files, versions=versions())
    meta[META_DIGEST] = _meta_digest(meta)
    _write_bytes(tmp / META, json.dumps(meta, indent=1, ensure_ascii=False).encode())
    _fsync_dir(tmp)
    _pause()
    if final.exists():  # an orphan left by a crash before the index named it
        _rmtree(final)
    os.rename(tmp, final)
    _fsync_dir(run_dir)
    _pause()


def _point_index_at(run_dir: Path, name: str, final: Path, *, is_best: bool, keep: int) -> dict:
    """Replace index.json atomically so that checkpoint ``name`` is the last (and maybe the best) and
    the newest of the ``keep`` recent ones; returns the new index.

    When the index cannot be written, the checkpoint ``final`` is removed again (nothing names it)
    and the error is a CheckpointError.
    """
    index = read_index(run_dir)
    recent = [n for n in index.get("recent", [index.get("last")]) if n and n != name] + [name]
    recent = recent[-keep:]
    index["last"] = name
    index["recent"] = recent
    if is_best or not index.get("best"):
        index["best"] = name
    index["format_version"] = FORMAT_VERSION
    try:
        write_atomic(run_dir / INDEX, json.dumps(index, indent=1).encode())
    except OSError as e:
        _rmtree(final, ignore_errors=True)
        raise CheckpointError(f"cannot update {run_dir / INDEX}: {e.strerror or e}; {_what_is_kept(run_dir)}") from None
    return index


def _what_is_kept(run_dir: Path) -> str:
    """After a failed save: what the run folder still holds, and what to do."""
    previous = read_index(run_dir).get("last") if run_dir.is_dir() else None
    if previous:
        return f"the previous checkpoint {previous} is kept: free some space, then continue with --resume"
    return "no checkpoint was saved: free some space and start the run again"


def _prune(run_dir: Path, keep: set[str]) -> None:
    """Remove checkpoints the index no longer names, and temporaries left by a crash."""
    for child in run_dir.iterdir():
        stale = child.name.startswith(("ckpt-", ".tmp-ckpt-")) and child.name not in keep
        if stale and child.is_dir():
            _rmtree(child, ignore_errors=True)


def append_metrics(run_dir: Path, record: dict) -> None:
    try:
        with open(run_dir / "metrics.jsonl", "a", encoding="utf-8") as f:
            f.write(strictjson.dumps(record) + "\n")  # an infinite perplexity is null
            f.flush()
            os.fsync(f.fileno())
    except OSError as e:
        raise CheckpointError(f"cannot write {run_dir / 'metrics.jsonl'}: {e.strerror or e}") from None


def truncate_metrics(run_dir: Path, lines: int) -> None:
    """Keep the first ``lines`` records of metrics.jsonl: later ones (or a torn last line) were
    written by a run killed before its checkpoint recorded them, and the resumed run redoes them."""
    path = run_dir / "metrics.jsonl"
    if not path.exists():
        return
    data = path.read_bytes()
    keep = b"".join(data.splitlines(keepends=True)[:lines])
    if keep != data:
        write_atomic(path, keep)


def versions() -> dict:
    import numpy

    return {"rnn": __version__, "numpy": numpy.__version__, "python": sys.version.split()[0]}


def remember_last_run(run_dir: Path, cwd: Path | None = None) -> None:
    """Record the run folder so that predict/eval in this folder find it without --checkpoint."""
    pointer = (cwd or Path.cwd()) / LAST_RUN_POINTER
    try:
        pointer.parent.mkdir(exist_ok=True)
        write_atomic(pointer, str(run_dir.resolve()).encode())
    except OSError:
        pass  # only a convenience: predict can still be given --checkpoint


# ------------------------------------------------------------------ reading
def read_index(run_dir: Path) -> dict:
    path = run_dir / INDEX
    if not path.exists():
        return {}
    try:
        index = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError, UnicodeDecodeError):
        raise CheckpointError(f"{path}: damaged index; remove it and point --checkpoint at a ckpt-* folder") from None
    if not isinstance(index, dict):
        raise CheckpointError(f"{path}: damaged index; remove it and point --checkpoint at a ckpt-* folder")
    return index


def find_checkpoint(path: Path, which: str = "best") -> Path:
    """A run folder (its best or last checkpoint) or one checkpoint folder -> the checkpoint folder."""
    if not path.exists():
        raise CheckpointError(f"checkpoint not found: {path}; run `rnn train CONFIG` first", exit_code=2)
    if (path / META).exists():
        return path
    index = read_index(path)
    name = index.get(which) or index.get("last")
    if not name:
        raise CheckpointError(f"no checkpoint in {path}; run `rnn train CONFIG` to make one", exit_code=2)
    found = path / name
    if not (found / META).exists():
        raise CheckpointError(f"{path / INDEX} names {name}, which is missing; the run folder is damaged")
    return found


def default_checkpoint(explicit: str | None) -> Path:
    """--checkpoint, else $RNN_CHECKPOINT, else the run that the last `rnn train` here wrote."""
    return locate_checkpoint(explicit)[0]


def locate_checkpoint(explicit: str | None) -> tuple[Path, str | None]:
    """The model a reading command uses, and how it was found when the user did not name it:
    None for --checkpoint, "$RNN_CHECKPOINT" or the last-run pointer's path otherwise (so the
    command can say which model answered: a stale pointer must not go unnoticed)."""
    if explicit:
        return Path(explicit), None
    env = os.environ.get("RNN_CHECKPOINT")
    if env:
        if not Path(env).exists():
            raise CheckpointError(
                f"checkpoint not found: {env} (from $RNN_CHECKPOINT); fix or unset it, or give --checkpoint DIR",
                exit_code=2,
            )
        return Path(env), "$RNN_CHECKPOINT"
    pointer = Path.cwd() / LAST_RUN_POINTER
    if pointer.exists():
        try:
            recorded = pointer.read_text(encoding="utf-8").strip()
        except (OSError, UnicodeDecodeError):
            recorded = ""
        if recorded and not Path(recorded).exists():
            raise CheckpointError(
                f"the last run recorded in {LAST_RUN_POINTER}, {recorded}, no longer exists; give --checkpoint DIR, "
                "or train again here",
                exit_code=2,
            )
        if recorded:
            return Path(recorded), str(LAST_RUN_POINTER)
    raise CheckpointError(
        "no model to use: run `rnn train CONFIG` in this folder first, or give --checkpoint DIR "
        "(or set RNN_CHECKPOINT)",
        exit_code=2,
    )


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _meta_digest(meta: dict) -> str:
    """SHA-256 of checkpoint.json's content without its own checksum: keys sorted, no spaces, so that
    re-indenting the file keeps it valid and any change of a value does not."""
    body = {k: v for k, v in meta.items() if k != META_DIGEST}
    text = json.dumps(body, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


def load_checkpoint(path: Path, which: str = "best", with_trainer: bool = False, suggest: bool = True) -> Checkpoint:
    """Read and verify a checkpoint; every problem is a CheckpointError naming the file.

    When ``path`` is a run folder whose chosen checkpoint is damaged, the error says which other
    checkpoint of the run is intact and how to use it (``suggest``).
    """
    path = Path(path)
    ckpt = find_checkpoint(path, which)
    try:
        return _load_verified(ckpt, with_trainer)
    except CheckpointError as e:
        other = intact_alternative(path, ckpt.name, with_trainer) if suggest and ckpt != path else None
        if other is None:
            raise
        raise CheckpointError(
            f"{e}; {other} of this run is intact: use --checkpoint {path / other}", e.exit_code
        ) from None


def intact_alternative(run_dir: Path, broken: str, with_trainer: bool = False) -> str | None:
    """Another checkpoint of the run (the best, the last, then the recent ones) that loads and verifies."""
    try:
        index = read_index(run_dir)
    except CheckpointError:
        return None
    names = [index.get("best"), index.get("last"), *reversed(index.get("recent") or [])]
    for name in dict.fromkeys(n for n in names if isinstance(n, str) and n != broken):
        try:
            _load_verified(run_dir / name, with_trainer)
        except CheckpointError:
            continue
        return name
    return None


def _load_verified(ckpt: Path, with_trainer: bool) -> Checkpoint:
    meta_path = ckpt / META
    try:
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
    except (OSError, ValueError, UnicodeDecodeError):
        raise CheckpointError(f"{meta_path}: damaged (not readable JSON)") from None
    if not isinstance(meta, dict) or not isinstance(meta.get("files"), dict):
        raise CheckpointError(f"{meta_path}: damaged (missing the file list)")
    version = meta.get("format_version")
    if version != FORMAT_VERSION:
        raise CheckpointError(
            f"{meta_path}: checkpoint format {version!r} is not supported by rnn {__version__} "
            f"(it reads format {FORMAT_VERSION})"
        )
    digest = meta.get(META_DIGEST)  # absent in checkpoints written before rnn kept it
    if digest is not None and digest != _meta_digest(meta):
        raise CheckpointError(
            f"{meta_path}: checksum mismatch; the file was edited or damaged after it was written "
            "(its settings, such as the tokenizer's, must match the weights)"
        )
    wanted = [MODEL_FILE, VOCAB_FILE] + ([TRAINER_FILE] if with_trainer else [])
    if PIECES_FILE in meta["files"]:
        wanted.append(PIECES_FILE)
    for name in wanted:
        f = ckpt / name
        if not f.exists():
            raise CheckpointError(f"{f}: missing; the checkpoint is incomplete")
        if _sha256(f) != meta["files"].get(name):
            raise CheckpointError(f"{f}: checksum mismatch; the file was truncated or changed after it was written")
    try:
        vocab = json.loads((ckpt / VOCAB_FILE).read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError):
        raise CheckpointError(f"{ckpt / VOCAB_FILE}: damaged (not readable JSON)") from None
    size = (meta.get("model") or {}).get("vocab_size")
    words = vocab.get("itos") if isinstance(vocab, dict) else None
    if not isinstance(words, list) or (size is not None and len(words) != size):
        got = len(words) if isinstance(words, list) else "no"
        raise CheckpointError(f"{ckpt / VOCAB_FILE}: {got} words, but {META} says the vocabulary has {size}")
    weights = _read_tensors(ckpt / MODEL_FILE)
    trainer = _read_tensors(ckpt / TRAINER_FILE) if with_trainer else {}
    pieces = (ckpt / PIECES_FILE).read_bytes() if PIECES_FILE in wanted else None
    return Checkpoint(ckpt, weights, meta, vocab, trainer, pieces)


def _read_tensors(path: Path) -> dict[str, np.ndarray]:
    from safetensors.numpy import load

    try:
        return load(path.read_bytes())
    except Exception as e:  # safetensors raises its own error types for bad headers
        raise CheckpointError(f"{path}: damaged weights file ({e})") from None


def _rmtree(path, ignore_errors: bool = False) -> None:
    import shutil  # with bz2 and lzma: 4 ms that loading a model never needs

    shutil.rmtree(path, ignore_errors=ignore_errors)
