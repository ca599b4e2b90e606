"""`rnn fill` and `rnn eval --fill`: filling blanks from both sides of them.

The rankings are checked against brute force (every word, or every pair of words, put in the
blanks and the whole sentence scored by `generate.score_sequences`, in each direction), not
against the fill code itself.
"""

import itertools
import json
from types import SimpleNamespace

import numpy as np
import pytest

from rnncli import infer
from rnncli.cli import main
from rnncli.fill import (
    blank_regex,
    fill_accuracy,
    fill_blanks,
    fill_lines,
    fill_one_blank,
    split_line,
)
from rnncli.generate import next_log_probs, score_sequences
from rnncli.model import ModelShape, RNNModel
from rnncli.tokenizer import Tokenizer, Vocab

EOS = 1


def _random_model(V, cell="lstm", layers=2, softmax="full", seed=0):
    shape = ModelShape(vocab_size=V, cell=cell, embedding_size=6, hidden_size=7, layers=layers, softmax=softmax)
    shape = shape if softmax == "full" else ModelShape(**{**shape.__dict__, "cutoffs": (4,)})
    model = RNNModel(shape)
    model.init_params(np.random.default_rng(seed), 1.0)  # large weights: peaked, distinct scores
    return model


def _sentence_logprob(model, sentences):
    return np.array([lp.sum() for lp in score_sequences(model, sentences, EOS)])


def _exact_one_blank(forward, backward, left, right, words):
    """Brute force: each word in the blank, the whole sentence scored by each direction."""
    total = np.zeros(len(words))
    body = [np.concatenate([left, [w], right[:-1]]).astype(np.int32) for w in words]  # right ends with <eos>
    if forward is not None:
        total += _sentence_logprob(forward, [np.concatenate([b, [EOS]]) for b in body])
    if backward is not None:
        total += _sentence_logprob(backward, [np.concatenate([b[::-1], [EOS]]) for b in body])
    return total


# ------------------------------------------------------------ exact ranking
@pytest.mark.parametrize(
    "cell, softmax, directions",
    [("lstm", "full", "both"), ("gru", "adaptive", "forward"), ("rnn", "full", "backward")],
)
def test_fill_equals_the_exact_ranking_over_the_vocabulary(cell, softmax, directions):
    V = 9
    forward = _random_model(V, cell, softmax=softmax, seed=1) if directions != "backward" else None
    backward = _random_model(V, cell, softmax=softmax, seed=2) if directions != "forward" else None
    # lines of different lengths in one batch: contexts end at different steps, rows are padded
    items = [([2, 3, 4], [5, EOS]), ([7], [2, 2, 8, 3, EOS]), ([4, 4, 6, 2, 5], [EOS]), ([3], [6, EOS])]
    items = [(np.array(a, dtype=np.int32), np.array(b, dtype=np.int32)) for a, b in items]
    words = np.arange(2, V)  # every word but <unk> and <eos>
    got = fill_one_blank(forward, backward, items, EOS, shortlist=V, exclude=(0, EOS))
    small = fill_one_blank(forward, backward, items, EOS, shortlist=3, exclude=(0, EOS))
    for (left, right), r, s in zip(items, got, small):
        exact = _exact_one_blank(forward, backward, left, right, words)
        order = sorted(range(len(words)), key=lambda j: (-exact[j], words[j]))
        assert [f[0] for f in r.fills] == [int(words[j]) for j in order]
        p = np.exp(exact - exact.max())
        np.testing.assert_allclose(r.probs, (p / p.sum())[order], rtol=1e-4, atol=1e-7)
        # a small shortlist scores its candidates exactly too, renormalised over them
        cands = [f[0] for f in s.fills]
        assert 3 <= len(cands) <= 6 and len(set(cands)) == len(cands)
        sub = exact[[int(np.flatnonzero(words == c)[0]) for c in cands]]
        q = np.exp(sub - sub.max())
        np.testing.assert_allclose(s.probs, q / q.sum(), rtol=1e-4, atol=1e-7)


@pytest.mark.parametrize("directions", ["both", "backward"])
def test_two_blanks_with_a_wide_beam_equal_the_exhaustive_search(directions):
    V = 7
    forward = _random_model(V, seed=3) if directions == "both" else None
    backward = _random_model(V, seed=4)
    pieces = [np.array(p, dtype=np.int32) for p in ([2, 3], [4], [5, 6, EOS])]  # 2 3 _ 4 _ 5 6 <eos>
    got = fill_blanks(forward, backward, pieces, EOS, shortlist=V, beam=V, exclude=(0, EOS))
    pairs = list(itertools.product(range(2, V), repeat=2))
    body = [np.array([2, 3, a, 4, b, 5, 6], dtype=np.int32) for a, b in pairs]
    exact = _sentence_logprob(backward, [np.concatenate([s[::-1], [EOS]]) for s in body])
    if forward is not None:
        exact += _sentence_logprob(forward, [np.concatenate([s, [EOS]]) for s in body])
    order = sorted(range(len(pairs)), key=lambda j: (-exact[j], pairs[j]))
    assert got.fills == [pairs[j] for j in order]
    # the scores leave out log P(the words before the first blank), the same for every fill
    np.testing.assert_allclose(got.scores - got.scores[0], exact[order] - exact[order][0], atol=1e-4)


# ------------------------------------------------- the right side decides
WORDS = ["<unk>", "<eos>", "a", "b", "c", "x", "y"]


def _bigram_model() -> RNNModel:
    """A hand-built network that remembers only the word it just read (a bigram model):

    after "a": c 0.6, b 0.4 (so left-only prediction says c); after "b": x; after "c": y.
    In "a ___ x" only the right side says the blank is b.
    """
    V = len(WORDS)
    model = RNNModel(ModelShape(vocab_size=V, cell="rnn", embedding_size=V, hidden_size=V))
    p = model.params
    p["encoder.weight"][...] = np.eye(V)
    p["rnn.weight_ih_l0"][...] = 10 * np.eye(V)  # h = tanh(10 * one-hot of the current word) ~ one-hot
    p["rnn.weight_hh_l0"][...] = 0.0
    table = np.full((V, V), 1e-4)  # table[current, next] = P(next | current)
    table[1, 2] = table[5, 1] = table[6, 1] = table[2, 4] = table[3, 5] = table[4, 6] = 1.0
    table[2, 4], table[2, 3] = 0.6, 0.4
    p["decoder.weight"][...] = np.log(table / table.sum(axis=1, keepdims=True)).T  # (V, H)
    p["decoder.bias"][...] = 0.0
    return model


@pytest.fixture
def hand_built(monkeypatch):
    """`rnn fill` and `rnn eval` load the hand-built model (forward, and the same as 'backward')."""
    vocab = Vocab(WORDS, [1] * len(WORDS))
    ckpt = SimpleNamespace(path="hand-built", meta={}, weights={})

    def load(backward=None):
        models = infer.Models(_bigram_model(), backward, Tokenizer(mode="whitespace"), vocab, ckpt)
        monkeypatch.setattr(infer, "load_models", lambda path, which="best": models)
        return models

    return load


def test_the_right_side_alone_decides_the_blank_fill_gets_it_left_only_prediction_cannot(hand_built, runner):
    models = hand_built()
    left_only = next_log_probs(models.forward, [np.array([EOS, 2], dtype=np.int32)])[0]
    assert WORDS[int(np.argmax(left_only[2:])) + 2] == "c"  # what the left side alone says
    result = runner.invoke(main, ["fill", "-c", "x", "--format", "json", "a ___ x"])
    assert result.exit_code == 0, result.output
    fills = json.loads(result.stdout)["fills"]
    assert fills[0]["words"] == ["b"] and fills[0]["text"] == "a b x" and fills[0]["prob"] > 0.9
    assert json.loads(runner.invoke(main, ["fill", "-c", "x", "--format", "json", "a ___ y"]).stdout)["fills"][0][
        "words"
    ] == ["c"]


def test_lines_with_one_and_two_blanks_in_one_batch_answer_as_alone(hand_built, runner):
    hand_built(backward=_random_model(len(WORDS), seed=5))
    lines = ["a ___ x", "a ___ ___", "a ___ ___ .", "b ___ a ___ y"]
    lines[1] = "a b ___ b ___ y"
    batch = runner.invoke(main, ["fill", "-c", "x", "--format", "json", "-"], input="\n".join(lines) + "\n")
    assert batch.exit_code == 0, batch.output
    got = [json.loads(line) for line in batch.stdout.splitlines()]
    assert [g["line"] for g in got] == lines
    for line, g in zip(lines, got):
        alone = json.loads(runner.invoke(main, ["fill", "-c", "x", "--format", "json", line]).stdout)
        assert [f["words"] for f in g["fills"]] == [f["words"] for f in alone["fills"]]
        assert len(g["fills"][0]["words"]) == g["blanks"] == line.count("___")


# ------------------------------------------------------------- bad input
@pytest.mark.parametrize(
    "line, says",
    [
        ("a b x", "no blank"),
        ("", "empty line"),
        ("   ", "empty line"),
        ("___", "only blanks"),
        ("___ ______", "only blanks"),
        ("___ b x", "start of the line"),
        ("a b ___", "end of the line"),
    ],
)
def test_a_line_that_cannot_be_filled_gives_one_line_and_exit_2(hand_built, runner, line, says):
    hand_built()
    result = runner.invoke(main, ["fill", "-c", "x", line])
    assert result.exit_code == 2
    assert result.stdout == ""
    assert result.stderr.count("\n") == 1 and result.stderr.startswith("rnn: error: ") and says in result.stderr
    assert "Traceback" not in result.stderr


def test_a_bad_line_in_a_stream_is_named_by_number_and_the_stream_goes_on(hand_built, runner):
    hand_built()
    result = runner.invoke(main, ["fill", "-c", "x", "-"], input="a ___ x\nsem lacuna\na ___ y\n")
    assert result.exit_code == 2
    assert [line.split("\t")[0] for line in result.stdout.splitlines()] == ["a ___ x", "a ___ y"]
    assert result.stderr == (
        "rnn: error: stdin line 2 'sem lacuna': no blank (___) in the line\n"
        "rnn: error: 1 of 3 lines could not be filled (named above); the others were\n"
    )


def test_marker_spellings_and_a_chosen_marker(hand_built):
    models = hand_built()
    tok, vocab = models.tokenizer, models.vocab
    assert split_line("a __________ x", tok, vocab, blank_regex()).blanks == 1
    assert split_line("a ___ ___ x", tok, vocab, blank_regex()).blanks == 2
    assert split_line("a __ b ___ x", tok, vocab, blank_regex()).blanks == 1  # two underscores are text
    b = split_line("a [MASK] x", tok, vocab, blank_regex("[MASK]"))
    assert b.blanks == 1 and b.text(["b"]) == "a b x"
    r = fill_lines(models.forward, None, [b], EOS, exclude=(0, EOS))[0]
    assert vocab.itos[r.fills[0][0]] == "b"


def test_a_hyphenated_word_before_the_blank_is_not_split_or_changed():
    tok = Tokenizer()  # portuguese
    vocab = Vocab(["<unk>", "<eos>", "ele", "estava", "sentindo-se", "e", "foi"], [1] * 7)
    b = split_line("Ele estava sentindo-se ___ e foi.", tok, vocab, blank_regex())
    assert [vocab.itos[i] for i in b.pieces[0]] == ["ele", "estava", "sentindo-se"]
    assert [vocab.itos[i] for i in b.pieces[1]] == ["e", "foi", "<unk>", "<eos>"]  # "." is not in this vocabulary


def test_help_says_the_probabilities_are_normalised_over_the_shortlist(runner):
    result = runner.invoke(main, ["fill", "--help"])
    assert result.exit_code == 0
    assert "normalised over the shortlist" in " ".join(result.stdout.split())


# ------------------------------------------------------------ rnn eval --fill
def test_fill_accuracy_counts_what_filling_each_word_alone_gives():
    V = 8
    forward, backward = _random_model(V, seed=6), _random_model(V, seed=7)
    rng = np.random.default_rng(0)
    ids = rng.integers(0, V, size=60).astype(np.int32)  # <unk> included, <eos> as sentence ends
    ids[[9, 10, 30, 59]] = EOS
    got = fill_accuracy(forward, backward, ids, EOS, chunk=7)
    positions = [p for p in range(len(ids)) if ids[p] != EOS]
    fill1 = fill5 = next1 = next5 = 0
    for p in positions:
        start = max([-1] + [q for q in range(p) if ids[q] == EOS]) + 1
        end = min([len(ids)] + [q for q in range(p, len(ids)) if ids[q] == EOS])
        left, right = ids[start:p], np.concatenate([ids[p + 1 : end], [EOS]]).astype(np.int32)
        exact = _exact_one_blank(forward, backward, left, right, [w for w in range(V) if w != EOS])
        words = [w for w in range(V) if w != EOS]
        best = [words[j] for j in sorted(range(len(words)), key=lambda j: (-exact[j], words[j]))][:5]
        fill1 += best[0] == ids[p]
        fill5 += ids[p] in best
        lp = next_log_probs(forward, [np.concatenate([[EOS], left]).astype(np.int32)])[0]
        nxt = [w for w in np.argsort(-lp, kind="stable").tolist() if w != EOS][:5]
        next1 += nxt[0] == ids[p]
        next5 += ids[p] in nxt
    n = len(positions)
    assert got["positions"] == n
    assert got["top1"] == pytest.approx(fill1 / n) and got["top5"] == pytest.approx(fill5 / n)
    assert got["next_word_top1"] == pytest.approx(next1 / n) and got["next_word_top5"] == pytest.approx(next5 / n)


def test_eval_fill_reports_beside_the_next_word_accuracy_in_json_and_text(workdir, runner, trained_copy):
    trained_copy(pointer=True)  # as `rnn train` of write_config(workdir) leaves it
    (workdir / "test.txt").write_text("O menino acordou sentindo-se indisposto e ficou em casa.\n", encoding="utf-8")
    result = runner.invoke(main, ["eval", "test.txt", "--fill", "--format", "json"])
    assert result.exit_code == 0, result.output
    fill = json.loads(result.stdout)["fill"]
    assert fill["positions"] == 10  # the words and the full stop; not the <eos>
    for key in ("top1", "top5", "next_word_top1", "next_word_top5"):
        assert 0 <= fill[key] <= 1
    assert fill["top1"] <= fill["top5"]
    sampled = json.loads(
        runner.invoke(main, ["eval", "test.txt", "--fill", "--fill-sample", "4", "--format", "json"]).stdout
    )
    assert sampled["fill"]["positions"] == 4
    text = runner.invoke(main, ["eval", "test.txt", "--fill"])
    assert "fill top1" in text.stdout and "next word, left only" in text.stdout
    bad = runner.invoke(main, ["eval", "test.txt", "--fill-sample", "4"])
    assert bad.exit_code == 2 and bad.stderr.startswith("rnn: error: --fill-sample only applies with --fill")


def test_the_filled_text_is_the_sentence_that_was_scored_when_a_blank_touches_a_word():
    tok, vocab = Tokenizer(mode="portuguese"), Vocab(["<unk>", "<eos>", "casa", "de", "bonita", ","], [1] * 6)
    pattern = blank_regex()
    assert split_line("casa___ bonita", tok, vocab, pattern).text(["de"]) == "casa de bonita"
    assert split_line("a ___casa", tok, vocab, pattern).text(["linda"]) == "a linda casa"
    assert split_line("a ___, casa.", tok, vocab, pattern).text(["mãe"]) == "a mãe, casa."  # punctuation: no space
    assert split_line("(___) x", tok, vocab, pattern).text(["sim"]) == "(sim) x"


def test_beam_on_a_line_with_one_blank_is_the_ordinary_fill(hand_built, runner):
    hand_built()
    one = runner.invoke(main, ["fill", "-c", "x", "--beam", "3", "a ___ x"])
    assert one.exit_code == 0, one.output
    assert one.stdout == runner.invoke(main, ["fill", "-c", "x", "a ___ x"]).stdout
    assert runner.invoke(main, ["fill", "-c", "x", "--beam", "3", "a ___ b ___ x"]).exit_code == 0
