"""The training loop: windows of BPTT, validation each epoch, checkpoints, resume.

Progress is reported through a ``Reporter`` (the CLI draws a progress bar with
it); this module prints nothing itself.  A run is deterministic for a given
seed: the data order is fixed and every random draw (initialisation, dropout)
comes from one generator whose state travels in the checkpoint, so a resumed
run continues exactly where the interrupted one stopped.
"""

from __future__ import annotations

import copy
import dataclasses
import math
import os
import signal
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .checkpoint import (
    append_metrics,
    load_checkpoint,
    read_index,
    remember_last_run,
    save_checkpoint,
    truncate_metrics,
    unique_name,
)
from .config import Config, config_to_dict
from .data import batchify, build_corpus, count_windows, windows
from .errors import CheckpointError, ConfigError, RnnError
from .infer import evaluate, load_weights
from .model import ModelShape, RNNModel
from .optim import clip_grad_norm_, make_optimizer
from .tokenizer import Tokenizer, Vocab


class Reporter:
    """Receives progress events; the default one ignores them."""

    def corpus(self, info: dict) -> None: ...

    def epoch_start(self, epoch: int, total_windows: int, done_windows: int) -> None: ...

    def window(self, tokens: int, loss: float, tokens_per_sec: float) -> None: ...

    def epoch_end(self, record: dict) -> None: ...

    def message(self, text: str) -> None: ...


@dataclass
class Progress:
    """Where a run stands; saved in every checkpoint."""

    epoch: int = 1  # the epoch in progress (or next to start)
    pos: int = 0  # first row of the next window within this epoch
    step: int = 0  # optimizer steps so far
    tokens: int = 0  # training tokens consumed so far
    lr: float = 0.0
    best_valid_loss: float = math.inf
    train_seconds: float = 0.0  # time spent in training windows, all sessions together
    epoch_nll: float = 0.0  # summed training loss of this epoch so far (so a resumed epoch reports it whole)
    epoch_tokens: int = 0  # training tokens of this epoch so far
    divergences: int = 0  # roll-backs after a non-finite loss or gradient, all sessions together
    metrics_lines: int = 0  # records in metrics.jsonl that this state accounts for


class TrainingInterrupted(RnnError):
    """SIGINT or SIGTERM stopped training; exit 130 or 143 as a shell reports a signal death."""

    label = "interrupted"

    def __init__(self, message: str, signum: int, checkpoint: Path | None = None):
        super().__init__(message, 128 + signum)
        self.checkpoint = checkpoint


class _Signals:
    """SIGINT/SIGTERM while training: the first one asks the loop to save and stop after the
    current window; before the loop (reading the corpus) or a second time, it stops at once.

    Installed only in the main thread (Python allows signal handlers nowhere else).
    """

    def __init__(self):
        self.received: int | None = None
        self.deferred = False
        self.old: dict[int, object] = {}

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                self.old[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(self, *exc):
        for sig, handler in self.old.items():
            signal.signal(sig, handler)
        return False

    def _handle(self, signum, frame):
        if self.deferred and self.received is None:
            self.received = signum
            return
        self.received = signum
        raise TrainingInterrupted(
            f"{signal.Signals(signum).name} received: stopped without saving (the last checkpoint, if any, is intact)",
            signum,
        )


def _memory_mb() -> tuple[float | None, float]:
    """(current, peak) resident memory of this process in MB.

    Linux's /proc/self/status gives both for this program alone; getrusage's peak (the fallback
    elsewhere) also counts what a parent process held before it started us.
    """
    try:
        with open("/proc/self/status") as f:
            fields = dict(line.split(":", 1) for line in f if ":" in line)
        return int(fields["VmRSS"].split()[0]) / 1024, int(fields["VmHWM"].split()[0]) / 1024
    except (OSError, KeyError, ValueError, IndexError):
        import resource

        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        return None, peak / 2**20 if sys.platform == "darwin" else peak / 2**10  # bytes on macOS, KiB on Linux


@dataclass
class _Snapshot:
    """The last good state in memory, for rolling back after a divergence."""

    params: dict
    optim: dict
    optim_steps: int
    rng: dict
    progress: Progress
    state: list | None


def _snapshot(model: RNNModel, opt, rng, progress: Progress, state) -> _Snapshot:
    return _Snapshot(
        {k: v.copy() for k, v in model.params.items()},
        {k: v.copy() for k, v in opt.state_arrays().items()},
        opt.steps,
        copy.deepcopy(rng.bit_generator.state),
        dataclasses.replace(progress),
        None if state is None else [tuple(a.copy() for a in layer) for layer in state],
    )


def _roll_back(snap: _Snapshot, model: RNNModel, opt, rng) -> tuple[Progress, list | None]:
    for k, v in snap.params.items():
        model.params[k][...] = v
    opt.load_state_arrays(snap.optim)
    opt.steps = snap.optim_steps
    rng.bit_generator.state = copy.deepcopy(snap.rng)
    state = None if snap.state is None else [tuple(a.copy() for a in layer) for layer in snap.state]
    return dataclasses.replace(snap.progress), state


def model_shape(cfg: Config, vocab_size: int) -> ModelShape:
    m = cfg.model
    return ModelShape(
        vocab_size=vocab_size,
        cell=m.cell,
        embedding_size=m.embedding_size,
        hidden_size=m.hidden_size,
        layers=m.layers,
        dropout=m.dropout,
        tie_weights=m.tie_weights,
        softmax=m.softmax,
        cutoffs=tuple(m.cutoffs),
        div_value=m.div_value,
    )


def tokenizer_from_config(cfg: Config) -> Tokenizer:
    t = cfg.tokenizer
    return Tokenizer(mode=t.mode, lowercase=t.lowercase, sentence_eos=t.sentence_eos, line_eos=t.line_eos)


def _check_resumable(cfg: Config, saved: dict, run_dir: Path) -> None:
    """Model and tokenizer must be those of the checkpoint; everything else may change on resume."""
    now = config_to_dict(cfg)
    for section in ("model", "tokenizer"):
        for key, value in now[section].items():
            old = saved.get(section, {}).get(key)
            if section == "model" and key == "dropout":
                continue  # dropout does not change the parameters
            if old != value:
                raise ConfigError(
                    f"cannot resume {run_dir}: {section}.{key} is {value!r} in the config but {old!r} in the "
                    "checkpoint; use the same value, or another checkpoint.dir for a new run"
                )


def run_training(
    cfg: Config, *, resume: bool = False, overwrite: bool = False, reporter: Reporter | None = None
) -> dict:
    """Train as the config says; returns the summary that `rnn train --format json` prints.

    SIGINT/SIGTERM during training save a checkpoint and raise TrainingInterrupted.
    """
    with _Signals() as signals:
        return _run(cfg, resume, overwrite, reporter or Reporter(), signals)


def _check_writable(run_dir: Path) -> None:
    """Fail before hours of training, not after, when checkpoint.dir cannot be written."""
    probe = run_dir / f".probe-{os.getpid()}"
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as e:
        raise CheckpointError(f"checkpoint.dir: cannot write in {run_dir} ({e.strerror or e})") from None


def _run(cfg: Config, resume: bool, overwrite: bool, reporter: Reporter, signals: _Signals) -> dict:
    wall_start = time.perf_counter()
    run_dir = Path(cfg.checkpoint.dir)
    index = read_index(run_dir) if run_dir.exists() else {}
    ckpt = None
    if resume:
        if not index.get("last"):
            raise CheckpointError(f"nothing to resume in {run_dir}: no checkpoint there yet; run without --resume", 2)
        ckpt = load_checkpoint(run_dir, which="last", with_trainer=True)
        _check_resumable(cfg, ckpt.meta.get("config", {}), run_dir)
    elif index.get("last") and not overwrite:
        raise CheckpointError(
            f"{run_dir} already holds a training run; continue it with --resume, start over with --overwrite, "
            "or set checkpoint.dir to another folder",
            2,
        )

    _check_writable(run_dir)
    tokenizer = tokenizer_from_config(cfg)
    vocab = None
    if ckpt is not None:
        try:
            vocab = Vocab.from_dict(ckpt.vocab)
        except ValueError as e:
            raise CheckpointError(f"{ckpt.path}/vocab.json: {e}") from None
    corpus = build_corpus(cfg.data, tokenizer, cfg.tokenizer.min_count, cfg.tokenizer.max_vocab, vocab)
    vocab = corpus.vocab
    tc = cfg.train
    if len(corpus.train) < 2 * tc.batch_size:
        raise ConfigError(
            f"train.batch_size: {tc.batch_size} streams need at least {2 * tc.batch_size} training tokens, "
            f"the corpus has {len(corpus.train)}; lower train.batch_size or give more text"
        )
    rows = len(corpus.train) // tc.batch_size
    if rows < tc.bptt + 1:
        raise ConfigError(
            f"train.bptt: windows of {tc.bptt} steps need {tc.bptt + 1} tokens in each of the {tc.batch_size} "
            f"streams, the corpus gives {rows}; lower train.bptt or train.batch_size, or give more text"
        )
    reporter.corpus(
        {
            "train_tokens": int(len(corpus.train)),
            "valid_tokens": int(len(corpus.valid)),
            "vocab_size": len(vocab),
            "valid_split_from_train": corpus.valid_is_split,
        }
    )

    try:
        model = RNNModel(model_shape(cfg, len(vocab)))
    except ValueError as e:  # e.g. adaptive cutoffs that do not fit this vocabulary
        raise ConfigError(f"{e}; the vocabulary has {len(vocab)} words") from None
    rng = np.random.default_rng(tc.seed)
    model.init_params(rng, cfg.model.init_range)
    opt = make_optimizer(tc.optimizer, tc.lr, tc.weight_decay)
    progress = Progress(lr=tc.lr)
    data = batchify(corpus.train, tc.batch_size)  # (rows, B)
    carried = None
    if ckpt is not None:
        progress, carried = _restore(ckpt, model, opt, rng, tc.batch_size)
        if "metrics_lines" in ckpt.meta.get("progress", {}):
            truncate_metrics(run_dir, progress.metrics_lines)
        else:  # a checkpoint from before the count was kept: trust the file
            metrics = run_dir / "metrics.jsonl"
            progress.metrics_lines = len(metrics.read_bytes().splitlines()) if metrics.exists() else 0

    meta_base = {
        "config": config_to_dict(cfg),
        "tokenizer": tokenizer.to_dict(),
        "model": {"vocab_size": len(vocab), "num_params": model.num_params()},
    }

    def save(epoch: int, is_best: bool, state, name: str | None = None) -> Path:
        trainer = {f"optim.{k}": v for k, v in opt.state_arrays().items()}
        if state is not None:
            for k, layer in enumerate(state):
                for h_or_c, a in zip("hc", layer):
                    trainer[f"hidden.l{k}.{h_or_c}"] = a
        meta = dict(meta_base, progress=progress.__dict__.copy(), rng=rng.bit_generator.state, optimizer=opt.name)
        meta["progress"]["optimizer_steps"] = opt.steps
        name = name or unique_name(run_dir, f"ckpt-e{epoch:04d}-s{progress.step:08d}")
        path = save_checkpoint(
            run_dir,
            name,
            model.state_dict(),
            trainer,
            vocab.to_dict(),
            meta,
            is_best=is_best,
            keep=cfg.checkpoint.keep,
            keep_best=cfg.checkpoint.keep_best,
        )
        remember_last_run(run_dir)
        return path

    ck = cfg.checkpoint
    n_windows = count_windows(len(data), tc.bptt)
    planned = tc.epochs * (len(data) - 1) * tc.batch_size
    schedule = lr_schedule(tc.lr_schedule, min(planned, tc.max_tokens) if tc.max_tokens else planned)
    last_valid = None
    last_path: Path | None = None
    stop = bool(tc.max_tokens and progress.tokens >= tc.max_tokens)
    if progress.epoch > tc.epochs or stop:
        reporter.message(
            f"{run_dir} already trained {progress.tokens:,} tokens ({progress.epoch - 1} epochs); "
            "raise train.epochs or train.max_tokens to continue"
        )
    if ckpt is None and overwrite:
        # a new run, now that its input is known to be good: the old run's index and records go
        # (its checkpoint folders are pruned by the first save)
        (run_dir / "index.json").unlink(missing_ok=True)
        truncate_metrics(run_dir, 0)
    signals.deferred = True  # from here a signal saves a checkpoint before stopping
    good = _snapshot(model, opt, rng, progress, carried)  # the last good state, for a roll-back
    last_save = time.monotonic()
    while progress.epoch <= tc.epochs and not stop:
        epoch = progress.epoch
        state = carried if carried is not None else model.initial_state(tc.batch_size)
        carried = None
        reporter.epoch_start(epoch, n_windows, progress.pos // tc.bptt)
        epoch_start = time.perf_counter()
        session_tokens = 0
        dropout_rng = rng if cfg.model.dropout > 0 else None
        diverged = None
        for i, x, y in windows(data, tc.bptt, start=progress.pos):
            t0 = time.perf_counter()
            loss, state, cache = model.forward(x, y, state, rng=dropout_rng)
            grads = model.backward(cache)
            if tc.loss_average == "streams":
                # Zaremba et al. sum the loss over the window's steps (mean over streams only):
                # the same gradient, len(x) times larger, so that their lr and clip apply as published
                for g in grads.values():
                    g *= len(x)
            norm = clip_grad_norm_(grads, tc.clip)
            if not (math.isfinite(loss) and math.isfinite(norm)):
                diverged = (loss, norm)
                break
            opt.lr = progress.lr * schedule(progress.tokens)
            opt.step(model.params, grads)
            progress.train_seconds += time.perf_counter() - t0
            progress.step += 1
            progress.tokens += x.size
            progress.pos = i + len(x)
            progress.epoch_nll += loss * x.size
            progress.epoch_tokens += x.size
            session_tokens += x.size
            reporter.window(x.size, loss, progress.tokens / max(progress.train_seconds, 1e-9))
            if tc.max_tokens and progress.tokens >= tc.max_tokens:
                stop = True
                break
            if signals.received:
                break
            at_epoch_end = progress.pos >= len(data) - 1  # the epoch-end save follows at once
            due = (ck.every_steps and progress.step % ck.every_steps == 0) or (
                ck.every_minutes and time.monotonic() - last_save >= 60 * ck.every_minutes
            )
            if due and not at_epoch_end:
                last_path = save(epoch, False, state)
                good = _snapshot(model, opt, rng, progress, state)
                last_save = time.monotonic()

        if diverged is not None:
            loss, norm = diverged
            where = f"step {progress.step + 1} (loss {loss:.4g}, gradient norm {norm:.4g})"
            if progress.divergences >= tc.divergence_retries:
                kept = f"the last good checkpoint is {last_path}" if last_path else "no checkpoint was written"
                raise RnnError(
                    f"training diverged at {where} after {progress.divergences} roll-backs "
                    f"(train.divergence_retries); {kept}; lower train.lr or set train.clip"
                )
            divergences = progress.divergences + 1
            progress, carried = _roll_back(good, model, opt, rng)
            progress.divergences = divergences
            progress.lr *= tc.divergence_lr_scale
            opt.lr = progress.lr
            reporter.message(
                f"non-finite loss or gradient at {where}: rolled back to step {progress.step}, "
                f"lr lowered to {progress.lr:g} (roll-back {divergences} of {tc.divergence_retries})"
            )
            continue

        if signals.received and not stop and progress.pos < len(data) - 1:
            path = save(epoch, False, state)
            name = signal.Signals(signals.received).name
            raise TrainingInterrupted(
                f"{name} received: saved {path} (epoch {epoch}, step {progress.step}, {progress.tokens:,} tokens)",
                signals.received,
                path,
            )

        epoch_seconds = time.perf_counter() - epoch_start
        epoch_done = progress.pos >= len(data) - 1
        valid = None
        if len(corpus.valid) >= 2:
            valid = evaluate(model, corpus.valid, streams=tc.eval_batch_size, start_id=vocab.eos_id, rank=False)
            last_valid = valid
        valid_loss = valid.loss if valid is not None else math.inf
        is_best = valid is not None and valid_loss < progress.best_valid_loss
        if is_best:
            progress.best_valid_loss = valid_loss
        lr_used = opt.lr  # the last step's (annealed) rate
        if valid is not None and not is_best and epoch_done and tc.lr_decay > 1:
            progress.lr /= tc.lr_decay  # plateau: anneal
            opt.lr = progress.lr
        train_loss = progress.epoch_nll / max(progress.epoch_tokens, 1)
        rss, peak = _memory_mb()
        name = unique_name(run_dir, f"ckpt-e{epoch:04d}-s{progress.step:08d}")
        record = {
            "epoch": epoch,
            "step": progress.step,
            "tokens": progress.tokens,
            "train_loss": train_loss,
            "train_ppl": _ppl(train_loss),
            "valid_loss": valid.loss if valid is not None else None,
            "valid_ppl": valid.perplexity if valid is not None else None,
            "lr": lr_used,
            "tokens_per_sec": session_tokens / max(epoch_seconds, 1e-9),
            "seconds": epoch_seconds,
            "complete": epoch_done,
            "checkpoint": str(run_dir / name),
            "best": is_best,
            "rss_mb": round(rss, 1) if rss is not None else None,
            "peak_rss_mb": round(peak, 1),
        }
        if epoch_done:
            progress.epoch += 1
            progress.pos = 0
            progress.epoch_nll, progress.epoch_tokens = 0.0, 0
            state = None
        # the record goes first: a crash between the two leaves a record that the checkpoint does
        # not count, which a resume removes (truncate_metrics) and writes again
        append_metrics(run_dir, record)
        progress.metrics_lines += 1
        last_path = save(epoch, is_best or valid is None, state, name)
        good = _snapshot(model, opt, rng, progress, state)
        last_save = time.monotonic()
        reporter.epoch_end(record)
        if signals.received and progress.epoch <= tc.epochs and not stop:
            raise TrainingInterrupted(
                f"{signal.Signals(signals.received).name} received: saved {last_path} at the end of epoch {epoch}",
                signals.received,
                last_path,
            )

    index = read_index(run_dir)
    best_loss = progress.best_valid_loss
    return {
        "checkpoint": str((run_dir / index["best"]) if index.get("best") else run_dir),
        "run_dir": str(run_dir),
        "epochs": progress.epoch - 1 if progress.pos == 0 else progress.epoch,
        "steps": progress.step,
        "tokens": progress.tokens,
        "train_seconds": time.perf_counter() - wall_start,
        "tokens_per_sec": progress.tokens / max(progress.train_seconds, 1e-9),
        "valid_loss": last_valid.loss if last_valid is not None else None,
        "valid_ppl": last_valid.perplexity if last_valid is not None else None,
        "best_valid_loss": best_loss if math.isfinite(best_loss) else None,
        "best_valid_ppl": _ppl(best_loss) if math.isfinite(best_loss) else None,
        "lr": progress.lr,
        "vocab_size": len(vocab),
        "params": model.num_params(),
    }


def lr_schedule(kind: str, planned_tokens: int):
    """The factor on the learning rate before a step, from the tokens trained so far.

    It depends on nothing but the token count, so a resumed run anneals exactly as an
    uninterrupted one; the factor reaches 0 at the last planned token (never on a step taken).
    """
    if kind == "constant":
        return lambda tokens: 1.0
    total = max(planned_tokens, 1)
    if kind == "linear":
        return lambda tokens: max(0.0, 1.0 - tokens / total)
    if kind == "cosine":
        return lambda tokens: 0.5 * (1.0 + math.cos(math.pi * min(tokens / total, 1.0)))
    raise ValueError(f"unknown lr schedule {kind!r}")


def _ppl(loss: float) -> float:
    return math.exp(loss) if loss < 700 else math.inf


def _restore(ckpt, model: RNNModel, opt, rng: np.random.Generator, batch_size: int):
    """Load weights, optimizer, RNG and progress from a checkpoint into a fresh run."""
    load_weights(model, ckpt)
    opt.load_state_arrays({k[6:]: v for k, v in ckpt.trainer.items() if k.startswith("optim.")})
    saved = dict(ckpt.meta.get("progress", {}))
    opt.steps = int(saved.pop("optimizer_steps", 0))
    progress = Progress(**{k: v for k, v in saved.items() if k in Progress.__dataclass_fields__})
    progress.best_valid_loss = float(progress.best_valid_loss)
    opt.lr = progress.lr
    try:
        rng.bit_generator.state = ckpt.meta["rng"]
    except (KeyError, TypeError, ValueError):
        raise CheckpointError(f"{ckpt.path}/checkpoint.json: damaged RNG state") from None
    carried = None
    if progress.pos > 0:
        carried = []
        for k in range(model.shape.layers):
            layer = tuple(ckpt.trainer.get(f"hidden.l{k}.{n}") for n in "hc"[: model.kind.state_size])
            if any(a is None or a.shape != (batch_size, model.shape.hidden_size) for a in layer):
                raise ConfigError(
                    f"cannot resume {ckpt.path} in the middle of an epoch with another train.batch_size; "
                    "use the batch size it was trained with"
                )
            carried.append(layer)
    return progress, carried
