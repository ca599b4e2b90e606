"""Sampling whole words from a word-piece model (rnncli/piecegen.py), against the model stepped by hand.

One tiny piece model is trained per module.  It spells nearly every word with one unit, so the
rules are also checked on float64 models of its shape with random weights ("scrambled"), whose
biases can be shifted to make the rare cases common: words of many units, <unk>, <eos>, a lone ▁.
"""

import numpy as np
import pytest

import rnncli
from rnncli import piecegen
from rnncli.generate import prompt_rngs
from rnncli.model import RNNModel
from rnncli.piecegen import sample_spellings, sample_words
from rnncli.tokenizer import EOS, UNK, Vocab

PROMPTS = ["o menino", "ela", "", "a mãe trouxe um copo", "choveu muito na"]
WHOLE = ([Vocab.unk_id], [Vocab.eos_id])  # the spellings of the words of one unit


@pytest.fixture(scope="module")
def trained(trained_once):
    """The tiny corpus's model with tokenizer.units: pieces (an rnncli.Model), trained once."""
    return rnncli.load(trained_once(tokenizer={"units": "pieces"}) / "run")


@pytest.fixture(scope="module")
def pieces(trained):
    return trained.pieces


@pytest.fixture(scope="module")
def contexts(trained):
    return [trained._context(trained.tokenize_prompt(p)) for p in PROMPTS]


@pytest.fixture(scope="module")
def scrambled(trained):
    """A function: scrambled(seed, shift) is a float64 model of the trained one's shape with random
    weights (uniform in +-1), whose distributions change from step to step: words of one unit and
    of many (up to the cap), <eos> between them.  Units that begin a word get +1 on their output
    bias (so that words end often enough); ``shift`` (unit -> amount) adds more."""

    def make(seed: int, shift: dict[int, float] | None = None) -> RNNModel:
        model = RNNModel(trained.forward.shape, dtype=np.float64)
        model.init_params(np.random.default_rng(seed), 1.0)
        bias = model.params["decoder.bias"]
        bias[trained.pieces.begins] += 1.0
        for unit, amount in (shift or {}).items():
            bias[unit] += amount
        return model

    return make


def rngs(seed: int, count: int = len(PROMPTS)) -> list[np.random.Generator]:
    return prompt_rngs(seed, 0, count)


def log_begin_by_hand(lp: np.ndarray, begins: np.ndarray) -> float:
    return float(np.log(np.exp(lp[begins]).sum()))


def word_log_probs(model: RNNModel, begins: np.ndarray, context: np.ndarray, spellings: list[list[int]]) -> list[float]:
    """Each word's log-probability after the context and the words before it, by wordsearch's definition:
    P(u1) / P(B) * P(u2 | u1) ... P(un | .. un-1) * P(B | .. un), no boundary after <eos> or <unk>."""
    seq = np.concatenate([context] + [np.array(units) for units in spellings]).astype(np.int32)
    top, _, _ = model.hidden(seq[:, None], model.initial_state(1))  # (T, 1, H)
    lp = model.log_probs(top[:, 0]).astype(np.float64)  # (T, V): lp[t] is the distribution of seq[t + 1]
    out, at = [], len(context)  # at: the place in seq of the word's first unit
    for units in spellings:
        value = lp[at - 1, units[0]] - log_begin_by_hand(lp[at - 1], begins)
        value += sum(lp[at - 1 + j, u] for j, u in enumerate(units) if j > 0)
        if units not in WHOLE:
            value += log_begin_by_hand(lp[at + len(units) - 1], begins)
        out.append(float(value))
        at += len(units)
    return out


def greedy_by_hand(model: RNNModel, pieces, context: np.ndarray, n: int, max_units: int) -> list[str]:
    """The most probable allowed unit at every step, for one context, stepping one unit at a time."""
    begins = pieces.begins
    top, state, _ = model.hidden(context[:, None].astype(np.int32), model.initial_state(1))
    words, word = [], []
    while True:
        lp = model.log_probs(top[-1])[0].astype(np.float64)  # (V,)
        allowed = np.ones(len(lp), dtype=bool)
        allowed[Vocab.unk_id] = False
        if not word or len(word) >= max_units:
            allowed &= begins
        elif word == [pieces.mark_id]:
            allowed &= ~begins
        u = int(np.flatnonzero(allowed)[np.argmax(lp[allowed])])  # the first maximum: the lower id
        if begins[u] and word:
            words.append(pieces.join(word))
            word = []
            if len(words) == n:
                return words
        word.append(u)
        if [u] in WHOLE:
            words.append(pieces.join(word))
            word = []
            if len(words) == n:
                return words
        top, state, _ = model.hidden(np.array([[u]], dtype=np.int32), state)


def words_only(found):
    return [words for words, _ in found]


# ---------------------------------------------------------------- (a) seeds and batching
@pytest.mark.parametrize("stop_at_eos", [False, True])
def test_a_seed_gives_the_same_words_whatever_the_batch(scrambled, pieces, contexts, monkeypatch, stop_at_eos):
    model, opts = scrambled(1), dict(stop_at_eos=stop_at_eos, show_unk=True)
    together = sample_words(model, pieces, contexts, 8, rngs(5), **opts)
    assert together == sample_words(model, pieces, contexts, 8, rngs(5), **opts)
    alone = [sample_words(model, pieces, [c], 8, prompt_rngs(5, i, 1), **opts)[0] for i, c in enumerate(contexts)]
    assert words_only(together) == words_only(alone)
    np.testing.assert_allclose([lp for _, lp in together], [lp for _, lp in alone], rtol=0, atol=1e-9)
    monkeypatch.setattr(piecegen, "BATCH", 2)  # blocks of two contexts
    assert words_only(sample_words(model, pieces, contexts, 8, rngs(5), **opts)) == words_only(together)
    assert words_only(sample_words(model, pieces, contexts, 8, rngs(6), **opts)) != words_only(together)


def test_a_the_trained_model_too(trained, pieces, contexts):
    model = trained.forward
    together = sample_words(model, pieces, contexts, 10, rngs(7))
    assert together == sample_words(model, pieces, contexts, 10, rngs(7))
    alone = [sample_words(model, pieces, [c], 10, prompt_rngs(7, i, 1))[0] for i, c in enumerate(contexts)]
    assert words_only(together) == words_only(alone)


# ---------------------------------------------------------------- (b) n whole words
@pytest.mark.parametrize("which", ["trained", "scrambled"])
def test_b_n_words_each_a_word(trained, scrambled, pieces, contexts, which):
    model = trained.forward if which == "trained" else scrambled(2)
    spelled = sample_spellings(model, pieces, contexts, 12, rngs(11))
    for (spellings, lp), (words, lp_words) in zip(spelled, sample_words(model, pieces, contexts, 12, rngs(11))):
        assert len(words) == 12 and lp == lp_words
        assert words == [pieces.join(units) for units in spellings]
        for w, units in zip(words, spellings):
            # one unit that begins the word, then units that continue it
            assert pieces.begins[units[0]] and not pieces.begins[units[1:]].any(), (w, units)
            assert w and "\u2581" not in w and len(units) <= piecegen.MAX_UNITS, (w, units)
            assert pieces.join(pieces.spell(w)) == w
    if which == "scrambled":
        assert max(len(units) for spellings, _ in spelled for units in spellings) > 2


def test_b_a_word_holds_at_most_max_units(scrambled, pieces, contexts):
    model = scrambled(2)
    capped = sample_spellings(model, pieces, contexts, 10, rngs(3), max_units=2)
    assert max(len(units) for spellings, _ in capped for units in spellings) == 2
    free = sample_spellings(model, pieces, contexts, 10, rngs(3))
    assert max(len(units) for spellings, _ in free for units in spellings) > 2


def test_b_a_lone_word_mark_is_no_word(scrambled, pieces, contexts):
    assert pieces.mark_id is not None
    model = scrambled(3, shift={pieces.mark_id: 30.0})  # ▁ is nearly certain at every step
    for temperature in (0.0, 1.0):
        for spellings, _ in sample_spellings(model, pieces, contexts, 6, rngs(4), temperature=temperature):
            assert all(units[0] == pieces.mark_id and len(units) > 1 for units in spellings), spellings


# ---------------------------------------------------------------- (c) the log-probability
@pytest.mark.parametrize("stop_at_eos", [False, True])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_c_log_probability_is_the_sum_of_the_words(scrambled, pieces, contexts, seed, stop_at_eos):
    model = scrambled(seed, shift={Vocab.unk_id: 3.0, Vocab.eos_id: 3.0})  # words of one unit among the others
    opts = dict(temperature=0.7, top_k=200, show_unk=True, stop_at_eos=stop_at_eos)
    found = sample_spellings(model, pieces, contexts, 7, rngs(seed), **opts)
    for context, (spellings, lp) in zip(contexts, found):
        assert lp == pytest.approx(sum(word_log_probs(model, pieces.begins, context, spellings)), abs=1e-6)
    spellings = [units for s, _ in found for units in s]
    assert any(units in WHOLE for units in spellings) and max(len(units) for units in spellings) > 2


def test_c_the_trained_float32_model_too(trained, pieces, contexts):
    model = trained.forward
    for context, (spellings, lp) in zip(contexts, sample_spellings(model, pieces, contexts, 10, rngs(8))):
        assert lp == pytest.approx(sum(word_log_probs(model, pieces.begins, context, spellings)), abs=1e-4)


# ---------------------------------------------------------------- (d) greedy
@pytest.mark.parametrize("max_units", [piecegen.MAX_UNITS, 3])
@pytest.mark.parametrize("seed", [1, 4])
def test_d_temperature_zero_is_greedy(scrambled, pieces, contexts, seed, max_units):
    model = scrambled(seed)
    found = sample_words(model, pieces, contexts, 9, [], temperature=0.0, max_units=max_units)
    for context, (words, _) in zip(contexts, found):
        assert words == greedy_by_hand(model, pieces, context, 9, max_units)
    assert sample_words(model, pieces, contexts, 9, rngs(1), temperature=0.0, max_units=max_units) == found


# ---------------------------------------------------------------- (e) <unk> and <eos>
def test_e_unk_only_with_show_unk(scrambled, pieces, contexts):
    model = scrambled(5, shift={Vocab.unk_id: 4.0})  # <unk> would be drawn often
    for temperature in (1.0, 0.0):
        hidden = sample_words(model, pieces, contexts, 10, rngs(2), temperature=temperature)
        assert not any(UNK in words for words in words_only(hidden))
        shown = sample_words(model, pieces, contexts, 10, rngs(2), temperature=temperature, show_unk=True)
        assert any(UNK in words for words in words_only(shown))  # the shift does make it drawn


def test_e_stop_at_eos_ends_at_the_first_eos(scrambled, pieces, contexts):
    model = scrambled(6, shift={Vocab.eos_id: 2.0})
    stopping = sample_words(model, pieces, contexts, 12, rngs(9), stop_at_eos=True)
    going_on = sample_words(model, pieces, contexts, 12, rngs(9))
    stopped = 0
    for (words, lp), (all_words, all_lp) in zip(stopping, going_on):
        assert len(all_words) == 12
        if EOS in all_words:  # the same draws up to the first <eos>, which ends the continuation and is kept
            assert words == all_words[: all_words.index(EOS) + 1]
            stopped += len(words) < 12
        else:
            assert words == all_words and lp == pytest.approx(all_lp, abs=1e-9)
    assert stopped  # some continuation did stop early
    assert sum(w == EOS for words in words_only(going_on) for w in words) > len(PROMPTS)  # <eos> is a word among others
