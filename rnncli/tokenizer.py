"""Turn text into word tokens and token ids, and tokens back into readable text.

`Tokenizer` splits Portuguese prose into words and punctuation (or, in whitespace
mode, splits on whitespace only) and marks sentence and line ends with `<eos>`.
`Vocab` maps tokens to integer ids, with `<unk>` (id 0) for unseen words and
`<eos>` (id 1).  `detokenize` joins tokens into text with Portuguese spacing.
Everything here is plain data that round-trips through JSON, so a checkpoint can
carry the exact tokenizer and vocabulary it was trained with.

Portuguese mode, in short (see `_TOKEN_RE` for the details):

* a word is a run of letters (with combining marks) and digits, glued by
  internal hyphens ("far-se-á", "guarda-chuva"), internal apostrophes
  ("d'água", "n’alma") and, between digits, "." and "," ("1.234,56");
  ordinal marks stick to their number ("1º", "2.ª", "5.°");
* the other hyphens and apostrophes that word processors, keyboards and PDF
  tools type are read as "-" and "'" (`normalize_joiners`), so "sentindo‑se"
  (U+2011) and "d’água" are the words "sentindo-se" and "d'água"; whitespace
  mode keeps them as they are (a pre-tokenized corpus's tokens are its own);
* the abbreviations in `ABBREVIATIONS` keep their period ("Sr.", "D.", "etc.");
* "R$" and "US$" are single tokens; "%" and every other symbol or emoji is a
  token of one character; "..." is one token and so is a run of hyphens "--";
* a sentence ends after ".", "!", "?", "..." or "…" (and any closing quotes or
  brackets glued to it) unless the next token on the same line, skipping
  dialogue dashes, starts with a lower-case letter or is "," or ";".
"""

from __future__ import annotations

import functools
import re
import unicodedata
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, fields
from itertools import repeat
from typing import Any

import numpy as np

from rnncli.errors import ConfigError

UNK = "<unk>"
EOS = "<eos>"
SPECIALS = (UNK, EOS)
MODES = ("portuguese", "whitespace")

# Abbreviations that keep their period and never end a sentence, written in lower
# case and matched case-insensitively.  Kept short on purpose: each entry means a
# sentence that really ends in it ("... leite etc. Depois") loses its <eos>.
# The single letters are the ones Portuguese prose uses before names
# ("D. Maria", "S. Paulo", "V. Exa.") or pages ("p. 12"); other initials are not
# protected, because "É." or "A." can end a sentence.
_ABBREVIATION_LIST = """
    sr. sra. srs. sras. srta. sr.ª sra.ª dr. dra. drs. dras. d. d.ª
    prof. profa. profs. pe. fr. s. s.ª s.s. v. v.s. v.s.ª v.sa.
    exa. ex.ª excia. v.exa. v.ex.ª v.excia. exmo. exma. ex.mo ex.ma ilmo. ilma. il.mo il.ma
    etc. pág. págs. p. pp. n.º n.° cap. vol. séc. av. sto. sta. obs. cf. ed. fl. fls.
"""
ABBREVIATIONS = frozenset(_ABBREVIATION_LIST.split())

# Combining marks (Mn, Mc, Me) of the Basic Multilingual Plane.  Python's `re`
# has no \p{M}, and NFC leaves marks that have no precomposed letter in place,
# so without this class a letter like "q" + U+0303 would split its word.  The scan skips the
# CJK, Hangul and surrogate/private-use blocks (no marks there); marks outside the BMP become
# one-character tokens.
_SCAN = [(0x0300, 0x3400), (0xA000, 0xAC00), (0xF900, 0x10000)]

# What the scan finds under the Unicode version of Python 3.11's `unicodedata`, as hex ranges:
# scanning 17,000 code points took 6 ms of every start of `rnn`.  Any other version scans
# (tests/test_tokenizer.py checks this table against the scan).
_KNOWN_MARKS = {
    "14.0.0": """
0300-036f 0483-0489 0591-05bd 05bf 05c1-05c2 05c4-05c5 05c7 0610-061a 064b-065f 0670 06d6-06dc
06df-06e4 06e7-06e8 06ea-06ed 0711 0730-074a 07a6-07b0 07eb-07f3 07fd 0816-0819 081b-0823
0825-0827 0829-082d 0859-085b 0898-089f 08ca-08e1 08e3-0903 093a-093c 093e-094f 0951-0957
0962-0963 0981-0983 09bc 09be-09c4 09c7-09c8 09cb-09cd 09d7 09e2-09e3 09fe 0a01-0a03 0a3c
0a3e-0a42 0a47-0a48 0a4b-0a4d 0a51 0a70-0a71 0a75 0a81-0a83 0abc 0abe-0ac5 0ac7-0ac9 0acb-0acd
0ae2-0ae3 0afa-0aff 0b01-0b03 0b3c 0b3e-0b44 0b47-0b48 0b4b-0b4d 0b55-0b57 0b62-0b63 0b82
0bbe-0bc2 0bc6-0bc8 0bca-0bcd 0bd7 0c00-0c04 0c3c 0c3e-0c44 0c46-0c48 0c4a-0c4d 0c55-0c56
0c62-0c63 0c81-0c83 0cbc 0cbe-0cc4 0cc6-0cc8 0cca-0ccd 0cd5-0cd6 0ce2-0ce3 0d00-0d03 0d3b-0d3c
0d3e-0d44 0d46-0d48 0d4a-0d4d 0d57 0d62-0d63 0d81-0d83 0dca 0dcf-0dd4 0dd6 0dd8-0ddf 0df2-0df3
0e31 0e34-0e3a 0e47-0e4e 0eb1 0eb4-0ebc 0ec8-0ecd 0f18-0f19 0f35 0f37 0f39 0f3e-0f3f 0f71-0f84
0f86-0f87 0f8d-0f97 0f99-0fbc 0fc6 102b-103e 1056-1059 105e-1060 1062-1064 1067-106d 1071-1074
1082-108d 108f 109a-109d 135d-135f 1712-1715 1732-1734 1752-1753 1772-1773 17b4-17d3 17dd
180b-180d 180f 1885-1886 18a9 1920-192b 1930-193b 1a17-1a1b 1a55-1a5e 1a60-1a7c 1a7f 1ab0-1ace
1b00-1b04 1b34-1b44 1b6b-1b73 1b80-1b82 1ba1-1bad 1be6-1bf3 1c24-1c37 1cd0-1cd2 1cd4-1ce8 1ced
1cf4 1cf7-1cf9 1dc0-1dff 20d0-20f0 2cef-2cf1 2d7f 2de0-2dff 302a-302f 3099-309a a66f-a672
a674-a67d a69e-a69f a6f0-a6f1 a802 a806 a80b a823-a827 a82c a880-a881 a8b4-a8c5 a8e0-a8f1 a8ff
a926-a92d a947-a953 a980-a983 a9b3-a9c0 a9e5 aa29-aa36 aa43 aa4c-aa4d aa7b-aa7d aab0 aab2-aab4
aab7-aab8 aabe-aabf aac1 aaeb-aaef aaf5-aaf6 abe3-abea abec-abed fb1e fe00-fe0f fe20-fe2f
""",
}


def _scan_marks() -> list[tuple[int, int]]:
    ranges: list[tuple[int, int]] = []
    for lo, hi in _SCAN:
        for cp in range(lo, hi):
            if unicodedata.category(chr(cp))[0] == "M":
                if ranges and ranges[-1][1] == cp - 1:
                    ranges[-1] = (ranges[-1][0], cp)
                else:
                    ranges.append((cp, cp))
    return ranges


def _mark_ranges() -> list[tuple[int, int]]:
    known = _KNOWN_MARKS.get(unicodedata.unidata_version)
    if known is None:
        return _scan_marks()
    ranges = []
    for item in known.split():
        lo, _, hi = item.partition("-")
        ranges.append((int(lo, 16), int(hi or lo, 16)))
    return ranges


def _mark_class() -> str:
    # the marks themselves, not \u escapes: none is special inside a class, and the pattern that
    # holds them parses in half the time (this class is in several patterns compiled at import)
    return "[" + "".join(f"{chr(a)}-{chr(b)}" for a, b in _mark_ranges()) + "]"


_MARK = _mark_class()
_LETTER = r"[^\W_]"  # letters and digits, i.e. \w without the underscore
# What may glue two runs of letters into one word: hyphens, apostrophes (other forms of
# both are ASCII by now: `normalize_joiners`), and the thousands and decimal
# separators of a number (only between digits, so "fim.Depois" still splits).
_CONNECT = r"(?:[-']|(?<=\d)[.,](?=\d))"
# A word: runs of letters glued by connectors; marks and ordinal signs may follow inside a run
# ("5.°" joins only after a digit so that "era o." stays a word and a full stop).  Written with
# the mark class once (a connector must be followed by a letter), it compiles in 2/3 of the time
# of "run (connector run)*", and finds the same tokens.
_WORD = rf"{_LETTER}+(?:(?:{_MARK}+|(?<=\d)\.?[°ºª]|{_CONNECT}(?={_LETTER})){_LETTER}*)*"


def _trie_pattern(words: Iterable[str]) -> str:
    """A regex matching any of `words` (longest first), case-insensitively.

    Written as a trie ("s(?:r(?:a)?...)") with explicit [sS] classes rather than
    `(?i:sr\\.|sra\\.|...)`: `re` tries a flat alternation entry by entry at the
    start of every token, which tripled the time to tokenize a corpus.
    """
    tree: dict[str, dict] = {}
    for word in words:
        node = tree
        for ch in word:
            node = node.setdefault(ch, {})
        node[""] = {}  # a word ends here

    def emit(node: dict[str, dict]) -> str:
        alts = []
        for ch in sorted(k for k in node if k):
            up = ch.upper()
            cased = up != ch and len(up) == 1
            piece = f"[{re.escape(ch)}{re.escape(up)}]" if cased else re.escape(ch)
            alts.append(piece + emit(node[ch]))
        if not alts:
            return ""
        body = alts[0] if len(alts) == 1 else "(?:" + "|".join(alts) + ")"
        # Greedy "?" tries the longer abbreviation first ("sr.ª" before "sr.").
        return f"(?:{body})?" if "" in node else body

    return emit(tree)


_ABBREV = _trie_pattern(ABBREVIATIONS)
_TERMINALS = ".!?…"
# A sentence-end cluster: the mark and the closing quotes/brackets glued to it,
# so that the <eos> lands after `."` or `!)` and not between them.
_CLUSTER = r"(?:\.\.\.|[.!?…])[.!?…\"'”’»)\]}]*"

_TOKEN_RE = re.compile(
    rf"""
    <unk>|<eos>                         # specials already in the text
    |{_ABBREV}                          # Sr. D. etc. n.º
    |(?i:r|us)\$                        # currencies: R$ US$
    |{_WORD}                            # words and numbers
    |{_CLUSTER}                         # . ! ? ... … (+ closing quotes)
    |-{{2,}}                            # "--" used as a dash
    |\S                                 # anything else: one character
    """,
    re.VERBOSE,
)
_CLUSTER_PART_RE = re.compile(r"\.\.\.|.", re.DOTALL)

# Only these end a line.  str.splitlines also breaks on \v, \f, \x1c-\x1e, \x85,
# U+2028 and U+2029; here those are whitespace inside a line, so that a file
# read line by line and the same text tokenized at once agree.
_LINE_BREAK_RE = re.compile(r"\r\n|\r|\n")
# Control characters that are not whitespace become spaces (they separate
# tokens but never become one); invisible format characters (soft hyphen,
# zero-width space/joiners, bidi marks, BOM) are deleted so that they cannot
# break a word in two.
_CONTROL = r"\x00-\x08\x0e-\x1b\x7f-\x84\x86-\x9f"
_INVISIBLE = r"\u00ad\u061c\u180e\u200b-\u200f\u202a-\u202e\u2060-\u2064\u2066-\u206f\ufeff"
_ODD_RE = re.compile(f"[{_CONTROL}{_INVISIBLE}]")


def _odd_table() -> dict[int, str | None]:
    """str.translate's table: each control character to a space, each invisible one to nothing."""
    table: dict[int, str | None] = {}
    for chars, to in ((_CONTROL, " "), (_INVISIBLE, None)):
        for lo, hi in re.findall(r"(.)(?:-(.))?", chars.encode().decode("unicode_escape")):
            table.update(dict.fromkeys(range(ord(lo), ord(hi or lo) + 1), to))
    return table


_ODD_TABLE = _odd_table()

_DASHES = frozenset({"—", "–", "-"})
_CONTINUES_SENTENCE = frozenset({",", ";"})

# The version of the rules of this module: bump it when a change makes some text
# tokenize differently, so that the tokenized-corpus cache (`rnncli.data.cache_key`)
# never serves the tokens of older rules.  Not a setting: a checkpoint is read
# with the rules of the code that reads it.
# 2: the hyphens and apostrophes of `_JOINERS_ANYWHERE` and `_JOINERS_BETWEEN`.
RULES_VERSION = 2

# Hyphens and apostrophes as other software types them ("sentindo‑se" with the
# non-breaking hyphen of a word processor, "d´água" from a Brazilian keyboard).
# These are a hyphen or an apostrophe wherever they are: read as ASCII everywhere.
_JOINERS_ANYWHERE = {
    "\u2010": "-",  # HYPHEN
    "\u2011": "-",  # NON-BREAKING HYPHEN
    "\ufe63": "-",  # SMALL HYPHEN-MINUS
    "\uff0d": "-",  # FULLWIDTH HYPHEN-MINUS
    "\u02bc": "'",  # MODIFIER LETTER APOSTROPHE
    "\uff07": "'",  # FULLWIDTH APOSTROPHE
}
# These mean something else next to a space (a quotation mark, a prime, an accent,
# a minus sign, a list bullet): read as ASCII only between two letters or digits,
# where they can only join a word ("d’água", but "‘palavra’" keeps its quotes).
# En and em dashes are never word joiners: "1990–2000" is a range, "ele—disse" an aside.
_JOINERS_BETWEEN = {
    "\u2012": "-",  # FIGURE DASH
    "\u2043": "-",  # HYPHEN BULLET
    "\u2212": "-",  # MINUS SIGN
    "\u2018": "'",  # LEFT SINGLE QUOTATION MARK
    "\u2019": "'",  # RIGHT SINGLE QUOTATION MARK (the apostrophe of word processors)
    "\u2032": "'",  # PRIME
    "`": "'",  # GRAVE ACCENT
    "\u00b4": "'",  # ACUTE ACCENT
}
_JOINERS = {**_JOINERS_ANYWHERE, **_JOINERS_BETWEEN}
#: every joiner above to its ASCII form, wherever it is (for `str.translate`)
JOINER_TABLE = str.maketrans(_JOINERS)
_ANY_JOINER_RE = re.compile("[" + re.escape("".join(_JOINERS)) + "]")
_AFTER_WORD = rf"(?:(?<={_LETTER})|(?<={_MARK}))"
_ANYWHERE_CLASS = "[" + re.escape("".join(_JOINERS_ANYWHERE)) + "]"
_BETWEEN_CLASS = "[" + re.escape("".join(_JOINERS_BETWEEN)) + "]"


@functools.cache
def _joiner_re(open_end: bool) -> re.Pattern:
    """The joiners to put in ASCII (at the very end too, when ``open_end``), compiled on first need:
    most text holds none, and each pattern holds the long class of combining marks."""
    ahead = rf"(?={_LETTER}|\Z)" if open_end else rf"(?={_LETTER})"
    return re.compile(rf"{_ANYWHERE_CLASS}|{_AFTER_WORD}{_BETWEEN_CLASS}{ahead}")


def _ascii_joiner(m: re.Match) -> str:
    return _JOINERS[m.group()]


def normalize_joiners(text: str, open_end: bool = False) -> str:
    """`text` with its hyphens and apostrophes in ASCII, as the Portuguese mode reads them.

    The unambiguous forms (U+2010, U+2011, U+FE63, U+FF0D -> "-"; U+02BC, U+FF07
    -> "'") change everywhere; those that are also something else (U+2012, U+2043,
    U+2212 -> "-"; U+2018, U+2019, U+2032, "`", U+00B4 -> "'") only between two
    letters or digits.  One character stays one character, so an offset into the
    result is an offset into `text`.  `open_end`: the text ends in a word still
    being typed, so a joiner at its very end counts as followed by a letter
    ("um copo d´" -> "um copo d'").
    """
    if not _ANY_JOINER_RE.search(text):  # most text: one scan in C, no copy
        return text
    return _joiner_re(open_end).sub(_ascii_joiner, text)


def clean_text(text: str) -> str:
    """Drop invisible characters, blank out control characters, then NFC (both modes)."""
    if _ODD_RE.search(text):
        text = text.translate(_ODD_TABLE)
    return unicodedata.normalize("NFC", text)


def _split_lines(chunks: Iterable[str]) -> Iterator[str]:
    """Yield the lines of a text given in arbitrary pieces, without their breaks.

    The pieces may be file lines, `str.splitlines(keepends=True)` output or one
    big string: a line is only complete at "\\n", "\\r\\n" or "\\r", so every way
    of cutting the same text gives the same lines.  A "\\r\\n" cut between two
    pieces gives an extra empty line, which tokenizes to nothing.
    """
    pending: list[str] = []
    for chunk in chunks:
        parts = _LINE_BREAK_RE.split(chunk)
        if len(parts) == 1:
            if chunk:
                pending.append(chunk)
            continue
        pending.append(parts[0])
        yield "".join(pending)
        pending = []
        yield from parts[1:-1]
        if parts[-1]:
            pending.append(parts[-1])
    if pending:
        yield "".join(pending)


@dataclass(frozen=True)
class Tokenizer:
    """How text becomes tokens; the settings are stored with every checkpoint."""

    mode: str = "portuguese"  # "portuguese" (rules above) or "whitespace"
    lowercase: bool = True  # fold to lower case (accents kept)
    sentence_eos: bool = True  # <eos> after each sentence (portuguese mode)
    line_eos: bool = True  # <eos> after each non-blank line

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ConfigError(f"tokenizer.mode: must be one of {', '.join(MODES)}, got {self.mode!r}")
        for name in ("lowercase", "sentence_eos", "line_eos"):
            value = getattr(self, name)
            if not isinstance(value, bool):
                raise ConfigError(f"tokenizer.{name}: must be true or false, got {value!r}")

    # ----------------------------------------------------------------- public

    def tokenize(self, text: str) -> list[str]:
        """Tokens of a whole text; the end of the text counts as a line end."""
        return list(self._stream(_split_lines([text]), prompt=False))

    def iter_tokens(self, lines: Iterable[str]) -> Iterator[str]:
        """Tokens of a text given as pieces (e.g. an open file), lazily.

        `list(t.iter_tokens(text.splitlines(keepends=True))) == t.tokenize(text)`
        for every text: pieces are re-joined at real line breaks only.
        """
        return self._stream(_split_lines(lines), prompt=False)

    def tokenize_prompt(self, text: str) -> list[str]:
        """Tokens of a user's prompt: like `tokenize`, but the end of the text is
        not a line end (the sentence goes on), so no `<eos>` is added there.  A
        sentence end ("Ele saiu.") still gives its `<eos>`, even at the end.
        """
        return list(self._stream(_split_lines([text]), prompt=True))

    def to_dict(self) -> dict[str, Any]:
        """The settings as a JSON-safe dict (what `from_dict` reads back)."""
        return {f.name: getattr(self, f.name) for f in fields(self)}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Tokenizer:
        """Settings from a dict; missing keys take their defaults.

        Raises ConfigError naming the key for an unknown key or a bad value.
        """
        if not isinstance(d, Mapping):
            raise ConfigError(f"tokenizer: expected a mapping of settings, got {type(d).__name__}")
        known = [f.name for f in fields(cls)]
        for key in d:
            if key not in known:
                raise ConfigError(f"tokenizer.{key}: unknown setting (known: {', '.join(known)})")
        return cls(**d)

    # --------------------------------------------------------------- internal

    def _stream(self, lines: Iterable[str], prompt: bool) -> Iterator[str]:
        """Tokens of complete lines, with the line-end <eos> and no <eos> twice.

        A line end's <eos> is held back until the next non-blank line (or the
        end of the text) so that a prompt can leave it out and so that a
        sentence-end <eos> at the start of the next line never doubles it.
        """
        line_tokens = self._portuguese_line if self.mode == "portuguese" else self._whitespace_line
        last_eos = True  # the start of the text is a boundary: no leading <eos>
        due = False  # a line-end <eos> is owed before the next token
        for line in lines:
            tokens = line_tokens(clean_text(line))
            if not tokens:
                continue  # blank line (or only invisible characters)
            if tokens[0] == EOS:
                # Only a literal "<eos>" in the text can start a line's tokens;
                # it stands in for the owed line end, or is dropped as a repeat.
                if last_eos and not due:
                    tokens = tokens[1:]
                due = False
            elif due:
                yield EOS
                due = False
            if not tokens:
                continue
            yield from tokens
            last_eos = tokens[-1] == EOS
            due = self.line_eos and not last_eos
        if due and not prompt:
            yield EOS

    def _whitespace_line(self, line: str) -> list[str]:
        tokens = (line.lower() if self.lowercase else line).split()
        if EOS in tokens:  # a literal "<eos>": keep it, but never two in a row
            tokens = [t for i, t in enumerate(tokens) if t != EOS or i == 0 or tokens[i - 1] != EOS]
        return tokens

    def _portuguese_line(self, line: str) -> list[str]:
        """Tokens of one line, with the <eos> of the sentences that end in it.

        The case of the word after a sentence mark decides whether the sentence
        ends, so the line is split before lower-casing and the tokens are
        lowered one by one.
        """
        raw = _TOKEN_RE.findall(normalize_joiners(line))
        toks = [t.lower() for t in raw] if self.lowercase else raw
        # Most lines hold no sentence mark at all; they skip the slow path.
        has_mark = any(mark in line for mark in _TERMINALS)
        out = self._sentence_ends(raw, toks) if has_mark else toks
        if EOS in out:  # only a literal "<eos>" in the text can repeat one
            out = [t for i, t in enumerate(out) if t != EOS or i == 0 or out[i - 1] != EOS]
        return out

    def _sentence_ends(self, raw: list[str], toks: list[str]) -> list[str]:
        """Split the sentence-mark clusters of a line and put <eos> after those
        that end a sentence.  `raw` is the original case, `toks` the output form.
        """
        n = len(raw)
        out: list[str] = []
        start = 0
        for j in [i for i, t in enumerate(raw) if t[0] in _TERMINALS]:
            out.extend(toks[start:j])
            out.extend(_split_cluster(raw[j]))
            start = j + 1
            if not self.sentence_eos:
                continue
            k = j + 1
            while k < n and raw[k] in _DASHES:
                k += 1
            if k < n:
                after = raw[k]
                if k == j + 1 and after[0] in _TERMINALS:
                    continue  # "Sim ! !" spaced out: one sentence end, later
                if after[0].islower() or after in _CONTINUES_SENTENCE:
                    continue  # "Ah! que pena", "Ele saiu... e voltou"
            # The <eos> goes before any dialogue dash.  At the end of the line
            # the sentence is over whatever the next line starts with: hard-
            # wrapped prose is the price of a rule that never looks across lines.
            out.append(EOS)
        out.extend(toks[start:])
        return out


def _split_cluster(cluster: str) -> list[str]:
    """'?!"' -> ['?', '!', '"']; '....' -> ['...', '.']."""
    if len(cluster) == 1 or cluster == "...":
        return [cluster]
    return _CLUSTER_PART_RE.findall(cluster)


# ------------------------------------------------------------------ detokenize

_NO_SPACE_BEFORE = frozenset({",", ".", ";", ":", "!", "?", "...", "…", ")", "]", "}", "»", "”", "’", "%"})
_NO_SPACE_AFTER = frozenset({"(", "[", "{", "«", "“", "‘"})
_STRAIGHT_QUOTES = ('"', "'")


def detokenize(tokens: Iterable[str], eos: str = " ") -> str:
    """Join tokens into readable Portuguese text.

    Words are separated by one space; no space goes before closing punctuation
    (, . ; : ! ? … ) ] } » ” ’ %) or after opening brackets and quotes
    (( [ { « “ ‘).  Straight quotes (" and ') alternate between opening and
    closing.  A dash is spaced like a word, so "— Olá" keeps its space and has
    none before it at the start of the text.  `<eos>` is dropped and `eos` goes
    in its place, instead of the space (so " " gives one space, "\\n" one line
    per sentence); an `<eos>` at the start or end of the tokens gives nothing.
    """
    parts: list[str] = []
    glue_next = True  # no space before the next token (start, or after "(")
    eos_seen = False
    quote_open = {q: False for q in _STRAIGHT_QUOTES}
    for tok in tokens:
        if tok == EOS:
            eos_seen = bool(parts)
            continue
        closing = tok in _NO_SPACE_BEFORE
        opening = tok in _NO_SPACE_AFTER
        if tok in quote_open:
            closing = quote_open[tok]
            opening = not closing
            quote_open[tok] = not closing
        if parts:
            if eos_seen:
                parts.append(eos)
            elif not (glue_next or closing):
                parts.append(" ")
        parts.append(tok)
        glue_next = opening
        eos_seen = False
    return "".join(parts)


# ----------------------------------------------------------------------- Vocab


def count_tokens(tokens: Iterable[str]) -> Counter[str]:
    """How often each token occurs (the input of `Vocab.build`)."""
    return Counter(tokens)


class Vocab:
    """Token <-> id mapping: `<unk>` is 0, `<eos>` is 1, then words by frequency.

    `counts[i]` is how often id i was seen in the training text; for `<unk>` that
    includes every word that was left out of the vocabulary.
    """

    unk_id = 0
    eos_id = 1

    def __init__(self, itos: list[str], counts: list[int]):
        # Trusted input (from build or a validated from_dict); not re-checked.
        self.itos: list[str] = list(itos)
        self.counts: list[int] = list(counts)
        self.stoi: dict[str, int] = {tok: i for i, tok in enumerate(self.itos)}

    @classmethod
    def build(cls, counts: Counter[str], min_count: int = 1, max_vocab: int = 0) -> Vocab:
        """Vocabulary of the words seen at least `min_count` times.

        Order: the specials, then by count descending, ties by the word itself,
        so the same counts always give the same ids.  `max_vocab` caps the size
        with the two specials included (0 = no limit).  A literal "<unk>" or
        "<eos>" in `counts` is the special itself and adds to its count.
        """
        if isinstance(min_count, bool) or not isinstance(min_count, int) or min_count < 1:
            raise ValueError(f"min_count must be an integer of at least 1, got {min_count!r}")
        if isinstance(max_vocab, bool) or not isinstance(max_vocab, int) or max_vocab < 0:
            raise ValueError(f"max_vocab must be an integer >= 0 (0 = no limit), got {max_vocab!r}")
        if 0 < max_vocab < len(SPECIALS) + 1:
            raise ValueError("max_vocab must be at least 3 (the special tokens <unk> and <eos> plus one word)")
        special_counts = [int(counts.get(s, 0)) for s in SPECIALS]
        words = [(w, int(c)) for w, c in counts.items() if w not in SPECIALS and c > 0]
        words.sort(key=lambda wc: (-wc[1], wc[0]))
        limit = max_vocab - len(SPECIALS) if max_vocab else len(words)
        kept = [wc for wc in words if wc[1] >= min_count][:limit]
        dropped = sum(c for _, c in words) - sum(c for _, c in kept)
        special_counts[cls.unk_id] += dropped
        return cls(
            list(SPECIALS) + [w for w, _ in kept],
            special_counts + [c for _, c in kept],
        )

    def __len__(self) -> int:
        return len(self.itos)

    def __contains__(self, token: object) -> bool:
        return token in self.stoi

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Vocab):
            return NotImplemented
        return self.itos == other.itos and self.counts == other.counts

    def __repr__(self) -> str:
        return f"Vocab(size={len(self)})"

    def encode(self, tokens: Iterable[str]) -> np.ndarray:
        """Ids of the tokens, unknown ones as `unk_id`.  Shape (N,), int32."""
        # map(dict.get, tokens, repeat(0)) runs the lookups in C: ~10x faster
        # than a Python loop on a corpus of millions of tokens.
        return np.fromiter(map(self.stoi.get, tokens, repeat(self.unk_id)), dtype=np.int32)

    def decode(self, ids: Iterable[int] | np.ndarray) -> list[str]:
        """Tokens of the ids; raises ValueError for an id outside the vocabulary."""
        arr = np.asarray(ids if isinstance(ids, np.ndarray) else list(ids))
        if arr.size == 0:
            return []
        if arr.ndim != 1 or not np.issubdtype(arr.dtype, np.integer):
            raise ValueError(f"decode expects a flat sequence of integer ids, got {arr.dtype} {arr.shape}")
        bad = (arr < 0) | (arr >= len(self.itos))
        if bad.any():
            raise ValueError(f"id {int(arr[bad][0])} is outside the vocabulary (0..{len(self.itos) - 1})")
        itos = self.itos
        return [itos[i] for i in arr.tolist()]

    def to_dict(self) -> dict[str, list]:
        """JSON-safe form: {"itos": [...], "counts": [...]}."""
        return {"itos": list(self.itos), "counts": list(self.counts)}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Vocab:
        """Read back `to_dict`; raises ValueError saying what is damaged."""
        if not isinstance(d, Mapping):
            raise ValueError(f"vocab: expected a mapping, got {type(d).__name__}")
        extra = sorted(str(k) for k in d if k not in ("itos", "counts"))
        if extra:
            raise ValueError(f"vocab: unknown key {extra[0]!r} (expected itos and counts)")
        for key in ("itos", "counts"):
            if key not in d:
                raise ValueError(f"vocab: missing key {key!r}")
            if not isinstance(d[key], list):
                raise ValueError(f"vocab.{key}: expected a list, got {type(d[key]).__name__}")
        itos, counts = d["itos"], d["counts"]
        if len(itos) != len(counts):
            raise ValueError(f"vocab: itos has {len(itos)} entries but counts has {len(counts)}")
        if list(itos[: len(SPECIALS)]) != list(SPECIALS):
            raise ValueError(f"vocab.itos: must start with {UNK} and {EOS}, got {itos[:2]!r}")
        for i, tok in enumerate(itos):
            if not isinstance(tok, str) or not tok:
                raise ValueError(f"vocab.itos[{i}]: expected a non-empty string, got {tok!r}")
        for i, c in enumerate(counts):
            if isinstance(c, bool) or not isinstance(c, int) or c < 0:
                raise ValueError(f"vocab.counts[{i}]: expected an integer >= 0, got {c!r}")
        if len(set(itos)) != len(itos):
            seen: set[str] = set()
            dup = next(t for t in itos if t in seen or seen.add(t))
            raise ValueError(f"vocab.itos: {dup!r} appears more than once")
        return cls(itos, counts)
