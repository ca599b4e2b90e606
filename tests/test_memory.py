"""Memory that does not grow with the input (issue 18): every pass over many long sequences goes
through rows and time steps in blocks of a fixed working budget (`generate.WORK_FLOATS`).

Two kinds of tests:

* the blocked passes give the answers of one unblocked pass: the budget forced down to a few
  row-steps, so that every row group, time window and row leaving a batch is exercised, against
  the default budget (where these small problems are one block);
* the peak memory that NumPy allocates (traced by `tracemalloc`) stays under a fixed bound on long
  lines, with the budget set to 100,000 floats (400 kB) so that the line, not the budget, would
  dominate a pass that held all rows x positions at once.  The bounds leave room for a few blocks,
  for the output layer's own fixed scratch (`functional.score_targets_`: about 1.25 MB) and for
  what grows with the line by right (its ids, the per-word scores of `score`), never for rows x
  positions: the code before the fix took 5 to 140 MB in these tests (figures in each test).
"""

import gc
import tracemalloc

import numpy as np
import pytest

from rnncli import generate
from rnncli.complete import PrefixIndex, keystroke_savings
from rnncli.fill import blank_regex, fill_accuracy, fill_blanks, fill_lines, fill_one_blank, split_line
from rnncli.generate import beam_search, last_hidden, next_log_probs, score_sequences
from rnncli.infer import evaluate, load_models
from rnncli.model import ModelShape, RNNModel

from .conftest import TINY_TEXT

EOS = 1
#: the budget of the memory tests: 400 kB of floats, far below what a 2,000-word line x candidates takes
SMALL_BUDGET = 100_000
MB = 2**20


def _random_model(V=11, cell="lstm", layers=2, seed=0) -> RNNModel:
    model = RNNModel(ModelShape(vocab_size=V, cell=cell, embedding_size=5, hidden_size=6, layers=layers))
    model.init_params(np.random.default_rng(seed), 1.0)
    return model


def _tiny_budget(monkeypatch, model: RNNModel, rows: int = 3) -> None:
    """The smallest budget that gives ``model`` blocks of ``rows`` row-steps."""
    monkeypatch.setattr(generate, "WORK_FLOATS", 1)
    while generate.block_rows(model) < rows:
        monkeypatch.setattr(generate, "WORK_FLOATS", generate.WORK_FLOATS + 1)


def _ids(rng, n, V=11):
    return rng.integers(2, V, size=n).astype(np.int32)


# ------------------------------------------------ blocked == one block
@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
def test_blocked_reading_and_scoring_equal_one_block(monkeypatch, cell):
    model = _random_model(cell=cell)
    rng = np.random.default_rng(1)
    seqs = [_ids(rng, n) for n in (1, 7, 3, 0, 12, 7, 2)]
    contexts = [np.concatenate([[EOS], s]).astype(np.int32) for s in seqs]
    want_h = last_hidden(model, contexts)
    want_lp = next_log_probs(model, contexts)
    want_scores = score_sequences(model, seqs, EOS)
    want_beam = beam_search(model, contexts[4], 4, 3, stop_id=EOS)
    _tiny_budget(monkeypatch, model)
    assert generate.block_rows(model) == 3
    np.testing.assert_allclose(last_hidden(model, contexts, batch=2), want_h, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(next_log_probs(model, contexts), want_lp, rtol=1e-5, atol=1e-6)
    for got, want in zip(score_sequences(model, seqs, EOS, batch=2), want_scores):
        assert got.shape == want.shape
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
    got_beam = beam_search(model, contexts[4], 4, 3, stop_id=EOS)
    assert [s for s, _ in got_beam] == [s for s, _ in want_beam]
    np.testing.assert_allclose([x for _, x in got_beam], [x for _, x in want_beam], rtol=1e-5)


def _same_ranked(got, want):
    assert got.fills == want.fills
    np.testing.assert_allclose(got.scores, want.scores, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(got.probs, want.probs, rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("directions", ["forward", "backward", "both"])
def test_blocked_fills_equal_one_block(monkeypatch, directions):
    forward = _random_model(seed=2) if directions != "backward" else None
    backward = _random_model(seed=3) if directions != "forward" else None
    rng = np.random.default_rng(4)
    items = [
        (_ids(rng, a), np.concatenate([_ids(rng, b), [EOS]]).astype(np.int32)) for a, b in [(3, 9), (1, 0), (6, 2)]
    ]
    pieces = [_ids(rng, 5), _ids(rng, 0), _ids(rng, 8), np.concatenate([_ids(rng, 4), [EOS]]).astype(np.int32)]
    stream = np.concatenate([_ids(rng, 9), [EOS], _ids(rng, 14), [EOS], _ids(rng, 3)]).astype(np.int32)
    opts = {"shortlist": 4, "exclude": (0, EOS)}
    want_one = fill_one_blank(forward, backward, items, EOS, **opts)
    want_many = fill_blanks(forward, backward, pieces, EOS, beam=3, **opts)
    want_acc = fill_accuracy(forward, backward, stream, EOS, shortlist=4)
    _tiny_budget(monkeypatch, forward or backward)
    for got, want in zip(fill_one_blank(forward, backward, items, EOS, **opts), want_one):
        _same_ranked(got, want)
    _same_ranked(fill_blanks(forward, backward, pieces, EOS, beam=3, **opts), want_many)
    assert fill_accuracy(forward, backward, stream, EOS, shortlist=4, chunk=3) == want_acc


def test_blocked_eval_and_keystrokes_equal_one_block(monkeypatch, tiny_run):
    models = load_models(tiny_run)
    model, vocab = models.forward, models.vocab
    tokens = list(models.tokenizer.iter_tokens(TINY_TEXT.splitlines()))
    ids = vocab.encode(tokens).astype(np.int32)
    index = PrefixIndex(vocab.itos, (vocab.unk_id, vocab.eos_id))
    want_ks = keystroke_savings(model, tokens, ids, index, vocab.eos_id, vocab.unk_id)
    want_eval = [evaluate(model, ids, streams=s, start_id=vocab.eos_id).as_dict() for s in (1, 7)]
    _tiny_budget(monkeypatch, model, rows=5)
    assert keystroke_savings(model, tokens, ids, index, vocab.eos_id, vocab.unk_id) == want_ks
    for s, want in zip((1, 7), want_eval):
        got = evaluate(model, ids, streams=s, start_id=vocab.eos_id).as_dict()  # 7 pieces: groups of 5
        assert got == pytest.approx(want, rel=1e-6)  # the counts exact, the sums of the blocks in another order


# ------------------------------------------------------ peak memory
def _peak(fn) -> int:
    """Peak bytes allocated while fn runs, over what was allocated before (tracemalloc traces NumPy)."""
    gc.collect()
    tracemalloc.start()
    try:
        fn()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def _words(n: int) -> list[str]:
    words = TINY_TEXT.split()
    return [words[i % len(words)] for i in range(n)]


@pytest.fixture
def small(monkeypatch, tiny_run):
    """The tiny trained model, with a working budget of SMALL_BUDGET floats."""
    monkeypatch.setattr(generate, "WORK_FLOATS", SMALL_BUDGET, raising=False)  # raising: so it runs before the fix
    return load_models(tiny_run)


def _blanked(models, n: int, blanks: int):
    words = _words(n)
    for k in range(blanks):
        words[(k + 1) * n // (blanks + 1)] = "___"
    return split_line(" ".join(words), models.tokenizer, models.vocab, blank_regex())


@pytest.mark.slow
@pytest.mark.parametrize("blanks", [1, 3])
def test_filling_a_long_line_is_bounded_by_the_budget_not_the_line(small, blanks):
    """2,000 words with 3 blanks: 8 x 43 candidate rows each read ~600 tokens (the old code held every
    row x position: 76 MB; now 2.2 MB); with one blank, 43 rows read ~1,200 tokens (17 MB; now 1.4 MB)."""
    exclude = (small.vocab.unk_id, small.vocab.eos_id)
    line = _blanked(small, 2000, blanks)
    peak = _peak(lambda: fill_lines(small.forward, None, [line], small.vocab.eos_id, exclude=exclude))
    assert peak < 4 * MB, peak / MB


@pytest.mark.slow
def test_two_directions_score_the_fills_in_bounded_memory(workdir):
    """The complete fills are scored by the backward model without a (fills x sentence) array
    (the old code: 307 MB; now 2.4 MB)."""
    from rnncli.config import load_config
    from rnncli.training import run_training

    from .conftest import write_config

    run_training(load_config(write_config(workdir, model={"direction": "both"}, train={"epochs": 1})))
    models = load_models(workdir / "run")
    saved = getattr(generate, "WORK_FLOATS", None)  # absent before the fix
    generate.WORK_FLOATS = SMALL_BUDGET
    try:
        line = _blanked(models, 2000, 2)
        exclude = (models.vocab.unk_id, models.vocab.eos_id)
        peak = _peak(lambda: fill_blanks(models.forward, models.backward, line.pieces, EOS, exclude=exclude))
    finally:
        generate.WORK_FLOATS = saved
    assert peak < 4 * MB, peak / MB


def test_scoring_many_long_lines_is_bounded(small):
    """50 lines of 2,000 words: their ids and per-word scores (about 3 MB) are the input and the answer,
    and may grow with the lines; their rows x H and rows x V may not (the old code: 37.5 MB; now 4.4 MB)."""
    line = small.vocab.encode(small.tokenizer.tokenize(" ".join(_words(2000)))).astype(np.int32)
    peak = _peak(lambda: score_sequences(small.forward, [line] * 50, EOS))
    assert peak < 8 * MB, peak / MB


@pytest.mark.slow
def test_beam_search_on_a_long_prompt_is_bounded(small):
    """A prompt of 36,000 tokens (the old code held its (T, 1, H) outputs and the cell's cache: 4.7 MB;
    now 0.9 MB, most of it the prompt's ids)."""
    prompt = small.vocab.encode(small.tokenizer.tokenize_prompt(" ".join(_words(30_000)))).astype(np.int32)
    peak = _peak(lambda: beam_search(small.forward, prompt, 5, 4, stop_id=EOS))
    assert peak < 2 * MB, peak / MB


@pytest.mark.slow
def test_eval_fill_on_one_long_sentence_is_bounded(small):
    """20 words of one 3,000-word sentence blanked: their left sides and candidates x right sides
    (the old code: 138 MB; now 3.9 MB)."""
    ids = small.vocab.encode(_words(3000)).astype(np.int32)  # no <eos>: one sentence
    peak = _peak(lambda: fill_accuracy(small.forward, None, ids, small.vocab.eos_id, sample=20))
    assert peak < 6 * MB, peak / MB


@pytest.mark.slow
def test_keystrokes_on_a_long_text_are_bounded(small):
    """20,000 words: the old code took its own 64 MB windows of (steps, V) scores (9.8 MB here, the
    whole text in one window), not the shared budget; now 1.4 MB."""
    tokens = list(small.tokenizer.iter_tokens([" ".join(_words(20_000))]))
    ids = small.vocab.encode(tokens).astype(np.int32)
    index = PrefixIndex(small.vocab.itos, (small.vocab.unk_id, small.vocab.eos_id))
    v = small.vocab
    peak = _peak(lambda: keystroke_savings(small.forward, tokens, ids, index, v.eos_id, v.unk_id))
    assert peak < 3 * MB, peak / MB
