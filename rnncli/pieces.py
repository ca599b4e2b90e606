"""Word pieces: every word spelled as a short sequence of subword units, so no word is unknown.

A piece model (``tokenizer.units: pieces``) splits text into words exactly as a word model does
(tokenizer.py: the Portuguese rules, lower case, ``<eos>``); each word is then spelled by a
SentencePiece BPE model trained on the training words and their counts when ``rnn train``
starts.  The network reads and predicts units; every command still speaks whole words.

Units:

- A unit that begins a word carries SentencePiece's word mark ``▁`` (U+2581); the others continue
  the word before them.  ``<eos>`` is one unit, and so is ``<unk>`` (only a literal ``<unk>`` in the
  text, as in Penn Treebank, spells as it): both begin a "word" of their own.  A word ends where the
  next unit begins a word (``BEGINS``).
- Byte fallback: a character the piece model never saw is spelled as the pieces of its UTF-8 bytes
  (``<0xE2>``...), so every word of any text can be spelled and joins back to itself.
- Unit ids follow the vocabulary's rule (tokenizer.Vocab): ``<unk>`` 0, ``<eos>`` 1, then units by
  their count in the training text, so the adaptive softmax's head holds the frequent ones.

The SentencePiece model is stored in the checkpoint as ``pieces.model`` (its protobuf bytes,
covered by the checkpoint's checksums); it is loaded from bytes, never unpickled.
"""

from __future__ import annotations

import io
from collections.abc import Iterable, Mapping

import numpy as np

from .errors import CheckpointError, ConfigError, DataError
from .tokenizer import EOS, UNK, Vocab

WORD_MARK = "\u2581"  # SentencePiece's sign of a word's beginning
DEFAULT_PIECES = 2000
_OWN_WORDS = 1 << 17  # unit sequences whose word own_word remembers
_SPELLED_WORDS = 1 << 18  # words whose spelling spell remembers


def begin_mask(itos: list[str]) -> np.ndarray:
    """(V,) bool: which units of a piece vocabulary begin a word (the word mark, <unk>, <eos>)."""
    begins = np.array([p.startswith(WORD_MARK) for p in itos], dtype=bool)
    begins[[Vocab.unk_id, Vocab.eos_id]] = True
    return begins


class Pieces:
    """A trained piece model with the unit ids of one checkpoint's vocabulary."""

    def __init__(self, proto: bytes, vocab: Vocab):
        import sentencepiece

        self.proto = bytes(proto)
        self.vocab = vocab
        self._sp = sentencepiece.SentencePieceProcessor()
        try:
            self._sp.LoadFromSerializedProto(self.proto)
        except Exception as e:  # sentencepiece raises RuntimeError or OSError with its own text
            raise ValueError(f"not a SentencePiece model ({e})") from None
        size = self._sp.get_piece_size()
        if len(vocab) != size:
            raise ValueError(f"the piece model has {size} pieces but the vocabulary {len(vocab)}")
        # vocabulary id <-> SentencePiece id (the vocabulary orders units by count)
        self.to_sp = np.array([self._sp.piece_to_id(p) for p in vocab.itos], dtype=np.int64)
        if sorted(self.to_sp.tolist()) != list(range(size)) or self._sp.id_to_piece(int(self.to_sp[0])) != UNK:
            raise ValueError("the vocabulary does not list the piece model's pieces")
        self.from_sp = np.empty(size, dtype=np.int64)
        self.from_sp[self.to_sp] = np.arange(size)
        #: (V,) bool: the unit begins a word (its piece starts with ▁, or it is <unk> or <eos>)
        self.begins = begin_mask(vocab.itos)
        self.mark_id = vocab.stoi.get(WORD_MARK)  # the lone ▁ that a byte spelling starts with
        self._byte = np.array([p.startswith("<0x") and p.endswith(">") for p in vocab.itos], dtype=bool)
        self._text = [p.replace(WORD_MARK, " ") for p in vocab.itos]  # what a piece adds to a word
        self._bytes = [vocab.stoi.get(f"<0x{b:02X}>") for b in range(256)]
        self._spelled: dict[str, np.ndarray] = self._specials()  # spell's answers
        self._own: dict[tuple[int, ...], str | None] = {}  # own_word's answers

    def __len__(self) -> int:
        return len(self.vocab)

    @staticmethod
    def _specials() -> dict[str, np.ndarray]:
        """<unk> and <eos> are one unit each, whatever SentencePiece would make of their letters."""
        return {UNK: np.array([Vocab.unk_id]), EOS: np.array([Vocab.eos_id])}

    # ----------------------------------------------------------------- spelling

    def spell(self, word: str) -> np.ndarray:
        """The unit ids of one word, (n,) int64: one unit that begins the word, then the rest."""
        ids = self._spelled.get(word)
        if ids is None:
            ids = self._spell(word)
            if len(self._spelled) >= _SPELLED_WORDS:  # a bound on memory (a service asked for many words)
                self._spelled = self._specials()
            self._spelled[word] = ids
        return ids

    def _spell(self, word: str) -> np.ndarray:
        if not word:  # no word at all (the lone ▁ would join to it): nothing a text holds
            return np.array([Vocab.unk_id])
        ids = self.from_sp[np.asarray(self._sp.encode(word), dtype=np.int64)]
        if ids.size and self.begins[ids[0]] and not self.begins[ids[1:]].any() and self.join(ids) == word:
            return ids
        # a word that holds ▁ itself, or that SentencePiece would not give back as it is: its bytes
        if self.mark_id is None or any(b is None for b in self._bytes):
            return np.array([Vocab.unk_id])
        return np.array([self.mark_id] + [self._bytes[b] for b in word.encode("utf-8")])

    def spells(self, word: str) -> bool:
        """Whether the word has a spelling without <unk> (always, with byte fallback)."""
        return word in (UNK, EOS) or Vocab.unk_id not in self.spell(word)

    def units(self, words: Iterable[str]) -> np.ndarray:
        """The unit ids of a word sequence, (N,) int32 (``encode`` without where each word starts)."""
        return _joined([self.spell(w) for w in words])

    def encode(self, words: Iterable[str]) -> tuple[np.ndarray, np.ndarray]:
        """(unit ids (N,) int32, index of each word's first unit (W,) int64) of a word sequence."""
        spelled = [self.spell(w) for w in words]
        lengths = np.fromiter((len(s) for s in spelled), dtype=np.int64, count=len(spelled))
        starts = np.concatenate([[0], np.cumsum(lengths[:-1])]) if spelled else lengths
        return _joined(spelled), starts

    def expand(self, word_ids: np.ndarray, words: list[str]) -> np.ndarray:
        """A stream of provisional word ids (data.py) as the stream of their units, (N',) int32."""
        if not len(words) or not word_ids.size:
            return np.zeros(0, dtype=np.int32)
        spelled = [self.spell(w) for w in words]
        lengths = np.array([len(s) for s in spelled], dtype=np.int64)
        flat = np.concatenate(spelled).astype(np.int32)
        first = np.concatenate([[0], np.cumsum(lengths[:-1])])
        n = lengths[word_ids]  # (N,) units of each word of the stream
        total = int(n.sum())
        # unit j of the output is flat[first[word] + (j - where that word's units start)]
        out_start = np.cumsum(n) - n
        index = np.repeat(first[word_ids] - out_start, n) + np.arange(total)
        return flat[index]

    # ----------------------------------------------------------------- back to words

    def join(self, ids: Iterable[int]) -> str:
        """The word that units spell (the ▁ of the first one dropped)."""
        ids = np.asarray(list(ids) if not isinstance(ids, np.ndarray) else ids, dtype=np.int64)
        if ids.size == 1 and ids[0] in (Vocab.unk_id, Vocab.eos_id):
            return self.vocab.itos[int(ids[0])]
        if ids.size and not self._byte[ids].any() and ids.min() > Vocab.eos_id:  # the common case, without decode
            text = "".join([self._text[i] for i in ids.tolist()])
            return text[1:] if text.startswith(" ") else text
        return self._sp.decode([int(i) for i in self.to_sp[ids]])

    def own_word(self, seq: tuple[int, ...]) -> str | None:
        """The word that a sequence of unit ids spells, if it is that word's own spelling (``spell``
        gives it back); None for another spelling of the same letters, or the lone word mark.
        Remembered per sequence: a search asks it of the same common words prompt after prompt."""
        word = self._own.get(seq, self)
        if word is self:
            word = self.join(seq)
            if not word or tuple(self.spell(word).tolist()) != seq:
                word = None
            if len(self._own) >= _OWN_WORDS:  # a bound on memory; the common words come back at once
                self._own.clear()
            self._own[seq] = word
        return word

    def words(self, ids: Iterable[int]) -> list[str]:
        """A unit stream cut into its words (a word begins at each unit that begins one)."""
        ids = np.asarray(list(ids) if not isinstance(ids, np.ndarray) else ids, dtype=np.int64)
        cuts = np.flatnonzero(self.begins[ids])
        if not cuts.size or cuts[0] != 0:
            cuts = np.concatenate([[0], cuts])
        bounds = list(cuts) + [len(ids)]
        return [self.join(ids[a:b]) for a, b in zip(bounds[:-1], bounds[1:]) if b > a]

    def piece(self, unit: int) -> str:
        return self.vocab.itos[unit]

    # ----------------------------------------------------------------- training

    @classmethod
    def train(cls, counts: Mapping[str, int], size: int) -> Pieces:
        """A piece model of at most ``size`` units (specials and the 256 bytes included) trained on the
        words of ``counts`` (word -> count in the training text), and the vocabulary of its units."""
        import sentencepiece

        words = {w: int(c) for w, c in counts.items() if c > 0 and w not in (UNK, EOS) and w.strip()}
        if not words:
            raise DataError("no word in the training text to learn word pieces from")
        buffer = io.BytesIO()
        lines = (f"{w}\t{c}" for w, c in sorted(words.items()) if "\t" not in w and "\n" not in w)
        try:
            sentencepiece.SentencePieceTrainer.train(
                sentence_iterator=lines,  # "word<TAB>count": no temporary file, nothing of this machine recorded
                input_format="tsv",
                model_writer=buffer,
                vocab_size=size,
                hard_vocab_limit=False,  # a small text may support fewer pieces: take what it has
                model_type="bpe",  # Machado: 0.2 s, 70 MB to train (unigram: 10 s, 300 MB), fewer units a word
                byte_fallback=True,
                character_coverage=1.0,
                normalization_rule_name="identity",  # the tokenizer normalised already: spell words as they are
                unk_id=0,
                eos_id=1,
                bos_id=-1,
                pad_id=-1,
                unk_piece=UNK,
                eos_piece=EOS,
                num_threads=1,  # the same pieces on every run and machine
                minloglevel=2,
            )
        except RuntimeError as e:
            raise ConfigError(f"tokenizer.pieces: SentencePiece could not learn {size} pieces ({e})") from None
        proto = buffer.getvalue()
        return cls(proto, _vocab_by_count(proto, words))


def _vocab_by_count(proto: bytes, words: Mapping[str, int]) -> Vocab:
    """The vocabulary of a piece model: <unk>, <eos>, then its pieces by count in the spelled words."""
    import sentencepiece

    sp = sentencepiece.SentencePieceProcessor()
    sp.LoadFromSerializedProto(proto)
    size = sp.get_piece_size()
    counts = np.zeros(size, dtype=np.int64)
    for w, c in words.items():
        np.add.at(counts, sp.encode(w), c)
    counts[[sp.piece_to_id(UNK), sp.piece_to_id(EOS)]] = 0
    rest = [i for i in range(size) if sp.id_to_piece(i) not in (UNK, EOS)]
    rest.sort(key=lambda i: (-int(counts[i]), i))
    itos = [UNK, EOS] + [sp.id_to_piece(i) for i in rest]
    return Vocab(itos, [0, 0] + [int(counts[i]) for i in rest])


def load_pieces(proto: bytes, vocab: Vocab, where: str) -> Pieces:
    """The piece model of a checkpoint; a damaged one is a CheckpointError naming ``where``."""
    try:
        return Pieces(proto, vocab)
    except ValueError as e:
        raise CheckpointError(f"{where}: damaged piece model ({e})") from None
    except ImportError:
        raise CheckpointError(
            f"{where}: a word-piece model needs the sentencepiece package: pip install sentencepiece"
        ) from None


def _joined(spelled: list[np.ndarray]) -> np.ndarray:
    """Spellings one after the other, (N,) int32."""
    return np.concatenate(spelled).astype(np.int32) if spelled else np.zeros(0, dtype=np.int32)
