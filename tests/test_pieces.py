"""Word-piece models (tokenizer.units: pieces): spelling, the per-word probability, the search over
pieces, resume, MPI, and the checkpoints of both kinds of model.

The per-word probability (wordsearch.py's docstring, Pimentel & Meister 2024), from a state:

    P(w) = P(u1) / P(B) * P(u2 | u1) * ... * P(un | .. un-1) * P(B | .. un)

with B "the next unit begins a word"; ``<eos>`` and ``<unk>`` are words of one unit, after which a word
must begin (no boundary factor).  The tests below compute it by hand, stepping the network one unit at
a time, against the code that telescopes it (infer.evaluate) or searches with it (wordsearch).

Most tests share one tiny piece model trained once for this module; the numerical ones read a
float64 copy of it, so that a difference is the code's and not float32 rounding of batched products.
"""

from __future__ import annotations

import importlib.util
import io
import json
import shutil
import subprocess
import time
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

import rnncli
from rnncli.api import Model
from rnncli.checkpoint import PIECES_FILE, load_checkpoint
from rnncli.cli import main
from rnncli.errors import CheckpointError
from rnncli.generate import read_contexts
from rnncli.infer import Models, evaluate
from rnncli.model import RNNModel
from rnncli.pieces import WORD_MARK, Pieces
from rnncli.tokenizer import EOS, UNK, Vocab
from rnncli.twoway import reverse_stream
from rnncli.wordsearch import DEFAULT_WIDTH, exact_search, log_probs64, search, word_log_probs

from . import test_mpi  # its launcher, environment and comparison of two runs
from .conftest import TINY_TEXT, working_in, write_config

PIECES = {"mode": "portuguese", "units": "pieces", "pieces": 300}

# words the spelling must give back as they are: clitics, accents, digits, other scripts, the word
# mark itself, things that look like SentencePiece's own symbols, and the two specials
HARD_WORDS = [
    "sentindo-se", "dá-lo-ei", "d'água", "ação", "você", "pôde", "1.234,56", "5.º", "😀", "日本", "ŋ", "ﬁ",
    "a▁b", WORD_MARK, WORD_MARK + "a", "a" + WORD_MARK, "e\u0301", "<0x41>", "x<eos>", "<unk>x", "<s>", "\x00",
    "14h30", "menino", "o", EOS, UNK,
]  # fmt: skip

PROMPTS = [
    "o menino", "ela saiu cedo", "a mãe trouxe um", "choveu", "o médico disse que", "às", "não era", "ele já",
    "o", "a tarde", "um copo", "sentindo-se", "ficou em", "durante a", "voltou", "era nada", "trouxe", "a cidade",
    "quente", "disse",
]  # fmt: skip


# ---------------------------------------------------------------------------- shared models
@pytest.fixture(scope="module")
def piece_run(tmp_path_factory) -> Path:
    """A tiny piece model (300 units), trained once for this module through rnncli.train. Read only."""
    folder = tmp_path_factory.mktemp("pieces")
    (folder / "train.txt").write_text(TINY_TEXT * 8, encoding="utf-8")
    cfg = write_config(folder, tokenizer=PIECES)
    with working_in(folder):  # its .rnn/ (corpus cache) goes there
        rnncli.train(cfg, {"train.epochs": 10})
    return folder / "run"


@pytest.fixture(scope="module")
def piece_model(piece_run) -> Model:
    return rnncli.load(piece_run)


@pytest.fixture(scope="module")
def model64(piece_model) -> Model:
    """The same model with a float64 network (exact sums, row-independent products)."""
    net = RNNModel(piece_model.forward.shape, dtype=np.float64)
    net.load_state_dict(piece_model.forward.state_dict())
    m = piece_model
    return Model(Models(net, None, m.tokenizer, m.vocab, m.checkpoint, m.pieces))


@pytest.fixture(scope="module")
def small_pieces() -> Pieces:
    words = Counter(TINY_TEXT.lower().replace(".", " ").split() * 3)
    words.update(["ação", "você", "pôde", "dá-lo-ei"])
    return Pieces.train(words, 300)


def _lse(x: np.ndarray) -> float:
    return float(np.logaddexp.reduce(np.asarray(x, dtype=np.float64)))


def _step(net: RNNModel, unit: int, state):
    """One unit read: (log-probabilities (V,) float64 of the next unit, the state after it)."""
    top, state, _ = net.hidden(np.array([[unit]], dtype=np.int32), state)
    return net.log_probs(top[0])[0].astype(np.float64), state


def _one(state, q: int):
    return [tuple(a[q : q + 1] for a in layer) for layer in state]


def _same_pieces(a, b) -> None:
    """Two checkpoints spell every word alike with the same unit ids (their pieces.model bytes may
    differ: see test_learning_the_same_pieces_twice_gives_the_same_bytes)."""
    assert a.vocab == b.vocab
    vocab = Vocab.from_dict(a.vocab)
    pa, pb = Pieces(a.pieces, vocab), Pieces(b.pieces, vocab)
    for w in sorted(set(TINY_TEXT.lower().split())) + HARD_WORDS:
        assert pa.spell(w).tolist() == pb.spell(w).tolist(), w


# ---------------------------------------------------------------------------- 1. spelling
@pytest.mark.parametrize("word", HARD_WORDS)
def test_every_word_spells_as_one_beginning_unit_then_the_rest_and_joins_back(small_pieces, word):
    p = small_pieces
    ids = p.spell(word)
    assert p.join(ids) == word
    assert p.begins[ids].tolist() == [True] + [False] * (len(ids) - 1)
    assert p.spells(word)  # byte fallback: nothing is <unk>
    assert (Vocab.unk_id in ids) == (word == UNK)
    if word in (EOS, UNK):
        assert ids.tolist() == [p.vocab.stoi[word]] == [Vocab.eos_id if word == EOS else Vocab.unk_id]
    # a checkpoint's piece model, read back from its bytes, spells the same
    assert Pieces(p.proto, p.vocab).spell(word).tolist() == ids.tolist()


def test_the_begin_mask_is_the_word_mark_and_the_specials(small_pieces):
    p = small_pieces
    assert p.vocab.itos[:2] == [UNK, EOS]
    want = [i in (0, 1) or piece.startswith(WORD_MARK) for i, piece in enumerate(p.vocab.itos)]
    assert p.begins.tolist() == want
    assert 258 <= len(p) <= 300 and all(f"<0x{b:02X}>" in p.vocab.stoi for b in range(256))


def test_expand_encode_and_words_agree_with_spell(small_pieces):
    p = small_pieces
    rng = np.random.default_rng(3)
    stream = rng.integers(0, len(HARD_WORDS), size=200).astype(np.int32)
    want = np.concatenate([p.spell(HARD_WORDS[i]) for i in stream])
    np.testing.assert_array_equal(p.expand(stream, HARD_WORDS), want)
    words = [HARD_WORDS[i] for i in stream]
    units, starts = p.encode(words)
    np.testing.assert_array_equal(units, want)
    np.testing.assert_array_equal(starts, np.flatnonzero(p.begins[units]))
    assert p.words(units) == words
    assert p.encode([])[0].size == 0 and p.expand(np.zeros(0, np.int32), HARD_WORDS).size == 0


def test_a_reversed_piece_stream_reads_the_words_backwards_each_spelled_forwards(small_pieces):
    p = small_pieces
    words = ["ele", "estava", "sentindo-se", "😀", "<eos>", "d'água", "1.234,56", "<unk>", "ação", "<eos>"]
    units = p.encode(words)[0]
    back = reverse_stream(units, Vocab.eos_id, p.begins)
    assert p.words(back) == ["ação", "<unk>", "1.234,56", "d'água", "<eos>", "😀", "sentindo-se", "estava", "ele", EOS]
    np.testing.assert_array_equal(reverse_stream(back, Vocab.eos_id, p.begins), units)


def test_learning_the_same_pieces_twice_gives_the_same_bytes():
    counts = Counter({"casa": 3, "menino": 2, "ação": 4, "sentindo-se": 2})
    first, again = Pieces.train(counts, 300), Pieces.train(counts, 300)
    assert first.vocab.itos == again.vocab.itos  # the same pieces
    assert b"rnn-pieces-" not in first.proto
    assert first.proto == again.proto


# ---------------------------------------------------------------------------- 2. word probability
def _by_hand(net: RNNModel, pieces: Pieces, words: list[str]) -> float:
    """log P(words) after an <eos>, as the definition says, one word and one unit at a time."""
    begins = pieces.begins
    lp, state = _step(net, Vocab.eos_id, net.initial_state(1))
    total = 0.0
    for w in words:
        units = pieces.spell(w).tolist()
        logp = lp[units[0]] - _lse(lp[begins])  # the first unit, given that a word begins
        lp, state = _step(net, units[0], state)
        for u in units[1:]:
            logp += lp[u]
            lp, state = _step(net, u, state)
        if w not in (EOS, UNK):
            logp += _lse(lp[begins])  # the word ends: the next unit begins one
        total += logp
    return total


TEXT = "O menino acordou sentindo-se indisposto. <unk> chá 😀 quente.\nA mãe trouxe um copo d'água\n"


def test_evaluate_sums_the_word_probabilities_computed_by_hand(model64):
    m = model64
    tokens = m.tokens([io.StringIO(TEXT)])
    assert "<unk>" in tokens and tokens[-1] == EOS
    want = _by_hand(m.forward, m.pieces, tokens)
    got = m.evaluate([io.StringIO(TEXT)])
    assert got.tokens == len(tokens) and got.units == sum(len(m.pieces.spell(w)) for w in tokens)
    assert -got.loss * got.tokens == pytest.approx(want, rel=1e-6)
    # a text that ends inside a sentence: the last word's boundary counts too (infer.end_of_text)
    words = tokens[:-1]
    r = evaluate(m.forward, m.pieces.encode(words)[0], start_id=Vocab.eos_id, rank=False, begins=m.pieces.begins)
    assert r.words == len(words)
    assert -r.nll == pytest.approx(_by_hand(m.forward, m.pieces, words), rel=1e-6)


# ---------------------------------------------------------------------------- 3. they sum to 1
@pytest.mark.parametrize("depth", [1, 2])
def test_the_probabilities_of_all_words_sum_to_one(model64, depth):
    """Every unit sequence that is a word (a beginning unit, then units that do not begin one) up to
    ``depth`` units, plus the mass of the longest prefixes still unfinished: exactly 1."""
    m, net, begins = model64, model64.forward, model64.pieces.begins
    state0, top = read_contexts(net, [m._context(m.tokenize_prompt("o menino"))])
    lp0 = log_probs64(net, top)[0]
    first = lp0 - _lse(lp0[begins])
    cont = np.flatnonzero(~begins)
    masses = [first[[Vocab.unk_id, Vocab.eos_id]]]  # words of their own
    words: dict[tuple[int, ...], float] = {}
    prefixes = np.array([[u] for u in np.flatnonzero(begins) if u > Vocab.eos_id])  # (n, length)
    logp, state = first[prefixes[:, 0]], [tuple(np.repeat(a, len(prefixes), axis=0) for a in layer) for layer in state0]
    for length in range(1, depth + 1):
        top, state, _ = net.hidden(prefixes[:, -1][None, :].astype(np.int32), state)
        lp = log_probs64(net, top[0])  # (n, V)
        ended = logp + np.logaddexp.reduce(lp[:, begins], axis=1)  # the prefix as a finished word
        masses.append(ended)
        words.update(zip(map(tuple, prefixes.tolist()), ended.tolist()))
        if length == depth:  # unfinished: the prefix goes on with a unit that does not begin a word
            masses.append(logp + np.logaddexp.reduce(lp[:, cont], axis=1))
        else:
            rows = np.repeat(np.arange(len(prefixes)), len(cont))
            logp = (logp[:, None] + lp[:, cont]).reshape(-1)
            prefixes = np.concatenate([prefixes[rows], np.tile(cont, len(prefixes))[:, None]], axis=1)
            state = [tuple(a[rows] for a in layer) for layer in state]
    total = float(np.exp(np.concatenate(masses)).sum())
    assert total == pytest.approx(1.0, abs=1e-9)
    # and the best words of their own spelling are exact_search's (up to that many units)
    own = {}
    for seq, value in words.items():
        word = m.pieces.join(seq)
        if tuple(m.pieces.spell(word).tolist()) == seq and word:
            own[word] = value
    best = sorted(own.items(), key=lambda kv: (-kv[1], kv[0]))[:5]
    found = [(w, v) for w, v in exact_search(net, m.pieces, state0, lp0, 6, depth) if w][:5]  # "": its own test
    assert [w for w, _ in found] == [w for w, _ in best]
    np.testing.assert_allclose([v for _, v in found], [v for _, v in best], rtol=0, atol=1e-9)


# ---------------------------------------------------------------------------- 4. the search
def _queries(m: Model, prompts: list[str]):
    state, top = read_contexts(m.forward, [m._context(m.tokenize_prompt(p)) for p in prompts])
    return state, log_probs64(m.forward, top)


def test_a_wide_search_finds_the_exact_best_words_and_the_default_width_mostly_does(model64):
    m, V = model64, len(model64.vocab)
    state, lp0 = _queries(m, PROMPTS)
    exact = [exact_search(m.forward, m.pieces, _one(state, q), lp0[q], 5) for q in range(len(PROMPTS))]
    wide = search(m.forward, m.pieces, state, lp0, 5, width=V)
    for prompt, got, want in zip(PROMPTS, wide, exact):
        assert [w for w, _ in got] == [w for w, _ in want], prompt
        # the search ranks in the model's float32, the exact search in float64
        np.testing.assert_allclose([v for _, v in got], [v for _, v in want], rtol=0, atol=1e-5, err_msg=prompt)
    # the default width: a beam, so not always the exact five on this tiny model, whose words mostly
    # begin with the lone word mark; but the best word always, and nearly all of the five
    narrow = search(m.forward, m.pieces, state, lp0, 5, width=DEFAULT_WIDTH)
    agree = sum([w for w, _ in got] == [w for w, _ in want] for got, want in zip(narrow, exact))
    found = np.mean([len({w for w, _ in got} & {w for w, _ in want}) / 5 for got, want in zip(narrow, exact)])
    assert agree >= len(PROMPTS) / 2, f"the default width finds the exact five on {agree} of {len(PROMPTS)} prompts"
    assert found >= 0.9, f"the default width finds {found:.0%} of the exact five"
    assert [got[0][0] for got in narrow] == [want[0][0] for want in exact]  # the best word, always
    # what predict shows is that search, in probabilities
    shown = m.predict(PROMPTS[:3], k=5)
    for row, want in zip(shown, narrow):
        assert [p.word for p in row] == [w for w, _ in want]
        np.testing.assert_allclose([p.prob for p in row], np.exp([v for _, v in want]), rtol=1e-5)


def test_no_search_offers_the_empty_word(model64):
    m = model64
    state, lp0 = _queries(m, PROMPTS)
    for row in search(m.forward, m.pieces, state, lp0, 10):
        assert "" not in [w for w, _ in row]
    for q in range(len(PROMPTS)):
        assert "" not in [w for w, _ in exact_search(m.forward, m.pieces, _one(state, q), lp0[q], 10)]


def test_only_a_words_own_spelling_is_the_word(model64):
    """Other pieces that join to the same letters (here: the word mark, then the word's UTF-8 bytes)
    are not the word the model learnt: never offered as it, nor counted in its probability."""
    p = model64.pieces
    for word in ("menino", "mãe", "sentindo-se"):
        own = tuple(p.spell(word).tolist())
        other = (p.mark_id, *(p._bytes[b] for b in word.encode("utf-8")))
        assert own != other and p.join(own) == p.join(other) == word
        assert p.own_word(own) == word and p.own_word(other) is None
        assert p.own_word(own) == word and p.own_word(other) is None  # remembered, the same
    assert p.own_word((p.mark_id,)) is None  # the lone word mark spells no word
    # every word a search finds has the probability of its own spelling
    m = model64
    state, lp0 = _queries(m, PROMPTS[:4])
    for q, row in enumerate(search(m.forward, m.pieces, state, lp0, 5, width=len(m.vocab))):
        context = m.tokenize_prompt(PROMPTS[q])
        for word, logp in row:
            want = word_log_probs(m.forward, m.pieces, [*context, word])[-1]
            assert abs(logp - want) < 1e-4, (PROMPTS[q], word)


def test_a_width_beyond_the_vocabulary_is_the_whole_vocabulary(model64):
    m, V = model64, len(model64.vocab)
    state, lp0 = _queries(m, PROMPTS[:4])
    assert search(m.forward, m.pieces, state, lp0, 5, width=V + 1) == search(
        m.forward, m.pieces, state, lp0, 5, width=V
    )


# ---------------------------------------------------------------------------- 5. resume
def test_resume_of_a_piece_model_equals_an_uninterrupted_run_and_keeps_its_pieces(workdir, monkeypatch):
    sections = {"tokenizer": PIECES, "model": {"cell": "gru", "dropout": 0.3}}
    full = write_config(workdir, checkpoint={"dir": str(workdir / "full")}, **sections)
    summary = rnncli.train(full)
    split = write_config(workdir, checkpoint={"dir": str(workdir / "split")}, **sections)
    rnncli.train(split, {"train.max_tokens": summary.tokens // 3})  # stops mid-epoch
    first = load_checkpoint(workdir / "split", "last")
    assert 0 < first.meta["progress"]["tokens"] < summary.tokens

    def no_new_pieces(*args, **kwargs):
        raise AssertionError("a resumed run learnt new pieces instead of reading its checkpoint's")

    monkeypatch.setattr(Pieces, "train", classmethod(no_new_pieces))
    rnncli.train(split, {"train.max_tokens": 0}, resume=True)
    a, b = load_checkpoint(workdir / "full", "last"), load_checkpoint(workdir / "split", "last")
    assert b.path != first.path and a.vocab == b.vocab
    assert set(a.weights) == set(b.weights)
    for key in a.weights:
        np.testing.assert_array_equal(a.weights[key], b.weights[key], err_msg=key)
    assert (b.path / PIECES_FILE).read_bytes() == first.pieces  # (that checkpoint is pruned by now)
    _same_pieces(a, b)


# ---------------------------------------------------------------------------- 6. MPI
def _mpirun_unless_it_hangs(cfg: Path, folder: Path, timeout: float = 120) -> tuple[str, str]:
    """`mpirun -n 2 rnn train cfg --format json`: (stdout, stderr) of a job that succeeded; a failure
    otherwise, as soon as a worker has died of an error (the others may wait for it forever)."""
    with open(folder / "stdout", "w+") as out, open(folder / "stderr", "w+") as err:
        job = subprocess.Popen(
            test_mpi._mpirun(2, str(cfg), "--format", "json"), cwd=folder, env=test_mpi._env(), stdout=out, stderr=err
        )
        deadline = time.monotonic() + timeout  # the job takes about 7 s on 2 cores
        while job.poll() is None and time.monotonic() < deadline and "Traceback" not in _read(err):
            time.sleep(0.1)
        if job.poll() is None:
            time.sleep(2)  # let the traceback be written whole
            job.terminate()  # mpirun passes it on and ends the workers
            job.wait(timeout=30)
            pytest.fail(f"the job did not end by itself; it said:\n{_read(err)[-3000:]}")
        assert job.returncode == 0, _read(err)
        return _read(out), _read(err)


def _read(f) -> str:
    f.seek(0)
    return f.read()


@pytest.mark.slow
@pytest.mark.skipif(
    test_mpi.MPIRUN is None or importlib.util.find_spec("mpi4py") is None,
    reason="needs mpi4py and mpirun (the mpi extra)",
)
def test_two_mpi_workers_train_the_piece_model_one_process_trains(workdir):
    (workdir / "train.txt").write_text(TINY_TEXT * 40, encoding="utf-8")
    extra = {"tokenizer": PIECES, "train": {"epochs": 1}}  # the LSTM with dropout of test_mpi's runs
    reference = test_mpi._reference(workdir, **extra)
    cfg = test_mpi._config(workdir, "parallel", **extra)
    out, _ = _mpirun_unless_it_hangs(cfg, workdir)
    assert json.loads(out)["vocab_size"] == len(load_checkpoint(reference).vocab["itos"])
    test_mpi._assert_same_run(workdir / "parallel", reference)
    _same_pieces(load_checkpoint(reference, "last"), load_checkpoint(workdir / "parallel", "last"))


# ---------------------------------------------------------------------------- 7. checkpoints
def test_a_word_checkpoint_loads_and_answers_as_a_word_model(tiny_run):
    m = rnncli.load(tiny_run)
    assert m.pieces is None and PIECES_FILE not in m.checkpoint.meta["files"]
    net, vocab = m.forward, m.vocab
    # predict: the top words of the next-word distribution after <eos> o menino, by hand
    lp, state = _step(net, vocab.eos_id, net.initial_state(1))
    for word in ("o", "menino"):
        lp, state = _step(net, vocab.stoi[word], state)
    order = [i for i in np.argsort(-lp, kind="stable") if i not in (vocab.unk_id, vocab.eos_id)][:5]
    got = m.predict("o menino", k=5)
    assert [p.word for p in got] == [vocab.itos[i] for i in order]
    np.testing.assert_allclose([p.prob for p in got], np.exp(lp[order]), rtol=1e-5)
    # evaluate: one token is one word, no boundary terms and no unit count
    tokens = m.tokens([io.StringIO("O menino acordou.\nA mãe trouxe um chá.\n")])
    lp, state = _step(net, vocab.eos_id, net.initial_state(1))
    nll = 0.0
    for i in vocab.encode(tokens).tolist():
        nll -= lp[i]
        lp, state = _step(net, i, state)
    r = m.evaluate([io.StringIO("O menino acordou.\nA mãe trouxe um chá.\n")])
    assert r.tokens == len(tokens) and r.units is None
    assert r.loss * r.tokens == pytest.approx(nll, rel=1e-5)


def _altered_copy(piece_run: Path, folder: Path, change) -> Path:
    """A copy of the piece run whose best checkpoint's pieces.model has been changed by ``change``."""
    run = folder / "run"
    shutil.copytree(piece_run, run)
    ckpt = load_checkpoint(run).path
    path = ckpt / PIECES_FILE
    path.write_bytes(change(path.read_bytes()))
    return ckpt


def _rehash(ckpt: Path, name: str) -> None:
    from rnncli import checkpoint as ckpt_mod

    meta_path = ckpt / ckpt_mod.META
    meta = json.loads(meta_path.read_text(encoding="utf-8"))
    meta["files"][name] = ckpt_mod._sha256(ckpt / name)
    meta[ckpt_mod.META_DIGEST] = ckpt_mod._meta_digest(meta)
    meta_path.write_text(json.dumps(meta), encoding="utf-8")


def _other_proto(piece_model) -> bytes:
    """A valid piece model of as many pieces, learnt from other words (the text's, upper case)."""
    other = Pieces.train(Counter(TINY_TEXT.upper().split() * 4), len(piece_model.pieces))
    assert len(other) == len(piece_model.pieces) and other.vocab.itos != piece_model.vocab.itos
    return other.proto


@pytest.mark.parametrize("how", ["one byte", "truncated", "rehashed garbage", "rehashed other model"])
def test_a_piece_checkpoint_with_an_altered_piece_model_is_refused_in_one_line(piece_run, piece_model, tmp_path, how):
    changes = {
        "one byte": lambda b: b[:100] + bytes([b[100] ^ 1]) + b[101:],
        "truncated": lambda b: b[: len(b) // 2],
        "rehashed garbage": lambda b: b"not a piece model",
        "rehashed other model": lambda b: _other_proto(piece_model),
    }
    ckpt = _altered_copy(piece_run, tmp_path, changes[how])
    if how.startswith("rehashed"):
        _rehash(ckpt, PIECES_FILE)
    with pytest.raises(CheckpointError, match=PIECES_FILE) as info:
        rnncli.load(ckpt)
    message = str(info.value)
    assert "\n" not in message
    assert ("checksum mismatch" in message) == (not how.startswith("rehashed"))
    result = CliRunner().invoke(main, ["predict", "-c", str(ckpt), "o menino"])
    assert result.exit_code == 1 and result.stdout == ""
    assert result.stderr.startswith("rnn: error:") and result.stderr.count("\n") == 1, result.stderr
    assert PIECES_FILE in result.stderr and "Traceback" not in result.output


def _typed(m: Model, before: list[str], word: str) -> int:
    """Keystrokes to enter ``word`` after ``before`` with 3 suggestions (complete.keystrokes_for's rule)."""
    if word in [p.word for p in m.predict(" ".join(before), k=3)]:
        return 1
    for j in range(1, len(word)):
        if word in [c.word for c in m.complete(" ".join(before + [word[:j]]), k=3)]:
            return j + 1
    return len(word)


@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
def test_eval_hits_and_keystrokes_are_what_predict_and_complete_show_for_every_cell(tmp_path, cell):
    """eval's whole-word top-1/top-5 and keystroke count carry the state through the text; on one
    sentence read from its start they are exactly what predict and complete show word by word."""
    (tmp_path / "train.txt").write_text(TINY_TEXT * 4, encoding="utf-8")
    cfg = write_config(tmp_path, tokenizer=PIECES, model={"cell": cell, "embedding_size": 8, "hidden_size": 12})
    with working_in(tmp_path):
        rnncli.train(cfg, {"train.epochs": 3})
    m = rnncli.load(tmp_path / "run")
    sentence = "o menino trouxe um copo de água para a mãe"
    words = sentence.split() + [EOS]
    top1 = top5 = keystrokes = 0
    for i, word in enumerate(words):
        # eval offers <eos> among the next words, as predict --show-unk does (a piece model never offers <unk>)
        offered = [p.word for p in m.predict(" ".join(words[:i]), k=5, show_unk=True)]
        top1 += offered[0] == word
        top5 += word in offered
        keystrokes += _typed(m, words[:i], word) if word != EOS else 0
    got = m.evaluate([io.StringIO(sentence + "\n")], keystrokes=True)
    assert (got.tokens, got.keystrokes.words) == (len(words), len(words) - 1)
    assert round(got.top1 * got.tokens) == top1 and round(got.top5 * got.tokens) == top5
    assert got.keystrokes.keystrokes == keystrokes
