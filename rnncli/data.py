"""Corpora: find the files a config names, read them (plain or .gz), turn them into token ids.

Text is read line by line and tokenized as a stream; tokens become integer ids
held in a compact int32 array, never a list of strings, so a large corpus costs
four bytes a token.  The vocabulary is built from the training split only.

Training data is laid out as ``batch_size`` parallel streams and walked in
windows of ``bptt`` steps (``batchify`` and ``windows`` below).
"""

from __future__ import annotations

import codecs
import contextlib
import glob
import gzip
import hashlib
import io
import json
import os
import zlib
from array import array
from collections import Counter, defaultdict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import numpy as np

from .errors import BadLine, DataError
from .pieces import Pieces
from .tokenizer import EOS, RULES_VERSION, Tokenizer, Vocab

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


#: what a decoding error tells the user to do, when the text is read for training
DECODE_HINT = "set data.encoding to the file's encoding, or data.errors: replace"


_GZIP_MAGIC = b"\x1f\x8b"


@contextlib.contextmanager
def open_binary(path: str | Path, label: str | None = None, buffering: int = -1) -> Iterator[tuple[BinaryIO, BinaryIO]]:
    """The one way a text file is opened: ``(stored, content)``, the file as stored and a stream of
    its content, gunzipped when the file starts with gzip's magic bytes (whatever its name).

    A folder, a missing or an unreadable file is a DataError naming it (``label``, by default the
    path); the file is closed when the block is left.
    """
    label = str(path) if label is None else label
    try:
        raw = open(path, "rb", buffering=buffering)  # noqa: SIM115 - closed by the with-block below
    except IsADirectoryError:
        raise DataError(f"{label}: is a folder, not a text file") from None
    except OSError as e:
        raise DataError(f"{label}: cannot read ({e.strerror})") from None
    with raw:
        try:
            head = raw.read(2)
            raw.seek(0)
        except OSError as e:
            raise DataError(f"{label}: cannot read ({e.strerror or e})") from None
        yield raw, (gzip.GzipFile(fileobj=raw) if head == _GZIP_MAGIC else raw)


def read_lines(
    path: Path, encoding: str = "utf-8", errors: str = "strict", hint: str = DECODE_HINT, progress=None
) -> Iterator[str]:
    """Yield the decoded lines of a file, gunzipping it when it is gzip-compressed.

    A decoding error names the file and the byte offset (of the decompressed
    stream for .gz) and tells the user which options change the behaviour (``hint``).
    ``progress(n)`` is told of every n bytes of the file (as stored: compressed for .gz) read.
    """
    with open_binary(path) as (raw, stream):
        if progress is not None:
            yield from _told(_decoded_lines(stream, path, encoding, errors, hint), raw, progress)
        else:
            yield from _decoded_lines(stream, path, encoding, errors, hint)


def _told(lines: Iterator[str], raw, progress) -> Iterator[str]:
    """lines, telling ``progress`` how far into the stored file ``raw`` they have come (every 4,096 lines)."""
    told = 0
    for n, line in enumerate(lines, 1):
        yield line
        if not n & 4095:
            where = raw.tell()
            progress(where - told)
            told = where
    progress(os.fstat(raw.fileno()).st_size - told)


def _decoded_lines(stream, path: Path, encoding: str, errors: str, hint: str) -> Iterator[str]:
    """The decoded lines of a binary stream (a file, or a gzip stream over it)."""
    try:
        first = stream.peek(8192)[:8192] if hasattr(stream, "peek") else b""
        if b"\x00" in first and _is_ascii_superset(encoding):
            raise DataError(f"{path}: looks like a binary file (it contains NUL bytes), not text")
        if not _is_ascii_superset(encoding):
            yield from io.TextIOWrapper(stream, encoding=encoding, errors=errors)
            return
        decoder = codecs.getincrementaldecoder(encoding)(errors)
        offset = 0
        for offset, line in _raw_lines(stream, path):
            try:
                yield decoder.decode(line)
            except UnicodeDecodeError as e:
                raise DataError(f"{path}: not valid {encoding} at byte offset {offset + e.start}; {hint}") from None
            offset += len(line)
        try:
            tail = decoder.decode(b"", final=True)
        except UnicodeDecodeError:
            raise DataError(
                f"{path}: not valid {encoding} at byte offset {offset}: the file ends inside a character; {hint}"
            ) from None
        if tail:
            yield tail
    except (OSError, EOFError, gzip.BadGzipFile) as e:
        raise DataError(f"{path}: cannot read ({e})") from None


# A line longer than this is cut after a space into pieces about this long, each read as a line
# (so an extra <eos> every MiB, some 150,000 words, when tokenizer.line_eos is on): one 200 MB
# line must not become one 200 MB string and a list of 30 million words.
MAX_LINE_BYTES = 1 << 20


def _raw_lines(stream, path: Path) -> Iterator[tuple[int, bytes]]:
    """(byte offset, line) for each line of a binary stream, long lines cut as MAX_LINE_BYTES says."""
    offset, carry = 0, b""
    while True:
        data = stream.readline(MAX_LINE_BYTES)
        piece = carry + data
        if not data or data.endswith(b"\n") or len(data) < MAX_LINE_BYTES:
            if piece:
                yield offset, piece
            if not data:
                return
            offset, carry = offset + len(piece), b""
            continue
        cut = max(piece.rfind(b" "), piece.rfind(b"\t"))
        if cut < 0:
            raise DataError(
                f"{path}: more than {MAX_LINE_BYTES:,} bytes without a space or line break "
                f"(from byte offset {offset}); this does not look like text"
            )
        yield offset, piece[: cut + 1] + b"\n"
        offset, carry = offset + cut + 1, piece[cut + 1 :]


def iter_file_tokens(
    files: Iterable[Path], tokenizer: Tokenizer, encoding: str, errors: str, hint: str = DECODE_HINT, progress=None
) -> Iterator[str]:
    for path in files:
        yield from tokenizer.iter_tokens(read_lines(path, encoding, errors, hint, progress))


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
    train: np.ndarray  # (N,) int32 token ids (unit ids with word pieces)
    valid: np.ndarray
    test: np.ndarray
    valid_is_split: bool  # valid was cut off the end of train (data.valid_fraction)
    pieces: Pieces | None = None  # the piece model, when the units are word pieces


def build_corpus(
    data_cfg,
    tokenizer: Tokenizer,
    min_count: int,
    max_vocab: int,
    vocab: Vocab | None = None,
    progress=None,
    pieces: int | Pieces | None = None,
) -> Corpus:
    """Read train/valid/test as the data config says; build the vocabulary from train only.

    ``vocab`` given (a resumed run) is used as is instead of building one.  ``progress(done,
    total)`` hears how many bytes of the files have been read (a cached file counts at once).
    ``pieces``: the units are word pieces, from this piece model (a resumed run), or from one of
    this many pieces trained on every word of train (min_count and max_vocab apply to words only).
    """
    enc, err = data_cfg.encoding, data_cfg.errors
    if not data_cfg.train:
        raise DataError("data.train is not set: give the training text in the config or with --set data.train=PATH")
    train_files = resolve_files(data_cfg.train, "data.train")
    valid_files = resolve_files(data_cfg.valid, "data.valid")
    test_files = resolve_files(data_cfg.test, "data.test")

    cache = getattr(data_cfg, "cache_dir", None)
    if progress is not None:
        progress = _Progress(sum(_size(p) for p in train_files + valid_files + test_files), progress)
    train, train_words = tokenize_files(train_files, tokenizer, enc, err, cache, progress)
    if train.size == 0:
        raise DataError(f"data.train: no tokens in {', '.join(map(str, train_files))}; the files are empty")
    valid_is_split = not valid_files
    if valid_is_split:
        eos = train_words.index(EOS) if EOS in train_words else None
        train, valid = _split_off_end(train, data_cfg.valid_fraction, eos)
        valid_words = train_words
    else:
        valid, valid_words = tokenize_files(valid_files, tokenizer, enc, err, cache, progress)
    test, test_words = tokenize_files(test_files, tokenizer, enc, err, cache, progress)

    if pieces is not None:
        return _piece_corpus(pieces, (train, train_words), (valid, valid_words), (test, test_words), valid_is_split)
    if vocab is None:
        counts = np.bincount(train, minlength=len(train_words))
        vocab = Vocab.build(Counter({w: int(c) for w, c in zip(train_words, counts) if c}), min_count, max_vocab)

    def final(ids: np.ndarray, words: list[str]) -> np.ndarray:
        """Provisional ids -> vocabulary ids, in place and a slice at a time (no second copy of the corpus)."""
        if not len(words):
            return ids.astype(np.int32)
        if not ids.flags.writeable:
            ids = ids.copy()
        to_final = np.array([vocab.stoi.get(w, vocab.unk_id) for w in words], dtype=np.int32)
        for start in range(0, len(ids), 1 << 20):
            ids[start : start + (1 << 20)] = to_final[ids[start : start + (1 << 20)]]
        return ids

    return Corpus(vocab, final(train, train_words), final(valid, valid_words), final(test, test_words), valid_is_split)


def _piece_corpus(pieces: int | Pieces, train, valid, test, valid_is_split: bool) -> Corpus:
    """The corpus spelled in word pieces: train a piece model on train's words (unless given), spell
    every word, and count the units of train for the vocabulary (its order is the piece model's)."""
    if isinstance(pieces, int):
        ids, words = train
        counts = np.bincount(ids, minlength=len(words))
        pieces = Pieces.train({w: int(c) for w, c in zip(words, counts) if c}, pieces)
        units = [pieces.expand(ids, words) for ids, words in (train, valid, test)]
        pieces = Pieces(pieces.proto, Vocab(pieces.vocab.itos, np.bincount(units[0], minlength=len(pieces)).tolist()))
    else:  # a resumed run: its units and their ids, as the checkpoint has them
        units = [pieces.expand(ids, words) for ids, words in (train, valid, test)]
    return Corpus(pieces.vocab, *units, valid_is_split, pieces)


# --- the tokenized-corpus cache ---------------------------------------------------------------
# One file per list of corpus files: <cache_dir>/<key>.safetensors, holding the provisional ids
# ("ids", int32) and the words they stand for ("words", the UTF-8 bytes of a JSON list).  The key
# is a SHA-256 of the files' contents (not their names or dates), the tokenizer settings and the
# version of its rules, and the decoding options, so editing a file, changing a setting or
# upgrading to rules that tokenize some text differently misses the cache and re-tokenizes.
CACHE_FORMAT = 1


def _file_digest(path: Path) -> str:
    h = hashlib.sha256()
    try:
        with open(path, "rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                h.update(chunk)
    except OSError as e:
        raise DataError(f"{path}: cannot read ({e.strerror or e})") from None
    return h.hexdigest()


def cache_key(files: list[Path], tokenizer: Tokenizer, encoding: str, errors: str) -> str:
    spec = {
        "format": CACHE_FORMAT,
        "max_line_bytes": MAX_LINE_BYTES,
        "tokenizer": tokenizer.to_dict(),
        "tokenizer_rules": RULES_VERSION,
        "encoding": encoding,
        "errors": errors,
        "files": [_file_digest(p) for p in files],
    }
    return hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()


class _Progress:
    """Bytes read so far out of a total, told to ``report(done, total)`` as they are read."""

    def __init__(self, total: int, report):
        self.done, self.total, self.report = 0, total, report

    def __call__(self, n: int) -> None:
        self.done += n
        self.report(min(self.done, self.total), self.total)


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0  # reading it will name the problem


def tokenize_files(
    files: list[Path],
    tokenizer: Tokenizer,
    encoding: str,
    errors: str,
    cache_dir: str | None = None,
    progress=None,
) -> tuple[np.ndarray, list[str]]:
    """(provisional ids (N,) int32, the word of each provisional id) of the files' tokens.

    With ``cache_dir``, a previous result for the same contents and settings is read back
    instead of tokenizing again; a damaged or unwritable cache is ignored (it only saves time).
    ``progress(n)`` is told of every n bytes of the files read.
    """
    if not files:
        return np.zeros(0, dtype=np.int32), []
    path = None
    if cache_dir:
        path = Path(cache_dir) / f"{cache_key(files, tokenizer, encoding, errors)}.safetensors"
        found = _read_cache(path)
        if found is not None:
            if progress is not None:
                progress(sum(_size(p) for p in files))
            return found
    interner = _Interner()
    ids = interner.intern(iter_file_tokens(files, tokenizer, encoding, errors, progress=progress))
    words = interner.words()
    if path is not None:
        _write_cache(path, ids, words)
    return ids, words


def _read_cache(path: Path) -> tuple[np.ndarray, list[str]] | None:
    from safetensors.numpy import load_file

    if not path.exists():
        return None
    try:
        tensors = load_file(path)
        words = json.loads(tensors["words"].tobytes().decode("utf-8"))
        ids = tensors["ids"]
        if ids.dtype != np.int32 or not isinstance(words, list) or (ids.size and int(ids.max()) >= len(words)):
            return None
        return ids, words
    except Exception:  # any damage: tokenize again and rewrite the entry
        return None


def _write_cache(path: Path, ids: np.ndarray, words: list[str]) -> None:
    from safetensors.numpy import save_file

    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        words_bytes = np.frombuffer(json.dumps(words, ensure_ascii=False).encode(), dtype=np.uint8)
        save_file({"ids": np.ascontiguousarray(ids), "words": words_bytes}, tmp)
        os.replace(tmp, path)
    except OSError:
        try:
            tmp.unlink()
        except OSError:
            pass


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


def batchify(ids: np.ndarray, streams: int, part: tuple[int, int] | None = None) -> np.ndarray:
    """Lay a token stream out as ``streams`` parallel columns, dropping the tail that does not fit.

    With the alphabet as the stream and 4 streams::

        a b c d e f g h i j k l m n o p q r s t u v w x y z
        ->  a g m s      each column is a contiguous piece of the text, read
            b h n t      top to bottom; a window of bptt rows is one minibatch,
            c i o u      and the hidden state of each column flows from one
            d j p v      window into the next.
            e k q w
            f l r x      (y and z do not fit and are dropped)

    ``part = (lo, hi)`` keeps only columns lo..hi-1 (a data-parallel worker's streams),
    without a copy of the others.
    """
    rows = len(ids) // streams
    lo, hi = part or (0, streams)
    return ids[: rows * streams].reshape(streams, rows)[lo:hi].T.copy()  # (rows, hi - lo)


def windows(data: np.ndarray, bptt: int, start: int = 0) -> Iterator[tuple[int, np.ndarray, np.ndarray]]:
    """Yield (index, inputs (T, B), targets (T, B)) windows; targets are the inputs shifted by one step."""
    for i in range(start, len(data) - 1, bptt):
        T = min(bptt, len(data) - 1 - i)
        yield i, data[i : i + T], data[i + 1 : i + 1 + T]


def count_windows(rows: int, bptt: int) -> int:
    return max(0, -(-(rows - 1) // bptt))


# ------------------------------------------------------------- prompt lines
def line_batches(
    stream,
    source: str,
    limit: int,
    encoding: str = "utf-8",
    errors: str = "strict",
    warn=None,
    bad_lines: str = "raise",
) -> Iterator[list[str]]:
    """Lines of a binary stream (prompts, lines to score), without their line breaks, in batches.

    A batch holds the lines that have already arrived (up to ``limit``), so a fast producer (a
    file, a pipe from `cat`) gets full minibatches and a slow one (`tail -f`) gets each result as
    soon as its line is in.  Lines are decoded with ``encoding``; a line that is not valid text is
    a DataError naming ``source`` and the line number (``errors="strict"``; with ``bad_lines=
    "mark"`` it is a BadLine in its place instead, for commands that answer each line on its own),
    or is decoded with the ``errors`` handler ("replace": U+FFFD) and reported through ``warn``.
    """
    if not _is_ascii_superset(encoding):  # lines cannot be split as bytes: decode the whole stream
        text = io.TextIOWrapper(stream, encoding=encoding, errors=errors, newline=None)
        try:
            lines = [line.rstrip("\n") for line in text]
        except UnicodeDecodeError:
            raise DataError(f"{source}: not valid {encoding} text; use --errors replace") from None
        for lo in range(0, len(lines), limit):
            yield lines[lo : lo + limit]
        return
    read, more = _reader(stream)
    decode = _LineDecoder(source, encoding, errors, warn, mark=bad_lines == "mark")
    pending: list[bytes] = []
    tail = b""
    while True:
        chunk = read()
        if not chunk:
            break
        parts = (tail + chunk).split(b"\n")
        tail = parts.pop()
        pending.extend(parts)
        while len(pending) >= limit:
            yield decode(pending[:limit])
            pending = pending[limit:]
        if pending and not more():
            yield decode(pending)
            pending = []
    if tail:
        pending.append(tail)
    if pending:
        yield decode(pending)


def _strip_cr(line: str) -> str:
    """A line without the carriage return of a CRLF line end (a BadLine stays one)."""
    if not line.endswith("\r"):
        return line
    if isinstance(line, BadLine):
        return BadLine(line[:-1], line.error, line.number)
    return line[:-1]


def _reader(stream):
    """(read, more): read a chunk as soon as some bytes are in; whether more are waiting now."""
    try:
        import select

        fd = stream.fileno()
        select.select([fd], [], [], 0)
        if isinstance(stream, gzip.GzipFile):
            raise ValueError  # the descriptor holds compressed bytes
    except (AttributeError, OSError, ValueError, io.UnsupportedOperation):  # no usable descriptor

        def read() -> bytes:
            return stream.read1(1 << 16) if hasattr(stream, "read1") else stream.read(1 << 16)

        return read, lambda: True
    return (lambda: os.read(fd, 1 << 16)), (lambda: bool(select.select([fd], [], [], 0)[0]))


class _LineDecoder:
    """Decodes batches of raw lines, counting them so a bad one is named by its number."""

    def __init__(self, source: str, encoding: str, errors: str, warn, mark: bool = False):
        self.source, self.encoding, self.errors, self.warn = source, encoding, errors, warn
        self.mark = mark
        self.lineno = 0

    def __call__(self, lines: list[bytes]) -> list[str]:
        try:
            text = b"\n".join(lines).decode(self.encoding)
        except UnicodeDecodeError:
            decoded = [self._one(n, line) for n, line in enumerate(lines, self.lineno + 1)]
            if self.lineno == 0 and decoded and decoded[0].startswith("\ufeff"):
                decoded[0] = decoded[0][1:]
            self.lineno += len(lines)
            return [_strip_cr(s) for s in decoded]
        if self.lineno == 0 and text.startswith("\ufeff"):
            text = text[1:]
        self.lineno += len(lines)
        return [s[:-1] if s.endswith("\r") else s for s in text.split("\n")]

    def _one(self, n: int, line: bytes) -> str:
        try:
            return line.decode(self.encoding)
        except UnicodeDecodeError as e:
            if self.errors == "strict":
                error = (
                    f"{self.source}: line {n} is not valid {self.encoding} (byte {e.start + 1}); fix the line, "
                    "or pass --errors replace to replace the bad bytes and go on"
                )
                if self.mark:
                    return BadLine(line.decode(self.encoding, "replace"), error, n)
                raise DataError(error) from None
        if self.warn is not None:
            self.warn(f"{self.source}: line {n} is not valid {self.encoding}; its bad bytes were replaced (U+FFFD)")
        return line.decode(self.encoding, self.errors)


def file_line_batches(path: str, label: str, limit: int, **reading) -> Iterator[list[str]]:
    """line_batches over a file (gunzipped when it is gzip-compressed), closed also when the
    consumer stops early; a folder, a missing file or a damaged .gz is a DataError naming it."""
    with open_binary(path, label, buffering=0) as (_, stream):  # unbuffered: read by descriptor
        try:
            yield from line_batches(stream, path, limit, **reading)
        except (EOFError, gzip.BadGzipFile, zlib.error) as e:
            raise DataError(f"{label}: cannot read ({e or 'damaged or truncated .gz'})") from None
        except OSError as e:
            raise DataError(f"{label}: cannot read ({e.strerror or e})") from None
