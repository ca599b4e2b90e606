"""The training loop: windows of BPTT, validation each epoch, checkpoints, resume.

Progress is reported through a ``Reporter`` (the CLI draws a progress bar with
it); this module prints nothing itself.  A run is deterministic for a given
seed: the data order is fixed and every random draw (initialisation, dropout)
comes from one generator whose state travels in the checkpoint, so a resumed
run continues exactly where the interrupted one stopped.
"""

from __future__ import annotations

import math
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
    """Train as the config says; returns the summary that `rnn train --format json` prints."""
    reporter = reporter or Reporter()
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
    reporter.corpus(
        {
            "train_tokens": int(len(corpus.train)),
            "valid_tokens": int(len(corpus.valid)),
            "vocab_size": len(vocab),
            "valid_split_from_train": corpus.valid_is_split,
        }
    )

    model = RNNModel(model_shape(cfg, len(vocab)))
    rng = np.random.default_rng(tc.seed)
    model.init_params(rng, cfg.model.init_range)
    opt = make_optimizer(tc.optimizer, tc.lr, tc.weight_decay)
    progress = Progress(lr=tc.lr)
    data = batchify(corpus.train, tc.batch_size)  # (rows, B)
    carried = None
    if ckpt is not None:
        progress, carried = _restore(ckpt, model, opt, rng, tc.batch_size)

    meta_base = {
        "config": config_to_dict(cfg),
        "tokenizer": tokenizer.to_dict(),
        "model": {"vocab_size": len(vocab), "num_params": model.num_params()},
    }

    def save(epoch: int, is_best: bool, state) -> Path:
        trainer = {f"optim.{k}": v for k, v in opt.state_arrays().items()}
        if state is not None:
            for k, layer in enumerate(state):
                for name, a in zip("hc", layer):
                    trainer[f"hidden.l{k}.{name}"] = a
        meta = dict(meta_base, progress=progress.__dict__.copy(), rng=rng.bit_generator.state, optimizer=opt.name)
        meta["progress"]["optimizer_steps"] = opt.steps
        name = f"ckpt-e{epoch:04d}-s{progress.step:08d}"
        path = save_checkpoint(run_dir, name, model.state_dict(), trainer, vocab.to_dict(), meta, is_best=is_best)
        remember_last_run(run_dir)
        return path

    n_windows = count_windows(len(data), tc.bptt)
    last_valid = None
    stop = bool(tc.max_tokens and progress.tokens >= tc.max_tokens)
    if progress.epoch > tc.epochs or stop:
        reporter.message(
            f"{run_dir} already trained {progress.tokens:,} tokens ({progress.epoch - 1} epochs); "
            "raise train.epochs or train.max_tokens to continue"
        )
    while progress.epoch <= tc.epochs and not stop:
        epoch = progress.epoch
        state = carried if carried is not None else model.initial_state(tc.batch_size)
        carried = None
        reporter.epoch_start(epoch, n_windows, progress.pos // tc.bptt)
        epoch_nll, epoch_tokens, epoch_start = 0.0, 0, time.perf_counter()
        dropout_rng = rng if cfg.model.dropout > 0 else None
        for i, x, y in windows(data, tc.bptt, start=progress.pos):
            t0 = time.perf_counter()
            loss, state, cache = model.forward(x, y, state, rng=dropout_rng)
            grads = model.backward(cache)
            norm = clip_grad_norm_(grads, tc.clip)
            if not (math.isfinite(loss) and math.isfinite(norm)):
                raise RnnError(
                    f"training diverged at step {progress.step + 1} (loss {loss:.4g}, gradient norm {norm:.4g}); "
                    "nothing was saved from this step: lower train.lr or set train.clip"
                )
            opt.step(model.params, grads)
            progress.train_seconds += time.perf_counter() - t0
            progress.step += 1
            progress.tokens += x.size
            progress.pos = i + len(x)
            epoch_nll += loss * x.size
            epoch_tokens += x.size
            reporter.window(x.size, loss, progress.tokens / max(progress.train_seconds, 1e-9))
            if tc.max_tokens and progress.tokens >= tc.max_tokens:
                stop = True
                break
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
        lr_used = progress.lr
        if valid is not None and not is_best and epoch_done and tc.lr_decay > 1:
            progress.lr /= tc.lr_decay  # plateau: anneal
            opt.lr = progress.lr
        if epoch_done:
            progress.epoch += 1
            progress.pos = 0
            state = None
        path = save(epoch, is_best or valid is None, state)
        train_loss = epoch_nll / max(epoch_tokens, 1)
        record = {
            "epoch": epoch,
            "step": progress.step,
            "tokens": progress.tokens,
            "train_loss": train_loss,
            "train_ppl": _ppl(train_loss),
            "valid_loss": valid.loss if valid is not None else None,
            "valid_ppl": valid.perplexity if valid is not None else None,
            "lr": lr_used,
            "tokens_per_sec": epoch_tokens / max(epoch_seconds, 1e-9),
            "seconds": epoch_seconds,
            "complete": epoch_done,
            "checkpoint": str(path),
            "best": is_best,
        }
        append_metrics(run_dir, record)
        reporter.epoch_end(record)

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
