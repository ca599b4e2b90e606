"""`rnn predict --complete` and `rnn eval --keystrokes`: completing the word being typed.

Lookups are checked against a scan of every word, rankings against the full next-word
distribution of `rnn predict`, and the keystroke count against a simulation of a typist written
here from the definition (every matching word sorted, the first three shown).
"""

import json
import unicodedata

import numpy as np
import pytest

from rnncli import complete
from rnncli.cli import main
from rnncli.complete import PrefixIndex, keystroke_savings, match_key, split_prompt
from rnncli.generate import next_log_probs
from rnncli.infer import load_model

from .conftest import TINY_TEXT


def _scan(words, prefix, accents=False):
    """The ids whose word starts with the prefix, by a plain scan (no index)."""

    def strip(s):
        if accents:  # compared as composed characters: "voce" is not the start of "você"
            return unicodedata.normalize("NFC", s.lower())
        return "".join(c for c in unicodedata.normalize("NFD", s.lower()) if not unicodedata.combining(c))

    return sorted(i for i, w in enumerate(words) if strip(w).startswith(strip(prefix)))


WORDS = ["<unk>", "<eos>", "você", "vocês", "voce", "Vocação", "ação", "acao", "açúcar", "casa", "casamento", "c"]


@pytest.mark.parametrize("accents", [False, True])
@pytest.mark.parametrize("prefix", ["", "v", "voc", "VOCE", "você", "vocã", "a", "aç", "ac", "casa", "casam", "x", "c"])
def test_the_index_finds_exactly_the_words_a_scan_finds(prefix, accents):
    index = PrefixIndex(WORDS, skip=(0, 1), accents=accents)
    expected = [i for i in _scan(WORDS, prefix, accents) if i > 1]
    assert sorted(index.lookup(prefix).tolist()) == expected


def test_accents_and_case_are_ignored_unless_asked():
    index = PrefixIndex(WORDS, skip=(0, 1))
    found = {WORDS[i] for i in index.lookup("VOCE")}
    assert found == {"você", "vocês", "voce"}
    strict = PrefixIndex(WORDS, skip=(0, 1), accents=True)
    assert {WORDS[i] for i in strict.lookup("voce")} == {"voce"}
    assert {WORDS[i] for i in strict.lookup("Você")} == {"você", "vocês"}
    assert match_key("AÇÃO") == "acao" and match_key("AÇÃO", accents=True) == "ação"


def test_a_lookup_does_not_scan_the_vocabulary(monkeypatch):
    index = PrefixIndex(WORDS * 50, skip=(0, 1))
    calls = []
    real = complete.match_key
    monkeypatch.setattr(complete, "match_key", lambda text, accents=False: calls.append(text) or real(text, accents))
    index.lookup("voc")
    assert calls == ["voc"]  # one key made, for the prefix; the words' keys were made once, at build time


@pytest.mark.parametrize(
    "prompt, context, prefix",
    [
        ("sentindo-se ind", "sentindo-se ", "ind"),
        ("sentindo-s", "", "sentindo-s"),
        ("um copo d'á", "um copo ", "d'á"),
        ("a casa ", "a casa ", ""),
        ("Ele saiu.", "Ele saiu.", ""),
        ("", "", ""),
    ],
)
def test_the_prompt_is_cut_before_its_unfinished_word(prompt, context, prefix):
    assert split_prompt(prompt) == (context, prefix)


def _complete(runner, run, *args, input=None):
    result = runner.invoke(main, ["predict", "-c", str(run), "--complete", *args], input=input)
    assert result.exit_code == 0, result.output
    return result


def test_completions_are_the_matching_words_ranked_by_the_next_word_distribution(tiny_run, runner):
    model, tok, vocab, _ = load_model(tiny_run)
    ctx = np.array([vocab.eos_id, *vocab.encode(tok.tokenize_prompt("o menino acordou"))], dtype=np.int32)
    logp = next_log_probs(model, [ctx])[0]
    out = json.loads(_complete(runner, tiny_run, "--format", "json", "-k", "50", "o menino acordou s").stdout)
    matching = [i for i in _scan(vocab.itos, "s") if i > 1]
    assert out["prefix"] == "s" and out["matches"] == len(matching)
    expected = sorted(matching, key=lambda i: (-logp[i], i))
    assert [p["word"] for p in out["predictions"]] == [vocab.itos[i] for i in expected]
    for p in out["predictions"]:
        assert p["prob"] == pytest.approx(np.exp(logp[vocab.stoi[p["word"]]]), rel=1e-5)
    assert sum(p["match_prob"] for p in out["predictions"]) == pytest.approx(1.0)
    assert out["match_mass"] == pytest.approx(sum(p["prob"] for p in out["predictions"]), rel=1e-6)


def test_accents_case_a_clitic_and_a_whole_word_prefix(tiny_run, runner):
    def words(*args):
        return [
            p["word"] for p in json.loads(_complete(runner, tiny_run, "--format", "json", *args).stdout)["predictions"]
        ]

    assert words("a MAE") == ["mãe"]  # case and accents ignored
    assert words("o MEDI") == ["médico"]
    assert words("--match-accents", "a mae") == []
    assert words("--match-accents", "a mãe") == ["mãe"]
    assert words("sentindo-s") == ["sentindo-se"]  # a clitic cut short
    whole = words("-k", "10", "em casa")  # "casa" is a word and starts no other word here
    assert whole == ["casa"]
    assert set(words("-k", "10", "o c")) >= {"casa", "chá", "cidade", "copo"}


def test_no_match_says_so_on_stderr_prints_no_words_and_exits_0(tiny_run, runner):
    result = _complete(runner, tiny_run, "o menino xyz")
    assert result.stdout == "\n"  # one empty line, as plain predict prints when no word is left
    assert "no word of the vocabulary starts with 'xyz'" in result.stderr
    lines = _complete(runner, tiny_run, "--format", "json", "-", input="o menino xyz\no m\n").stdout.splitlines()
    assert json.loads(lines[0])["predictions"] == [] and json.loads(lines[0])["matches"] == 0
    assert json.loads(lines[1])["predictions"]  # the next prompt is answered


@pytest.mark.parametrize(
    "args, says",
    [
        (["--complete", "-g", "3", "o"], "--complete finishes the prompt's last word"),
        (["--complete", "--show-unk", "o"], "drop --show-unk"),
        (["--match-accents", "o"], "--match-accents only applies with --complete"),
    ],
)
def test_options_that_do_not_go_with_complete_are_refused(tiny_run, runner, args, says):
    result = runner.invoke(main, ["predict", "-c", str(tiny_run), *args])
    assert result.exit_code == 2 and says in result.stderr and "Traceback" not in result.output


# ------------------------------------------------------------- keystrokes
def _typist(word, word_id, logp, words, suggestions):
    """A typist, simulated from the definition: before each letter the `suggestions` most probable
    words that start with what is typed are shown (ties by id); picking one costs a keystroke."""
    if word_id < 0:
        return len(word)
    for j in range(len(word)):
        matching = [i for i in _scan(words, word[:j]) if i > 1]
        shown = sorted(matching, key=lambda i: (-logp[i], i))[:suggestions]
        if word_id in shown:
            return min(j + 1, len(word))
    return len(word)


@pytest.mark.parametrize("suggestions", [1, 3])
def test_keystroke_savings_equal_a_simulated_typist(tiny_run, suggestions):
    model, tok, vocab, _ = load_model(tiny_run)
    text = "O menino acordou sentindo-se cansado e foi ao médico.\nA mãe trouxe um chá quente e um bolo."
    tokens = list(tok.iter_tokens(text.splitlines()))
    ids = vocab.encode(tokens).astype(np.int32)
    index = PrefixIndex(vocab.itos, (vocab.unk_id, vocab.eos_id))
    got = keystroke_savings(model, tokens, ids, index, vocab.eos_id, vocab.unk_id, suggestions=suggestions)
    letters = keystrokes = 0
    logps = next_log_probs(model, [np.concatenate([[vocab.eos_id], ids[:p]]).astype(np.int32) for p in range(len(ids))])
    for p, (word, i) in enumerate(zip(tokens, ids.tolist())):
        if i == vocab.eos_id:
            continue
        letters += len(word)
        keystrokes += _typist(word, -1 if i == vocab.unk_id else i, logps[p], vocab.itos, suggestions)
    assert "cansado" not in vocab.stoi and "bolo" not in vocab.stoi  # unknown words are typed in full
    assert got["letters"] == letters and got["keystrokes"] == keystrokes
    assert got["saving_rate"] == pytest.approx(1 - keystrokes / letters)
    assert 0 < got["saving_rate"] < 1


def test_eval_keystrokes_in_text_and_json(tiny_run, runner):
    args = ["eval", "-c", str(tiny_run), str(tiny_run.parent / "test.txt"), "--keystrokes"]
    text = runner.invoke(main, args)
    assert text.exit_code == 0, text.output
    assert "saving rate" in text.stdout and "with 3 suggestions" in text.stdout
    out = json.loads(runner.invoke(main, [*args, "--suggestions", "1", "--format", "json"]).stdout)
    ks = out["keystrokes"]
    assert ks["suggestions"] == 1 and ks["words"] == out["tokens"] - TINY_TEXT.count("\n")
    refused = runner.invoke(
        main, ["eval", "-c", str(tiny_run), str(tiny_run.parent / "test.txt"), "--suggestions", "2"]
    )
    assert refused.exit_code == 2 and "--suggestions only applies with --keystrokes" in refused.stderr


def test_an_accent_typed_as_a_combining_mark_belongs_to_its_letter(tiny_run, runner):
    decomposed = "o me\u0301di"  # "é" as "e" + U+0301
    assert split_prompt(decomposed) == ("o ", "médi")
    for args in ([], ["--match-accents"]):
        out = json.loads(_complete(runner, tiny_run, "--format", "json", *args, decomposed).stdout)
        assert out["prefix"] == "médi" and [p["word"] for p in out["predictions"]] == ["médico"], args


def test_the_interactive_prompt_is_talk_not_data(tiny_run, runner):
    result = _complete(runner, tiny_run, "-i", input="o MEDI\n")
    assert result.stdout.startswith("médico ") and ">" not in result.stdout
    assert "> " in result.stderr
