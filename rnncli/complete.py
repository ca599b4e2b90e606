"""Word completion: the vocabulary words that start with what has been typed, ranked in context.

A phone keyboard with a next-word model shows, while a word is being typed, the few most probable
words that begin with the letters typed so far.  Here the prompt's last, unfinished word is the
*prefix*; the words before it are the context.  Every vocabulary word ``w`` that starts with the
prefix is ranked by ``P(w | context)`` from the forward model (exact: one softmax over the whole
vocabulary), and shown with that probability and with its share of the matches' total.

Matching is Portuguese-aware: case-insensitive (``casefold``) and, unless asked otherwise,
accent-insensitive ("voce" finds "você", "acao" finds "ação"): both the words and the prefix are
reduced to a *key* (Unicode NFD, combining marks dropped, case folded) and a word matches when its
key starts with the prefix's key.  The keys are sorted once, in a ``PrefixIndex``; the words with a
given prefix are then one contiguous slice found by two binary searches, so a lookup costs
O(log V) plus the matches, never a scan of the vocabulary.

``keystroke_savings`` measures what completion is worth to a typist (the keystroke saving rate,
defined in the README and below).

Pure library: no click, no I/O.
"""

from __future__ import annotations

import bisect
import re
import unicodedata
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

import numpy as np

from .generate import block_rows
from .metrics import count_above
from .model import RNNModel
from .tokenizer import JOINER_TABLE, clean_text, normalize_joiners

#: the unfinished word at the end of a prompt: letters, digits, and the hyphens and apostrophes that
#: Portuguese words carry inside them ("sentindo-s", "d'á"); an empty match when the prompt ends in
#: a space or a punctuation mark (the next word has not been started)
_UNFINISHED = re.compile(r"[\w'’\u0300-\u036f-]*\Z")
#: a character after every key character, so ``key + _TOP`` bounds every key that starts with ``key``
_TOP = "\U0010ffff"


def match_key(text: str, accents: bool = False) -> str:
    """What a word is matched by: its case folded, its hyphens and apostrophes in ASCII (whichever
    was typed: "sentindo‑" finds "sentindo-se", "d’á" finds "d'água") and, unless ``accents``, its
    accents dropped."""
    text = text.translate(JOINER_TABLE)
    if not accents:
        text = "".join(c for c in unicodedata.normalize("NFD", text) if not unicodedata.combining(c))
    return unicodedata.normalize("NFC", text.casefold())


def split_prompt(prompt: str) -> tuple[str, str]:
    """``"sentindo-se ind"`` -> ``("sentindo-se ", "ind")``: the context and the unfinished word.

    The prompt is cleaned as the tokenizer cleans a line (invisible characters such as the soft
    hyphen dropped, Unicode NFC), so an accent typed as a separate combining mark ("me\u0301di")
    belongs to its letter, and marks that compose with nothing stay in the word.  A hyphen or an
    apostrophe of another form that the tokenizer would read as "-" or "'" ("sentindo\u2011",
    "d´á") is part of the word as the ASCII one is; the word is returned as typed.
    """
    prompt = clean_text(prompt)
    # one character for one: the offsets of the normalised prompt are those of the prompt
    m = _UNFINISHED.search(normalize_joiners(prompt, open_end=True))
    return prompt[: m.start()], prompt[m.start() :]


class PrefixIndex:
    """The vocabulary's words sorted by their match keys: the words with a prefix in O(log V).

    ``skip`` ids (``<unk>``, ``<eos>``) are left out: they are never typed.
    """

    def __init__(self, words: Sequence[str], skip: Iterable[int] = (), accents: bool = False):
        self.accents = accents
        skip = set(skip)
        keyed = sorted((match_key(w, accents), i) for i, w in enumerate(words) if i not in skip)
        self.keys = [k for k, _ in keyed]  # sorted
        self.ids = np.array([i for _, i in keyed], dtype=np.int64)  # (n,) the word of each key

    def __len__(self) -> int:
        return len(self.ids)

    def lookup(self, prefix: str) -> np.ndarray:
        """The ids of the words whose key starts with the prefix's key (a view, in key order)."""
        key = match_key(prefix, self.accents)
        lo = bisect.bisect_left(self.keys, key)
        hi = bisect.bisect_left(self.keys, key + _TOP, lo)
        return self.ids[lo:hi]


@dataclass
class Completion:
    """The completions of one prefix: ``words`` as (id, P(w | context), P(w | context, w matches)),
    best first, ``matches`` how many vocabulary words start with the prefix and ``mass`` their
    total probability."""

    words: list[tuple[int, float, float]]
    matches: int
    mass: float


def complete_rows(
    log_probs: np.ndarray, index: PrefixIndex, prefixes: Sequence[str], k: int, min_prob: float = 0.0
) -> list[Completion]:
    """The k most probable words starting with each row's prefix, from (n, V) next-word log-probabilities.

    Ties go to the lower id (as in ``rnn predict``); ``min_prob`` drops words whose share among
    the matching words (``match_prob``, the figure shown first) is below it.
    """
    out = []
    for row, prefix in zip(log_probs, prefixes):
        ids = index.lookup(prefix)
        if not len(ids):
            out.append(Completion([], 0, 0.0))
            continue
        lp = row[ids].astype(np.float64)  # (m,)
        top = lp.max()
        rel = np.exp(lp - top)  # (m,) the matches' probabilities up to one factor
        total = rel.sum()
        take = np.lexsort((ids, -lp))[:k]  # by probability, ties by id
        words = [(int(ids[j]), float(np.exp(lp[j])), float(rel[j] / total)) for j in take.tolist()]
        words = [w for w in words if w[2] >= min_prob]
        out.append(Completion(words, len(ids), float(np.exp(top) * total)))
    return out


# --------------------------------------------------------- keystroke saving
def stream_log_probs(model: RNNModel, ids: np.ndarray, start_id: int):
    """Next-word log-probabilities at each position of a token stream, the state carried through.

    Yields ``(lo, (n, V) float32)``: the distributions that predict ``ids[lo : lo + n]``, the
    first one read after ``start_id`` (an ``<eos>``), as ``rnn eval`` reads a text.
    """
    x = np.concatenate([[start_id], ids[:-1]]).astype(np.int32)  # (N,) what is read before each id
    window = block_rows(model)  # (window, V) scores at a time: memory does not grow with the text
    state = model.initial_state(1)
    for lo in range(0, len(x), window):
        top, state, _ = model.hidden(x[lo : lo + window].reshape(-1, 1), state)  # (n, 1, H)
        yield lo, model.log_probs(top[:, 0])


def keystrokes_for(word: str, word_id: int, row: np.ndarray, index: PrefixIndex, suggestions: int) -> int:
    """Keystrokes to enter ``word`` when, before each letter, the ``suggestions`` most probable words
    (by ``row``, its log-probabilities) that start with the letters typed so far are shown.

    The typist types letters until the word is shown, then picks it with one keystroke: the cost is
    ``j + 1`` for the first ``j`` (from 0, before any letter) at which it is shown, and never more
    than typing the whole word (``len(word)``).  A word outside the vocabulary is never shown.
    """
    if word_id < 0:
        return len(word)
    target = row[word_id]
    for j in range(len(word)):  # at j = len(word) a pick would cost more than the last letter
        ids = index.lookup(word[:j])
        # words shown above the target: more probable, or as probable with a lower id (top-k's order)
        if count_above(row[ids], target, word_id, ids) < suggestions:
            return j + 1
    return len(word)


def keystroke_savings(
    model: RNNModel,
    tokens: Sequence[str],
    ids: np.ndarray,
    index: PrefixIndex,
    eos_id: int,
    unk_id: int,
    suggestions: int = 3,
    progress: Callable[[int, int], None] | None = None,
) -> dict:
    """The keystroke saving rate of completing the words of a text with ``suggestions`` shown.

    Every token but ``<eos>`` is entered (words and punctuation marks, as a typist types them),
    each predicted from the whole text before it (the state carried through, as ``rnn eval``).
    ``letters`` is the characters of those tokens (what typing without help costs; spaces are not
    counted on either side), ``keystrokes`` what entering them with the suggestions costs
    (``keystrokes_for``), and the rate is ``1 - keystrokes / letters``.  ``progress(done, total)``
    hears how many tokens have been entered after each block.
    """
    letters = keystrokes = words = 0
    for lo, logp in stream_log_probs(model, ids, eos_id):
        for j, i in enumerate(ids[lo : lo + len(logp)].tolist()):
            if i == eos_id:
                continue
            word = tokens[lo + j]
            letters += len(word)
            keystrokes += keystrokes_for(word, -1 if i == unk_id else i, logp[j], index, suggestions)
            words += 1
        if progress is not None:
            progress(lo + len(logp), len(ids))
    return keystroke_record(suggestions, words, letters, keystrokes)


def keystroke_record(suggestions: int, words: int, letters: int, keystrokes: int) -> dict:
    """The keystroke figures of `rnn eval --keystrokes`, for word and word-piece models alike."""
    return {
        "suggestions": suggestions,
        "words": words,
        "letters": letters,
        "keystrokes": keystrokes,
        "saving_rate": 1.0 - keystrokes / letters if letters else 0.0,
    }
