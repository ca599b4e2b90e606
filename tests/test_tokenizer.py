"""Tests of rnncli.tokenizer: Portuguese word splitting, <eos> placement, the
streaming and prompt variants, detokenize, and Vocab (ids, counts, JSON form)."""

import json
import unicodedata
from collections import Counter

import numpy as np
import pytest

import rnncli.tokenizer as tokenizer_module
from rnncli.cli import main
from rnncli.complete import match_key, split_prompt
from rnncli.data import cache_key, tokenize_files
from rnncli.errors import ConfigError
from rnncli.tokenizer import (
    ABBREVIATIONS,
    EOS,
    UNK,
    Tokenizer,
    Vocab,
    count_tokens,
    detokenize,
    normalize_joiners,
)

PT = Tokenizer()
PT_CASED = Tokenizer(lowercase=False)


def words(tokens):
    """The tokens that are words (letters or digits), without punctuation."""
    return [t for t in tokens if any(ch.isalnum() for ch in t)]


# ------------------------------------------------------------------ words


def test_brief_example_sentence():
    text = "Sentindo-se indisposto, ele tomou um copo d'água às 14h30."
    assert PT.tokenize(text) == [
        "sentindo-se",
        "indisposto",
        ",",
        "ele",
        "tomou",
        "um",
        "copo",
        "d'água",
        "às",
        "14h30",
        ".",
        EOS,
    ]


@pytest.mark.parametrize(
    "word",
    [
        "sentindo-se",
        "dá-me",
        "fazê-lo",
        "far-se-á",
        "dir-lhe-ia",
        "guarda-chuva",
        "bem-te-vi",
        "pôr-do-sol",
        "adicionando-se-lhe",
        "pau-d'arco",
    ],
)
def test_hyphenated_words_are_one_token(word):
    assert PT.tokenize_prompt(word) == [word]
    assert PT.tokenize(f"Ele disse {word}, e saiu.") == [
        "ele",
        "disse",
        word,
        ",",
        "e",
        "saiu",
        ".",
        EOS,
    ]


def test_apostrophes_inside_words_outside_are_quotes():
    assert PT.tokenize_prompt("copo d'água") == ["copo", "d'água"]
    # The typographic apostrophe inside a word is the same word.
    assert PT.tokenize_prompt("copo d’água n’alma") == ["copo", "d'água", "n'alma"]
    assert PT.tokenize_prompt("'Olá', disse") == ["'", "olá", "'", ",", "disse"]
    assert PT.tokenize_prompt("‘Olá’ disse") == ["‘", "olá", "’", "disse"]


def test_numbers_in_portuguese_format():
    assert PT.tokenize_prompt("1.234,56 3,5 14h30 10h 2026 1º 2ª 2.ª 5.° n.º 3") == [
        "1.234,56",
        "3,5",
        "14h30",
        "10h",
        "2026",
        "1º",
        "2ª",
        "2.ª",
        "5.°",
        "n.º",
        "3",
    ]
    assert PT.tokenize_prompt("50% de R$ 1.000,00 e US$10") == [
        "50",
        "%",
        "de",
        "r$",
        "1.000,00",
        "e",
        "us$",
        "10",
    ]
    assert PT_CASED.tokenize_prompt("R$ 5") == ["R$", "5"]
    # A number at the end of a sentence keeps the period apart.
    assert PT.tokenize("Nasceu em 1839. Depois") == [
        "nasceu",
        "em",
        "1839",
        ".",
        EOS,
        "depois",
        EOS,
    ]
    # A comma after a number with a space is punctuation, not a decimal comma.
    assert PT.tokenize_prompt("em 1870, no Rio") == ["em", "1870", ",", "no", "rio"]


def test_punctuation_marks_are_separate_tokens():
    text = 'a, b; c: d (e) [f] «g» "h" “i” j – k - l — m'
    assert PT.tokenize_prompt(text) == [
        "a",
        ",",
        "b",
        ";",
        "c",
        ":",
        "d",
        "(",
        "e",
        ")",
        "[",
        "f",
        "]",
        "«",
        "g",
        "»",
        '"',
        "h",
        '"',
        "“",
        "i",
        "”",
        "j",
        "–",
        "k",
        "-",
        "l",
        "—",
        "m",
    ]


def test_ellipsis_and_double_marks():
    assert PT.tokenize("Esperou... Nada…") == ["esperou", "...", EOS, "nada", "…", EOS]
    assert PT.tokenize("Que?! Sim") == ["que", "?", "!", EOS, "sim", EOS]
    assert PT.tokenize("Fim....") == ["fim", "...", ".", EOS]
    assert PT.tokenize_prompt("a -- b") == ["a", "--", "b"]


def test_contractions_are_not_expanded():
    text = "do na pelo dum daquele àquela nesta"
    assert PT.tokenize_prompt(text) == text.split()


def test_dialogue_lines():
    text = "— Vem cá! — disse ele.\n— Não vou.\n"
    assert PT.tokenize(text) == [
        "—",
        "vem",
        "cá",
        "!",
        "—",
        "disse",
        "ele",
        ".",
        EOS,
        "—",
        "não",
        "vou",
        ".",
        EOS,
    ]
    # Not followed by a lower-case word: the sentence ends before the dash.
    assert PT.tokenize("— Vem cá! — Maria saiu.") == [
        "—",
        "vem",
        "cá",
        "!",
        EOS,
        "—",
        "maria",
        "saiu",
        ".",
        EOS,
    ]


# ------------------------------------------------------------ abbreviations


def test_abbreviations_keep_their_period_and_do_not_end_a_sentence():
    assert PT.tokenize("O Dr. Silva chegou.") == ["o", "dr.", "silva", "chegou", ".", EOS]
    assert PT.tokenize("D. Maria e a Sra. Costa viram V. Exa. na Av. Rio") == [
        "d.",
        "maria",
        "e",
        "a",
        "sra.",
        "costa",
        "viram",
        "v.",
        "exa.",
        "na",
        "av.",
        "rio",
        EOS,
    ]
    assert PT.tokenize_prompt("pág. 3, p. 4, n.º 5, V.Exa. Sr.ª etc. e") == [
        "pág.",
        "3",
        ",",
        "p.",
        "4",
        ",",
        "n.º",
        "5",
        ",",
        "v.exa.",
        "sr.ª",
        "etc.",
        "e",
    ]
    # Matched whatever the case, and kept in case when lowercase is off.
    assert PT_CASED.tokenize_prompt("DR. Silva e dr. Costa") == ["DR.", "Silva", "e", "dr.", "Costa"]
    assert all(a == a.lower() for a in ABBREVIATIONS)


def test_abbreviation_at_line_end_still_gets_the_line_eos():
    assert PT.tokenize("Falou com o Sr.\nDepois saiu") == [
        "falou",
        "com",
        "o",
        "sr.",
        EOS,
        "depois",
        "saiu",
        EOS,
    ]


def test_abbreviation_is_not_cut_out_of_a_longer_word():
    assert PT.tokenize("Comprou sopa.") == ["comprou", "sopa", ".", EOS]
    assert PT.tokenize("Ele é.") == ["ele", "é", ".", EOS]


# ----------------------------------------------------------- sentence ends


def test_sentence_ends_inside_a_line():
    assert PT.tokenize("Ele saiu. Ela ficou! Quem? Ninguém") == [
        "ele",
        "saiu",
        ".",
        EOS,
        "ela",
        "ficou",
        "!",
        EOS,
        "quem",
        "?",
        EOS,
        "ninguém",
        EOS,
    ]


def test_mark_followed_by_lower_case_does_not_end_a_sentence():
    assert PT.tokenize("Ah! que pena") == ["ah", "!", "que", "pena", EOS]
    assert PT.tokenize("Ele saiu... e voltou") == ["ele", "saiu", "...", "e", "voltou", EOS]
    assert PT.tokenize("'Nunca!' dizia ela") == ["'", "nunca", "!", "'", "dizia", "ela", EOS]


def test_closing_quotes_and_brackets_stay_in_the_sentence():
    assert PT.tokenize('"Vem cá." Depois (sim.) «Não?» Fim') == [
        '"',
        "vem",
        "cá",
        ".",
        '"',
        EOS,
        "depois",
        "(",
        "sim",
        ".",
        ")",
        EOS,
        "«",
        "não",
        "?",
        "»",
        EOS,
        "fim",
        EOS,
    ]


def test_never_two_eos_in_a_row():
    assert PT.tokenize("Ele saiu.\n") == ["ele", "saiu", ".", EOS]
    assert PT.tokenize("Ele saiu.") == ["ele", "saiu", ".", EOS]
    assert PT.tokenize("Ele saiu! ! !\nFim.") == ["ele", "saiu", "!", "!", "!", EOS, "fim", ".", EOS]
    assert PT.tokenize("Fim. <eos> Sim <eos>\n<eos>\n") == ["fim", ".", EOS, "sim", EOS]
    for text in ["a.\n\n.b.\n.", "!!!\n?\n", "<eos><eos>\n<eos>", ". . .\n"]:
        toks = PT.tokenize(text)
        assert not any(a == b == EOS for a, b in zip(toks, toks[1:], strict=False)), (text, toks)
        assert toks[:1] != [EOS]


def test_blank_lines_give_nothing():
    text = "\n\n  \nUm\n\n\t\n dois \r\n\r\ntrês\r\n\n"
    assert PT.tokenize(text) == ["um", EOS, "dois", EOS, "três", EOS]
    assert PT.tokenize("") == []
    assert PT.tokenize(" \n \n") == []


def test_eos_switches():
    text = "Ele saiu. Ela ficou\nfim"
    assert Tokenizer(sentence_eos=False).tokenize(text) == [
        "ele",
        "saiu",
        ".",
        "ela",
        "ficou",
        EOS,
        "fim",
        EOS,
    ]
    assert Tokenizer(line_eos=False).tokenize(text) == [
        "ele",
        "saiu",
        ".",
        EOS,
        "ela",
        "ficou",
        "fim",
    ]
    assert Tokenizer(sentence_eos=False, line_eos=False).tokenize(text) == [
        "ele",
        "saiu",
        ".",
        "ela",
        "ficou",
        "fim",
    ]
    # A sentence end at the end of a line gives its <eos> without line_eos.
    assert Tokenizer(line_eos=False).tokenize("Fim.\nOutro") == ["fim", ".", EOS, "outro"]


def test_only_real_line_breaks_end_a_line():
    # \v, \f, \x1c, \x85, U+2028 and U+2029 are whitespace inside a line.
    text = "um\x0bdois\x0ctrês\x1cquatro\x85cinco\u2028seis\u2029sete\rOito\r\nnove"
    assert PT.tokenize(text) == [
        "um",
        "dois",
        "três",
        "quatro",
        "cinco",
        "seis",
        "sete",
        EOS,
        "oito",
        EOS,
        "nove",
        EOS,
    ]


# ---------------------------------------------------------- case and NFC


def test_lowercase_false_keeps_case():
    assert PT_CASED.tokenize("Ele viu a ÁGUA.") == ["Ele", "viu", "a", "ÁGUA", ".", EOS]
    assert PT.tokenize("Ele viu a ÁGUA.") == ["ele", "viu", "a", "água", ".", EOS]


def test_nfc_combining_accent_equals_precomposed():
    decomposed = "cafe\u0301 e\u0301 a\u0300s"
    assert decomposed != "café é às"
    assert PT.tokenize(decomposed) == PT.tokenize("café é às") == ["café", "é", "às", EOS]


def test_leftover_combining_marks_stay_inside_the_word():
    # q + combining tilde has no precomposed form: NFC keeps two code points.
    word = "q\u0303ao"
    assert unicodedata.normalize("NFC", word) == word
    assert PT.tokenize_prompt(f"um {word} dois") == ["um", word, "dois"]


# ------------------------------------------------------ streaming, prompt


CORPUS_SAMPLE = (
    "CAPÍTULO PRIMEIRO\n\nEra conveniente ao romance que o leitor\r\n"
    "ficasse muito tempo sem saber quem era Miss Dollar. Mas por outro lado,\n"
    "— Se não aparecer o dono, fica comigo! — disse o Dr. Mendonça.\r"
    "Uma bátega d'água\x0cque caía... e começava\u2028com 1.234,56 R$\n\n\n"
    "sem newline no fim?"
)


@pytest.mark.parametrize(
    "tok", [PT, PT_CASED, Tokenizer(mode="whitespace"), Tokenizer(line_eos=False), Tokenizer(sentence_eos=False)]
)
def test_iter_tokens_equals_tokenize(tok):
    expected = tok.tokenize(CORPUS_SAMPLE)
    assert list(tok.iter_tokens(CORPUS_SAMPLE.splitlines(keepends=True))) == expected
    # Any way of cutting the text gives the same tokens, even mid-word.
    assert list(tok.iter_tokens([CORPUS_SAMPLE])) == expected
    cuts = [CORPUS_SAMPLE[i : i + 7] for i in range(0, len(CORPUS_SAMPLE), 7)]
    assert list(tok.iter_tokens(cuts)) == expected
    assert list(tok.iter_tokens(iter(CORPUS_SAMPLE))) == expected


def test_iter_tokens_reads_a_file_lazily(tmp_path):
    path = tmp_path / "corpus.txt"
    path.write_text(CORPUS_SAMPLE * 3, encoding="utf-8")
    with open(path, encoding="utf-8", newline="") as f:
        streamed = PT.iter_tokens(f)
        assert iter(streamed) is streamed  # a generator, not a list
        assert list(streamed) == PT.tokenize(CORPUS_SAMPLE * 3)


def test_final_line_without_newline_gets_its_eos():
    assert PT.tokenize("um\ndois") == ["um", EOS, "dois", EOS]
    assert PT.tokenize("um\ndois\n") == ["um", EOS, "dois", EOS]


def test_tokenize_prompt():
    assert PT.tokenize_prompt("sentindo-se") == ["sentindo-se"]
    assert PT.tokenize_prompt("Ele saiu. Depois") == ["ele", "saiu", ".", EOS, "depois"]
    assert PT.tokenize_prompt("Ele saiu.") == ["ele", "saiu", ".", EOS]
    assert PT.tokenize_prompt("o menino\n") == ["o", "menino"]
    assert PT.tokenize_prompt("primeira linha\nsegunda") == ["primeira", "linha", EOS, "segunda"]
    assert PT.tokenize_prompt("") == []
    assert Tokenizer(mode="whitespace").tokenize_prompt("the company \n") == ["the", "company"]


# -------------------------------------------------------------- whitespace


def test_whitespace_mode_on_penn_treebank_line():
    tok = Tokenizer(mode="whitespace", lowercase=False)
    assert tok.tokenize(" the <unk> company said N \n") == [
        "the",
        "<unk>",
        "company",
        "said",
        "N",
        EOS,
    ]
    assert tok.tokenize("a b\n\nc") == ["a", "b", EOS, "c", EOS]


def test_whitespace_mode_has_no_sentence_splitting():
    tok = Tokenizer(mode="whitespace")
    assert tok.tokenize("Ele saiu. Ela ficou,\u00a0sim.\n") == [
        "ele",
        "saiu.",
        "ela",
        "ficou,",
        "sim.",
        EOS,
    ]
    assert Tokenizer(mode="whitespace", line_eos=False).tokenize("a\nb") == ["a", "b"]


# ----------------------------------------------------------- weird input


@pytest.mark.parametrize(
    "text",
    [
        "",
        "\x00\x01\x02",
        "a\x00b\x07c",
        "😀👍🏽 olá 👨\u200d👩\u200d👧",
        "a" * 10_000,
        "-" * 10_000,
        "." * 10_000,
        "d'" * 5_000,
        "a-" * 5_000,
        "1." * 5_000,
        "?!.,;:()[]{}«»\"'“”‘’—–-…",
        "\ud800 lone surrogate",
        "\ufeffBOM no início",
        "\u0301\u0301 marcas soltas",
        "\u00ad\u200b\u2060",
        "x\r\r\ry",
        "İstanbul ẞ ǅ",
        "".join(chr(c) for c in range(0, 0x3000, 7)),
    ],
)
def test_weird_input_never_crashes(text):
    for tok in (PT, PT_CASED, Tokenizer(mode="whitespace")):
        tokens = tok.tokenize(text)
        assert all(isinstance(t, str) and t and not t.isspace() for t in tokens)
        assert tokens == list(tok.iter_tokens(text.splitlines(keepends=True)))
        tok.tokenize_prompt(text)
        detokenize(tokens)


def test_weird_input_details():
    assert PT.tokenize("a" * 10_000) == ["a" * 10_000, EOS]
    # Control characters separate words but never become tokens.
    assert PT.tokenize_prompt("a\x00b\x07c") == ["a", "b", "c"]
    # Invisible characters (BOM, soft hyphen, zero-width space) are deleted.
    assert PT.tokenize_prompt("\ufeffpalá\u00advra in\u200bteira") == ["palávra", "inteira"]
    assert PT.tokenize_prompt("😀 olá👍") == ["😀", "olá", "👍"]
    assert PT.tokenize("!!!") == ["!", "!", "!", EOS]
    assert PT.tokenize("\x00\x01") == []
    assert PT.tokenize("_x_") == ["_", "x", "_", EOS]


def test_random_text_properties():
    """Random text (Portuguese letters, marks, breaks, symbols) keeps the
    invariants: streaming equals tokenize however it is cut, no empty token,
    no <eos> first or twice in a row, and the prompt form only drops the last
    line end."""
    hypothesis = pytest.importorskip("hypothesis")
    st = hypothesis.strategies
    alphabet = st.sampled_from(
        list("aeioáéçãõ AZÉ0129.,;:!?…-—'’\"()«»\n\r\t\x00\x0c\x85\u2028\u0301\u200b😀_$%ºª°‐‑−‘´`ʼ\u00ad")
        + ["R$", "Sr.", "D.", "etc.", "...", "1.234,56", "<eos>", "<unk>", "\r\n", "\n\n"]
    )
    texts = st.lists(alphabet, max_size=60).map("".join)

    @hypothesis.settings(max_examples=300, deadline=None)
    @hypothesis.given(texts, st.integers(min_value=1, max_value=9))
    def check(text, cut):
        for tok in (PT, PT_CASED, Tokenizer(mode="whitespace"), Tokenizer(sentence_eos=False)):
            tokens = tok.tokenize(text)
            assert list(tok.iter_tokens(text.splitlines(keepends=True))) == tokens
            pieces = [text[i : i + cut] for i in range(0, len(text), cut)]
            assert list(tok.iter_tokens(pieces)) == tokens
            assert all(t and not any(ch.isspace() for ch in t) for t in tokens)
            assert tokens[:1] != [EOS]
            assert not any(a == b == EOS for a, b in zip(tokens, tokens[1:], strict=False))
            prompt = tok.tokenize_prompt(text)
            assert tokens in (prompt, prompt + [EOS])
            detokenize(tokens)

    check()


# -------------------------------------------------------------- detokenize


@pytest.mark.parametrize(
    "text",
    [
        "Sentindo-se indisposto, ele tomou um copo d'água às 14h30.",
        "— Vem cá! — disse ele. Depois (com calma) sentou-se; e ficou.",
        "Custou R$ 1.234,56, ou seja, 50% do preço... Que pena!",
        '«Não sei», disse o Dr. Silva: "Talvez amanhã."',
    ],
)
def test_detokenize_round_trip_keeps_words(text):
    tokens = PT_CASED.tokenize(text)
    out = detokenize(tokens)
    assert words(PT_CASED.tokenize(out)) == words(tokens)
    for mark in ",.;:!?)»%":
        assert f" {mark}" not in out
    for mark in "(«":
        assert f"{mark} " not in out


def test_detokenize_spacing():
    assert detokenize(["ele", ",", "disse", ":", "(", "sim", ")", "."]) == "ele, disse: (sim)."
    assert detokenize(['"', "olá", '"', ",", "disse", '"', "e", '"']) == '"olá", disse "e"'
    assert detokenize(["—", "vem", "!", "—", "disse", "ele"]) == "— vem! — disse ele"
    assert detokenize(["a", "...", "b", "…"]) == "a... b…"
    assert detokenize(["«", "sim", "»", "e", "“", "não", "”"]) == "«sim» e “não”"
    assert detokenize([]) == ""


def test_detokenize_eos():
    tokens = [EOS, "ele", "saiu", ".", EOS, "—", "e", "?", EOS, EOS]
    assert detokenize(tokens) == "ele saiu. — e?"
    assert detokenize(tokens, eos="\n") == "ele saiu.\n— e?"
    assert detokenize(["a", EOS, "b"], eos="") == "ab"


# ------------------------------------------------------------ serialization


def test_tokenizer_dict_round_trip():
    tok = Tokenizer(mode="whitespace", lowercase=False, sentence_eos=False, line_eos=True)
    d = tok.to_dict()
    assert d == {"mode": "whitespace", "lowercase": False, "sentence_eos": False, "line_eos": True}
    assert Tokenizer.from_dict(json.loads(json.dumps(d))) == tok
    assert Tokenizer.from_dict({}) == Tokenizer()


@pytest.mark.parametrize(
    "d, key",
    [
        ({"mode": "klingon"}, "tokenizer.mode"),
        ({"lowercas": True}, "tokenizer.lowercas"),
        ({"line_eos": "yes"}, "tokenizer.line_eos"),
        ({"sentence_eos": 1}, "tokenizer.sentence_eos"),
    ],
)
def test_tokenizer_from_dict_rejects_bad_settings(d, key):
    with pytest.raises(ConfigError) as err:
        Tokenizer.from_dict(d)
    assert key in str(err.value)
    assert "\n" not in str(err.value)


def test_tokenizer_rejects_a_non_mapping():
    with pytest.raises(ConfigError):
        Tokenizer.from_dict(["mode"])


# ------------------------------------------------------------------- Vocab


def test_vocab_order_ties_and_specials():
    counts = Counter({"b": 3, "a": 3, "c": 5, "d": 1})
    v = Vocab.build(counts)
    assert v.itos == [UNK, EOS, "c", "a", "b", "d"]
    assert v.counts == [0, 0, 5, 3, 3, 1]
    assert v.stoi == {t: i for i, t in enumerate(v.itos)}
    assert (v.unk_id, v.eos_id) == (0, 1)
    assert len(v) == 6
    assert "a" in v and "z" not in v and UNK in v


def test_vocab_min_count_and_max_vocab_feed_unk():
    counts = Counter({"c": 5, "a": 3, "b": 3, "d": 1, EOS: 4})
    v = Vocab.build(counts, min_count=2)
    assert v.itos == [UNK, EOS, "c", "a", "b"]
    assert v.counts == [1, 4, 5, 3, 3]
    v = Vocab.build(counts, max_vocab=4)
    assert v.itos == [UNK, EOS, "c", "a"]
    assert v.counts == [3 + 1, 4, 5, 3]
    assert sum(v.counts) == sum(counts.values())
    assert len(Vocab.build(counts, max_vocab=3)) == 3
    assert len(Vocab.build(counts, max_vocab=100)) == 6


def test_vocab_literal_unk_is_the_special():
    counts = Counter(["<unk>", "<unk>", "the", "<eos>", "the", "x"])
    v = Vocab.build(counts, min_count=2)
    assert v.itos == [UNK, EOS, "the"]
    assert v.counts == [2 + 1, 1, 2]


@pytest.mark.parametrize("max_vocab", [1, 2])
def test_vocab_max_vocab_too_small(max_vocab):
    with pytest.raises(ValueError, match="max_vocab must be at least 3"):
        Vocab.build(Counter("abc"), max_vocab=max_vocab)


def test_vocab_bad_build_arguments():
    with pytest.raises(ValueError):
        Vocab.build(Counter("abc"), min_count=0)
    with pytest.raises(ValueError):
        Vocab.build(Counter("abc"), max_vocab=-1)


def test_vocab_encode_decode():
    v = Vocab.build(count_tokens(["o", "gato", "o", EOS]))
    ids = v.encode(["o", "cão", "gato", EOS, UNK])
    assert ids.dtype == np.int32
    assert ids.tolist() == [2, 0, 3, 1, 0]
    assert v.decode(ids) == ["o", UNK, "gato", EOS, UNK]
    assert v.decode([2, 3]) == ["o", "gato"]
    assert v.decode([]) == []
    assert v.encode(iter([])).shape == (0,)
    with pytest.raises(ValueError, match="outside the vocabulary"):
        v.decode([1, 99])
    with pytest.raises(ValueError, match="outside the vocabulary"):
        v.decode([-1])


def test_vocab_encodes_a_tokenized_text():
    tokens = PT.tokenize("O gato viu o rato. O rato fugiu!")
    v = Vocab.build(count_tokens(tokens))
    assert v.decode(v.encode(tokens)) == tokens
    assert v.itos[:4] == [UNK, EOS, "o", "rato"]


def test_vocab_dict_round_trip():
    v = Vocab.build(Counter({"é": 2, "d'água": 1, UNK: 3}))
    d = json.loads(json.dumps(v.to_dict()))
    assert d == {"itos": [UNK, EOS, "é", "d'água"], "counts": [3, 0, 2, 1]}
    w = Vocab.from_dict(d)
    assert w == v and w.stoi == v.stoi and w.counts == v.counts


@pytest.mark.parametrize(
    "d, message",
    [
        ({"itos": [UNK, EOS, "a"], "counts": [0, 0]}, "3 entries but counts has 2"),
        ({"itos": [EOS, UNK, "a"], "counts": [0, 0, 1]}, "must start with"),
        ({"itos": [UNK, EOS, "a", "a"], "counts": [0, 0, 1, 1]}, "'a' appears more than once"),
        ({"itos": [UNK, EOS, 7], "counts": [0, 0, 1]}, r"itos\[2\]"),
        ({"itos": [UNK, EOS, "a"], "counts": [0, 0, -1]}, r"counts\[2\]"),
        ({"itos": [UNK, EOS, "a"], "counts": [0, 0, 1.5]}, r"counts\[2\]"),
        ({"itos": [UNK, EOS]}, "missing key 'counts'"),
        ({"itos": "abc", "counts": [0, 0, 0]}, "expected a list"),
        ({"itos": [UNK, EOS], "counts": [0, 0], "extra": 1}, "unknown key 'extra'"),
        ([UNK, EOS], "expected a mapping"),
    ],
)
def test_vocab_from_dict_rejects_damage(d, message):
    with pytest.raises(ValueError, match=message):
        Vocab.from_dict(d)


# ------------------------------------------- text pasted from a word processor
# Word processors, phone keyboards and PDF tools type other characters for the hyphen and the
# apostrophe.  The Portuguese mode reads them as "-" and "'" (issue 18, item 5): the unambiguous
# ones wherever they are, the ones that are also quotes, primes, accents, minus signs or bullets
# only between two letters or digits, where they can only join a word.

HYPHENS_ANYWHERE = ["\u2010", "\u2011", "\ufe63", "\uff0d"]  # hyphen, non-breaking, small, fullwidth
HYPHENS_BETWEEN = ["\u2012", "\u2043", "\u2212"]  # figure dash, hyphen bullet, minus sign
APOSTROPHES_ANYWHERE = ["\u02bc", "\uff07"]  # modifier letter apostrophe, fullwidth apostrophe
APOSTROPHES_BETWEEN = ["\u2019", "\u2018", "\u2032", "`", "\u00b4"]  # quotes, prime, grave, acute
PASTED = "Ele estava sentindo-se mal; bebeu um copo d'água, pensou n'ele e na galinha-d'angola."


def _paste(text: str, hyphen: str = "-", apostrophe: str = "'") -> str:
    return text.replace("-", hyphen).replace("'", apostrophe)


@pytest.mark.parametrize("hyphen", HYPHENS_ANYWHERE + HYPHENS_BETWEEN)
def test_pasted_hyphens_read_as_the_ascii_hyphen(hyphen):
    ascii_tokens = PT.tokenize(PASTED)
    assert "sentindo-se" in ascii_tokens and "galinha-d'angola" in ascii_tokens
    for tok in (PT, PT_CASED, Tokenizer(sentence_eos=False)):
        text = _paste(PASTED, hyphen=hyphen)
        assert tok.tokenize(text) == tok.tokenize(PASTED)
        assert tok.tokenize_prompt(text) == tok.tokenize_prompt(PASTED)
        assert list(tok.iter_tokens(text.splitlines(keepends=True))) == tok.tokenize(PASTED)
    assert PT.tokenize_prompt(f"far{hyphen}se{hyphen}á 1990{hyphen}2000") == ["far-se-á", "1990-2000"]


@pytest.mark.parametrize("apostrophe", APOSTROPHES_ANYWHERE + APOSTROPHES_BETWEEN)
def test_pasted_apostrophes_read_as_the_ascii_apostrophe(apostrophe):
    text = _paste(PASTED, apostrophe=apostrophe)
    for tok in (PT, PT_CASED):
        assert tok.tokenize(text) == tok.tokenize(PASTED)
    assert PT.tokenize_prompt(f"D{apostrophe}Água pau-d{apostrophe}arco") == ["d'água", "pau-d'arco"]


def test_a_word_may_mix_pasted_hyphens_and_apostrophes():
    tokens = PT.tokenize_prompt("galinha\u2011d\u2019angola e far\u2010se\u2011á")
    assert tokens == ["galinha-d'angola", "e", "far-se-á"]


@pytest.mark.parametrize("char", HYPHENS_ANYWHERE + APOSTROPHES_ANYWHERE)
def test_unambiguous_hyphens_and_apostrophes_are_ascii_everywhere(char):
    """Outside a word they are the ASCII character too: the tokens are those of ASCII text."""
    ascii_char = "-" if char in HYPHENS_ANYWHERE else "'"
    for text in ["{c}olá{c}", "a {c} b", "{c}{c}", "fim{c}", "{c}80"]:
        assert PT.tokenize(text.format(c=char)) == PT.tokenize(text.format(c=ascii_char)), text


@pytest.mark.parametrize(
    "text, tokens",
    [
        # Quotation marks around a word stay quotation marks (as typed, like “ and ”).
        ("‘palavra’", ["‘", "palavra", "’"]),
        ("o ‘livro’ dele", ["o", "‘", "livro", "’", "dele"]),
        ("disse: ‘Vem cá’.", ["disse", ":", "‘", "vem", "cá", "’", ".", EOS]),
        ("os alunos’ livros", ["os", "alunos", "’", "livros"]),
        ("anos ’80", ["anos", "’", "80"]),
        ("´a` b´", ["´", "a", "`", "b", "´"]),
        # A minus sign, a prime or a bullet that joins nothing keeps its meaning.
        ("−5 graus", ["−", "5", "graus"]),
        ("5′ 30″", ["5", "′", "30", "″"]),
        ("⁃ primeiro item", ["⁃", "primeiro", "item"]),
        # En and em dashes are punctuation, spaced or not: a range, an aside, a dialogue.
        ("1990–2000", ["1990", "–", "2000"]),
        ("Rio–Niterói", ["rio", "–", "niterói"]),
        ("sentindo–se", ["sentindo", "–", "se"]),
        ("ele — disse", ["ele", "—", "disse"]),
        ("ele—disse", ["ele", "—", "disse"]),
    ],
)
def test_quotes_primes_minus_signs_and_dashes_that_join_nothing_are_kept(text, tokens):
    assert PT.tokenize_prompt(text) == tokens


def test_curly_quotes_around_a_word_tokenize_like_straight_ones():
    assert PT.tokenize_prompt("‘palavra’") == ["‘", "palavra", "’"]
    assert PT.tokenize_prompt("'palavra'") == ["'", "palavra", "'"]
    assert detokenize(PT.tokenize_prompt("o ‘livro’ dele")) == "o ‘livro’ dele"


def test_a_dash_after_a_sentence_end_still_lets_the_sentence_end():
    assert PT.tokenize("Saiu.\u2010 Voltou") == PT.tokenize("Saiu.- Voltou")
    assert PT.tokenize("Ah!\u2011 que pena") == PT.tokenize("Ah!- que pena") == ["ah", "!", "-", "que", "pena", EOS]


def test_the_soft_hyphen_is_dropped_wherever_it_is():
    for tok in (PT, Tokenizer(mode="whitespace")):
        assert tok.tokenize_prompt("indis\u00adposto sentindo\u00ad-\u00adse \u00ad") == ["indisposto", "sentindo-se"]
    assert PT.tokenize_prompt("sentindo\u2011\u00adse") == ["sentindo-se"]


def test_whitespace_mode_keeps_the_characters_of_its_tokens():
    """A pre-tokenized corpus's tokens are its own: only invisible characters are dropped."""
    tok = Tokenizer(mode="whitespace")
    assert tok.tokenize_prompt("sentindo\u2011se d’água") == ["sentindo\u2011se", "d’água"]
    assert tok.tokenize_prompt("sentindo\u00ad-se") == ["sentindo-se"]


def test_joiner_normalisation_is_one_character_for_one():
    text = "d’água sentindo‑se ‘sim’ x−y −5 d´"
    out = normalize_joiners(text)
    assert out == "d'água sentindo-se ‘sim’ x-y −5 d´" and len(out) == len(text)
    assert normalize_joiners("d´", open_end=True) == "d'"
    assert normalize_joiners("‘pala", open_end=True) == "‘pala"
    assert normalize_joiners("nada a mudar") == "nada a mudar"


def test_training_text_with_pasted_characters_gives_the_ascii_vocabulary(tmp_path):
    """The corpus reader of `rnn train` (tokenize_files) sees the ASCII words."""
    ascii_file, pasted_file = tmp_path / "ascii.txt", tmp_path / "pasted.txt"
    ascii_file.write_text(PASTED + "\n", encoding="utf-8")
    pasted = _paste(PASTED, "\u2011", "\u2019") + "\n" + _paste(PASTED, "\u2010", "\u02bc")
    pasted_file.write_text(pasted, encoding="utf-8")
    _, ascii_words = tokenize_files([ascii_file], PT, "utf-8", "strict")
    _, pasted_words = tokenize_files([pasted_file], PT, "utf-8", "strict")
    assert sorted(pasted_words) == sorted(ascii_words)


def test_the_corpus_cache_key_holds_the_tokenizer_rules(tmp_path, monkeypatch):
    """Tokens cached under older rules ("sentindo", "‑", "se") are never served again."""
    corpus = tmp_path / "c.txt"
    corpus.write_text("sentindo\u2011se\n", encoding="utf-8")
    key = cache_key([corpus], PT, "utf-8", "strict")
    import rnncli.data as data_module

    monkeypatch.setattr(data_module, "RULES_VERSION", tokenizer_module.RULES_VERSION + 1)
    assert cache_key([corpus], PT, "utf-8", "strict") != key
    # The rules version is not a setting: checkpoints keep the same tokenizer dict, old ones load.
    old = {"mode": "portuguese", "lowercase": True, "sentence_eos": True, "line_eos": True}
    assert Tokenizer.from_dict(old).to_dict() == old


def _cli(runner, *args, input=None):
    result = runner.invoke(main, list(args), input=input)
    assert result.exit_code == 0, result.output
    return result.stdout


def test_a_model_trained_on_ascii_predicts_the_same_after_pasted_text(tiny_run, runner):
    prompt = "A mãe trouxe um copo d'água e ele estava sentindo-se"
    pasted = [_paste(prompt, h, a) for h, a in zip(HYPHENS_ANYWHERE + HYPHENS_BETWEEN, APOSTROPHES_BETWEEN * 2)]
    lines = _cli(runner, "predict", "-c", str(tiny_run), "--format", "json", prompt, *pasted).splitlines()
    predictions = [json.loads(line)["predictions"] for line in lines]
    assert len(predictions) == 1 + len(pasted)
    assert all(p == predictions[0] for p in predictions[1:])

    text = "Às 14h30 ele já estava sentindo-se melhor.\nA mãe trouxe um copo d'água.\n"
    pasted_text = _paste(text, "\u2011", "\u2019")
    for command in ("tokenize", "eval"):
        assert _cli(runner, command, "-c", str(tiny_run), input=pasted_text) == _cli(
            runner, command, "-c", str(tiny_run), input=text
        ), command

    def scores(text):  # without the line itself, which is echoed as given
        out = _cli(runner, "score", "-c", str(tiny_run), "--format", "json", input=text)
        return [{k: v for k, v in json.loads(line).items() if k != "line"} for line in out.splitlines()]

    assert scores(pasted_text) == scores(text)
    assert "<unk>" not in _cli(runner, "tokenize", "-c", str(tiny_run), input=pasted_text)


def test_fill_reads_pasted_text_as_ascii(tiny_run, runner):
    line = "ele estava sentindo-se ___ e foi ao médico"
    for hyphen in ("\u2011", "\u2010"):
        assert _cli(runner, "fill", "-c", str(tiny_run), _paste(line, hyphen)) == _cli(
            runner, "fill", "-c", str(tiny_run), line
        )


def test_completing_a_word_typed_with_a_pasted_hyphen_or_apostrophe(tiny_run, runner):
    assert split_prompt("ela estava sentindo\u2011") == ("ela estava ", "sentindo\u2011")
    assert split_prompt("um copo d\u00b4á") == ("um copo ", "d\u00b4á")
    assert split_prompt("um copo d’") == ("um copo ", "d’")
    assert split_prompt("disse ‘pala") == ("disse ‘", "pala")
    assert split_prompt("ela estava indis\u00adpo") == ("ela estava ", "indispo")
    assert match_key("Sentindo\u2011") == match_key("sentindo\u2010") == "sentindo-"
    assert match_key("D\u2019á") == match_key("d\u00b4a") == "d'a"

    def completions(prompt):
        out = _cli(runner, "predict", "-c", str(tiny_run), "--complete", "--format", "json", prompt)
        return json.loads(out)["predictions"]

    ascii_words = completions("ela estava sentindo-")
    assert ascii_words and ascii_words[0]["word"] == "sentindo-se"
    for hyphen in HYPHENS_ANYWHERE + HYPHENS_BETWEEN:
        assert completions(f"ela estava sentindo{hyphen}") == ascii_words, hyphen
    for apostrophe in APOSTROPHES_ANYWHERE + APOSTROPHES_BETWEEN:
        assert completions(f"um copo d{apostrophe}") == completions("um copo d'"), apostrophe


def test_the_stored_mark_table_is_what_a_scan_of_unicodedata_finds():
    import unicodedata

    from rnncli import tokenizer

    known = tokenizer._KNOWN_MARKS.get(unicodedata.unidata_version)
    if known is None:
        pytest.skip(f"no stored table for Unicode {unicodedata.unidata_version}: the scan runs")
    assert tokenizer._mark_ranges() == tokenizer._scan_marks()
