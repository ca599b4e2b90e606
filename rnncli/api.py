"""The Python face of rnn: a trained model as an object, every command as a method.

    import rnncli
    m = rnncli.load("checkpoints/default")
    m.predict("sentindo-se", k=5)             # [Prediction(word='indisposto', prob=0.578...), ...]
    m.predict(["ela estava", "o médico"])     # one list per prompt, batched in one pass

A method takes one string (and returns one result) or a list of strings (and returns one result each,
computed as minibatches). Results are the frozen dataclasses of ``rnncli.results``, named as the CLI's
JSON keys. Errors are the project's exceptions (``rnncli.errors``); nothing here prints or exits, and
no method writes into anything another call reads (only into caches of answers that are the same whoever
computes them), so one ``Model`` may serve several threads.
"""

from __future__ import annotations

import io
import math
import os
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from .errors import DataError, UsageError

if TYPE_CHECKING:  # the result types are imported where a method makes them (start-up time)
    from .results import Evaluation, TrainResult

Progress = Callable[[int, int], None]  # (done, total)


def load(path: str | os.PathLike, which: str = "best") -> Model:
    """A trained model: a run folder (its ``which`` checkpoint: best or last) or one ``ckpt-*`` folder.
    Forward, backward and two-way checkpoints all load; each method says what it needs."""
    from .infer import load_models

    return Model(load_models(Path(path), which))


def _many(inputs: str | Sequence[str]) -> tuple[list[str], bool]:
    if isinstance(inputs, str):
        return [inputs], False
    if not isinstance(inputs, Sequence) or not all(isinstance(p, str) for p in inputs):
        raise UsageError("give a string or a list of strings")
    return list(inputs), True


class Model:
    """The networks of one checkpoint (forward and/or backward), with its tokenizer and vocabulary."""

    def __init__(self, models):
        self.forward, self.backward = models.forward, models.backward
        self.tokenizer, self.vocab, self.checkpoint = models.tokenizer, models.vocab, models.ckpt
        self.pieces = models.pieces  # how words are spelled, for a word-piece model (None: whole words)
        self.path = str(Path(models.ckpt.path).resolve())  # the checkpoint folder that answers
        self._index: dict[bool, object] = {}  # --complete's prefix index per accent mode, built once

    def __repr__(self) -> str:
        directions = [d for d, m in (("forward", self.forward), ("backward", self.backward)) if m is not None]
        return f"Model({self.path!r}, {'+'.join(directions)}, vocabulary {len(self.vocab):,})"

    @property
    def config(self) -> dict:
        """The resolved config the model was trained with (as stored in its checkpoint)."""
        return self.checkpoint.meta.get("config", {})

    # ------------------------------------------------------------------ reading
    def check_forward(self):
        """The forward (left-to-right) network, which predict, complete, generate and score need; a
        backward-only checkpoint is a UsageError: it predicts the word before, not the next one."""
        if self.forward is None:
            raise UsageError(
                f"{self.checkpoint.path} holds a backward (right-to-left) model, which predicts the word before, "
                "not the next one; use it with rnn fill or rnn eval, or train with model.direction: forward or both"
            )
        return self.forward

    def beam_width(self, width: int, words: int) -> int:
        """A beam of ``width`` over ``words`` words, capped at the continuations there are (V^words);
        a ResourceError when its (width, V) score arrays cannot fit in memory."""
        V = len(self.vocab)
        asked, width = width, min(width, V**words)
        live = min(width, V ** (words - 1))  # hypotheses extended at the widest step
        need = 24 * live * V  # float64 scores, their candidates and the partition's indices
        _refuse_unless_it_fits(need, f"--beam {asked:,} needs", f"for a vocabulary of {V:,} words", "--beam")
        return width

    def _context(self, tokens: list[str]) -> np.ndarray:
        """A prompt's ids as the model reads them: after an <eos> (a prompt starts a sentence)."""
        units = self.vocab.encode(tokens) if self.pieces is None else self.pieces.units(tokens)
        ids = np.empty(len(units) + 1, dtype=np.int32)  # (T,)
        ids[0] = self.vocab.eos_id
        ids[1:] = units
        return ids

    def _next_words(self, model, contexts: list[np.ndarray], k: int, eos: bool):
        """A word-piece model's k most probable next words after each context: (word, log-prob) lists."""
        from .generate import read_contexts
        from .wordsearch import search

        state, top = read_contexts(model, contexts)
        return search(model, self.pieces, state, model.log_probs(top), k, eos=eos)

    def _exclude(self, show_unk: bool, eos: bool = True) -> tuple[int, ...]:
        if show_unk:
            return ()
        return (self.vocab.unk_id, self.vocab.eos_id) if eos else (self.vocab.unk_id,)

    def tokenize_prompt(self, prompt: str) -> list[str]:
        """The tokens of a prompt, as predict reads it (a sentence start; a final punctuation mark kept)."""
        return self.tokenizer.tokenize_prompt(prompt)

    # ------------------------------------------------------------------ predict
    def predict(self, prompts: str | Sequence[str], k: int = 5, min_prob: float = 0.0, show_unk: bool = False):
        """The k most probable next words after each prompt, best first (ties: the lower id), each
        with P(word | prompt) over the whole vocabulary; words below ``min_prob`` are left out.
        ``<unk>`` and ``<eos>`` are offered only with ``show_unk``."""
        from .generate import next_log_probs, top_k_rows
        from .results.predict import Prediction

        items, many = _many(prompts)
        model = self.check_forward()
        contexts = [self._context(self.tokenizer.tokenize_prompt(p)) for p in items]
        if self.pieces is not None:  # whole words, found by a search over pieces (<unk> is never one)
            found = self._next_words(model, contexts, k, eos=show_unk)
            rows = [[Prediction(w, math.exp(lp)) for w, lp in row if math.exp(lp) >= min_prob] for row in found]
            return rows if many else rows[0]
        logp = next_log_probs(model, contexts, dtype=np.float32)  # (n, V)
        itos = self.vocab.itos
        rows = [
            [Prediction(itos[i], p) for i, p in row] for row in top_k_rows(logp, k, self._exclude(show_unk), min_prob)
        ]
        return rows if many else rows[0]

    def complete(self, prompts: str | Sequence[str], k: int = 5, min_prob: float = 0.0, match_accents: bool = False):
        """Complete each prompt's unfinished last word: the k most probable vocabulary words that
        start with it (case and, unless ``match_accents``, accents ignored), ranked by their
        probability after the words before; ``min_prob`` reads ``match_prob``."""
        from .complete import PrefixIndex, complete_rows, split_prompt
        from .generate import next_log_probs
        from .results.complete import Completion, Completions

        items, many = _many(prompts)
        model = self.check_forward()
        if self.pieces is not None:
            return self._complete_pieces(model, items, many, k, min_prob, match_accents)
        index = self._index.get(match_accents)
        if index is None:  # built once: each lookup is then two binary searches
            vocab = self.vocab
            index = self._index[match_accents] = PrefixIndex(
                vocab.itos, (vocab.unk_id, vocab.eos_id), accents=match_accents
            )
        split = [split_prompt(p) for p in items]
        contexts = [self._context(self.tokenizer.tokenize_prompt(context)) for context, _ in split]
        logp = next_log_probs(model, contexts, dtype=np.float32)  # (n, V)
        rows = complete_rows(logp, index, [prefix for _, prefix in split], k, min_prob)
        itos = self.vocab.itos
        out = [
            Completions(p, prefix, row.matches, row.mass, tuple(Completion(itos[i], a, b) for i, a, b in row.words))
            for p, (_, prefix), row in zip(items, split, rows)
        ]
        return out if many else out[0]

    def _complete_pieces(self, model, items: list[str], many: bool, k: int, min_prob: float, accents: bool):
        """``complete`` for a word-piece model: the pieces are constrained to the typed letters, so the
        words offered need not have been seen whole; ``matches`` is None (no vocabulary bounds them)."""
        from .complete import split_prompt
        from .generate import read_contexts
        from .results.complete import Completion, Completions
        from .wordsearch import complete, log_probs64

        split = [split_prompt(p) for p in items]
        contexts = [self._context(self.tokenizer.tokenize_prompt(context)) for context, _ in split]
        state, top = read_contexts(model, contexts)
        found = complete(model, self.pieces, state, log_probs64(model, top), [p for _, p in split], k, accents=accents)
        out = []
        for p, (_, prefix), (words, mass) in zip(items, split, found):
            shown = [Completion(w, math.exp(lp), math.exp(lp) / mass if mass else 0.0) for w, lp in words]
            shown = tuple(c for c in shown if c.match_prob >= min_prob)
            out.append(Completions(p, prefix, None, mass, shown))
        return out if many else out[0]

    def generate(
        self,
        prompts: str | Sequence[str],
        words: int = 20,
        *,
        temperature: float = 1.0,
        top_k: int = 0,
        top_p: float = 1.0,
        seed: int | None = None,
        stop_at_eos: bool = False,
        show_unk: bool = False,
        details: bool = False,
        first_line: int = 0,
    ):
        """Continue each prompt by up to ``words`` sampled words: the text (a ``Generation`` with the
        continuation and its log-probability when ``details``). Temperature (0: always the most
        probable word), then ``top_k``, then ``top_p`` shape what is drawn; each prompt draws from
        its own generator seeded by (``seed``, its line number, from ``first_line``)."""
        from .generate import generate, prompt_rngs
        from .results.generate import Generation
        from .tokenizer import detokenize

        if words < 1:
            raise UsageError("words must be at least 1")
        items, many = _many(prompts)
        model = self.check_forward()
        tokens = [self.tokenizer.tokenize_prompt(p) for p in items]
        contexts, rngs = [self._context(t) for t in tokens], prompt_rngs(seed, first_line, len(items))
        if self.pieces is not None:  # whole words, drawn a piece at a time
            from .piecegen import sample_words

            results = sample_words(
                model, self.pieces, contexts, words, rngs, temperature=temperature, top_k=top_k, top_p=top_p,
                show_unk=show_unk, stop_at_eos=stop_at_eos,
            )  # fmt: skip
        else:
            found = generate(
                model, contexts, words, rngs, temperature=temperature, top_k=top_k, top_p=top_p,
                exclude=self._exclude(show_unk, eos=False), stop_id=self.vocab.eos_id if stop_at_eos else None,
            )  # fmt: skip
            results = [(self.vocab.decode(ids), logprob) for ids, logprob in found]
        out = []
        for prompt, toks, (cont, logprob) in zip(items, tokens, results):
            text = detokenize(toks + cont)
            out.append(Generation(prompt, text, tuple(cont), logprob) if details else text)
        return out if many else out[0]

    def beam(
        self,
        prompts: str | Sequence[str],
        words: int,
        width: int = 5,
        *,
        stop_at_eos: bool = False,
        show_unk: bool = False,
    ):
        """The ``width`` most probable continuations of up to ``words`` words that beam search finds,
        best first (width 1 is greedy; the best never scores below greedy decoding)."""
        from .generate import beam_search
        from .results.generate import Beam
        from .tokenizer import detokenize

        items, many = _many(prompts)
        model = self.check_forward()
        stop = self.vocab.eos_id if stop_at_eos else None
        out = []
        for prompt in items:
            toks = self.tokenizer.tokenize_prompt(prompt)
            if self.pieces is not None:
                found = self._beam_words(model, toks, words, width, stop_at_eos)
                out.append([Beam(detokenize(toks + list(ws)), tuple(ws), lp) for ws, lp in found])
                continue
            found = beam_search(
                model, self._context(toks), words, width, exclude=self._exclude(show_unk, eos=False), stop_id=stop
            )
            beams = []
            for ids, logprob in found:
                cont = self.vocab.decode(ids)
                beams.append(Beam(detokenize(toks + cont), tuple(cont), logprob))
            out.append(beams)
        return out if many else out[0]

    def _beam_words(self, model, tokens: list[str], n: int, width: int, stop_at_eos: bool):
        """Beam search over whole words for a word-piece model: each hypothesis is extended by the
        ``width`` most probable next words that the piece search finds (``<eos>`` among them; with
        ``stop_at_eos`` it ends a hypothesis); the ``width`` best by log-probability are kept."""
        from .generate import read_contexts
        from .tokenizer import EOS
        from .wordsearch import log_probs64, search

        beams: list[tuple[tuple[str, ...], float]] = [((), 0.0)]
        for _ in range(n):
            live = [b for b in beams if not (stop_at_eos and b[0] and b[0][-1] == EOS)]
            if not live:
                break
            state, top = read_contexts(model, [self._context(tokens + list(ws)) for ws, _ in live])
            found = search(model, self.pieces, state, log_probs64(model, top), width, eos=True)
            grown = [(ws + (w,), lp + wlp) for (ws, lp), nxt in zip(live, found) for w, wlp in nxt]
            done = [b for b in beams if b not in live]
            beams = sorted(done + grown, key=lambda b: (-b[1], b[0]))[:width]
        return beams

    # ------------------------------------------------------------------ fill
    def fill_sizes(self, shortlist: int | None = None, beam: int | None = None) -> tuple[int, int]:
        """The shortlist and beam that ``fill`` uses (the defaults: 500 candidates with one
        direction, 150 with two, 30 for a word-piece model, a beam of 8); a ResourceError when the
        beam's partial fills (each blank after the first extends W of them by S candidates) cannot
        fit in memory."""
        from .fill import DEFAULT_BEAM, EVAL_SHORTLIST, default_shortlist

        # a word-piece model's candidates are each scored as a sentence: 30 gave the top 5 of 150 on 20 lines
        default = EVAL_SHORTLIST if self.pieces is not None else default_shortlist(self.forward, self.backward)
        size, width = shortlist or default, beam or DEFAULT_BEAM
        what = f"--beam {width:,} keeps up to {width * size:,} partial fills with --shortlist {size:,}:"
        _refuse_unless_it_fits(200 * width * size, what, "for them", "--beam or --shortlist")
        return size, width

    def fill(
        self,
        lines: str | Sequence[str],
        k: int = 5,
        *,
        shortlist: int | None = None,
        beam: int | None = None,
        blank: str | None = None,
        show_unk: bool = False,
        errors: str = "raise",
    ):
        """The words that best fill the blanks (``___``, or ``blank`` taken literally) of each line,
        ranked by the probability of the whole sentence read by every direction the checkpoint has.
        Only a shortlist of candidates is scored (default: 500 with one direction, 150 with two);
        several blanks are filled jointly (beam search, ``beam`` partial fills, default 8).
        A line that cannot be filled is a DataError; with ``errors="keep"`` that error is returned
        in its place instead, and the other lines are filled."""
        from .fill import LineError, blank_regex, fill_lines, split_line
        from .results.fill import Fill, Fills

        if errors not in ("raise", "keep"):
            raise UsageError("errors is 'raise' or 'keep'")
        if blank is not None and not blank.strip():
            raise UsageError("the blank marker must not be empty or blank")
        items, many = _many(lines)
        pattern = blank_regex(blank)
        cut: dict[int, object] = {}
        bad: dict[int, DataError] = {}
        for i, line in enumerate(items):
            try:
                cut[i] = split_line(line, self.tokenizer, self.vocab, pattern)
            except LineError as e:
                bad[i] = DataError(str(e))
                if errors == "raise":
                    where = f"line {i + 1} " if many else ""
                    raise DataError(f"{where}{line[:60]!r}: {e}") from None
        size, width = self.fill_sizes(shortlist, beam)
        if self.pieces is not None:  # whole words found by the search over pieces (piecefill.py)
            done = self._fill_pieces(items, cut, k, size, width)
            out = [done[i] if i in done else bad[i] for i in range(len(items))]
            return out if many else out[0]
        exclude = self._exclude(show_unk)
        ranked = fill_lines(
            self.forward, self.backward, list(cut.values()), self.vocab.eos_id,
            shortlist=size, beam=width, exclude=exclude,
        )  # fmt: skip
        itos = self.vocab.itos
        done = {}
        for (i, b), r in zip(cut.items(), ranked):
            fills = []
            for ids, p in r.top(k):
                words = tuple(itos[j] for j in ids)
                fills.append(Fill(words, b.text(words), p))
            done[i] = Fills(items[i], b.blanks, tuple(fills))
        out = [done[i] if i in done else bad[i] for i in range(len(items))]
        return out if many else out[0]

    # ------------------------------------------------------------------ score
    def _fill_pieces(self, items: list[str], cut: dict, k: int, size: int, width: int) -> dict:
        """``fill`` for a word-piece model: the Fills of each line that could be cut, by its index."""
        from .piecefill import fill_lines
        from .results.fill import Fill, Fills

        lines = [b.tokens for b in cut.values()]
        found = fill_lines(self.forward, self.backward, self.pieces, lines, shortlist=size, beam=width)
        return {
            i: Fills(items[i], b.blanks, tuple(Fill(words, b.text(words), p) for words, p in r[:k]))
            for (i, b), r in zip(cut.items(), found)
        }

    def score(self, lines: str | Sequence[str]):
        """Each line scored as a sentence on its own (from a zero state, after an ``<eos>``, its own
        ``<eos>`` at the end included): log-probability, perplexity and every word's probability."""
        from .generate import score_sequences
        from .metrics import perplexity
        from .results.score import Score, WordScore

        items, many = _many(lines)
        model = self.check_forward()
        tokens = [self.tokenizer.tokenize(line) for line in items]
        if self.pieces is not None:
            from .wordsearch import word_log_probs

            logps = [word_log_probs(model, self.pieces, t) for t in tokens]
            ids = [np.zeros(len(t), dtype=np.int64) - 1 for t in tokens]  # every word is spelled: none unknown
        else:
            ids = [self.vocab.encode(t) for t in tokens]
            logps = score_sequences(model, ids, self.vocab.eos_id)
        unk = self.vocab.unk_id
        out = []
        for line, toks, tid, lp in zip(items, tokens, ids, logps):
            total = float(lp.sum())
            probs = [math.exp(x) for x in lp.tolist()]
            words = tuple(WordScore(w, p, i == unk) for w, i, p in zip(toks, tid.tolist(), probs))
            out.append(Score(line, len(toks), total, perplexity(-total, len(toks)), words))
        return out if many else out[0]

    # ------------------------------------------------------------------ text
    def tokens(self, source, *, errors: str | None = None) -> list[str]:
        """The tokens of a text as the model reads them (its words, ``<eos>`` at each sentence end):
        ``source`` is a path, an open text file, an iterable of lines (each with its line break), or a
        list of them (each read on its own, as training reads files; ``.gz`` files gunzipped, the
        checkpoint's ``data.encoding``)."""
        return list(self.iter_tokens(source, errors=errors))

    def iter_tokenized(self, source, *, errors: str | None = None):
        """The tokens of ``source`` (as for ``tokens``) as `rnn tokenize` prints them: words outside
        the vocabulary as ``<unk>``, ``<eos>`` at each sentence end; one at a time."""
        from .tokenizer import EOS

        if self.pieces is not None:  # every word can be spelled
            yield from self.iter_tokens(source, errors=errors)
            return
        known, unk = self.vocab.stoi, self.vocab.itos[self.vocab.unk_id]
        for t in self.iter_tokens(source, errors=errors):
            yield t if t == EOS or t in known else unk

    def iter_tokens(self, source, *, errors: str | None = None):
        """``tokens``, one at a time."""
        from .data import iter_file_tokens, resolve_files

        data_cfg = self.config.get("data", {})
        encoding, errors = data_cfg.get("encoding", "utf-8"), errors or data_cfg.get("errors", "strict")
        parts = source if isinstance(source, list | tuple) else [source]
        for part in parts:
            if isinstance(part, str | os.PathLike):
                yield from iter_file_tokens(resolve_files([str(part)], "evaluate"), self.tokenizer, encoding, errors)
            elif isinstance(part, io.TextIOBase | Iterable):
                yield from self.tokenizer.iter_tokens(part)
            else:
                raise UsageError(f"cannot read text from {type(part).__name__}: give a path, a file or lines")

    def spell(self, word: str) -> list[str]:
        """The pieces a word-piece model reads for one word (its first piece starts with ▁); a word
        model reads the word itself, or ``<unk>``."""
        if self.pieces is None:
            return [word if word in self.vocab.stoi else self.vocab.itos[self.vocab.unk_id]]
        return [self.pieces.piece(int(u)) for u in self.pieces.spell(word)]

    def tokenize(self, text: str) -> list[str]:
        """The tokens of a text as `rnn tokenize` prints them: words outside the vocabulary as
        ``<unk>``, ``<eos>`` at each sentence end."""
        return list(self.iter_tokenized([io.StringIO(text)]))

    def export(self, path: str | os.PathLike, *, direction: str = "forward", int8: bool = False) -> None:
        """Write one network (``direction``: forward or backward) as a self-contained ONNX file, as
        `rnn export` does: float32, or int8 weights with ``int8``; a word-piece model's file carries
        its piece model. Needs the ``onnx`` extra; the file is replaced atomically if it exists."""
        from .onnx_export import check_destination, export_onnx, require_onnx, require_onnxruntime

        require_onnx()
        if int8:
            require_onnxruntime()
        if direction not in ("forward", "backward"):
            raise UsageError(f"direction must be forward or backward, not {direction!r}")
        if str(self.path).endswith(".onnx"):
            raise UsageError(f"{self.path} is already an ONNX file: export reads a checkpoint folder")
        check_destination(path)
        network = self.forward if direction == "forward" else self.backward
        if network is None:
            held = "backward" if direction == "forward" else "forward"
            raise UsageError(f"{self.path} holds no {direction} network (only a {held} one); export the {held} one")
        units, proto = ("pieces", self.pieces.proto) if self.pieces is not None else ("words", None)
        settings = self.checkpoint.meta["tokenizer"]
        export_onnx(network, self.vocab.itos, settings, path, direction=direction, units=units, pieces=proto, int8=int8)

    # ------------------------------------------------------------------ evaluate
    def _score_text(self, net, ids: np.ndarray, tokens: list[str], backward: bool, batch_size: int):
        """One direction's EvalResult over a text's ids: per word, whatever the units."""
        from .infer import evaluate
        from .tokenizer import EOS
        from .twoway import reverse_stream
        from .wordsearch import word_hits

        eos = self.vocab.eos_id
        if self.pieces is None:
            seq = reverse_stream(ids, eos) if backward else ids
            return evaluate(net, seq, streams=batch_size, start_id=eos, unk_id=self.vocab.unk_id)
        begins = self.pieces.begins
        seq = reverse_stream(ids, eos, begins) if backward else ids
        words = reverse_stream(np.array(tokens, dtype=object), EOS) if backward else tokens
        r = evaluate(net, seq, streams=batch_size, start_id=eos, rank=False, begins=begins)
        r.top1, r.top5 = word_hits(net, self.pieces, seq, list(words))
        r.oov = sum(not self.pieces.spells(w) for w in tokens)
        return r

    def evaluate(
        self,
        source,
        *,
        batch_size: int = 1,
        fill: bool = False,
        fill_sample: int | None = None,
        keystrokes: bool = False,
        suggestions: int = 3,
        errors: str | None = None,
        fill_progress: Progress | None = None,
        keystroke_progress: Progress | None = None,
        name: str | None = None,
    ) -> Evaluation:
        """Score a text (``source`` as for ``tokens``) with the hidden state carried through it: every
        token predicted, ``<eos>`` included. A two-way model reports the backward figures beside the
        forward ones (same tokens, read right to left). ``fill``: blank each word (or ``fill_sample``
        of them) and fill it from its sentence; ``keystrokes``: the keystroke saving rate with
        ``suggestions`` words shown. ``batch_size`` pieces are scored at once (each from a zero state)."""
        from .errors import CheckpointError
        from .results.evaluate import Evaluation, Figures

        if keystrokes and self.forward is None:
            raise UsageError("keystrokes completes words from the words before them: it needs a forward model")
        tokens = self.tokens(source, errors=errors)
        if self.pieces is not None:
            ids = self.pieces.encode(tokens)[0]
        else:
            ids = self.vocab.encode(tokens).astype(np.int32)
        if ids.size == 0:
            raise DataError(f"no text to evaluate in {name or 'the text given'}")
        figures = {}
        for direction, net in (("forward", self.forward), ("backward", self.backward)):
            if net is not None:
                r = self._score_text(net, ids, tokens, direction == "backward", batch_size)
                figures[direction] = Figures(**r.as_dict())
                if math.isnan(figures[direction].loss):
                    raise CheckpointError(
                        f"{self.checkpoint.path}: the {direction} model predicts NaN on this text: its weights are too "
                        "large, as after a training that diverged; train it again with a lower train.lr"
                    )
        main = figures.get("forward") or figures["backward"]
        direction = "forward" if "forward" in figures else "backward"
        filled = self._fill_figures(ids, tokens, fill_sample, fill_progress) if fill else None
        typed = self._keystroke_figures(ids, tokens, suggestions, keystroke_progress) if keystrokes else None
        back = figures["backward"] if len(figures) == 2 else None
        return Evaluation(**main.__dict__, direction=direction, backward=back, fill=filled, keystrokes=typed)

    def _fill_figures(self, ids: np.ndarray, tokens: list[str], sample: int | None, progress):
        """``evaluate``'s fill figures: each word blanked in turn and filled from its sentence."""
        from .results.evaluate import FillAccuracy

        if self.pieces is not None:
            from .piecefill import fill_accuracy as piece_fill_accuracy

            f = piece_fill_accuracy(
                self.forward, self.backward, self.pieces, tokens, sample=sample or 0, progress=progress
            )
        else:
            from .fill import fill_accuracy

            v = self.vocab
            f = fill_accuracy(
                self.forward, self.backward, ids, v.eos_id, sample=sample or 0, progress=progress, unk_id=v.unk_id
            )
        return FillAccuracy(**{**f, "directions": tuple(f["directions"])})

    def _keystroke_figures(self, ids: np.ndarray, tokens: list[str], suggestions: int, progress):
        """``evaluate``'s keystroke figures: each word typed with ``suggestions`` completions shown."""
        from .results.evaluate import Keystrokes

        if self.pieces is not None:
            from .wordsearch import keystrokes

            return Keystrokes(**keystrokes(self.forward, self.pieces, tokens, ids, suggestions, progress))
        from .complete import PrefixIndex, keystroke_savings

        v = self.vocab
        index = PrefixIndex(v.itos, (v.unk_id, v.eos_id))
        return Keystrokes(
            **keystroke_savings(self.forward, tokens, ids, index, v.eos_id, v.unk_id, suggestions, progress)
        )


def _refuse_unless_it_fits(need: int, what: str, context: str, smaller: str) -> None:
    """A ResourceError (before any work) when ``need`` bytes exceed the memory available."""
    from . import memory
    from .errors import ResourceError

    free = memory.available_memory()
    if free is not None and need > free:
        raise ResourceError(
            f"{what} about {need / 2**30:,.1f} GiB {context}, and {free / 2**30:.1f} GiB is available; "
            f"use a smaller {smaller}"
        )


# ---------------------------------------------------------------------- train
def train(
    config: str | os.PathLike,
    overrides: dict | Sequence[str] | None = None,
    *,
    resume: bool = False,
    resume_from: str = "last",
    overwrite: bool = False,
    on_epoch: Callable[[dict], None] | None = None,
    reporter=None,
    stop=None,
    comm=None,
) -> TrainResult:
    """Train as the YAML config says, with ``overrides`` (``{"train.epochs": 3}`` or
    ``["train.epochs=3"]``); returns the summary that `rnn train --format json` prints.

    ``on_epoch(record)`` hears each epoch's record (the lines of metrics.jsonl); ``reporter`` (a
    ``Reporter`` of the training module) hears everything. No signal handler is installed: pass a
    ``StopRequest`` (``rnncli.signals``) as ``stop`` and set its ``received`` to stop after the
    current window with a checkpoint. ``comm`` is the communicator of data-parallel workers (by
    default MPI when started by mpirun, else one process)."""
    from .comm import communicator
    from .config import load_config
    from .results.train import TrainResult
    from .signals import StopRequest
    from .training import Reporter, run_training

    if isinstance(overrides, dict):
        import json

        overrides = [f"{key}={json.dumps(value)}" for key, value in overrides.items()]
    cfg = load_config(str(config), list(overrides or ()))
    if reporter is None:
        reporter = Reporter()
    if on_epoch is not None:
        reporter = _EpochHook(reporter, on_epoch)
    summary = run_training(
        cfg,
        resume=resume,
        overwrite=overwrite,
        reporter=reporter,
        stop=stop or StopRequest(),
        comm=comm or communicator(),
        resume_from=resume_from,
    )
    return TrainResult(**summary)


class _EpochHook:
    """A reporter that passes every event on, and each epoch's record to a callback too."""

    def __init__(self, inner, on_epoch):
        self.inner, self.on_epoch = inner, on_epoch

    def __getattr__(self, name):
        return getattr(self.inner, name)

    def epoch_end(self, record: dict) -> None:
        self.inner.epoch_end(record)
        self.on_epoch(record)
