"""Property-based tests (hypothesis): the tokenizer never crashes and keeps the words; the config
loader turns any YAML document into a valid Config or a ConfigError, never anything else."""

import unicodedata

import yaml
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from rnncli.config import KEYS, SECTIONS, Config, load_config
from rnncli.errors import ConfigError
from rnncli.tokenizer import EOS, Tokenizer, detokenize

TOKENIZERS = [
    Tokenizer(),
    Tokenizer(lowercase=False),
    Tokenizer(mode="whitespace"),
    Tokenizer(sentence_eos=False, line_eos=False),
]

# text with what users paste: accents, combining marks, other scripts, emoji, controls, breaks
_alphabet = st.one_of(
    st.characters(codec="utf-8"),
    st.sampled_from(list("aáàâãçéêíóôõúü-'’.,;:!?…«»—\n\r\t \u0301\u0327\u200b\ufeff😀👍🏽")),
)
texts = st.text(alphabet=_alphabet, max_size=200)
words = st.lists(
    st.text(alphabet=st.sampled_from(list("abcdefghijklmnopqrstuvwxyzáéíóúãõçâêô")), min_size=1, max_size=8),
    min_size=1,
    max_size=30,
)


@settings(max_examples=300, deadline=None)
@given(texts, st.sampled_from(TOKENIZERS))
def test_tokenizer_never_crashes_and_gives_nfc_tokens(text, tok):
    tokens = tok.tokenize(text)
    prompt = tok.tokenize_prompt(text)
    assert all(isinstance(t, str) and t for t in tokens + prompt)
    for t in tokens:
        assert unicodedata.is_normalized("NFC", t), repr(t)
        assert t == EOS or not any(c.isspace() for c in t), repr(t)
    assert list(tok.iter_tokens(text.splitlines(keepends=True))) == tokens
    detokenize(tokens)  # never crashes either


@settings(max_examples=200, deadline=None)
@given(words, st.sampled_from(TOKENIZERS))
def test_detokenize_then_tokenize_keeps_the_words(ws, tok):
    sentence = " ".join(ws)
    tokens = [t for t in tok.tokenize(sentence) if t != EOS]
    assert [t for t in tok.tokenize(detokenize(tokens)) if t != EOS] == tokens
    expected = [w.lower() if tok.lowercase else w for w in ws]
    assert tokens == [unicodedata.normalize("NFC", w) for w in expected]


_portuguese = st.lists(
    st.one_of(
        st.text(alphabet=st.sampled_from(list("abcdefgháéíóúãõç")), min_size=1, max_size=6),
        st.sampled_from(["sentindo-se", "d'água", "far-se-á", "guarda-chuva", ",", ";", "14h30", "3,5", "(", ")"]),
        st.sampled_from(["«", "»", "?", "!", ":", "…"]),
    ),
    min_size=1,
    max_size=15,
)


@settings(max_examples=300, deadline=None)
@given(_portuguese)
def test_detokenized_portuguese_tokenizes_back_to_the_same_tokens(ws):
    tok = Tokenizer()
    tokens = [t for t in tok.tokenize(" ".join(ws)) if t != EOS]
    assert [t for t in tok.tokenize(detokenize(tokens)) if t != EOS] == tokens


@settings(max_examples=200, deadline=None)
@given(texts)
def test_tokenizing_is_the_same_for_nfc_and_nfd_input(text):
    tok = Tokenizer()
    assert tok.tokenize(unicodedata.normalize("NFD", text)) == tok.tokenize(unicodedata.normalize("NFC", text))


# --- the config loader ---------------------------------------------------------------------------

_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(10**6), max_value=10**6),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=12),
    st.sampled_from(["rnn", "lstm", "adam", "sgd", "utf-8", "latin-1", "x.txt", "1e-3", "full", "strict"]),
)
_values = st.recursive(
    _scalars,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
    max_leaves=6,
)
_keys = st.sampled_from([k.split(".")[1] for k in KEYS] + ["bogus"])
_sections = st.dictionaries(
    st.sampled_from(list(SECTIONS) + ["modle", "x"]),
    st.one_of(st.none(), _values, st.dictionaries(_keys, _values, max_size=5)),
    max_size=5,
)
_documents = st.one_of(_sections, _values)


def _check(path):
    try:
        cfg = load_config(path)
    except ConfigError as e:
        assert str(e) and "\n" not in str(e)
    else:
        assert isinstance(cfg, Config)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(_documents)
@example({"\n": None})  # found by hypothesis: a section name with a line break broke the one-line message
@example({"model": {"x\ty\n": 1}})
def test_any_yaml_document_is_a_config_or_a_config_error(tmp_path, doc):
    path = tmp_path / "random.yaml"
    path.write_text(yaml.safe_dump(doc, allow_unicode=True), encoding="utf-8")
    _check(path)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.text(alphabet=st.sampled_from(list("trainmodel:{}[],- \n\t'\"&*!|>#%@`0123.e")), max_size=80))
def test_any_yaml_text_is_a_config_or_a_config_error(tmp_path, text):
    path = tmp_path / "random.yaml"
    path.write_text(text, encoding="utf-8")
    _check(path)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.binary(max_size=60))
def test_any_bytes_are_a_config_or_a_config_error(tmp_path, data):
    path = tmp_path / "random.yaml"
    path.write_bytes(data)
    _check(path)
