"""Filling blanks with a word-piece model (rnncli/piecefill.py), against the scores computed by hand.

One tiny two-way piece model is trained for the module (``model.direction: both``); the tests read
float64 copies of its two networks, so that a difference is the code's and not float32 rounding of
products batched otherwise; a backward-only checkpoint is that backward network with no forward one
(and one test loads a real one).
"""

import numpy as np
import pytest

import rnncli
from rnncli import piecefill
from rnncli.fill import blank_positions
from rnncli.generate import read_contexts
from rnncli.model import RNNModel
from rnncli.piecefill import fill_accuracy, fill_lines, sentence_log_probs
from rnncli.tokenizer import EOS, UNK, Vocab
from rnncli.wordsearch import search, word_log_probs

LINES = {
    "one": [["o", "menino", "acordou"], ["em", "casa", ".", EOS]],
    "start": [[], ["mãe", "trouxe", "um", "copo", ".", EOS]],  # fill_accuracy blanks sentence starts too
    "end": [["choveu", "muito", "na"], [EOS]],  # and sentence ends without a full stop
    "two": [["a"], ["trouxe", "um"], ["quente", ".", EOS]],
}


@pytest.fixture(scope="module")
def trained(trained_once):
    """The tiny corpus's two-way piece model (an rnncli.Model), trained once, read only."""
    run = trained_once(tokenizer={"units": "pieces"}, model={"direction": "both"}, train={"epochs": 10})
    return rnncli.load(run / "run")


def _float64(net: RNNModel) -> RNNModel:
    out = RNNModel(net.shape, dtype=np.float64)
    out.load_state_dict(net.state_dict())
    return out


@pytest.fixture(scope="module")
def nets(trained):
    """(forward, backward) float64 copies of the trained networks, and the model's pieces."""
    return _float64(trained.forward), _float64(trained.backward), trained.pieces


def _sentence(net, pieces, words) -> float:
    return float(word_log_probs(net, pieces, words).sum())


def _reversed(words):
    return words[:-1][::-1] + [EOS]


def _searched(net, pieces, words, k) -> list[str]:
    """The search's k best next words after <eos> + words, one query on its own."""
    units = np.concatenate([[Vocab.eos_id], pieces.encode(words)[0]]).astype(np.int32)
    state, top = read_contexts(net, [units])
    return [w for w, _ in search(net, pieces, state, net.log_probs(top), k)[0]]


def _renormalised(scores) -> np.ndarray:
    s = np.asarray(scores, dtype=np.float64)
    p = np.exp(s - s.max())
    return p / p.sum()


# ---------------------------------------------------------------- batched scores
@pytest.mark.parametrize("budget", [None, 7, 40])
def test_batched_sentence_scores_equal_word_log_probs(nets, monkeypatch, budget):
    """Sentences of many lengths (<unk>, a word that takes several units, an empty one) scored in one
    call equal word_log_probs one at a time; budget 7 row-steps puts one sentence per call and runs
    each through time in windows, its state carried; 40 reads a few sentences per call."""
    forward, _, pieces = nets
    if budget is not None:
        monkeypatch.setattr(piecefill, "block_rows", lambda model: budget)
    sentences = [
        ["o", "menino", "acordou", "sentindo-se", "indisposto", ".", EOS],
        [EOS],
        [],
        ["a", UNK, "trouxe", "xilofonezinho", EOS, "choveu"],
        ["ela", "saiu"],
        ["o", "menino", "acordou", "sentindo-se", "indisposto", ".", EOS],
    ]
    assert len(pieces.spell("xilofonezinho")) > 1
    got = sentence_log_probs(forward, pieces, sentences)
    assert len(got) == len(sentences)
    for words, lp in zip(sentences, got):
        want = word_log_probs(forward, pieces, words)
        assert lp.shape == want.shape
        np.testing.assert_allclose(lp, want, rtol=0, atol=1e-9)


# ---------------------------------------------------------------- one blank
@pytest.mark.parametrize("directions", ["both", "backward"])
@pytest.mark.parametrize("k", [1, 6])
@pytest.mark.parametrize("name", ["one", "start", "end"])
def test_one_blank_is_the_renormalised_sentence_scores_of_both_searches_candidates(nets, directions, k, name):
    forward, backward, pieces = nets
    if directions == "backward":
        forward = None
    left, right = LINES[name]
    (ranked,) = fill_lines(forward, backward, pieces, [LINES[name]], shortlist=k, beam=3)
    fills = [f for f, _ in ranked]
    assert all(len(f) == 1 for f in fills) and len(set(fills)) == len(fills)

    # the candidates: the forward search's k best after the left side, the backward one's before the right side
    want = set(_searched(backward, pieces, right[:-1][::-1], k))
    if forward is not None:
        want |= set(_searched(forward, pieces, left, k))
    assert {f[0] for f in fills} == want - {EOS, UNK}

    # each scored as the whole sentence, in every direction there is, then renormalised
    scores = []
    for (w,) in fills:
        words = left + [w] + right
        s = _sentence(backward, pieces, _reversed(words))
        scores.append(s + (_sentence(forward, pieces, words) if forward is not None else 0.0))
    probs = np.array([p for _, p in ranked])
    np.testing.assert_allclose(probs, _renormalised(scores), rtol=0, atol=1e-12)
    assert np.all(np.diff(probs) <= 0), "best first"


def test_a_blank_at_the_start_of_a_sentence_and_lines_filled_together(nets):
    """A line with no words before its blank (fill_accuracy makes them) fills from <eos> alone, and
    lines filled in one call get what each gets alone."""
    forward, backward, pieces = nets
    lines = [LINES["start"], LINES["one"]]
    together = fill_lines(forward, backward, pieces, lines, shortlist=5, beam=2)
    for line, ranked in zip(lines, together):
        (alone,) = fill_lines(forward, backward, pieces, [line], shortlist=5, beam=2)
        assert [f for f, _ in ranked] == [f for f, _ in alone]
        np.testing.assert_allclose([p for _, p in ranked], [p for _, p in alone], rtol=0, atol=1e-12)
    assert set(_searched(forward, pieces, [], 5)) <= {f[0] for f, _ in together[0]}


# ---------------------------------------------------------------- several blanks
def _extensions(model, other, pieces, parts, fill, j, k):
    """By hand: the candidates for blank j after the partial ``fill`` (parts in model's order)."""
    text = list(parts[0])
    for w, part in zip(fill, parts[1:]):
        text += [w] + list(part)
    cands = set(_searched(model, pieces, text, k))
    if other is not None:
        cands |= set(_searched(other, pieces, [w for w in parts[j] if w != EOS][::-1], k))
    return cands - {EOS, UNK}


def _text(parts, fill):
    text = list(parts[0])
    for w, part in zip(fill, parts[1:]):
        text += [w] + list(part)
    return text


@pytest.mark.parametrize("beam, k", [(1, 4), (100, 4), (100, 1)])
def test_two_blanks_beam_against_the_fills_enumerated_by_hand(nets, beam, k):
    """Two blanks: beam 100 keeps every partial fill, so the fills are exactly every first candidate
    followed by every candidate after it; beam 1 keeps the first word whose sentence up to the second
    blank scores best.  Complete fills are ranked by the whole sentence in both directions."""
    forward, backward, pieces = nets
    parts = LINES["two"]
    (ranked,) = fill_lines(forward, backward, pieces, [parts], shortlist=k, beam=beam)
    assert ranked and all(len(f) == 2 for f, _ in ranked)

    firsts = sorted(_extensions(forward, backward, pieces, parts, (), 1, k))
    if beam == 1:
        prefix = {w: _sentence(forward, pieces, _text(parts, (w,))) for w in firsts}
        firsts = [min(firsts, key=lambda w: (-prefix[w], w))]
    want = {(a, b) for a in firsts for b in _extensions(forward, backward, pieces, parts, (a,), 2, k)}
    assert {f for f, _ in ranked} == want

    scores = [
        _sentence(forward, pieces, _text(parts, f)) + _sentence(backward, pieces, _reversed(_text(parts, f)))
        for f, _ in ranked
    ]
    np.testing.assert_allclose([p for _, p in ranked], _renormalised(scores), rtol=0, atol=1e-12)


def test_two_blanks_with_a_backward_model_alone_search_the_reversed_sentence(nets):
    _, backward, pieces = nets
    parts, k = LINES["two"], 3
    (ranked,) = fill_lines(None, backward, pieces, [parts], shortlist=k, beam=100)
    back = [["quente"][::-1], ["um", "trouxe"], ["a", EOS]]  # the line read right to left
    firsts = _extensions(backward, None, pieces, back, (), 1, k)
    want = {(b, a) for a in firsts for b in _extensions(backward, None, pieces, back, (a,), 2, k)}
    assert {f for f, _ in ranked} == want  # fills given in the line's own order
    scores = [_sentence(backward, pieces, _reversed(_text(parts, f))) for f, _ in ranked]
    np.testing.assert_allclose([p for _, p in ranked], _renormalised(scores), rtol=0, atol=1e-12)


def test_lines_that_cannot_be_filled_are_refused(nets):
    forward, backward, pieces = nets
    with pytest.raises(ValueError, match="needs a forward or a backward model"):
        fill_lines(None, None, pieces, [LINES["one"]], shortlist=3, beam=1)
    with pytest.raises(ValueError, match="at least one blank"):
        fill_lines(forward, backward, pieces, [[["o", EOS]]], shortlist=3, beam=1)
    with pytest.raises(ValueError, match="must end with <eos>"):
        fill_lines(forward, backward, pieces, [[["o"], ["menino"]]], shortlist=3, beam=1)


# ---------------------------------------------------------------- eval --fill
def _line(tokens, p):
    """By hand: position p of a token stream blanked in its sentence (the words between the <eos> around it)."""
    s = max([i + 1 for i in range(p) if tokens[i] == EOS], default=0)
    e = min([i for i in range(p, len(tokens)) if tokens[i] == EOS], default=len(tokens))
    return [tokens[s:p], tokens[p + 1 : e] + [EOS]]


@pytest.mark.parametrize("directions", ["both", "backward"])
def test_fill_accuracy_counts_what_fill_lines_and_the_search_give(nets, directions):
    forward, backward, pieces = nets
    if directions == "backward":
        forward = None
    tokens = ["o", "menino", "acordou", ".", EOS, "a", "mãe", "trouxe", UNK, "chá", EOS, "choveu", "muito"]
    told = []
    got = fill_accuracy(
        forward, backward, pieces, tokens, shortlist=4, progress=lambda done, total: told.append((done, total))
    )

    positions = [i for i, t in enumerate(tokens) if t != EOS]
    fill1 = fill5 = next1 = next5 = 0
    for p in positions:
        line = _line(tokens, p)
        (ranked,) = fill_lines(forward, backward, pieces, [line], shortlist=4, beam=1)
        top = [f[0] for f, _ in ranked[:5]]
        fill1 += top[0] == tokens[p]
        fill5 += tokens[p] in top
        if forward is not None:
            after = _searched(forward, pieces, line[0], 5)
            next1 += after[0] == tokens[p]
            next5 += tokens[p] in after
    n = len(positions)
    assert got == {
        "positions": n,
        "top1": fill1 / n,
        "top5": fill5 / n,
        "next_word_top1": next1 / n if forward is not None else None,
        "next_word_top5": next5 / n if forward is not None else None,
        "directions": ["forward", "backward"] if forward is not None else ["backward"],
        "shortlist": 4,
    }
    assert fill5 > 0, "the text is the training text: some words come back"
    assert told == [(n, n)]


def test_fill_accuracy_samples_the_positions_fill_py_draws(nets, monkeypatch):
    """``sample`` draws as fill.blank_positions does on a word model's ids: the same positions."""
    forward, backward, pieces = nets
    tokens = ["o", "menino", "acordou", ".", EOS, "a", "mãe", "trouxe", "um", "chá", EOS, "choveu"]
    seen = []
    real = piecefill.fill_lines

    def spy(fw, bw, pc, lines, **kw):
        seen.extend(lines)
        return real(fw, bw, pc, lines, **kw)

    monkeypatch.setattr(piecefill, "fill_lines", spy)
    got = fill_accuracy(forward, backward, pieces, tokens, sample=3, seed=5, shortlist=2)
    ids = np.array([Vocab.eos_id if t == EOS else 7 + i for i, t in enumerate(tokens)])  # any other ids
    want = blank_positions(ids, Vocab.eos_id, 3, 5)
    assert got["positions"] == 3
    assert seen == [_line(tokens, int(p)) for p in want]


def test_a_backward_only_checkpoint_fills_and_is_evaluated(trained_once):
    """A checkpoint trained with model.direction: backward loads with no forward network: fill_lines
    and fill_accuracy take it as it is (next-word accuracy needs a forward model: None)."""
    run = trained_once(tokenizer={"units": "pieces"}, model={"direction": "backward"}, train={"epochs": 4})
    m = rnncli.load(run / "run")
    assert m.forward is None and m.backward is not None
    (ranked,) = fill_lines(m.forward, m.backward, m.pieces, [LINES["two"]], shortlist=3, beam=2)
    assert ranked and all(len(f) == 2 for f, _ in ranked)
    assert abs(sum(p for _, p in ranked) - 1) < 1e-9
    got = fill_accuracy(m.forward, m.backward, m.pieces, ["o", "menino", "acordou", ".", EOS], shortlist=3)
    assert got["positions"] == 4 and got["directions"] == ["backward"]
    assert got["next_word_top1"] is None and got["next_word_top5"] is None
