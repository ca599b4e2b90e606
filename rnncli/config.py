"""Typed configuration of rnn: dataclasses, YAML loading, `--set` overrides and validation.

A config has five sections (data, tokenizer, model, train, checkpoint), each a dataclass whose
fields carry their default and a one-line description (``field(metadata={"help": ...})``), so the
code, ``describe_keys()`` and ``configs/reference.yaml`` describe the same keys.

Every section checks its fields when it is built, whoever builds it (a YAML file, a checkpoint, a
test), and every mistake is a one-line :class:`ConfigError` that names the key path, the value and
what is allowed.

Paths:

- ``data.train``, ``data.valid`` and ``data.test`` written in a config file are relative to the
  folder of that file, so a config keeps working from any current directory.  They are stored as
  absolute strings; ``~`` is expanded, globs are kept as globs and nothing is checked to exist (the
  data code does that, naming the file).  ``-`` means stdin and is kept as is.
- The same keys given with ``--set`` are relative to the current directory: the user typed them in
  the shell, where the shell's own completion and globbing work from the current directory.
- ``checkpoint.dir`` is relative to the current directory at run time, not to the config file:
  checkpoints are an output of the run, like any file a command writes.  Only ``~`` is expanded.
"""

from __future__ import annotations

import codecs
import dataclasses
import functools
import math
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields
from typing import Any, ClassVar, NamedTuple

from .errors import ConfigError

__all__ = [
    "CheckpointConfig",
    "Config",
    "DataConfig",
    "KEYS",
    "KeyInfo",
    "ModelConfig",
    "SECTIONS",
    "TokenizerConfig",
    "TrainConfig",
    "apply_override",
    "config_from_dict",
    "config_to_dict",
    "config_to_yaml",
    "describe_keys",
    "load_config",
    "parse_override",
]


# --- how one value is checked -----------------------------------------------------------------


def _show(value: Any) -> str:
    """A value as a message shows it: its repr (one line, shortened) and its type."""
    text = repr(value)
    if len(text) > 60:
        text = text[:57] + "..."
    return f"{text} ({type(value).__name__})"


class _Rule:
    """Checks and normalises the value of one key; `expected` is the phrase messages use."""

    expected = "a value"

    def check(self, path: str, value: Any) -> Any:
        raise NotImplementedError

    def wrong_type(self, path: str, value: Any) -> ConfigError:
        return ConfigError(f"{path}: expected {self.expected}, got {_show(value)}")


class _Integer(_Rule):
    """An int at or above `minimum`; with `zero_means_off`, 0 is also allowed (0 = no limit)."""

    def __init__(self, minimum: int, zero_means_off: bool = False):
        self.minimum = minimum
        self.zero_means_off = zero_means_off
        self.bound = f"0 (no limit) or >= {minimum}" if zero_means_off else f">= {minimum}"
        self.expected = f"an integer{',' if zero_means_off else ''} {self.bound}"

    def check(self, path: str, value: Any) -> int:
        # bool is an int subclass, and a float such as 3.0 usually means a typo: both rejected.
        if isinstance(value, bool) or not isinstance(value, int):
            raise self.wrong_type(path, value)
        if value < self.minimum and not (self.zero_means_off and value == 0):
            raise ConfigError(f"{path}: must be {self.bound}, got {value!r}")
        return value


# PyYAML follows YAML 1.1, where `1e-3` (no dot) is a string, not a float.  A learning rate is
# written that way often enough that float keys accept such strings, and only such strings.
_FLOAT_TEXT = re.compile(r"[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?")


class _Real(_Rule):
    """A finite float in [low, high) or (low, high); ints are accepted and made floats."""

    def __init__(self, low: float, low_open: bool = False, high: float | None = None):
        self.low, self.low_open, self.high = low, low_open, high
        bound = f"{'>' if low_open else '>='} {low:g}"
        if high is not None:
            bound += f" and < {high:g}"
        self.bound = bound
        self.expected = f"a number {bound}"

    def check(self, path: str, value: Any) -> float:
        is_number = isinstance(value, (int, float)) and not isinstance(value, bool)
        is_number_text = isinstance(value, str) and _FLOAT_TEXT.fullmatch(value.strip())
        if not (is_number or is_number_text):
            raise self.wrong_type(path, value)
        number = float(value)
        if not math.isfinite(number):
            raise ConfigError(f"{path}: must be a finite number {self.bound}, got {value!r}")
        too_low = number <= self.low if self.low_open else number < self.low
        too_high = self.high is not None and number >= self.high
        if too_low or too_high:
            raise ConfigError(f"{path}: must be {self.bound}, got {value!r}")
        return number


class _Flag(_Rule):
    expected = "true or false"

    def check(self, path: str, value: Any) -> bool:
        if not isinstance(value, bool):
            raise self.wrong_type(path, value)
        return value


class _Choice(_Rule):
    """One of a fixed set of strings; the comparison is exact, as in the files users copy."""

    def __init__(self, *options: str):
        self.options = options
        self.expected = "one of " + ", ".join(options)

    def check(self, path: str, value: Any) -> str:
        if not isinstance(value, str) or value not in self.options:
            raise ConfigError(f"{path}: {value!r} is not {self.expected}")
        return value


class _Text(_Rule):
    expected = "a non-empty string"

    def check(self, path: str, value: Any) -> str:
        if not isinstance(value, str) or not value.strip():
            raise self.wrong_type(path, value)
        return value


class _OptionalText(_Text):
    expected = "a non-empty string or null"

    def check(self, path: str, value: Any) -> str | None:
        return None if value is None else super().check(path, value)


class _Encoding(_Text):
    expected = "a text encoding Python knows, such as utf-8 or latin-1"

    def check(self, path: str, value: Any) -> str:
        value = super().check(path, value)
        try:
            codecs.lookup(value)
            # lookup() also finds bytes-to-bytes codecs (base64, rot13) that cannot decode a file;
            # str.encode() refuses exactly those.
            "".encode(value)
        except LookupError:
            raise ConfigError(f"{path}: unknown text encoding {value!r}; expected {self.expected}") from None
        return value


class _Paths(_Rule):
    """None, a path string or a list of them; PathLike objects become strings."""

    expected = "a path, glob or directory, a list of them, or null"

    def check(self, path: str, value: Any) -> str | list[str] | None:
        if value is None:
            return None
        if isinstance(value, (list, tuple)):
            if not value:
                raise ConfigError(f"{path}: the list is empty; give at least one path, or null")
            return [self._one(f"{path}[{i}]", item) for i, item in enumerate(value)]
        return self._one(path, value)

    def _one(self, path: str, value: Any) -> str:
        if isinstance(value, os.PathLike):
            value = os.fspath(value)
        if not isinstance(value, str) or not value.strip():
            raise self.wrong_type(path, value)
        return value


class _Cutoffs(_Rule):
    """A strictly increasing list of positive integers (the adaptive softmax's cluster bounds)."""

    expected = "a strictly increasing list of integers >= 1, such as [2000, 10000]"

    def check(self, path: str, value: Any) -> list[int]:
        if not isinstance(value, (list, tuple)) or not value:
            raise self.wrong_type(path, value)
        for item in value:
            if isinstance(item, bool) or not isinstance(item, int) or item < 1:
                raise self.wrong_type(path, value)
        if any(b <= a for a, b in zip(value, value[1:])):
            raise ConfigError(f"{path}: must be strictly increasing, got {list(value)!r}")
        return list(value)


def _key(default: Any, rule: _Rule, help: str) -> Any:
    """A config field: its default, how it is checked, and its one-line description."""
    return field(default=default, metadata={"rule": rule, "help": help})


# --- the sections -----------------------------------------------------------------------------


class _Fields:
    """``==`` and ``repr`` over the dataclass fields, written once: the sections below are declared
    with ``eq=False, repr=False``, since every method a dataclass generates is compiled when the module
    is imported, at every start of ``rnn`` (these two, for six classes, were a millisecond of it)."""

    def __eq__(self, other: object) -> bool:
        if other.__class__ is not self.__class__:
            return NotImplemented
        return all(getattr(self, f.name) == getattr(other, f.name) for f in fields(self))

    __hash__ = None  # type: ignore[assignment]  # mutable, as a dataclass with eq

    def __repr__(self) -> str:
        shown = ", ".join(f"{f.name}={getattr(self, f.name)!r}" for f in fields(self) if f.repr)
        return f"{self.__class__.__qualname__}({shown})"


@dataclass(eq=False, repr=False)
class _Section(_Fields):
    """Base of the section dataclasses: checks and normalises every field when built."""

    NAME: ClassVar[str] = ""

    def __post_init__(self) -> None:
        for f in fields(self):
            path = f"{self.NAME}.{f.name}"
            setattr(self, f.name, f.metadata["rule"].check(path, getattr(self, f.name)))


@dataclass(eq=False, repr=False)
class DataConfig(_Section):
    """Where the text comes from and how its bytes are decoded."""

    NAME: ClassVar[str] = "data"

    train: str | list[str] | None = _key(
        None,
        _Paths(),
        "training text: a file, glob, directory, or a list of them (needed to train)",
    )
    valid: str | list[str] | None = _key(
        None,
        _Paths(),
        "validation text, same forms; null = split valid_fraction off the end of train",
    )
    test: str | list[str] | None = _key(None, _Paths(), "test text, same forms; null = no test set")
    valid_fraction: float = _key(0.1, _Real(0.0, high=1.0), "share of train held out for validation when valid is null")
    encoding: str = _key("utf-8", _Encoding(), "text encoding of the corpus files")
    errors: str = _key("strict", _Choice("strict", "replace"), "undecodable bytes: strict = stop, replace = U+FFFD")
    cache_dir: str | None = _key(
        ".rnn/cache",
        _OptionalText(),
        "tokenized-corpus cache folder, relative to the current directory (null = no cache)",
    )


@dataclass(eq=False, repr=False)
class TokenizerConfig(_Section):
    """How text becomes words and words become ids."""

    NAME: ClassVar[str] = "tokenizer"

    mode: str = _key(
        "portuguese",
        _Choice("portuguese", "whitespace"),
        "word splitting: portuguese (language-aware rules) or whitespace",
    )
    lowercase: bool = _key(True, _Flag(), "fold text to lower case before counting and lookup")
    min_count: int = _key(1, _Integer(1), "words seen fewer times than this become <unk>")
    max_vocab: int = _key(
        0,
        _Integer(3, zero_means_off=True),
        "largest vocabulary, <unk> and <eos> included (0 = no limit)",
    )
    sentence_eos: bool = _key(True, _Flag(), "end each sentence with <eos> (portuguese mode)")
    line_eos: bool = _key(True, _Flag(), "end each line with <eos>")
    units: str = _key(
        "words",
        _Choice("words", "pieces"),
        "what the network reads: whole words, or word pieces (every word spelled, none unknown)",
    )
    pieces: int = _key(
        2000,
        _Integer(300),
        "units: pieces: size of the piece vocabulary (<unk>, <eos> and the 256 bytes included)",
    )


@dataclass(eq=False, repr=False)
class ModelConfig(_Section):
    """Shape of the network: embedding, stacked recurrent cells, output layer."""

    NAME: ClassVar[str] = "model"

    cell: str = _key("rnn", _Choice("rnn", "lstm", "gru"), "recurrent cell: rnn (tanh), lstm or gru")
    direction: str = _key(
        "forward",
        _Choice("forward", "backward", "both"),
        "forward reads left to right; backward right to left (it predicts the word before); both trains one of each",
    )
    embedding_size: int = _key(128, _Integer(1), "size of each word vector")
    hidden_size: int = _key(128, _Integer(1), "size of each recurrent layer's state")
    layers: int = _key(1, _Integer(1), "number of stacked recurrent layers")
    dropout: float = _key(0.0, _Real(0.0, high=1.0), "dropout probability on layer outputs while training (0 = off)")
    tie_weights: bool = _key(
        False,
        _Flag(),
        "share the embedding with the output layer (needs embedding_size == hidden_size)",
    )
    init_range: float = _key(0.1, _Real(0.0, low_open=True), "weights start uniform in [-init_range, init_range]")
    softmax: str = _key(
        "full", _Choice("full", "adaptive"), "output layer: full softmax, or adaptive (faster for large vocabularies)"
    )
    cutoffs: list = field(
        default_factory=lambda: [2000, 10000],
        metadata={
            "rule": _Cutoffs(),
            "help": "adaptive softmax: word ranks where the head and each tail cluster end",
        },
    )
    div_value: float = _key(4.0, _Real(1.0), "adaptive softmax: each tail cluster's projection is this much smaller")

    def __post_init__(self) -> None:
        super().__post_init__()
        # The output layer maps hidden_size to the vocabulary; the embedding maps the vocabulary
        # to embedding_size.  One matrix can serve both only when the two sizes agree.
        if self.tie_weights and self.embedding_size != self.hidden_size:
            raise ConfigError(
                "model.tie_weights: true needs model.embedding_size == model.hidden_size, "
                f"got embedding_size={self.embedding_size} and hidden_size={self.hidden_size}"
            )
        if self.tie_weights and self.softmax != "full":
            raise ConfigError(
                "model.tie_weights: true needs model.softmax: full (the adaptive softmax has no single "
                "output matrix to share)"
            )


@dataclass(eq=False, repr=False)
class TrainConfig(_Section):
    """The optimisation: batches, windows, learning rate and its schedule."""

    NAME: ClassVar[str] = "train"

    batch_size: int = _key(20, _Integer(1), "parallel streams the training text is cut into")
    bptt: int = _key(35, _Integer(1), "time steps per truncated backpropagation window")
    epochs: int = _key(10, _Integer(1), "passes over the training text")
    max_tokens: int = _key(0, _Integer(0), "stop after this many training tokens (0 = no limit)")
    optimizer: str = _key("sgd", _Choice("sgd", "adam"), "update rule: sgd or adam")
    lr: float = _key(20.0, _Real(0.0, low_open=True), "initial learning rate (20 suits sgd; try 0.001 with adam)")
    clip: float = _key(0.25, _Real(0.0), "largest gradient norm before rescaling (0 = no clipping)")
    loss_average: str = _key(
        "tokens",
        _Choice("tokens", "streams"),
        "gradient of the window loss averaged over all tokens, or summed over steps per stream (Zaremba's lr)",
    )
    lr_decay: float = _key(4.0, _Real(1.0), "divide lr by this when validation loss does not improve (1 = never)")
    lr_schedule: str = _key(
        "constant",
        _Choice("constant", "linear", "cosine"),
        "lr over the run: constant, or annealed step by step to 0 at the last planned token (linear, cosine)",
    )
    weight_decay: float = _key(0.0, _Real(0.0), "L2 penalty on the weights (0 = none)")
    eval_batch_size: int = _key(10, _Integer(1), "parallel streams for validation and test")
    seed: int = _key(1234, _Integer(0), "random seed, so that a run can be repeated")
    threads: int = _key(
        0, _Integer(0), "BLAS and softmax threads per worker (0 = all cores alone; under MPI, the host's share)"
    )
    divergence_retries: int = _key(
        3, _Integer(0), "on a NaN/inf loss or gradient, roll back and retry this many times (0 = stop at once)"
    )
    divergence_lr_scale: float = _key(
        0.5, _Real(0.0, low_open=True, high=1.0), "multiply lr by this at each divergence roll-back"
    )


@dataclass(eq=False, repr=False)
class CheckpointConfig(_Section):
    """Where training saves its state."""

    NAME: ClassVar[str] = "checkpoint"

    dir: str = _key(
        "checkpoints",
        _Text(),
        "checkpoint folder, relative to the current directory (not the config's); a --set model.direction "
        "that changes the config's direction writes into DIR-DIRECTION",
    )
    keep_best: bool = _key(True, _Flag(), "also keep the best checkpoint by validation loss, besides the last `keep`")
    keep: int = _key(1, _Integer(1), "how many of the most recent checkpoints to keep")
    every_steps: int = _key(0, _Integer(0), "also save every this many optimizer steps (0 = only at epoch ends)")
    every_minutes: float = _key(
        0.0, _Real(0.0), "also save when this many minutes passed since the last save (0 = off)"
    )


@dataclass(eq=False, repr=False)
class Config(_Fields):
    """A whole config: one instance of each section."""

    data: DataConfig = field(default_factory=DataConfig)
    tokenizer: TokenizerConfig = field(default_factory=TokenizerConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    checkpoint: CheckpointConfig = field(default_factory=CheckpointConfig)


_SECTION_TYPES: dict[str, type[_Section]] = {f.name: f.default_factory for f in fields(Config)}  # type: ignore[misc]
SECTIONS: tuple[str, ...] = tuple(_SECTION_TYPES)
KEYS: tuple[str, ...] = tuple(f"{s}.{f.name}" for s, cls in _SECTION_TYPES.items() for f in fields(cls))
_PATH_KEYS = ("train", "valid", "test")  # the data keys that hold corpus paths


class KeyInfo(NamedTuple):
    """One config key, as docs and `rnn config` list it."""

    path: str  # dotted key path, e.g. "model.hidden_size"
    default: Any  # the default value (None for null)
    expected: str  # what is allowed, e.g. "an integer >= 1"
    help: str  # the one-line description


def _default(f: dataclasses.Field) -> Any:
    return f.default_factory() if f.default_factory is not dataclasses.MISSING else f.default


def describe_keys() -> list[KeyInfo]:
    """Every key path with its default, what it allows and its description, in file order."""
    return [
        KeyInfo(f"{s}.{f.name}", _default(f), f.metadata["rule"].expected, f.metadata["help"])
        for s, cls in _SECTION_TYPES.items()
        for f in fields(cls)
    ]


# --- raw dicts: structure, unknown keys, paths ------------------------------------------------


def _unknown_section(name: Any, source: str) -> ConfigError:
    text = str(name)
    if text in KEYS:  # `model.hidden_size: 3` written flat at the top level
        section, key = text.split(".")
        return ConfigError(f"unknown section '{text}' in {source}; nest it: '{section}:' then '  {key}: ...'")
    close = _close_matches(text, SECTIONS, n=1)
    hint = f"did you mean '{close[0]}'?" if close else "the sections are " + ", ".join(SECTIONS)
    return ConfigError(f"unknown section '{_printable(text)}' in {source}; {hint}")


def _printable(text: str) -> str:
    """A name from the file as one line: line breaks and control characters escaped."""
    return text if text.isprintable() else repr(text)[1:-1]


def _unknown_key(section: str, key: Any, source: str) -> ConfigError:
    path = f"{section}.{_printable(str(key))}"
    own = [f.name for f in fields(_SECTION_TYPES[section])]
    # Names are compared without their section: the shared "section." prefix would make every
    # key of the section look close.  The right key written in the wrong section comes first,
    # then a misspelling in the right section, then a misspelling of another section's key.
    by_name = {p.split(".")[1]: p for p in reversed(KEYS)}  # first section wins on a tie
    close = _close_matches(str(key), own, n=1)
    if str(key) in by_name:
        suggestion = by_name[str(key)]
    elif close:
        suggestion = f"{section}.{close[0]}"
    else:
        close = _close_matches(str(key), list(by_name), n=1)
        suggestion = by_name[close[0]] if close else None
    if suggestion:
        hint = f"did you mean '{suggestion}'?"
    else:
        hint = f"the keys of {section} are " + ", ".join(own)
    return ConfigError(f"unknown key '{path}' in {source}; {hint}")


def _structure(raw: Any, source: str) -> dict[str, dict[str, Any]]:
    """A fresh dict of section dicts, after checking mappings and key names (not values)."""
    if raw is None:  # an empty file, or one with only comments
        return {}
    if not isinstance(raw, Mapping):
        raise ConfigError(f"{source}: expected a mapping of sections ({', '.join(SECTIONS)}), got {_show(raw)}")
    out: dict[str, dict[str, Any]] = {}
    for section, body in raw.items():
        if section not in _SECTION_TYPES:
            raise _unknown_section(section, source)
        if body is None:  # `model:` with nothing under it
            body = {}
        if not isinstance(body, Mapping):
            raise ConfigError(f"{section}: expected a mapping of keys in {source}, got {_show(body)}")
        names = {f.name for f in fields(_SECTION_TYPES[section])}
        for key in body:
            if key not in names:
                raise _unknown_key(section, key, source)
        out[section] = dict(body)
    return out


def _resolve_paths(sections: dict[str, dict[str, Any]], base_dir: str) -> None:
    """Make the data paths in `sections` absolute against `base_dir`, in place.

    Values of the wrong type are left alone for validation to report with their key path.
    """
    data = sections.get("data", {})
    base = os.path.abspath(os.path.expanduser(base_dir))

    def one(p: Any) -> Any:
        if isinstance(p, os.PathLike):
            p = os.fspath(p)
        if not isinstance(p, str) or not p.strip() or p == "-":
            return p
        # normpath folds `..` but keeps glob characters; nothing is looked up on disk.
        return os.path.normpath(os.path.join(base, os.path.expanduser(p)))

    for key in _PATH_KEYS:
        value = data.get(key)
        if isinstance(value, (list, tuple)):
            data[key] = [one(p) for p in value]
        elif value is not None:
            data[key] = one(value)


# --- public API -------------------------------------------------------------------------------


def config_from_dict(raw: Mapping[str, Any] | None, base_dir: str | None = None, source: str = "config") -> Config:
    """Validate a plain dict (as YAML or a checkpoint holds it) and build a Config.

    Missing sections and keys take their defaults.  With `base_dir`, relative data paths are made
    absolute against it; without it (a checkpoint's config, already resolved) paths stay as given.
    `source` names where the dict came from in unknown-key messages.
    """
    sections = _structure(raw, source)
    if base_dir is not None:
        _resolve_paths(sections, base_dir)
    return Config(**{name: cls(**sections.get(name, {})) for name, cls in _SECTION_TYPES.items()})


def config_to_dict(cfg: Config) -> dict[str, dict[str, Any]]:
    """The config as plain dicts, lists, strings, numbers, bools and None (JSON and YAML safe)."""
    return dataclasses.asdict(cfg)


def config_to_yaml(cfg: Config) -> str:
    """The config as YAML text, sections and keys in reference order."""
    import yaml

    return yaml.safe_dump(config_to_dict(cfg), sort_keys=False, allow_unicode=True)


_DOTTED = re.compile(r"[A-Za-z_]\w*(\.[A-Za-z_]\w*)+")
_MALFORMED = "expected KEY=VALUE with a dotted key such as train.epochs=3"


def parse_override(assignment: str) -> tuple[str, str, Any]:
    """Split `section.key=value` into (section, key, value); the value is read as YAML.

    "3" -> 3, "true" -> True, "null" -> None, "[a.txt, b.txt]" -> a list, "" -> None.
    """
    path, sep, text = assignment.partition("=")
    path = path.strip()
    if not sep or not _DOTTED.fullmatch(path):
        raise ConfigError(f"--set {assignment!r}: {_MALFORMED}")
    import yaml  # here, not at the top: reading a checkpoint's config (predict) needs no YAML

    try:
        value = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        problem = getattr(exc, "problem", None) or str(exc)
        problem = " ".join(problem.split())
        raise ConfigError(f"--set {assignment!r}: the value is not valid YAML ({problem}); {_MALFORMED}") from None
    section, _, key = path.partition(".")
    if section not in _SECTION_TYPES:
        raise _unknown_section(section, "--set")
    if key not in {f.name for f in fields(_SECTION_TYPES[section])}:
        raise _unknown_key(section, key, "--set")
    return section, key, value


def apply_override(raw: dict[str, Any], assignment: str) -> None:
    """Apply one `--set section.key=value` to a raw config dict, in place.

    Only the key name is checked here; the value is checked with the rest of the config.
    """
    section, key, value = parse_override(assignment)
    body = raw.get(section)
    if body is None:
        body = raw[section] = {}
    if not isinstance(body, dict):
        raise ConfigError(f"{section}: expected a mapping of keys, got {_show(body)}")
    body[key] = value


def _direction_of(sections: dict[str, Any]) -> Any:
    model = sections.get("model")
    return model.get("direction", ModelConfig.direction) if isinstance(model, dict) else ModelConfig.direction


def load_config(path: str | os.PathLike[str] | None, overrides: Sequence[str] = ()) -> Config:
    """Read a YAML config (None = all defaults), apply `--set` overrides, validate, resolve paths.

    Data paths from the file resolve against the file's folder; data paths from overrides (and all
    of them when `path` is None) resolve against the current directory.
    """
    cwd = os.getcwd()
    if path is None:
        source, sections = "config", {}
    else:
        source = os.fspath(path)
        sections = _structure(_read_yaml(source), source)
        _resolve_paths(sections, os.path.dirname(os.path.abspath(source)))
    file_direction = _direction_of(sections)
    overridden = set()
    for assignment in overrides:
        apply_override(sections, assignment)
        section, key, _ = parse_override(assignment)
        overridden.add(f"{section}.{key}")
    cfg = config_from_dict(sections, base_dir=cwd, source=source)
    if cfg.model.direction != file_direction and "checkpoint.dir" not in overridden:
        # another direction is another model: it gets a run folder of its own beside the config's
        # (`--set model.direction=both` writes checkpoints/default-both, never into the forward run)
        cfg.checkpoint.dir = f"{cfg.checkpoint.dir.rstrip('/')}-{cfg.model.direction}"
    cfg.checkpoint.dir = os.path.expanduser(cfg.checkpoint.dir)
    if cfg.data.cache_dir is not None:
        cfg.data.cache_dir = os.path.expanduser(cfg.data.cache_dir)
    return cfg


# --- YAML reading -----------------------------------------------------------------------------


@functools.cache
def _strict_loader():
    """A SafeLoader that refuses a key written twice in one mapping (made on first use: YAML is
    imported only by the commands that read a config).

    Plain PyYAML keeps the last one silently, so a forgotten earlier line would quietly lose.
    """
    import yaml

    class StrictLoader(yaml.SafeLoader):
        def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
            seen: dict[Any, yaml.Mark] = {}
            for key_node, _ in node.value:
                if key_node.tag == "tag:yaml.org,2002:merge":  # `<<:` merges are meant to be overridden
                    continue
                key = self.construct_object(key_node, deep=deep)
                try:
                    first = seen.get(key)
                except TypeError:  # unhashable key: the base class reports it
                    continue
                if first is not None:
                    raise yaml.constructor.ConstructorError(
                        problem=f"duplicate key {key!r} (first at line {first.line + 1})",
                        problem_mark=key_node.start_mark,
                    )
                seen[key] = key_node.start_mark
            return super().construct_mapping(node, deep=deep)

    return StrictLoader


def _read_yaml(source: str) -> Any:
    """Parse a YAML file, turning every way it can fail into a one-line ConfigError."""
    import yaml

    try:
        with open(source, "rb") as f:
            data = f.read()
    except FileNotFoundError:
        raise ConfigError(f"config file not found: {source}") from None
    except IsADirectoryError:
        raise ConfigError(f"config file not found: {source} is a directory, not a file") from None
    except OSError as exc:
        raise ConfigError(f"config file not readable: {source} ({exc.strerror or exc})") from None
    try:
        return yaml.load(data, Loader=_strict_loader())  # noqa: S506 - a SafeLoader subclass
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        problem = " ".join(str(exc.problem or exc.context or exc).split())
        where = f"{source}:{mark.line + 1}:{mark.column + 1}" if mark else source
        raise ConfigError(f"{where}: YAML syntax error: {problem}") from None
    except yaml.reader.ReaderError as exc:  # bytes that are not UTF-8/16, or control characters
        raise ConfigError(f"{source}: not a YAML text file: {exc.reason} at byte {exc.position}") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{source}: YAML syntax error: {' '.join(str(exc).split())}") from None


def _close_matches(word: str, choices, n: int = 1) -> list[str]:
    import difflib  # only a mistake needs it

    return difflib.get_close_matches(word, choices, n=n)
