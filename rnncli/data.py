"""Corpora: find the files a config names, read them (plain or .gz), turn them into token ids.

Text is read line by line and tokenized as a stream; tokens become integer ids
held in a compact int32 array, never a list of strings, so a large corpus costs
four bytes a token.  The vocabulary is built from the training split only.

Training data is laid out as ``batch_size`` parallel streams and walked in
windows of ``bptt`` steps (``batchify`` and ``windows`` below).
"""

from __future__ import annotations

import codecs
import glob
import gzip
import io
import os
from array import array
from collections import Counter, defaultdict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .errors import DataError
from .tokenizer import EOS, Tokenizer, Vocab

# a directory stands for the text files under it (recursively, hidden ones skipped)
TEXT_SUFFIXES = (".txt", ".txt.gz", ".tokens", ".tokens.gz", ".gz")
_GLOB_CHARS = set("*?[")


def resolve_files(spec: str | list[str] | None, key: str) -> list[Path]:
    """Expand a path, glob, directory or list of them into a sorted list of files.

    ``key`` (e.g. ``data.train``) names the config key in every error message.
    """
    if spec is None:
        return []
    items = [spec] if isinstance(spec, str) else list(spec)
    files: list[Path] = []
    for item in items:
        if _GLOB_CHARS & set(item):
            matches = sorted(Path(m) for m in glob.glob(item, recursive=True) if os.path.isfile(m))
            if not matches:
                raise DataError(f"{key}: no file matches {item}; check the pattern or the folder")
            files.extend(matches)
        elif os.path.isdir(item):
            found = sorted(
                p
                for p in Path(item).rglob("*")
                if p.is_file()
                and not any(part.startswith(".") for part in p.relative_to(item).parts)
                and p.name.endswith(TEXT_SUFFIXES)
            )
            if not found:
                raise DataError(f"{key}: folder {item} holds no text files (*.txt, *.tokens or *.gz)")
            files.extend(found)
        elif os.path.exists(item):
            files.append(Path(item))
        else:
            raise DataError(f"{key}: file not found: {item}")
    return files


def _is_ascii_superset(encoding: str) -> bool:
    """True when '\\n' is the single byte 0x0A in this codec, so lines can be split as bytes."""
    try:
        return "\n".encode(encoding) == b"\n" and "a".encode(encoding) == b"a"
    except (LookupError, UnicodeError):
        return False


def read_lines(path: Path, encoding: str = "utf-8", errors: str = "strict") -> Iterator[str]:
    """Yield the decoded lines of a file, gunzipping it when it is gzip-compressed.

    A decoding error names the file and the byte offset (of the decompressed
    stream for .gz) and tells the user which options change the behaviour.
    """
    try:
        raw = open(path, "rb")  # noqa: SIM115 - closed by the with-block below
    except IsADirectoryError:
        raise DataError(f"{path}: is a folder, not a text file") from None
    except OSError as e:
        raise DataError(f"{path}: cannot read ({e.strerror})") from None
    with raw:
        head = raw.read(2)
        raw.seek(0)
        stream = gzip.GzipFile(fileobj=raw) if head == b"\x1f\x8b" else raw
        try:
            first = stream.peek(8192)[:8192] if hasattr(stream, "peek") else b""
            if b"\x00" in first and _is_ascii_superset(encoding):
                raise DataError(f"{path}: looks like a binary file (it contains NUL bytes), not text")
            if not _is_ascii_superset(encoding):
                yield from io.TextIOWrapper(stream, encoding=encoding, errors=errors)
                return
            decoder = codecs.getincrementaldecoder(encoding)(errors)
            offset = 0
            for line in stream:
                try:
                    yield decoder.decode(line)
                except UnicodeDecodeError as e:
                    raise DataError(
                        f"{path}: not valid {encoding} at byte offset {offset + e.start}; "
                        "set data.encoding to the file's encoding, or data.errors: replace"
                    ) from None
                offset += len(line)
            try:
                tail = decoder.decode(b"", final=True)
            except UnicodeDecodeError:
                raise DataError(
                    f"{path}: not valid {encoding} at byte offset {offset}: the file ends inside a character; "
                    "set data.encoding to the file's encoding, or data.errors: replace"
                ) from None
            if tail:
                yield tail
        except (OSError, EOFError, gzip.BadGzipFile) as e:
            raise DataError(f"{path}: cannot read ({e})") from None


def iter_file_tokens(files: Iterable[Path], tokenizer: Tokenizer, encoding: str, errors: str) -> Iterator[str]:
    for path in files:
        yield from tokenizer.iter_tokens(read_lines(path, encoding, errors))


class _Interner:
    """Maps each distinct token to a provisional id in order of first appearance.

    A defaultdict whose default factory is its own ``__len__`` hands out the
    next id to every new key, so interning is one C-level lookup per token.
    """

    def __init__(self):
        self.ids: defaultdict[str, int] = defaultdict()
        self.ids.default_factory = self.ids.__len__

    def intern(self, tokens: Iterable[str]) -> np.ndarray:
        return np.frombuffer(array("i", map(self.ids.__getitem__, tokens)), dtype=np.int32)

    def words(self) -> list[str]:
        return list(self.ids)


@dataclass
class Corpus:
    vocab: Vocab
    train: np.ndarray  # (N,) int32 token ids
    valid: np.ndarray
    test: np.ndarray
    valid_is_split: bool  # valid was cut off the end of train (data.valid_fraction)


def build_corpus(data_cfg, tokenizer: Tokenizer, min_count: int, max_vocab: int, vocab: Vocab | None = None) -> Corpus:
    """Read train/valid/test as the data config says; build the vocabulary from train only.

    ``vocab`` given (a resumed run) is used as is instead of building one.
    """
    enc, err = data_cfg.encoding, data_cfg.errors
    if not data_cfg.train:
        raise DataError("data.train is not set: give the training text in the config or with --set data.train=PATH")
    train_files = resolve_files(data_cfg.train, "data.train")
    valid_files = resolve_files(data_cfg.valid, "data.valid")
    test_files = resolve_files(data_cfg.test, "data.test")

    interner = _Interner()
    train = interner.intern(iter_file_tokens(train_files, tokenizer, enc, err))
    if train.size == 0:
        raise DataError(f"data.train: no tokens in {', '.join(map(str, train_files))}; the files are empty")
    valid_is_split = not valid_files
    if valid_is_split:
        train, valid = _split_off_end(train, data_cfg.valid_fraction, interner.ids.get(EOS))
    else:
        valid = interner.intern(iter_file_tokens(valid_files, tokenizer, enc, err))
    test = interner.intern(iter_file_tokens(test_files, tokenizer, enc, err))

    words = interner.words()
    if vocab is None:
        counts = np.bincount(train, minlength=len(words))
        vocab = Vocab.build(Counter({w: int(c) for w, c in zip(words, counts) if c}), min_count, max_vocab)
    to_final = np.array([vocab.stoi.get(w, vocab.unk_id) for w in words], dtype=np.int32)
    return Corpus(vocab, to_final[train], to_final[valid], to_final[test], valid_is_split)


def _split_off_end(ids: np.ndarray, fraction: float, eos_id: int | None) -> tuple[np.ndarray, np.ndarray]:
    """Cut the last ``fraction`` of the stream off as validation, at a sentence end when there is one."""
    if fraction <= 0:
        return ids, ids[:0]
    cut = int(len(ids) * (1.0 - fraction))
    if eos_id is not None:
        ends = np.flatnonzero(ids[cut:] == eos_id)
        if ends.size and cut + ends[0] + 1 < len(ids):
            cut = cut + int(ends[0]) + 1
    return ids[:cut], ids[cut:]


def encode_files(files: Iterable[Path], tokenizer: Tokenizer, vocab: Vocab, encoding: str, errors: str) -> np.ndarray:
    return vocab.encode(iter_file_tokens(files, tokenizer, encoding, errors))


def batchify(ids: np.ndarray, streams: int) -> np.ndarray:
    """Lay a token stream out as ``streams`` parallel columns, dropping the tail that does not fit.

    With the alphabet as the stream and 4 streams::

        a b c d e f g h i j k l m n o p q r s t u v w x y z
        ->  a g m s      each column is a contiguous piece of the text, read
            b h n t      top to bottom; a window of bptt rows is one minibatch,
            c i o u      and the hidden state of each column flows from one
            d j p v      window into the next.
            e k q w
            f l r x      (y and z do not fit and are dropped)
    """
    rows = len(ids) // streams
    return ids[: rows * streams].reshape(streams, rows).T.copy()  # (rows, streams)


def windows(data: np.ndarray, bptt: int, start: int = 0) -> Iterator[tuple[int, np.ndarray, np.ndarray]]:
    """Yield (index, inputs (T, B), targets (T, B)) windows; targets are the inputs shifted by one step."""
    for i in range(start, len(data) - 1, bptt):
        T = min(bptt, len(data) - 1 - i)
        yield i, data[i : i + T], data[i + 1 : i + 1 + T]


def count_windows(rows: int, bptt: int) -> int:
    return max(0, -(-(rows - 1) // bptt))
