"""Filling blanks: the words that fit a gap in a sentence, judged by the words on both sides of it.

A line is one sentence with blanks in it (``___``: three or more underscores, or a marker of the
caller's choice).  The line is split on its blanks and each piece is tokenized on its own, so the
tokenizer never sees, splits or alters a blank.  With pieces ``P0 _ P1`` (``P1`` closed by
``<eos>``) a candidate word ``w`` is ranked by the probability of the whole sentence

    forward:   P(<eos> P0 w P1)  =  P(P0) * P(w | P0) * P(P1 | P0, w)

which a left-to-right model computes exactly; ``P(P0)`` is the same for every ``w``.  A backward
model (trained on the text read right to left) gives the same sentence's probability read from
its end, ``P(<eos> rev(P1) w rev(P0) <eos>)``.  When a checkpoint holds both, a candidate's score
is the sum of the two log-probabilities (the product of the two sentence probabilities), and the
probabilities shown are those scores renormalised over the candidates that were scored.

Scoring every word of the vocabulary would cost V runs of the right-hand side; instead a
*shortlist* is scored: the ``shortlist`` most probable words after the left side (forward
model) together with the ``shortlist`` most probable words before the right side (backward
model).  One blank costs one pass over each side and one batch of S rows (the candidates) over
the other side, each row starting from the same hidden state; many lines are batched together.

Several blanks are filled jointly by a beam search from left to right: each of the ``beam``
partial fills is extended by the shortlist of the next blank and scored by the sentence up to the
blank after it; the complete fills of the last step are ranked by the whole sentence (both
directions when there are two).  A backward-only checkpoint runs the same search on the sentence
read right to left.

Pure library: no click, no I/O.  Errors in a line are ``LineError`` (a ValueError); the CLI adds
where the line came from.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from .generate import WORK_FLOATS, Pass, block_rows, mask_out_, read_contexts, run_rows
from .metrics import ranks
from .model import RNNModel, State
from .tokenizer import EOS, JOINER_TABLE, Tokenizer, Vocab

#: candidates per direction scored for a blank, the smallest sizes at which the top 5 of every one of
#: 200 blanks equalled the exact ranking over the vocabulary on the default models (benchmarks/bench_fill.py):
#: one direction, and each of two (whose two lists together find the words sooner)
DEFAULT_SHORTLIST = 500
DEFAULT_SHORTLIST_TWO_WAY = 150
#: eval --fill only counts top-1/top-5 hits: 30 moves them by < 0.5 points against 500, at a tenth of the time
EVAL_SHORTLIST = 30
#: partial fills kept between blanks when a line has several
DEFAULT_BEAM = 8
#: three or more underscores, one blank however long
BLANK_PATTERN = r"_{3,}"
#: positions blanked per batch of eval --fill (how often progress is told; the network calls inside
#: are bounded by ``generate.block_rows``), and the most ids (left and right sides) they may hold
#: together: a batch's items are copies of the text around each blank, so a long sentence takes fewer;
#: int32 ids, a quarter of the working budget of a network call (``generate.WORK_FLOATS``)
_EVAL_CHUNK = 256
_EVAL_IDS = WORK_FLOATS // 4


class LineError(ValueError):
    """A line that cannot be filled (no blank, nothing but blanks, empty)."""


def default_shortlist(forward: RNNModel | None, backward: RNNModel | None) -> int:
    return DEFAULT_SHORTLIST_TWO_WAY if forward is not None and backward is not None else DEFAULT_SHORTLIST


def blank_regex(marker: str | None = None) -> re.Pattern:
    """The blanks of a line: ``marker`` taken literally, or three or more underscores."""
    return re.compile(re.escape(marker) if marker else BLANK_PATTERN)


# ---------------------------------------------------------------- the line
@dataclass
class Blanked:
    """A line cut at its blanks: ``pieces`` are the token ids around them (``blanks + 1`` arrays,
    the last closed by ``<eos>``), ``spans`` where each blank is in the line."""

    line: str
    pieces: list[np.ndarray]
    spans: list[tuple[int, int]]
    tokens: list[list[str]] | None = None  # the words of each piece (what a word-piece model spells)

    @property
    def blanks(self) -> int:
        return len(self.spans)

    def text(self, words: Sequence[str]) -> str:
        """The line with each blank replaced by its word, as the sentence that was scored: a blank
        glued to a word ("casa___") was read as a token of its own, so its word gets a space there."""
        out, at, line = [], 0, self.line
        for (lo, hi), word in zip(self.spans, words):
            before = " " if lo > 0 and not line[lo - 1].isspace() and _joins(line[lo - 1], word[:1]) else ""
            after = " " if hi < len(line) and not line[hi].isspace() and _joins(word[-1:], line[hi]) else ""
            out += [line[at:lo], before, word, after]
            at = hi
        return "".join(out + [line[at:]])


def _joins(a: str, b: str) -> bool:
    """Whether two characters side by side would read as one word (letters, digits, and the hyphens
    and apostrophes that join a word, in any of the forms the tokenizer reads as "-" or "'"): then
    a space."""
    a, b = a.translate(JOINER_TABLE), b.translate(JOINER_TABLE)
    return bool(a) and bool(b) and (a.isalnum() or a in "-'’") and (b.isalnum() or b in "-'’")


def split_line(line: str, tokenizer: Tokenizer, vocab: Vocab, pattern: re.Pattern) -> Blanked:
    """Cut a line at its blanks and tokenize the pieces; LineError for a line that cannot be filled:
    an empty one, one without a blank, one with nothing but blanks, and one that starts or ends
    with a blank (a blank needs words, or at least a punctuation mark, on both sides).

    Each piece is read as a prompt (no line end added inside the sentence); the sentence gets its
    closing ``<eos>`` unless its last piece already ends one ("... médico.").
    """
    if not line.strip():
        raise LineError("empty line: write a sentence with a blank (___) in it")
    spans = [m.span() for m in pattern.finditer(line)]
    if not spans:
        shown = "___" if pattern.pattern == BLANK_PATTERN else re.sub(r"\\(.)", r"\1", pattern.pattern)  # unescaped
        raise LineError(f"no blank ({shown}) in the line")
    cuts = [0] + [x for span in spans for x in span] + [len(line)]
    tokens = [tokenizer.tokenize_prompt(line[cuts[i] : cuts[i + 1]]) for i in range(0, len(cuts), 2)]
    if not any(tokens):
        raise LineError("the line holds only blanks: give some words around them")
    if not tokens[0]:
        raise LineError("a blank at the start of the line has no words before it; fill needs words on both sides")
    if not tokens[-1]:
        raise LineError(
            "a blank at the end of the line has no words after it; use rnn predict for the next word, "
            "or end the sentence after the blank ('... ___.')"
        )
    if tokens[-1][-1] != EOS:
        tokens[-1] = tokens[-1] + [EOS]
    return Blanked(line, [vocab.encode(t).astype(np.int32) for t in tokens], spans, tokens)


def reversed_pieces(pieces: Sequence[np.ndarray], eos_id: int) -> list[np.ndarray]:
    """The pieces of the sentence read right to left, as a backward model reads it.

    ``P0 _ P1 <eos>`` becomes ``rev(P1) _ rev(P0) <eos>``: the blanks keep their places in the
    reversed order, and the reversed sentence is closed by an ``<eos>`` again.
    """
    body = list(pieces)
    body[-1] = body[-1][:-1]  # the closing <eos>, which stays at the end
    out = [p[::-1].copy() for p in reversed(body)]
    out[-1] = np.concatenate([out[-1], np.array([eos_id], dtype=np.int32)])
    return out


# ---------------------------------------------------------- network passes
def _take(state: State, rows: np.ndarray) -> State:
    return [tuple(a[rows] for a in layer) for layer in state]


def _read(model: RNNModel, contexts: Sequence[np.ndarray]) -> tuple[State, np.ndarray]:
    """The hidden state after each context and the log-probabilities of the word after it.

    list of (T_i,) -> (state of n rows, (n, V) float32), the contexts read in bounded memory
    (``generate.read_contexts``: no context ever reads padding).
    """
    state, top = read_contexts(model, contexts)  # (n, H)
    logp = np.empty((len(contexts), model.shape.vocab_size), dtype=np.float32)  # (n, V)
    step = block_rows(model)
    for lo in range(0, len(contexts), step):
        logp[lo : lo + step] = model.log_probs(top[lo : lo + step])
    return state, logp


def _continue(
    model: RNNModel, state: State, candidates: Sequence[np.ndarray], rights: Sequence[np.ndarray]
) -> list[np.ndarray]:
    """log P(right_i | context_i, w) for every candidate w of item i, from item i's state.

    One row per (item, candidate): the row reads ``w`` and then ``right_i`` (which ends with the
    sentence's ``<eos>``) and scores every id of ``right_i``.  The rows of an item share its ids
    (``generate.run_rows``), so the rows x positions are never held at once: memory is that of one
    block of rows, whatever the line's length and the number of candidates.
    """
    item = np.concatenate([np.full(len(c), i, dtype=np.int64) for i, c in enumerate(candidates)])  # (R,)
    first = np.concatenate([np.asarray(c, dtype=np.int32) for c in candidates])  # (R,) the candidates
    sizes = np.fromiter((len(r) for r in rights), dtype=np.int64, count=len(rights))  # (n,)
    offsets = np.concatenate([[0], np.cumsum(sizes)[:-1]])  # (n,) where each right side starts
    flat = np.concatenate([np.asarray(r, dtype=np.int32) for r in rights])  # (sum |right_i|,)
    lengths = sizes[item]  # (R,) ids read and scored per row
    totals = run_rows(
        model, flat, offsets[item], first, lengths, state, state_rows=item, scored=lengths, keep=False
    ).totals
    out, at = [], 0
    for c in candidates:
        out.append(totals[at : at + len(c)])
        at += len(c)
    return out


def _shortlist(logp: np.ndarray, size: int, exclude: Sequence[int]) -> list[np.ndarray]:
    """The ``size`` most probable ids of each row of (n, V) log-probabilities (all when size >= V)."""
    scores = mask_out_(logp.astype(np.float64), exclude)  # (n, V) a copy
    V = scores.shape[1]
    size = min(size, V - len(set(exclude)))
    if size >= V:
        return [np.arange(V) for _ in range(len(scores))]
    idx = np.argpartition(-scores, size - 1, axis=1)[:, :size]  # (n, size)
    return list(idx)


# ------------------------------------------------------------ one blank
@dataclass
class Ranked:
    """The fills of one line, best first: ``fills`` (one id tuple each), their combined
    ``scores`` (summed log-probabilities of the sentence, over the directions used) and ``probs``
    (those scores renormalised over every fill that was scored)."""

    fills: list[tuple[int, ...]]
    scores: np.ndarray
    probs: np.ndarray

    def top(self, k: int) -> list[tuple[tuple[int, ...], float]]:
        return list(zip(self.fills[:k], self.probs[:k].tolist()))


def _ranked(fills: list[tuple[int, ...]], scores: np.ndarray) -> Ranked:
    """Sort by score (ties: the lower ids first) and renormalise over the fills."""
    order = sorted(range(len(fills)), key=lambda j: (-scores[j], fills[j]))
    s = scores[order]
    p = np.exp(s - s.max())
    return Ranked([fills[j] for j in order], s, p / p.sum())


def fill_one_blank(
    forward: RNNModel | None,
    backward: RNNModel | None,
    items: Sequence[tuple[np.ndarray, np.ndarray]],
    eos_id: int,
    *,
    shortlist: int = DEFAULT_SHORTLIST,
    exclude: Sequence[int] = (),
    combine: str = "product",
) -> list[Ranked]:
    """Fill the one blank of each item ``(left, right)``: the ids before it, and after it up to and
    including the sentence's ``<eos>``.  Many items run as one batch (see the module docstring)."""
    if forward is None and backward is None:
        raise ValueError("fill needs a forward or a backward model")
    eos = np.array([eos_id], dtype=np.int32)
    # each direction: what it reads before the blank, and what comes after it in its reading order
    sides = []
    if forward is not None:
        sides.append((forward, [np.concatenate([eos, left]) for left, _ in items], [right for _, right in items]))
    if backward is not None:
        before = [np.concatenate([eos, right[:-1][::-1]]) for _, right in items]
        after = [np.concatenate([left[::-1], eos]) for left, _ in items]
        sides.append((backward, before, after))
    read = [(model, *_read(model, contexts), rest) for model, contexts, rest in sides]
    proposals = [_shortlist(logp, shortlist, exclude) for _, _, logp, _ in read]
    candidates = [np.unique(np.concatenate(ps)) for ps in zip(*proposals)]  # union, ascending ids
    per_side = []  # per direction, per item: log P(sentence) (less its constant part) of each candidate
    for model, state, logp, rest in read:
        tails = _continue(model, state, candidates, rest)
        per_side.append([logp[i, c].astype(np.float64) + tail for i, (c, tail) in enumerate(zip(candidates, tails))])
    totals = [_combine(scores, combine) for scores in zip(*per_side)]
    return [_ranked([(int(w),) for w in c], s) for c, s in zip(candidates, totals)]


def _combine(scores: Sequence[np.ndarray], how: str) -> np.ndarray:
    """One score per candidate from each direction's sentence log-probabilities.

    ``product``: their sum (the product of the probabilities); ``mixture``: the log of the mean of
    the directions' distributions, each renormalised over the candidates.  The product measured
    better (README, rnn fill), so it is the one the CLI uses; the mixture is kept for the benchmark.
    """
    if len(scores) == 1 or how == "product":
        return np.sum(scores, axis=0)
    if how != "mixture":
        raise ValueError(f"unknown combination {how!r}")
    probs = [np.exp(s - s.max()) for s in scores]
    return np.log(np.mean([p / p.sum() for p in probs], axis=0))


# ----------------------------------------------------------- several blanks
def _word_then_piece(
    model: RNNModel, state: State, parent: np.ndarray, words: np.ndarray, piece: np.ndarray, *, keep: bool
) -> Pass:
    """Rows that each read a word and then ``piece``, row r from row ``parent[r]`` of ``state``:
    ``run_rows``'s Pass with log P(piece | ..., word) summed per row in ``totals`` and, with
    ``keep``, each row's state and top output after the piece.  R words x |piece| positions in
    blocks of the working budget, however long the piece and however many the words."""
    R, T = len(words), len(piece)
    return run_rows(
        model, piece, np.zeros(R), words, np.full(R, T + 1), state, state_rows=parent, scored=np.full(R, T), keep=keep
    )


def _beam(
    model: RNNModel, pieces: Sequence[np.ndarray], eos_id: int, shortlist: int, width: int, exclude: Sequence[int]
) -> tuple[list[tuple[int, ...]], np.ndarray]:
    """Left-to-right beam search over the blanks between ``pieces`` under one model.

    Returns the complete fills of the last step and their sentence log-probabilities (less the
    constant log P(P0)).  Every row of a step reads the same piece, so all rows end together and
    the state after the piece is exact for each.
    """
    state, logp = _read(model, [np.concatenate([[eos_id], pieces[0]]).astype(np.int32)])
    fills: list[tuple[int, ...]] = [()]
    scores = np.zeros(1)  # (b,)
    for j, piece in enumerate(pieces[1:], start=1):
        cands = _shortlist(logp, shortlist, exclude)  # (b,) arrays of ids
        parent = np.concatenate([np.full(len(c), b, dtype=np.int64) for b, c in enumerate(cands)])  # (R,)
        words = np.concatenate(cands).astype(np.int32)  # (R,)
        run = _word_then_piece(model, state, parent, words, piece, keep=False)
        row_scores = scores[parent] + logp[parent, words].astype(np.float64)  # (R,)
        if len(piece):
            row_scores += run.totals
        row_fills = [fills[b] + (int(w),) for b, w in zip(parent.tolist(), words.tolist())]
        if j == len(pieces) - 1:
            return row_fills, row_scores
        keep = sorted(range(len(words)), key=lambda r: (-row_scores[r], row_fills[r]))[:width]
        keep_rows = np.array(keep)
        fills, scores = [row_fills[r] for r in keep], row_scores[keep_rows]
        # the kept rows read their word and the piece again for their states: (b, H), not (R, H)
        kept = _word_then_piece(model, state, parent[keep_rows], words[keep_rows], piece, keep=True)
        state = kept.state
        logp = model.log_probs(kept.top)  # (b, V) the word after the piece
    raise ValueError("a line to fill needs at least one blank")


def _sentence_scores(
    model: RNNModel, pieces: Sequence[np.ndarray], fills: Sequence[tuple[int, ...]], eos_id: int
) -> np.ndarray:
    """log P(<eos> P0 w1 P1 ... wn Pn) of each fill (n words): (F,) float64, in bounded memory.

    ``P0`` is read once; then, a block of fills at a time, for each blank every fill's row scores
    its word from the row's state and reads it and the piece after it, scoring the piece
    (``run_rows``).  No (fills x sentence) array is ever made, and the words before the first
    blank are not read F times.
    """
    F = len(fills)
    head = run_rows(model, pieces[0], [0], [eos_id], [len(pieces[0]) + 1], scored=[len(pieces[0])])
    totals = np.full(F, head.totals[0])  # (F,) float64
    words = np.array(fills, dtype=np.int32).reshape(F, -1)  # (F, n)
    step = block_rows(model)
    for lo in range(0, F, step):
        B = min(step, F - lo)
        state, top = _take(head.state, np.zeros(B, dtype=np.int64)), np.repeat(head.top, B, axis=0)  # (B, H)
        for k, piece in enumerate(pieces[1:]):
            w = words[lo : lo + B, k]  # (B,)
            totals[lo : lo + B] += model.target_log_probs(top, w)  # log P(w | the sentence up to the blank)
            run = _word_then_piece(model, state, np.arange(B), w, piece, keep=True)
            totals[lo : lo + B] += run.totals
            state, top = run.state, run.top
    return totals


def fill_blanks(
    forward: RNNModel | None,
    backward: RNNModel | None,
    pieces: Sequence[np.ndarray],
    eos_id: int,
    *,
    shortlist: int = DEFAULT_SHORTLIST,
    beam: int = DEFAULT_BEAM,
    exclude: Sequence[int] = (),
) -> Ranked:
    """Fill the blanks between ``pieces`` (a ``Blanked``'s) jointly: beam search under the forward
    model (the backward one, on the reversed sentence, when there is no forward model), the
    complete fills then scored by every direction there is."""
    if forward is None and backward is None:
        raise ValueError("fill needs a forward or a backward model")
    if forward is not None:
        fills, scores = _beam(forward, pieces, eos_id, shortlist, beam, exclude)
        if backward is not None:
            back = reversed_pieces(pieces, eos_id)
            scores = scores + _sentence_scores(backward, back, [f[::-1] for f in fills], eos_id)
    else:
        fills, scores = _beam(backward, reversed_pieces(pieces, eos_id), eos_id, shortlist, beam, exclude)
        fills = [f[::-1] for f in fills]
    return _ranked(fills, scores)


def fill_lines(
    forward: RNNModel | None,
    backward: RNNModel | None,
    blanked: Sequence[Blanked],
    eos_id: int,
    *,
    shortlist: int = DEFAULT_SHORTLIST,
    beam: int = DEFAULT_BEAM,
    exclude: Sequence[int] = (),
) -> list[Ranked]:
    """Fill every line: the one-blank lines as one batch, the others one beam search each."""
    out: list[Ranked | None] = [None] * len(blanked)
    single = [i for i, b in enumerate(blanked) if b.blanks == 1]
    if single:
        items = [(blanked[i].pieces[0], blanked[i].pieces[1]) for i in single]
        ranked = fill_one_blank(forward, backward, items, eos_id, shortlist=shortlist, exclude=exclude)
        for i, r in zip(single, ranked):
            out[i] = r
    for i, b in enumerate(blanked):
        if b.blanks > 1:
            out[i] = fill_blanks(forward, backward, b.pieces, eos_id, shortlist=shortlist, beam=beam, exclude=exclude)
    return out  # type: ignore[return-value]


# ------------------------------------------------------------- evaluation
def blank_positions(ids: np.ndarray, eos_id: int, sample: int = 0, seed: int = 0) -> np.ndarray:
    """The positions of a token stream to blank: every token that is not <eos>, or ``sample`` of
    them drawn without replacement by a generator seeded with ``seed`` (in stream order)."""
    positions = np.flatnonzero(ids != eos_id)
    if 0 < sample < len(positions):
        positions = np.sort(np.random.default_rng(seed).choice(positions, size=sample, replace=False))
    return positions


def _blanked_batches(ids: np.ndarray, positions: np.ndarray, eos_id: int, chunk: int):
    """Yield (items, golds): each position's (left, right) in its sentence and the word there, up to
    ``chunk`` positions and ``_EVAL_IDS`` ids of left and right sides a batch (at least one position)."""
    bounds = np.flatnonzero(ids == eos_id)
    starts = np.concatenate([[0], bounds + 1])  # sentence i spans starts[i] .. its <eos> (or the end)
    items, golds, held = [], [], 0
    for p in positions.tolist():
        s = starts[np.searchsorted(starts, p, side="right") - 1]
        after = int(np.searchsorted(bounds, p))  # the first <eos> after p, if any
        e = bounds[after] if after < len(bounds) else len(ids)
        if items and (len(items) == chunk or held + e - s > _EVAL_IDS):
            yield items, golds
            items, golds, held = [], [], 0
        items.append((ids[s:p], np.concatenate([ids[p + 1 : e], [eos_id]]).astype(np.int32)))
        golds.append(int(ids[p]))
        held += e - s
    if items:
        yield items, golds


def fill_accuracy(
    forward: RNNModel | None,
    backward: RNNModel | None,
    ids: np.ndarray,
    eos_id: int,
    *,
    sample: int = 0,
    seed: int = 0,
    shortlist: int = EVAL_SHORTLIST,
    chunk: int = _EVAL_CHUNK,
    combine: str = "product",
    progress: Callable[[int, int], None] | None = None,
    unk_id: int | None = None,
) -> dict:
    """Blank each position of a token stream in turn and fill it from its sentence (the ids between
    the <eos> around it): top-1 and top-5 accuracy of the fill, beside the forward model's ordinary
    next-word top-1/top-5 at the same positions (None without a forward model).

    Both rank every word but <eos> (a position is never one) and ``unk_id``: as `rnn predict` and
    `rnn eval`'s top-1/top-5, <unk> is never offered, so an unknown word is never right.
    ``progress(done, total)`` hears how many positions have been filled after each batch.
    """
    ids = np.asarray(ids, dtype=np.int32)
    positions = blank_positions(ids, eos_id, sample, seed)
    fill1 = fill5 = next1 = next5 = done = 0
    never = (eos_id,) if unk_id is None else (eos_id, unk_id)
    for items, golds in _blanked_batches(ids, positions, eos_id, chunk):
        ranked = fill_one_blank(forward, backward, items, eos_id, shortlist=shortlist, exclude=never, combine=combine)
        for r, g in zip(ranked, golds):
            words = [f[0] for f in r.fills[:5]]
            fill1 += bool(words) and words[0] == g
            fill5 += g in words
        if forward is not None:
            _, logp = _read(forward, [np.concatenate([[eos_id], left]).astype(np.int32) for left, _ in items])
            rank = ranks(mask_out_(logp, never), np.array(golds))  # ties to the lower id, as predict lists
            rank[np.isin(golds, never)] = logp.shape[1]  # an unknown word: never a hit
            next1 += int(np.sum(rank == 0))
            next5 += int(np.sum(rank < 5))
        done += len(golds)
        if progress is not None:
            progress(done, len(positions))
    return accuracy_record(len(positions), (fill1, fill5), (next1, next5), forward, backward, shortlist)


def accuracy_record(positions: int, fill: tuple[int, int], following: tuple[int, int], forward, backward, shortlist):
    """The figures of `rnn eval --fill` from the hit counts (top-1, top-5) of the fills and of the
    forward model's next word (None without a forward model), for word and word-piece models alike."""
    n = max(positions, 1)
    has_next = forward is not None
    return {
        "positions": int(positions),
        "top1": fill[0] / n,
        "top5": fill[1] / n,
        "next_word_top1": following[0] / n if has_next else None,
        "next_word_top5": following[1] / n if has_next else None,
        "directions": [d for d, m in (("forward", forward), ("backward", backward)) if m is not None],
        "shortlist": shortlist,
    }
