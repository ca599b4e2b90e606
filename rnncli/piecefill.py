"""Filling blanks with a word-piece model: fill.py's method, with whole words found by a search.

A word-piece model (``tokenizer.units: pieces``) reads units, but a blank is filled with a word, and
there is no list of words to shortlist from: the candidates are the words that the search over
pieces finds (``wordsearch.search``), and a word's probability is wordsearch.py's (its units, the
first given that a word begins, times the boundary after it).  A line is given as the words of the
text between its blanks, ``P0 _ P1 _ ... _ Pn``, the last closed by ``<eos>`` (``fill.Blanked.tokens``).

One blank, ``P0 _ P1``:

- candidates: the forward model's ``shortlist`` most probable next words after ``<eos> P0``, and
  the backward model's ``shortlist`` most probable words after ``<eos> rev(P1)`` (``P1`` without its
  ``<eos>``, its words in reverse order, each still spelled left to right, as
  ``twoway.reverse_stream`` gives a backward model its text).  ``<eos>`` is never a candidate, and
  ``<unk>`` never is either: the search offers no ``<unk>``.
- each candidate ``w`` is rescored as the whole sentence: the forward model's log P(<eos> P0 w P1)
  (the sum of ``wordsearch.word_log_probs``), plus, with a backward model, the backward one's of the
  same words read right to left, log P(<eos> rev(P1) w rev(P0) <eos>): the product of the two
  sentence probabilities, fill.py's ``product``.  The probabilities shown are those scores
  renormalised over the candidates that were scored.

Several blanks: a beam search from left to right keeps ``beam`` partial fills; at blank j each is
extended by the forward search's shortlist after the sentence so far (its fills included) and the
backward search's shortlist before the text between blank j and the next one (read reversed after
``<eos>``, the same for every partial fill); the extensions are scored by the forward model on the
sentence up to the next blank (the end for the last blank), as fill.py's beam does, and the
complete fills of the last blank are ranked by the whole sentence in every direction.  A
backward-only checkpoint runs the same search on the sentence read right to left.

Every step runs all lines (and all their partial fills) together: the searches in batches of
queries, and the scores through ``continuation_log_probs``, which is ``word_log_probs`` for many
word sequences at once, each going on from a context already read (the left side, which the
search read; for the backward model, the right side), padded to a common length, a group of rows
per network call, in bounded memory.  A sentence's log-probability is its context's plus its
continuation's, as ``word_log_probs`` of the whole sentence gives it (to float64 rounding on a
float64 network; a float32 network's batched products round otherwise than one row's, by about
1e-6 in a log-probability); the context's part is the same for every fill of a line and cancels
when the scores are renormalised, so it is never computed.  ``sentence_log_probs`` is the same
batched scoring from ``<eos>``, for whole sentences.

Pure library: no click, no I/O.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from .fill import accuracy_record, blank_positions
from .generate import WORK_FLOATS, block_rows, read_contexts
from .model import RNNModel, State
from .pieces import Pieces
from .tokenizer import EOS, UNK, Vocab
from .wordsearch import log_begin, search

#: positions blanked per call of fill_lines in fill_accuracy (how often progress is told)
_EVAL_CHUNK = 256

Line = Sequence[Sequence[str]]  # the word lists between a line's blanks, the last closed by <eos>
Ranked = list[tuple[tuple[str, ...], float]]  # fills best first: (one word per blank, probability)


# ------------------------------------------------------------ sentence scores
def sentence_log_probs(model: RNNModel, pieces: Pieces, sentences: Sequence[Sequence[str]]) -> list[np.ndarray]:
    """``wordsearch.word_log_probs`` of many word sequences: each word's log-probability given the
    words before it, read after ``<eos>`` from a zero state, (len(words),) float64 per sentence.

    ``<eos>`` is read once, then every sentence goes on from there (``continuation_log_probs``)."""
    top, state, _ = model.hidden(np.array([[Vocab.eos_id]], dtype=np.int32), model.initial_state(1))  # (1, 1, H)
    return continuation_log_probs(model, pieces, state, top[0], np.zeros(len(sentences), dtype=np.int64), sentences)


def continuation_log_probs(
    model: RNNModel,
    pieces: Pieces,
    state: State,
    top: np.ndarray,
    parent: np.ndarray,
    words: Sequence[Sequence[str]],
) -> list[np.ndarray]:
    """Each word's log-probability given the words before it, for word sequences that go on from
    contexts already read: row r reads ``words[r]`` from row ``parent[r]`` of ``state`` and of ``top``
    ((Q, H): the top output after each context, whose distribution is that of row r's first unit).
    (len(words[r]),) float64 per row; added to ``sentence_log_probs`` of its context, it gives that
    of the context followed by the words, as ``word_log_probs`` computes it (the boundary after the
    context's last word is the one its next word is divided by).

    Rows are sorted by length and read in groups: a group's units are padded with ``<eos>`` after
    each end into (T, B) ids, one ``model.hidden`` call per group (a row longer than the working
    budget goes through time in windows, its state carried), and only the outputs of real steps are
    turned into log-probabilities, so that no call holds more than ``generate.block_rows``
    row-steps, nor more than ``generate.WORK_FLOATS`` floats of (rows, V) log-probabilities.
    Padding comes after a row's end only, so it never changes a score; a row's score does not
    depend on the rows read beside it (but for float32 rounding of batched products).
    """
    unk = pieces.vocab.itos[Vocab.unk_id]
    # per row: its units (N_r,), the first unit of each word (W_r,), and which words are followed by
    # a boundary factor (all but <eos> and <unk>, after which a word must begin)
    encoded = [(*pieces.encode(w), np.array([x not in (EOS, unk) for x in w], dtype=bool)) for w in words]
    lengths = np.fromiter((len(e[0]) for e in encoded), dtype=np.int64, count=len(encoded))  # (R,)
    parent = np.asarray(parent, dtype=np.int64)
    out: list[np.ndarray] = [np.zeros(0) for _ in words]
    budget = _budget(model)
    order = [int(r) for r in np.argsort(-lengths, kind="stable") if lengths[r] > 0]  # longest first
    at = 0
    while at < len(order):
        group = np.array(order[at : at + max(1, budget // (int(lengths[order[at]]) + 1))])
        at += len(group)
        rows = parent[group]
        start = [tuple(a[rows] for a in layer) for layer in state]
        for r, per_word in zip(group, _score_group(model, pieces, start, top[rows], [encoded[r] for r in group])):
            out[r] = per_word
    return out


def _budget(model: RNNModel) -> int:
    """Row-steps per network call: within ``generate.block_rows``, and (rows, V) log-probabilities
    within ``generate.WORK_FLOATS``."""
    return min(block_rows(model), max(1, WORK_FLOATS // model.shape.vocab_size))


def _score_group(model: RNNModel, pieces: Pieces, state: State, top0: np.ndarray, encoded: list) -> list[np.ndarray]:
    """Per-word log-probabilities of B rows read side by side (``continuation_log_probs``), each from
    its row of ``state``, whose top output ``top0`` (B, H) gives the distribution of its first unit."""
    B = len(encoded)
    n = np.array([len(e[0]) for e in encoded])  # (B,) units per row
    T = int(n.max())
    inputs = np.full((T, B), Vocab.eos_id, dtype=np.int32)  # (T, B) the units, then <eos> padding
    targets = np.full((T + 1, B), -1, dtype=np.int64)  # (T+1, B) the unit that output t predicts; -1: none
    wants_begin = np.zeros((T + 1, B), dtype=bool)  # (T+1, B) where a word starts, and after the last one
    for b, (units, starts, _) in enumerate(encoded):
        inputs[: n[b], b] = units
        targets[: n[b], b] = units
        wants_begin[starts, b] = True
        wants_begin[n[b], b] = True
    real = np.arange(T + 1)[:, None] <= n[None, :]  # (T+1, B) a row's outputs: top0, then one per unit read
    unit_lp = np.zeros((T + 1, B))  # (T+1, B) float64 log P(unit)
    begin_lp = np.zeros((T + 1, B))  # (T+1, B) float64 log P(the next unit begins a word)

    def score(outputs: np.ndarray, t0: int) -> None:  # outputs (w, B, H): outputs t0 .. t0 + w - 1
        tt, bb = np.nonzero(real[t0 : t0 + len(outputs)])  # (k,) the real ones, in the order outputs[tt, bb] has
        lp = model.log_probs(outputs[tt, bb])  # (k, V) in the model's dtype, as word_log_probs has them
        tt = tt + t0
        tg = targets[tt, bb]  # (k,)
        has = tg >= 0
        unit_lp[tt[has], bb[has]] = lp[np.flatnonzero(has), tg[has]].astype(np.float64)
        wb = wants_begin[tt, bb]
        begin_lp[tt[wb], bb[wb]] = log_begin(lp[wb].astype(np.float64), pieces.begins)

    score(top0[None], 0)
    window = max(1, _budget(model) // B)
    for t0 in range(0, T, window):
        outputs, state, _ = model.hidden(inputs[t0 : t0 + window], state)  # (w, B, H) after each unit
        score(outputs, t0 + 1)
    out = []
    for b, (_, starts, plain) in enumerate(encoded):
        begin = begin_lp[np.append(starts, n[b]), b]  # at each word's start, and at the end
        per_word = np.add.reduceat(unit_lp[: n[b], b], starts) - begin[:-1]
        per_word[plain] += begin[1:][plain]  # the boundary after the word
        out.append(per_word)
    return out


def _totals(per_word: list[np.ndarray]) -> np.ndarray:
    return np.array([x.sum() for x in per_word], dtype=np.float64)


# ------------------------------------------------------------ the searches
def _read(model: RNNModel, pieces: Pieces, contexts: Sequence[Sequence[str]]) -> tuple[State, np.ndarray]:
    """The state and the top output (Q, H) after each word sequence read after <eos>."""
    units = [np.concatenate([[Vocab.eos_id], pieces.units(c)]).astype(np.int32) for c in contexts]
    return read_contexts(model, units)


def _search(model: RNNModel, pieces: Pieces, state: State, top: np.ndarray, k: int) -> list[list[str]]:
    """The k most probable next words (never <eos> or <unk>) from each row of a state, best first,
    ranked in the model's precision as `rnn predict` ranks them; rows in blocks whose (rows, V)
    log-probabilities stay within the working budget."""
    step = max(1, min(256, WORK_FLOATS // model.shape.vocab_size))
    out: list[list[str]] = []
    for lo in range(0, len(top), step):
        rows = np.arange(lo, min(lo + step, len(top)))
        part = [tuple(a[rows] for a in layer) for layer in state]
        found = search(model, pieces, part, model.log_probs(top[rows]), k, eos=False)
        out += [[w for w, _ in words] for words in found]
    return out


# ------------------------------------------------------------ lines
def _text(parts: Line, fill: Sequence[str]) -> list[str]:
    """The words of a line up to the blank after the fills: P0 f1 P1 ... fj Pj."""
    words = list(parts[0])
    for word, part in zip(fill, parts[1:]):
        words.append(word)
        words += part
    return words


def _reversed_line(parts: Line) -> list[list[str]]:
    """The line read right to left: ``P0 _ P1 <eos>`` -> ``rev(P1) _ rev(P0) <eos>``."""
    body = [list(p) for p in parts]
    body[-1] = body[-1][:-1]  # the closing <eos>, which stays at the end
    out = [p[::-1] for p in reversed(body)]
    out[-1].append(EOS)
    return out


def _reversed_sentence(words: Sequence[str]) -> list[str]:
    """A sentence closed by <eos> read right to left, closed by <eos> again."""
    return list(words[:-1])[::-1] + [EOS]


def _ranked(fills: list[tuple[str, ...]], scores: np.ndarray) -> Ranked:
    """Best first (ties: the fills in alphabetical order), the scores renormalised over the fills."""
    if not fills:
        return []
    order = sorted(range(len(fills)), key=lambda j: (-scores[j], fills[j]))
    s = scores[order]
    p = np.exp(s - s.max())
    p /= p.sum()
    return [(fills[j], float(q)) for j, q in zip(order, p)]


def _check(lines: Sequence[Line]) -> None:
    for i, parts in enumerate(lines):
        if len(parts) < 2:
            raise ValueError(f"line {i + 1}: a line to fill needs at least one blank")
        if not len(parts[-1]) or parts[-1][-1] != EOS:
            raise ValueError(f"line {i + 1}: the words after the last blank must end with {EOS}")


def fill_lines(
    forward: RNNModel | None,
    backward: RNNModel | None,
    pieces: Pieces,
    lines: Sequence[Line],
    *,
    shortlist: int,
    beam: int,
    show_unk: bool = False,
) -> list[Ranked]:
    """All the fills of each line, best first, as (one word per blank, probability).

    ``lines[i]``: the word lists of the text between line i's blanks (blanks = len - 1), the last
    closed by ``<eos>``.  Candidates, scores and the beam over several blanks: the module docstring;
    the probabilities are the fills' combined scores renormalised over the fills scored.  Every line
    runs in the same batches.  ``show_unk`` is accepted for the word models' signature: the search
    over pieces never offers ``<unk>``, so it changes nothing.
    """
    del show_unk
    if forward is None and backward is None:
        raise ValueError("fill needs a forward or a backward model")
    _check(lines)
    if forward is not None:
        return _beam(forward, backward, pieces, [[list(p) for p in parts] for parts in lines], shortlist, beam)
    ranked = _beam(backward, None, pieces, [_reversed_line(parts) for parts in lines], shortlist, beam)
    return [[(fill[::-1], p) for fill, p in r] for r in ranked]


def _beam(
    model: RNNModel, other: RNNModel | None, pieces: Pieces, lines: list[list[list[str]]], shortlist: int, beam: int
) -> list[Ranked]:
    """The beam search of the module docstring, for every line at once, in ``model``'s reading
    order; ``other`` reads the sentence the other way (proposes words and scores complete fills).

    Each kept fill carries the log-probability of the sentence up to its next blank, so that an
    extension only reads its word and the text up to the blank after it, from the state after the
    fill's text (which the search read anyway); a complete fill, read the other way, goes on from
    the state after the text past the last blank, which the other search read for that blank.
    The scores leave out log P(<eos> P0), and the other way log P(<eos> rev(Pn)): the same for every
    fill of a line, they cancel when the scores are renormalised."""
    out: list[Ranked] = [[] for _ in lines]
    # line -> (its kept partial fills, (F,) the log-probability of the sentence up to each one's next blank)
    partial = {i: ([()], np.zeros(1)) for i in range(len(lines))}
    j = 1
    while partial:
        live = list(partial)
        queries = [(i, f) for i in live for f in partial[i][0]]
        prefix = np.concatenate([partial[i][1] for i in live])  # (Q,)
        state, top = _read(model, pieces, [_text(lines[i], f) for i, f in queries])
        proposed = _search(model, pieces, state, top, shortlist)
        if other is not None:  # the words before the text from blank j to the next one, read reversed
            rights = [[w for w in lines[i][j] if w != EOS][::-1] for i in live]
            back_state, back_top = _read(other, pieces, rights)
            before = _search(other, pieces, back_state, back_top, shortlist)
        slot = {i: s for s, i in enumerate(live)}
        ext_query, ext_fill = [], []  # one entry per extension of a kept fill by a candidate
        for q, ((i, f), words) in enumerate(zip(queries, proposed)):
            cands = dict.fromkeys(words + (before[slot[i]] if other is not None else []))
            cands.pop(EOS, None)
            cands.pop(UNK, None)
            ext_query += [q] * len(cands)
            ext_fill += [f + (w,) for w in cands]
        parent = np.array(ext_query, dtype=np.int64)  # (R,)
        ext_line = [queries[q][0] for q in ext_query]
        tails = [[f[-1], *lines[i][j]] for i, f in zip(ext_line, ext_fill)]  # the word, and the text after it
        scores = prefix[parent] + _totals(continuation_log_probs(model, pieces, state, top, parent, tails))
        done = np.array([r for r, i in enumerate(ext_line) if len(lines[i]) - 1 == j], dtype=np.int64)
        if other is not None and done.size:  # read right to left, the sentence starts with the words the
            ends = [slot[ext_line[r]] for r in done]  # other model read for this (the last) blank
            wholes = [_reversed_sentence(_text(lines[ext_line[r]], ext_fill[r])) for r in done]
            back_tails = [whole[len(rights[e]) :] for whole, e in zip(wholes, ends)]
            back_rows = np.array(ends, dtype=np.int64)
            scores[done] += _totals(continuation_log_probs(other, pieces, back_state, back_top, back_rows, back_tails))
        by_line: dict[int, list[int]] = {i: [] for i in live}
        for r, i in enumerate(ext_line):
            by_line[i].append(r)
        for i, rows in by_line.items():
            if len(lines[i]) - 1 == j or not rows:
                out[i] = _ranked([ext_fill[r] for r in rows], scores[rows])
                del partial[i]
            else:
                rows.sort(key=lambda r: (-scores[r], ext_fill[r]))
                partial[i] = ([ext_fill[r] for r in rows[:beam]], scores[rows[:beam]])
        j += 1
    return out


# ------------------------------------------------------------- evaluation
def fill_accuracy(
    forward: RNNModel | None,
    backward: RNNModel | None,
    pieces: Pieces,
    tokens: Sequence[str],
    *,
    sample: int = 0,
    seed: int = 0,
    shortlist: int = 30,
    progress: Callable[[int, int], None] | None = None,
) -> dict:
    """``fill.fill_accuracy`` for a word-piece model: blank each word of a token stream that is not
    ``<eos>`` (or ``sample`` of them, drawn as ``fill.blank_positions`` draws them) and fill it from
    its sentence (the words between the ``<eos>`` around it) with ``fill_lines``: top-1 and top-5
    accuracy of the whole word, beside the forward search's next-word top-1/top-5 at the same
    positions (``<eos>`` not offered, as the fill never offers it; None without a forward model).

    ``<unk>`` is never offered, so a ``<unk>`` in the text is never a hit.  ``progress(done, total)``
    hears how many positions have been filled after each batch.
    """
    tokens = list(tokens)
    is_eos = np.array([t == EOS for t in tokens], dtype=np.int32)  # (N,) 1 at each <eos>
    positions = blank_positions(is_eos, 1, sample, seed)
    bounds = np.flatnonzero(is_eos)  # sentence ends
    fill1 = fill5 = next1 = next5 = done = 0
    for lo in range(0, len(positions), _EVAL_CHUNK):
        chunk = positions[lo : lo + _EVAL_CHUNK].tolist()
        lines, golds = [], []
        for p in chunk:
            before = int(np.searchsorted(bounds, p))  # the <eos> after p is bounds[before], if any
            s = int(bounds[before - 1]) + 1 if before > 0 else 0
            e = int(bounds[before]) if before < len(bounds) else len(tokens)
            lines.append([tokens[s:p], tokens[p + 1 : e] + [EOS]])
            golds.append(tokens[p])
        ranked = fill_lines(forward, backward, pieces, lines, shortlist=shortlist, beam=1)
        for r, gold in zip(ranked, golds):
            words = [fill[0] for fill, _ in r[:5]]
            fill1 += bool(words) and words[0] == gold
            fill5 += gold in words
        if forward is not None:
            state, top = _read(forward, pieces, [left for left, _ in lines])
            for words, gold in zip(_search(forward, pieces, state, top, 5), golds):
                next1 += bool(words) and words[0] == gold
                next5 += gold in words
        done += len(golds)
        if progress is not None:
            progress(done, len(positions))
    return accuracy_record(len(positions), (fill1, fill5), (next1, next5), forward, backward, shortlist)
