"""The training loop: windows of BPTT, validation each epoch, checkpoints, resume.

Three parts, so that one process and K data-parallel workers run the same code:

- a ``Trainer`` owns the model, optimizer, random generator, progress and the
  carried hidden state of its streams, and takes one optimizer ``step``;
- a ``RunStore`` (``runstore``) reads and writes the run folder, on rank 0 only;
- a communicator (``comm``) reduces gradients and decisions among the workers;
  for one process every reduction is the identity.

``run_training`` ties them together.  Progress is reported through a
``Reporter`` (the CLI draws a progress bar with it); this module prints nothing
itself.  A run is deterministic for a given seed: the data order is fixed and
every random draw (initialisation, dropout for the whole global batch) comes
from one generator whose state travels in the checkpoint, so a resumed run
continues exactly where the interrupted one stopped, whatever the worker count.
"""

from __future__ import annotations

import base64
import contextlib
import copy
import dataclasses
import math
import signal
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .checkpoint import Checkpoint
from .comm import SingleProcess, limit_threads
from .config import Config, TrainConfig, config_to_dict, describe_keys
from .data import batchify, build_corpus, count_windows, windows
from .errors import CheckpointError, ConfigError, ResourceError, RnnError, TrainingInterrupted
from .infer import evaluate, load_weights
from .memory import available_memory
from .metrics import perplexity
from .model import ModelShape, RNNModel
from .optim import clip_grad_norm_, make_optimizer
from .pieces import begin_mask, load_pieces
from .runstore import RunStore
from .signals import StopRequest, handle_signals
from .tokenizer import Tokenizer, Vocab
from .twoway import TwoWayModel, reverse_stream

__all__ = ["Progress", "Reporter", "Trainer", "TrainingInterrupted", "lr_schedule", "model_shape", "run_training"]

CHECK_EVERY_STEPS = 100  # data-parallel workers compare weight checksums this often (and at every save)


class Reporter:
    """Receives progress events; the default one ignores them."""

    def reading(self, done: int, total: int) -> None: ...  # bytes of the corpus files read so far

    def corpus(self, info: dict) -> None: ...

    def epoch_start(self, epoch: int, total_windows: int, done_windows: int) -> None: ...

    def window(self, tokens: int, loss: float, tokens_per_sec: float) -> None: ...

    def epoch_end(self, record: dict) -> None: ...

    def message(self, text: str) -> None: ...

    # a checkpoint is written (rank 0, in the writer): the CLI points .rnn/last_run at the run
    def saved(self, run_dir: Path, checkpoint: Path) -> None: ...


@dataclass
class Progress:
    """Where a run stands; saved in every checkpoint."""

    epoch: int = 1  # the epoch in progress (or next to start)
    pos: int = 0  # first row of the next window within this epoch
    step: int = 0  # optimizer steps so far
    tokens: int = 0  # training tokens consumed so far (all workers together)
    lr: float = 0.0
    best_valid_loss: float = math.inf
    valid_loss: float | None = None  # the last validation's loss (None before the first one)
    train_seconds: float = 0.0  # time spent in training windows, all sessions together
    epoch_nll: float = 0.0  # summed training loss of this epoch so far (so a resumed epoch reports it whole)
    epoch_tokens: int = 0  # training tokens of this epoch so far
    epoch_seconds: float = 0.0  # wall time of this epoch so far, every session (a resumed epoch's row is whole)
    divergences: int = 0  # roll-backs after a non-finite loss or gradient, all sessions together
    metrics_lines: int = 0  # records in metrics.jsonl that this state accounts for


def model_shape(cfg: Config, vocab_size: int) -> ModelShape:
    return ModelShape.from_config(cfg, vocab_size)


def tokenizer_from_config(cfg: Config) -> Tokenizer:
    t = cfg.tokenizer
    return Tokenizer(mode=t.mode, lowercase=t.lowercase, sentence_eos=t.sentence_eos, line_eos=t.line_eos)


def training_memory(model: RNNModel, tc, streams: int) -> int:
    """A lower bound, in bytes, of what training this model takes: the weights, their gradients, the
    optimizer's moments and the roll-back copy of both, and one window's logits (full softmax)."""
    params = model.num_params()
    moments = 2 if tc.optimizer == "adam" else 0
    arrays = 3 + 2 * moments  # weights, gradients, snapshot; moments and their snapshot
    logits = tc.bptt * streams * model.shape.vocab_size if model.shape.softmax == "full" else 0
    return 4 * (arrays * params + logits)  # float32


def check_memory(model: RNNModel, tc, streams: int) -> None:
    """Refuse a model that cannot fit, before allocating it: touching more memory than the machine
    has gets the process killed by the kernel, with no message and no checkpoint."""
    need, have = training_memory(model, tc, streams), available_memory()
    if have is not None and need > have:
        gib = 1 << 30
        raise ResourceError(
            f"the model does not fit in memory: training it needs at least {need / gib:.1f} GiB "
            f"({model.num_params():,} parameters, with gradients and optimizer state), and "
            f"{have / gib:.1f} GiB is available; lower model.hidden_size, model.embedding_size, "
            "model.layers or tokenizer.max_vocab"
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


# ------------------------------------------------------------------------------------ the trainer
@dataclass
class StepResult:
    loss: float  # mean loss of the window over the global batch
    norm: float  # global gradient norm before clipping
    diverged: bool  # non-finite loss or gradient: nothing was updated
    clock: float  # rank 0's seconds since the last save (agreed by all)


@dataclass
class _Snapshot:
    """The last good state in memory, for rolling back after a divergence."""

    params: dict
    optim: dict
    optim_steps: int
    rng: dict
    progress: Progress
    state: list | None


class Trainer:
    """One worker's model, optimizer, generator, progress and carried hidden state.

    ``train_cfg.batch_size`` is the global number of streams; this worker trains
    streams ``lo..hi-1`` of them (all of them in a single process).
    """

    def __init__(self, model: RNNModel, train_cfg: TrainConfig, rng: np.random.Generator, comm=None, schedule=None):
        self.model, self.tc, self.rng = model, train_cfg, rng
        self.comm = comm or SingleProcess()
        self.opt = make_optimizer(train_cfg.optimizer, train_cfg.lr, train_cfg.weight_decay)
        self.progress = Progress(lr=train_cfg.lr)
        self.batch = train_cfg.batch_size
        self.lo, self.hi = self.comm.share(self.batch)
        self.state: list | None = None  # this worker's (b, H) hidden state carried between windows; None = zeros
        self.schedule = schedule or (lambda tokens: 1.0)
        self.workspace: dict = {}  # the output layer's (N, V) array, reused by every window's forward

    def step(self, x: np.ndarray, y: np.ndarray, clock: float = 0.0) -> StepResult:
        """Forward, backward through time, reduce across workers, clip, update: one window (T, b).

        ``clock`` is rank 0's seconds since the last save (0 on the others); the result carries
        the value every worker agrees on, for time-based saves.
        """
        t0 = time.perf_counter()
        model, p, T = self.model, self.progress, len(x)
        masks = model.dropout_masks(self.rng, T, self.batch)  # the whole batch's, from the shared generator
        if masks is not None:
            masks = [m[:, self.lo : self.hi] for m in masks]  # all columns (a view) for one process
        state = self.state if self.state is not None else model.initial_state(self.hi - self.lo)
        loss, self.state, cache = model.forward(x, y, state, masks=masks, workspace=self.workspace)
        reduction = self.comm.begin_gradients()
        grads = reduction.finish(model.backward(cache, on_ready=reduction.add))
        loss, clock = self.comm.sum_scalars([loss / self.comm.size, clock])
        if self.tc.loss_average == "streams":
            # Zaremba et al. sum the loss over the window's steps (mean over streams only):
            # the same gradient, T times larger, so that their lr and clip apply as published
            for g in grads.values():
                g *= T
        norm = clip_grad_norm_(grads, self.tc.clip, reduction.scale)  # the mean over workers, then clipped
        if not (math.isfinite(loss) and math.isfinite(norm)):
            return StepResult(loss, norm, True, clock)
        self.opt.lr = p.lr * self.schedule(p.tokens)
        self.opt.step(model.params, grads)
        tokens = T * self.batch
        p.train_seconds += time.perf_counter() - t0
        p.step += 1
        p.tokens += tokens
        p.epoch_nll += loss * tokens
        p.epoch_tokens += tokens
        if p.step % CHECK_EVERY_STEPS == 0:
            self.comm.check_same(model.params, f"after step {p.step}")
        return StepResult(loss, norm, False, clock)

    def agree_signal(self, stop_signal: int) -> int:
        """The signal any worker received (SIGINT before SIGTERM), the same on every worker; 0 if none."""
        return _agreed(*self.comm.sum_scalars(list(_votes(stop_signal))))

    def validate(self, ids: np.ndarray, streams: int, start_id: int, begins: np.ndarray | None = None):
        """Validation loss over ids, the streams shared among the workers and the sums reduced.

        A two-way pair scores ids (n, 2) with each network on its own column; its loss is the mean
        of the two directions' (the sums of both, over twice the tokens).  With ``begins`` (word
        pieces) the loss is per word, as `rnn eval` reports it."""
        S = max(1, min(streams, len(ids)))  # as evaluate() clamps it: len(ids) targets after the start token
        part = self.comm.share(S)
        kw = dict(streams=S, start_id=start_id, rank=False, part=part, begins=begins)
        if isinstance(self.model, TwoWayModel):
            results = [evaluate(net, np.ascontiguousarray(ids[:, j]), **kw) for j, net in enumerate(self.model.parts())]
            result = results[0]
            result.nll, result.tokens = sum(r.nll for r in results), sum(r.tokens for r in results)
            result.words = sum(r.words for r in results)
        else:
            result = evaluate(self.model, ids, **kw)
        result.nll, tokens, words = self.comm.sum_scalars([result.nll, result.tokens, result.words])
        result.tokens, result.words = int(tokens), int(words)
        return result

    # -------------------------------------------------------------- state
    def snapshot(self) -> _Snapshot:
        return _Snapshot(
            {k: v.copy() for k, v in self.model.params.items()},
            {k: v.copy() for k, v in self.opt.state_arrays().items()},
            self.opt.steps,
            copy.deepcopy(self.rng.bit_generator.state),
            dataclasses.replace(self.progress),
            None if self.state is None else [tuple(a.copy() for a in layer) for layer in self.state],
        )

    def roll_back(self, snap: _Snapshot) -> None:
        for k, v in snap.params.items():
            self.model.params[k][...] = v
        self.opt.load_state_arrays(snap.optim)
        self.opt.steps = snap.optim_steps
        self.rng.bit_generator.state = copy.deepcopy(snap.rng)
        self.state = None if snap.state is None else [tuple(a.copy() for a in layer) for layer in snap.state]
        self.progress = dataclasses.replace(snap.progress)

    def checkpoint_arrays(self) -> dict | None:
        """Optimizer state and the whole batch's hidden state, on rank 0 (a collective; None elsewhere)."""
        arrays = {f"optim.{k}": v for k, v in self.opt.state_arrays().items()}
        if self.state is None:
            return arrays if self.comm.is_root else None
        flat = [a for layer in self.state for a in layer]
        full = self.comm.gather_rows(flat)
        if not self.comm.is_root:
            return None
        names = [f"hidden.l{k}.{h_or_c}" for k, layer in enumerate(self.state) for h_or_c in "hc"[: len(layer)]]
        arrays.update(zip(names, full))
        return arrays

    def checkpoint_meta(self) -> dict:
        meta = {"progress": self.progress.__dict__.copy(), "rng": self.rng.bit_generator.state}
        meta["optimizer"] = self.opt.name
        meta["progress"]["optimizer_steps"] = self.opt.steps
        return meta

    def share_from_root(self, carried_full: list | None) -> None:
        """Every worker takes rank 0's weights, optimizer, generator and progress, and its own
        streams' part of the carried hidden state (given whole, for the global batch, on rank 0)."""
        comm = self.comm
        if comm.size > 1:
            arrays = None
            if comm.is_root:
                arrays = {f"param.{k}": v for k, v in self.model.params.items()}
                arrays.update({f"optim.{k}": v for k, v in self.opt.state_arrays().items()})
                for k, layer in enumerate(carried_full or []):
                    arrays.update({f"hidden.{k}.{j}": a for j, a in enumerate(layer)})
            arrays = comm.broadcast_arrays(arrays)
            small = comm.broadcast((self.opt.steps, self.rng.bit_generator.state, self.progress.__dict__))
            for k in self.model.params:
                self.model.params[k][...] = arrays[f"param.{k}"]
            self.opt.load_state_arrays({k[6:]: v for k, v in arrays.items() if k.startswith("optim.")})
            self.opt.steps, self.rng.bit_generator.state = small[0], small[1]
            self.progress = Progress(**small[2])
            layers = sorted({int(k.split(".")[1]) for k in arrays if k.startswith("hidden.")})
            carried_full = [
                tuple(arrays[f"hidden.{k}.{j}"] for j in range(self.model.kind.state_size)) for k in layers
            ] or None
        self.opt.lr = self.progress.lr
        if carried_full is not None:
            self.state = [tuple(a[self.lo : self.hi].copy() for a in layer) for layer in carried_full]


def _votes(stop_signal: int) -> tuple[bool, bool]:
    return stop_signal == signal.SIGINT, stop_signal == signal.SIGTERM


def _agreed(sigint: float, sigterm: float) -> int:
    return signal.SIGINT if sigint else signal.SIGTERM if sigterm else 0


# ------------------------------------------------------------------------------- the run
@dataclass
class _Start:
    """What rank 0 prepares before training: the corpus and, for a resume, the checkpoint."""

    vocab: Vocab
    train: np.ndarray  # (N,) int32
    valid: np.ndarray
    ckpt: Checkpoint | None
    pieces: bytes | None = None  # the piece model (tokenizer.units: pieces), saved in every checkpoint


def run_training(
    cfg: Config,
    *,
    resume: bool = False,
    overwrite: bool = False,
    reporter: Reporter | None = None,
    stop: StopRequest | None = None,
    comm=None,
    resume_from: str = "last",
) -> dict:
    """Train as the config says; returns the summary that `rnn train --format json` prints.

    ``stop`` is polled after every window (the CLI's signal handlers set it); without one,
    SIGINT/SIGTERM handlers are installed for the run.  A stop saves a checkpoint and raises
    TrainingInterrupted.  ``comm`` is the communicator (one process when None).
    """
    comm = comm or SingleProcess()
    if not comm.is_root or reporter is None:
        reporter = Reporter()  # only rank 0 talks
    with contextlib.ExitStack() as scope:
        limits = limit_threads(cfg.train.threads, comm)
        if limits is not None:
            scope.callback(limits.restore_original_limits)
        if stop is None:
            stop = scope.enter_context(handle_signals())
        store = None
        if comm.is_root:  # rank 0 alone owns the run folder, and holds it for the whole run
            store = RunStore(Path(cfg.checkpoint.dir), cfg.checkpoint.keep, cfg.checkpoint.keep_best)
        comm.root_does(lambda: scope.enter_context(store.lock()))
        return _train(cfg, resume and resume_from, overwrite, reporter, stop, comm, store)


def _train(
    cfg: Config, resume: str | bool, overwrite: bool, reporter: Reporter, stop: StopRequest, comm, store
) -> dict:
    wall_start = time.perf_counter()
    tc = cfg.train
    if tc.batch_size % comm.size:
        raise ConfigError(
            f"train.batch_size: {tc.batch_size} streams cannot be shared equally by {comm.size} workers; "
            f"use a multiple of {comm.size}, or another worker count"
        )
    start = comm.root_does(lambda: _prepare(cfg, store, resume, overwrite, reporter))
    proto = base64.b64encode(start.pieces).decode("ascii") if comm.is_root and start.pieces is not None else None
    shared = (start.vocab.to_dict(), start.ckpt is not None, proto) if comm.is_root else None
    vocab_dict, resuming, proto = comm.broadcast(shared)  # rank 0 read the text and trained the pieces (JSON)
    pieces = None if proto is None else (start.pieces if comm.is_root else base64.b64decode(proto))
    vocab = start.vocab if comm.is_root else Vocab.from_dict(vocab_dict)
    arrays = comm.broadcast_arrays({"train": start.train, "valid": start.valid} if comm.is_root else None)
    lo, hi = comm.share(tc.batch_size)
    train, valid = arrays.pop("train"), arrays.pop("valid")
    begins = begin_mask(vocab.itos) if pieces is not None else None  # word pieces: per-word validation
    data, valid = _directed(cfg.model.direction, train, valid, tc.batch_size, (lo, hi), vocab.eos_id, begins)
    if comm.is_root:
        start.train = start.valid = None  # the worker's columns are all it keeps

    try:
        sizing = RNNModel(model_shape(cfg, len(vocab)), allocate=False)
        check_memory(sizing, tc, data.shape[1] * (2 if cfg.model.direction == "both" else 1))
        model = make_model(cfg, len(vocab))
    except ValueError as e:  # e.g. adaptive cutoffs that do not fit this vocabulary
        raise ConfigError(f"{e}; the vocabulary has {len(vocab)} words") from None
    rng = np.random.default_rng(tc.seed)
    model.init_params(rng, cfg.model.init_range)
    planned = tc.epochs * (len(data) - 1) * tc.batch_size
    schedule = lr_schedule(tc.lr_schedule, min(planned, tc.max_tokens) if tc.max_tokens else planned)
    trainer = Trainer(model, tc, rng, comm, schedule)
    carried = comm.root_does(lambda: _restore(start.ckpt, trainer, store) if resuming else None)
    trainer.share_from_root(carried)
    if comm.is_root and not resuming and overwrite:
        store.start_fresh()  # a new run, now that its input is known to be good

    run = _Run(cfg, trainer, store, vocab, data, valid, reporter, stop, pieces)
    tokens_before = trainer.progress.tokens
    run.loop()
    return run.summary(tokens_before, wall_start)


def make_model(cfg: Config, vocab_size: int):
    """The network(s) that ``model.direction`` asks for: one RNNModel, or a forward-backward pair."""
    shape = model_shape(cfg, vocab_size)
    if cfg.model.direction == "both":
        return TwoWayModel(RNNModel(shape), RNNModel(shape))
    return RNNModel(shape)


def _directed(direction: str, train: np.ndarray, valid: np.ndarray, streams: int, part, eos_id: int, begins=None):
    """Training columns (rows, b) and validation ids as the direction reads them: reversed for
    backward (word by word for word pieces: ``begins``); for both, the forward and the reversed
    layouts side by side, (rows, b, 2) and (n, 2)."""
    if direction == "forward":
        return batchify(train, streams, part), valid
    back_train, back_valid = reverse_stream(train, eos_id, begins), reverse_stream(valid, eos_id, begins)
    if direction == "backward":
        return batchify(back_train, streams, part), back_valid
    data = np.stack([batchify(train, streams, part), batchify(back_train, streams, part)], axis=-1)
    return data, np.stack([valid, back_valid], axis=-1)


def _prepare(cfg: Config, store: RunStore, resume: str | bool, overwrite: bool, reporter: Reporter) -> _Start:
    """Rank 0: the resume policy, the corpus, and the checks that need its size."""
    ckpt = None
    if resume:
        if not store.has_run():
            raise CheckpointError(f"nothing to resume in {store.dir}: no checkpoint there yet; run without --resume", 2)
        ckpt = store.load_for_resume(resume)  # "last", "best" or a checkpoint folder's name
        _check_resumable(cfg, ckpt.meta.get("config", {}), store.dir)
    elif store.has_run() and not overwrite:
        raise CheckpointError(
            f"{store.dir} already holds a training run; continue it with --resume, start over with --overwrite, "
            "or set checkpoint.dir to another folder",
            2,
        )
    store.check_writable()
    vocab = None
    if ckpt is not None:
        try:
            vocab = Vocab.from_dict(ckpt.vocab)
        except ValueError as e:
            raise CheckpointError(f"{ckpt.path}/vocab.json: {e}") from None
    words = cfg.tokenizer
    pieces = None
    if words.units == "pieces":  # resumed: the run's own pieces; new: as many as asked, learnt from train
        pieces = load_pieces(ckpt.pieces or b"", vocab, str(ckpt.path)) if ckpt is not None else words.pieces
    corpus = build_corpus(
        cfg.data,
        tokenizer_from_config(cfg),
        words.min_count,
        words.max_vocab,
        vocab,
        progress=reporter.reading,
        pieces=pieces,
    )
    _check_sizes(cfg, corpus, resumed=ckpt is not None)
    reporter.corpus(
        {
            "train_tokens": int(len(corpus.train)),
            "valid_tokens": int(len(corpus.valid)),
            "vocab_size": len(corpus.vocab),
            "valid_split_from_train": corpus.valid_is_split,
        }
    )
    proto = corpus.pieces.proto if corpus.pieces is not None else None
    return _Start(corpus.vocab, corpus.train, corpus.valid, ckpt, proto)


def _check_sizes(cfg: Config, corpus, resumed: bool) -> None:
    """The settings that the corpus's size rules out: a ConfigError naming the key."""
    if not resumed and len(corpus.vocab) <= 2:  # only <unk> and <eos>: every prediction would be <unk>
        raise ConfigError(
            f"tokenizer.min_count: no word of the training text is seen {cfg.tokenizer.min_count} times, so the "
            "vocabulary holds only <unk> and <eos>; lower tokenizer.min_count or give more text"
        )
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


@dataclass
class _EpochEnd:
    """What the end of an epoch did: the record it wrote (a checkpoint beside it), or, when the
    validation loss is not finite, nothing at all (``record`` None) and that loss, for a roll-back."""

    record: dict | None
    valid_loss: float | None  # None: no validation text

    @property
    def diverged(self) -> bool:
        return self.record is None


class _Run:
    """The epochs of one training session: windows, periodic saves, roll-backs, validation, records."""

    def __init__(self, cfg, trainer: Trainer, store, vocab, data, valid, reporter, stop, pieces=None):
        self.cfg, self.trainer, self.store, self.vocab = cfg, trainer, store, vocab
        self.pieces = pieces  # the piece model's bytes, saved beside the vocabulary
        self.begins = begin_mask(vocab.itos) if pieces is not None else None
        self.data, self.valid, self.reporter, self.stop = data, valid, reporter, stop
        self.comm = trainer.comm
        self.last_path: Path | None = None  # the last checkpoint written (rank 0)
        self.last_save = time.monotonic()  # when it was written, or the session started
        self.good = trainer.snapshot()  # the last good state, for a roll-back
        self.epoch_start = time.perf_counter()  # when this session began the epoch in progress
        self.epoch_before = trainer.progress.epoch_seconds  # the part of that epoch earlier sessions ran
        self.signum = 0  # the signal that stopped the last epoch (0: none)
        self.meta_base = {  # what every checkpoint of the run says besides its progress
            "config": config_to_dict(cfg),
            "tokenizer": tokenizer_from_config(cfg).to_dict(),
            "model": {"vocab_size": len(vocab), "num_params": trainer.model.num_params()},
        }

    def loop(self) -> None:
        tc, t = self.cfg.train, self.trainer
        p = t.progress
        done = bool(tc.max_tokens and p.tokens >= tc.max_tokens)
        if p.epoch > tc.epochs or done:
            self.reporter.message(
                f"{self.cfg.checkpoint.dir} already trained {p.tokens:,} tokens ({p.epoch - 1} epochs); "
                "raise train.epochs or train.max_tokens to continue"
            )
        self.stop.deferred = True  # from here a signal saves a checkpoint before stopping
        while t.progress.epoch <= tc.epochs and not done:
            outcome, result = self.epoch()
            if outcome == "diverged":
                self.roll_back(f"step {t.progress.step + 1} (loss {result.loss:.4g}, gradient norm {result.norm:.4g})")
                continue
            done = outcome == "max_tokens"
            if outcome == "signal" and t.progress.pos < len(self.data) - 1:
                self.stop_inside_epoch()
            end = self.end_epoch()
            # the weights give no finite prediction, diverged though each step looked finite
            if end.diverged:
                self.roll_back(f"the validation of epoch {t.progress.epoch} (validation loss {end.valid_loss:.4g})")
                done = False
                continue
            # a signal in the epoch's last window, or during validation and the save
            signum = self.agreed_signal()
            if signum and t.progress.epoch <= tc.epochs and not done:
                raise TrainingInterrupted(
                    f"{signal.Signals(signum).name} received: saved {self.last_path} "
                    f"at the end of epoch {t.progress.epoch - 1}",
                    signum,
                    self.last_path,
                )

    def stop_inside_epoch(self) -> None:
        """A signal inside an epoch: save where it stands and raise TrainingInterrupted."""
        path = self.save(self.trainer.progress.epoch, False, detached=True)
        p = self.trainer.progress
        raise TrainingInterrupted(
            f"{signal.Signals(self.signum).name} received: saved {path} "
            f"(epoch {p.epoch}, step {p.step}, {p.tokens:,} tokens)",
            self.signum,
            path,
        )

    def agreed_signal(self) -> int:
        """The signal any worker received (0: none); a worker that was not signalled itself hears
        of it here, so its stop request gives the same notice as the handler would have."""
        signum = self.trainer.agree_signal(self.stop.received or 0)
        if signum and self.stop.received is None:
            self.stop.received = signum
            if getattr(self.stop, "notice", None) is not None:
                self.stop.notice(signum)
        return signum

    def epoch(self) -> tuple[str, StepResult | None]:
        """Windows until the epoch ends ("end"), max_tokens ("max_tokens"), a signal or a divergence."""
        tc, ck, t, p = self.cfg.train, self.cfg.checkpoint, self.trainer, self.trainer.progress
        self.reporter.epoch_start(p.epoch, count_windows(len(self.data), tc.bptt), p.pos // tc.bptt)
        self.epoch_start = time.perf_counter()
        self.epoch_before = p.epoch_seconds  # the part of this epoch that earlier sessions ran
        result = None
        for i, x, y in windows(self.data, tc.bptt, start=p.pos):
            clock = time.monotonic() - self.last_save if self.comm.is_root else 0.0
            result = t.step(x, y, clock)
            if result.diverged:
                return "diverged", result
            p = t.progress
            p.pos = i + len(x)
            p.epoch_seconds = self.epoch_seconds()
            self.reporter.window(len(x) * t.batch, result.loss, p.tokens / max(p.train_seconds, 1e-9))
            if tc.max_tokens and p.tokens >= tc.max_tokens:
                return "max_tokens", result
            self.signum = self.agreed_signal()
            if self.signum:
                return "signal", result
            at_epoch_end = p.pos >= len(self.data) - 1  # the epoch-end save follows at once
            due = (ck.every_steps and p.step % ck.every_steps == 0) or (
                ck.every_minutes and result.clock >= 60 * ck.every_minutes
            )
            if due and not at_epoch_end:
                self.save(p.epoch, False)
                self.good = t.snapshot()
        return "end", result

    def epoch_seconds(self) -> float:
        """The wall time of the epoch in progress, every session of it."""
        return self.epoch_before + (time.perf_counter() - self.epoch_start)

    def roll_back(self, where: str) -> None:
        tc, t = self.cfg.train, self.trainer
        if t.progress.divergences >= tc.divergence_retries:
            kept = f"the last good checkpoint is {self.last_path}" if self.last_path else "no checkpoint was written"
            raise RnnError(
                f"training diverged at {where} after {t.progress.divergences} roll-backs "
                f"(train.divergence_retries); {kept}; lower train.lr" + ("" if tc.clip > 0 else " or set train.clip")
            )
        divergences = t.progress.divergences + 1
        lr = t.progress.lr  # already lowered by the roll-backs since the last good state, which restores its own
        t.roll_back(self.good)
        p = t.progress
        p.divergences = divergences
        p.lr = min(p.lr, lr) * tc.divergence_lr_scale
        t.opt.lr = p.lr
        self.reporter.message(
            f"non-finite loss, gradient or validation at {where}: rolled back to step {p.step}, "
            f"lr lowered to {p.lr:g} (roll-back {divergences} of {tc.divergence_retries})"
        )

    def end_epoch(self) -> _EpochEnd:
        """Validate, anneal on a plateau, write the epoch's record and checkpoint.

        A validation loss that is not finite writes nothing (a model that predicts NaN must never
        become a checkpoint): the caller rolls back.
        """
        t = self.trainer
        p = t.progress
        p.epoch_seconds = self.epoch_seconds()  # what the record says, so a resume of a partial epoch goes on from it
        epoch, epoch_done = p.epoch, p.pos >= len(self.data) - 1
        valid = self.validate()
        if valid is not None and not math.isfinite(valid.loss):
            return _EpochEnd(None, valid.loss)
        lr_used = t.opt.lr  # the last step's (annealed) rate
        is_best = self.judge(valid, epoch_done)
        name = self.store.name_for(epoch, p.step) if self.store else None
        record = self.record(valid, lr_used, is_best, epoch_done, name)
        if epoch_done:
            self.next_epoch()
        # the record goes first: a crash between the two leaves a record that the checkpoint does
        # not count, which a resume removes (truncate_metrics) and writes again
        self.comm.root_does(lambda: self.store.append_metrics(record))
        p.metrics_lines += 1
        self.save(epoch, is_best or valid is None, name)
        self.good = t.snapshot()
        self.reporter.epoch_end(record)
        return _EpochEnd(record, valid.loss if valid is not None else None)

    def validate(self):
        """The validation result of the weights now (None without validation text)."""
        if len(self.valid) < 2:
            return None
        return self.trainer.validate(self.valid, self.cfg.train.eval_batch_size, self.vocab.eos_id, self.begins)

    def judge(self, valid, epoch_done: bool) -> bool:
        """Note a finite validation loss in the progress; anneal lr on a plateau at the end of an
        epoch.  Returns whether it is the best so far."""
        tc, t, p = self.cfg.train, self.trainer, self.trainer.progress
        if valid is None:
            return False
        p.valid_loss = valid.loss
        is_best = valid.loss < p.best_valid_loss
        if is_best:
            p.best_valid_loss = valid.loss
        elif epoch_done and tc.lr_decay > 1:
            p.lr /= tc.lr_decay  # plateau: anneal
            t.opt.lr = p.lr
        return is_best

    def record(self, valid, lr_used: float, is_best: bool, epoch_done: bool, name: str | None) -> dict:
        """The epoch's line of metrics.jsonl (progress as it stands, before the next epoch begins)."""
        p = self.trainer.progress
        train_loss = p.epoch_nll / max(p.epoch_tokens, 1)
        rss, peak = _memory_mb()
        return {
            "epoch": p.epoch,
            "step": p.step,
            "tokens": p.tokens,
            "train_loss": train_loss,
            "train_ppl": perplexity(train_loss),
            "valid_loss": valid.loss if valid is not None else None,
            "valid_ppl": valid.perplexity if valid is not None else None,
            "lr": lr_used,
            "tokens_per_sec": p.epoch_tokens / max(p.epoch_seconds, 1e-9),  # the whole epoch, as seconds
            "seconds": p.epoch_seconds,
            "complete": epoch_done,
            "checkpoint": str(self.store.dir / name) if self.store else None,
            "best": is_best,
            "rss_mb": round(rss, 1) if rss is not None else None,
            "peak_rss_mb": round(peak, 1),
        }

    def next_epoch(self) -> None:
        """Progress at the start of the next epoch: its first window, nothing trained, zero state."""
        p = self.trainer.progress
        p.epoch += 1
        p.pos = 0
        p.epoch_nll, p.epoch_tokens, p.epoch_seconds = 0.0, 0, 0.0
        self.trainer.state = None

    def summary(self, tokens_before: int, wall_start: float) -> dict:
        """What `rnn train --format json` prints: the run as a whole (every session of it), so a
        finished, an extended and a fresh run read alike; train_seconds and tokens_per_sec cover
        the training windows only, session_seconds this command (begun at ``wall_start``)."""
        cfg, store, p = self.cfg, self.store, self.trainer.progress
        best_loss = p.best_valid_loss
        return {
            "checkpoint": str(store.best_or_dir()) if store else str(cfg.checkpoint.dir),
            "run_dir": str(cfg.checkpoint.dir),
            "epochs": p.epoch - 1 if p.pos == 0 else p.epoch,
            "epochs_completed": p.epoch - 1,
            # the share of the next epoch that was trained when train.max_tokens stopped the run inside it
            "partial_epoch": p.pos / max(len(self.data) - 1, 1),
            "steps": p.step,
            "tokens": p.tokens,
            "train_seconds": p.train_seconds,
            "tokens_per_sec": p.tokens / p.train_seconds if p.train_seconds > 0 else None,
            "session_tokens": p.tokens - tokens_before,
            "session_seconds": time.perf_counter() - wall_start,
            "valid_loss": p.valid_loss,
            "valid_ppl": perplexity(p.valid_loss) if p.valid_loss is not None else None,
            "best_valid_loss": best_loss if math.isfinite(best_loss) else None,
            "best_valid_ppl": perplexity(best_loss) if math.isfinite(best_loss) else None,
            "lr": p.lr,
            "vocab_size": len(self.vocab),
            "params": self.trainer.model.num_params(),
        }

    def save(self, epoch: int, is_best: bool, name: str | None = None, detached: bool = False) -> Path | None:
        """A checkpoint of every worker's state, written by rank 0; returns its path there.

        The reporter hears of it (``saved``) as soon as it is written, in the writer itself."""
        t, comm = self.trainer, self.comm
        trainer_arrays = t.checkpoint_arrays()  # a collective: the hidden state of every worker's streams
        comm.check_same(t.model.params, f"at the checkpoint of step {t.progress.step}")

        def write() -> Path:
            meta = dict(self.meta_base, **t.checkpoint_meta())
            path = self.store.save(
                name or self.store.name_for(epoch, t.progress.step),
                t.model.state_dict(),
                trainer_arrays,
                self.vocab.to_dict(),
                meta,
                is_best,
                self.pieces,
            )
            saved = getattr(self.reporter, "saved", None)  # a reporter may predate the event
            if saved is not None:
                saved(self.store.dir, path)
            return path

        if detached and not comm.is_root:
            path = None  # stopping on a signal: the others need not wait for rank 0's writer
        else:
            path = comm.root_does(lambda: comm.detached(write) if detached else write())
        self.last_path, self.last_save = path, time.monotonic()
        return path


_DEFAULTS = {info.path: info.default for info in describe_keys()}


def _check_resumable(cfg: Config, saved: dict, run_dir: Path) -> None:
    """Model and tokenizer must be those of the checkpoint; everything else may change on resume."""
    now = config_to_dict(cfg)
    for section in ("model", "tokenizer"):
        for key, value in now[section].items():
            # a key the checkpoint predates had its default then (model.direction, tokenizer.units)
            old = saved.get(section, {}).get(key, _DEFAULTS.get(f"{section}.{key}"))
            if section == "model" and key == "dropout":
                continue  # dropout does not change the parameters
            if (section, key) == ("tokenizer", "pieces") and now["tokenizer"]["units"] != "pieces":
                continue  # the size of a piece vocabulary that a word model does not have
            if old != value:
                raise ConfigError(
                    f"cannot resume {run_dir}: {section}.{key} is {value!r} in the config but {old!r} in the "
                    "checkpoint; use the same value, or another checkpoint.dir for a new run"
                )


def _restore(ckpt: Checkpoint, trainer: Trainer, store: RunStore) -> list | None:
    """Rank 0: load weights, optimizer, RNG and progress from a checkpoint; returns the carried
    hidden state of the whole batch (None at an epoch boundary)."""
    model, opt = trainer.model, trainer.opt
    load_weights(model, ckpt)
    opt.load_state_arrays({k[6:]: v for k, v in ckpt.trainer.items() if k.startswith("optim.")})
    saved = dict(ckpt.meta.get("progress", {}))
    opt.steps = int(saved.pop("optimizer_steps", 0))
    progress = Progress(**{k: v for k, v in saved.items() if k in Progress.__dataclass_fields__})
    progress.best_valid_loss = float(progress.best_valid_loss)
    if "valid_loss" not in saved:  # a checkpoint from before the field: its run's last record says it
        progress.valid_loss = store.last_valid_loss()
    try:
        trainer.rng.bit_generator.state = ckpt.meta["rng"]
    except (KeyError, TypeError, ValueError):
        raise CheckpointError(f"{ckpt.path}/checkpoint.json: damaged RNG state") from None
    progress.metrics_lines = store.sync_metrics(progress.metrics_lines if "metrics_lines" in saved else None)
    trainer.progress = progress
    if progress.pos == 0:
        return None
    carried = []
    for k in range(model.state_layers):
        layer = tuple(ckpt.trainer.get(f"hidden.l{k}.{n}") for n in "hc"[: model.kind.state_size])
        if any(a is None or a.shape != (trainer.batch, model.shape.hidden_size) for a in layer):
            raise ConfigError(
                f"cannot resume {ckpt.path} in the middle of an epoch with another train.batch_size; "
                "use the batch size it was trained with"
            )
        carried.append(layer)
    return carried


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
