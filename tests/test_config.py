"""Tests of rnncli.config: defaults, loading, overrides, path resolution and every error kind."""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path

import pytest
import yaml

from rnncli.config import (
    KEYS,
    SECTIONS,
    CheckpointConfig,
    Config,
    DataConfig,
    ModelConfig,
    TokenizerConfig,
    TrainConfig,
    apply_override,
    config_from_dict,
    config_to_dict,
    config_to_yaml,
    describe_keys,
    load_config,
    parse_override,
)
from rnncli.errors import ConfigError

REPO = Path(__file__).resolve().parent.parent
REFERENCE = REPO / "configs" / "reference.yaml"


def write(tmp_path: Path, text: str, name: str = "c.yaml") -> Path:
    path = tmp_path / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def config_error(func, *args, **kwargs) -> str:
    """Run func, expect a one-line ConfigError with exit code 2, and return its message."""
    with pytest.raises(ConfigError) as info:
        func(*args, **kwargs)
    message = str(info.value)
    assert info.value.exit_code == 2
    assert "\n" not in message and message
    return message


def error_for(raw: dict) -> str:
    return config_error(config_from_dict, raw)


# --- defaults and shape -----------------------------------------------------------------------


def test_defaults_match_the_contract():
    cfg = load_config(None)
    assert cfg == Config()
    assert config_to_dict(cfg) == {
        "data": {
            "train": None,
            "valid": None,
            "test": None,
            "valid_fraction": 0.1,
            "encoding": "utf-8",
            "errors": "strict",
            "cache_dir": ".rnn/cache",
        },
        "tokenizer": {
            "mode": "portuguese",
            "lowercase": True,
            "min_count": 1,
            "max_vocab": 0,
            "sentence_eos": True,
            "line_eos": True,
            "units": "words",
            "pieces": 2000,
        },
        "model": {
            "cell": "rnn",
            "direction": "forward",
            "embedding_size": 128,
            "hidden_size": 128,
            "layers": 1,
            "dropout": 0.0,
            "tie_weights": False,
            "init_range": 0.1,
            "softmax": "full",
            "cutoffs": [2000, 10000],
            "div_value": 4.0,
        },
        "train": {
            "batch_size": 20,
            "bptt": 35,
            "epochs": 10,
            "max_tokens": 0,
            "optimizer": "sgd",
            "lr": 20.0,
            "clip": 0.25,
            "loss_average": "tokens",
            "lr_decay": 4.0,
            "lr_schedule": "constant",
            "weight_decay": 0.0,
            "eval_batch_size": 10,
            "seed": 1234,
            "threads": 0,
            "divergence_retries": 3,
            "divergence_lr_scale": 0.5,
        },
        "checkpoint": {"dir": "checkpoints", "keep_best": True, "keep": 1, "every_steps": 0, "every_minutes": 0.0},
    }


def test_sections_are_typed_dataclasses():
    cfg = Config()
    assert SECTIONS == ("data", "tokenizer", "model", "train", "checkpoint")
    expected = [DataConfig, TokenizerConfig, ModelConfig, TrainConfig, CheckpointConfig]
    assert [type(getattr(cfg, s)) for s in SECTIONS] == expected
    for section in expected:
        for f in dataclasses.fields(section):
            assert f.metadata["help"].strip(), f.name
            assert "\n" not in f.metadata["help"]


def test_describe_keys_lists_every_key_with_default_and_help():
    infos = describe_keys()
    assert [k.path for k in infos] == list(KEYS)
    assert len(KEYS) == 7 + 8 + 11 + 16 + 5
    defaults = config_to_dict(Config())
    for info in infos:
        section, key = info.path.split(".")
        assert info.default == defaults[section][key]
        assert info.help and info.expected


def test_sections_validate_when_built_directly():
    with pytest.raises(ConfigError, match="model.hidden_size"):
        ModelConfig(hidden_size=0)
    assert TrainConfig(lr=1).lr == 1.0 and isinstance(TrainConfig(lr=1).lr, float)


# --- loading ----------------------------------------------------------------------------------


@pytest.mark.parametrize("text", ["", "\n", "# only a comment\n", "---\n"])
def test_empty_file_is_all_defaults(tmp_path, text):
    assert load_config(write(tmp_path, text)) == Config()


def test_empty_section_is_defaults(tmp_path):
    assert load_config(write(tmp_path, "model:\ntrain:\n")) == Config()


def test_file_values_are_read_and_typed(tmp_path):
    text = """
tokenizer: {mode: whitespace, lowercase: false, max_vocab: 3}
model:
  cell: lstm
  embedding_size: 64
  hidden_size: 64
  layers: 2
  dropout: 0.5
  tie_weights: true
train:
  optimizer: adam
  lr: 1e-3          # YAML 1.1 reads this as a string; float keys accept it
  clip: 0
  lr_decay: 1
checkpoint:
  dir: runs/a
  keep_best: false
"""
    cfg = load_config(write(tmp_path, text))
    assert cfg.tokenizer == TokenizerConfig(mode="whitespace", lowercase=False, max_vocab=3)
    assert cfg.model == ModelConfig(
        cell="lstm", embedding_size=64, hidden_size=64, layers=2, dropout=0.5, tie_weights=True
    )
    assert cfg.train.optimizer == "adam"
    assert cfg.train.lr == 0.001
    assert type(cfg.train.clip) is float and cfg.train.clip == 0.0
    assert type(cfg.train.lr_decay) is float
    # checkpoint.dir stays relative: it is resolved against the cwd at run time
    assert cfg.checkpoint == CheckpointConfig(dir="runs/a", keep_best=False)


def test_checkpoint_dir_expands_home(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    cfg = load_config(write(tmp_path, "checkpoint: {dir: ~/ckpt}\n"))
    assert cfg.checkpoint.dir == str(tmp_path / "home" / "ckpt")


def test_pathlike_config_path(tmp_path):
    path = write(tmp_path, "train: {epochs: 2}\n")
    assert load_config(path).train.epochs == 2
    assert load_config(str(path)).train.epochs == 2


# --- data paths -------------------------------------------------------------------------------


def test_file_paths_resolve_against_the_config_folder(tmp_path, monkeypatch):
    conf = write(tmp_path, "data:\n  train: ../corpus/train\n  valid: v.txt\n", "configs/c.yaml")
    monkeypatch.chdir(tmp_path / "configs")  # resolution must not depend on the cwd...
    a = load_config(conf)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    b = load_config(conf)
    assert a == b
    assert a.data.train == str(tmp_path / "corpus" / "train")
    assert a.data.valid == str(tmp_path / "configs" / "v.txt")
    assert a.data.test is None


def test_relative_config_path_resolves_the_same(tmp_path, monkeypatch):
    write(tmp_path, "data: {train: t.txt}\n", "sub/c.yaml")
    monkeypatch.chdir(tmp_path)
    assert load_config("sub/c.yaml").data.train == str(tmp_path / "sub" / "t.txt")


def test_list_of_paths_and_globs_are_resolved_not_expanded(tmp_path):
    text = "data:\n  train: [a.txt, 'shards/*.txt', /abs/b.txt, '-']\n  test: '../x/**/*.txt'\n"
    cfg = load_config(write(tmp_path, text, "cfg/c.yaml"))
    assert cfg.data.train == [
        str(tmp_path / "cfg" / "a.txt"),
        str(tmp_path / "cfg" / "shards" / "*.txt"),
        "/abs/b.txt",
        "-",  # stdin stays stdin
    ]
    assert cfg.data.test == str(tmp_path / "x" / "**" / "*.txt")
    for p in cfg.data.train[:3]:
        assert os.path.isabs(p)


def test_paths_need_not_exist_and_home_is_expanded(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    cfg = load_config(write(tmp_path, "data: {train: ~/corpus/missing.txt}\n"))
    assert cfg.data.train == str(tmp_path / "home" / "corpus" / "missing.txt")


def test_override_paths_resolve_against_the_cwd(tmp_path, monkeypatch):
    conf = write(tmp_path, "data: {train: t.txt, valid: v.txt}\n", "configs/c.yaml")
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    cfg = load_config(conf, ["data.test=[x.txt, y/*.txt]", "data.valid=w.txt"])
    assert cfg.data.train == str(tmp_path / "configs" / "t.txt")  # from the file
    assert cfg.data.valid == str(work / "w.txt")  # from --set
    assert cfg.data.test == [str(work / "x.txt"), str(work / "y" / "*.txt")]


def test_no_config_file_resolves_against_the_cwd(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert load_config(None, ["data.train=c.txt"]).data.train == str(tmp_path / "c.txt")


def test_config_from_dict_resolves_only_with_base_dir(tmp_path):
    raw = {"data": {"train": "t.txt", "valid": ["a", "/b"]}}
    assert config_from_dict(raw).data.train == "t.txt"
    cfg = config_from_dict(raw, base_dir=str(tmp_path))
    assert cfg.data.train == str(tmp_path / "t.txt")
    assert cfg.data.valid == [str(tmp_path / "a"), "/b"]


def test_pathlike_values_become_strings(tmp_path):
    cfg = config_from_dict({"data": {"train": tmp_path / "t.txt", "test": [Path("x")]}})
    assert cfg.data.train == str(tmp_path / "t.txt")
    assert cfg.data.test == ["x"]


# --- overrides --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "assignment, section, key, value",
    [
        ("train.epochs=3", "train", "epochs", 3),
        ("train.lr=0.5", "train", "lr", 0.5),
        ("train.lr=2", "train", "lr", 2.0),
        ("train.lr=1e-3", "train", "lr", 0.001),
        ("model.tie_weights=true", "model", "tie_weights", True),
        ("tokenizer.lowercase=false", "tokenizer", "lowercase", False),
        ("model.cell=gru", "model", "cell", "gru"),
        ("data.encoding=latin-1", "data", "encoding", "latin-1"),
        ("checkpoint.dir=out/run 1", "checkpoint", "dir", "out/run 1"),
        ("data.valid=null", "data", "valid", None),
        ("train.seed = 7", "train", "seed", 7),
    ],
)
def test_override_of_each_type(assignment, section, key, value):
    cfg = load_config(None, [assignment])
    got = getattr(getattr(cfg, section), key)
    assert got == value and type(got) is type(value)


def test_override_list_value(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    cfg = load_config(None, ["data.train=[a.txt, b.txt]"])
    assert cfg.data.train == [str(tmp_path / "a.txt"), str(tmp_path / "b.txt")]


def test_overrides_apply_in_order_over_the_file(tmp_path):
    conf = write(tmp_path, "train: {epochs: 5, bptt: 10}\n")
    cfg = load_config(conf, ["train.epochs=6", "train.epochs=7"])
    assert cfg.train.epochs == 7 and cfg.train.bptt == 10


def test_override_can_fix_a_cross_key_rule(tmp_path):
    conf = write(tmp_path, "model: {tie_weights: true, hidden_size: 256}\n")
    assert load_config(conf, ["model.embedding_size=256"]).model.tie_weights is True


def test_override_value_with_equals_sign(tmp_path):
    cfg = load_config(None, ["checkpoint.dir=a=b"])
    assert cfg.checkpoint.dir == "a=b"


def test_apply_override_edits_a_raw_dict():
    raw: dict = {"model": None}
    apply_override(raw, "model.layers=2")
    apply_override(raw, "train.epochs=1")
    assert raw == {"model": {"layers": 2}, "train": {"epochs": 1}}
    assert parse_override("model.cell=lstm") == ("model", "cell", "lstm")


@pytest.mark.parametrize(
    "assignment",
    ["train.epochs", "=3", "train=3", "a..b=1", ".a=1", "train.=1", "train epochs=3", ""],
)
def test_malformed_override(assignment):
    message = config_error(load_config, None, [assignment])
    assert message.startswith(f"--set {assignment!r}:")
    assert "KEY=VALUE" in message and "train.epochs=3" in message


def test_override_with_bad_yaml_value():
    message = config_error(load_config, None, ["train.epochs=[1,"])
    assert message.startswith("--set 'train.epochs=[1,':")
    assert "YAML" in message and "KEY=VALUE" in message


def test_unknown_override_key_suggests():
    message = config_error(load_config, None, ["model.hiden_size=3"])
    assert message == "unknown key 'model.hiden_size' in --set; did you mean 'model.hidden_size'?"
    message = config_error(load_config, None, ["modle.layers=3"])
    assert "unknown section 'modle' in --set" in message and "'model'" in message


def test_override_value_is_validated():
    message = config_error(load_config, None, ["train.epochs=abc"])
    assert message == "train.epochs: expected an integer >= 1, got 'abc' (str)"


# --- round trip -------------------------------------------------------------------------------


def test_round_trip_defaults_and_custom():
    custom = config_from_dict(
        {
            "data": {"train": ["/a", "/b/*.txt"], "test": "/t", "errors": "replace"},
            "model": {"cell": "gru", "layers": 3, "dropout": 0.2},
            "train": {"lr": 3, "max_tokens": 1000},
        }
    )
    for cfg in (Config(), custom):
        plain = config_to_dict(cfg)
        assert json.loads(json.dumps(plain)) == plain
        assert yaml.safe_load(yaml.safe_dump(plain)) == plain
        assert config_from_dict(plain) == cfg
        assert config_from_dict(yaml.safe_load(config_to_yaml(cfg))) == cfg


def test_to_dict_is_a_copy():
    cfg = config_from_dict({"data": {"train": ["/a"]}})
    config_to_dict(cfg)["data"]["train"].append("/b")
    assert cfg.data.train == ["/a"]


# --- errors: files ----------------------------------------------------------------------------


def test_missing_file(tmp_path):
    path = tmp_path / "nope.yaml"
    assert config_error(load_config, path) == f"config file not found: {path}"


def test_directory_instead_of_file(tmp_path):
    message = config_error(load_config, tmp_path)
    assert message.startswith(f"config file not found: {tmp_path}") and "directory" in message


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0, reason="root reads anything")
def test_unreadable_file(tmp_path):
    path = write(tmp_path, "model: {}\n")
    path.chmod(0)
    try:
        message = config_error(load_config, path)
    finally:
        path.chmod(0o644)
    assert str(path) in message and "config file" in message


def test_yaml_syntax_error_has_line_and_column(tmp_path):
    path = write(tmp_path, "model:\n  cell: lstm\n  layers: [1, 2\n")
    message = config_error(load_config, path)
    assert message.startswith(f"{path}:")
    assert "YAML syntax error:" in message
    line, col = message[len(str(path)) + 1 :].split(":")[:2]
    assert int(line) >= 3 and int(col) >= 1


def test_yaml_syntax_error_exact_position(tmp_path):
    path = write(tmp_path, "model:\n  cell: lstm\n   layers: 2\n")
    message = config_error(load_config, path)
    assert message.startswith(f"{path}:3:")
    assert "YAML syntax error: " in message


def test_tab_indentation_is_a_syntax_error(tmp_path):
    path = write(tmp_path, "model:\n\tcell: lstm\n")
    assert f"{path}:2:1: YAML syntax error:" in config_error(load_config, path)


def test_duplicate_key_is_an_error(tmp_path):
    path = write(tmp_path, "model:\n  layers: 1\n  layers: 2\n")
    message = config_error(load_config, path)
    assert message.startswith(f"{path}:3:3:") and "duplicate key 'layers'" in message


def test_non_utf8_file(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_bytes(b"model:\n  cell: \xff\xfe\xfa\n")
    message = config_error(load_config, path)
    assert str(path) in message


@pytest.mark.parametrize("text, kind", [("- a\n- b\n", "list"), ("42\n", "int"), ("hi\n", "str")])
def test_top_level_must_be_a_mapping(tmp_path, text, kind):
    path = write(tmp_path, text)
    message = config_error(load_config, path)
    assert str(path) in message and "mapping of sections" in message and f"({kind})" in message


@pytest.mark.parametrize("body", ["128", "[1, 2]", "lstm"])
def test_section_must_be_a_mapping(tmp_path, body):
    path = write(tmp_path, f"model: {body}\n")
    message = config_error(load_config, path)
    assert message.startswith("model: expected a mapping of keys") and str(path) in message


# --- errors: unknown keys ---------------------------------------------------------------------


def test_unknown_key_in_file_suggests(tmp_path):
    path = write(tmp_path, "model:\n  hiden_size: 3\n")
    assert config_error(load_config, path) == (
        f"unknown key 'model.hiden_size' in {path}; did you mean 'model.hidden_size'?"
    )


def test_key_in_wrong_section_suggests_the_right_one(tmp_path):
    path = write(tmp_path, "train:\n  hidden_size: 3\n")
    assert "did you mean 'model.hidden_size'?" in config_error(load_config, path)


def test_unknown_key_far_from_everything_lists_the_section(tmp_path):
    path = write(tmp_path, "checkpoint:\n  zzzzzz: 1\n")
    message = config_error(load_config, path)
    assert message.startswith(f"unknown key 'checkpoint.zzzzzz' in {path};")
    assert "dir, keep_best, keep, every_steps, every_minutes" in message


def test_unknown_section(tmp_path):
    path = write(tmp_path, "modle:\n  layers: 2\n")
    assert config_error(load_config, path) == (f"unknown section 'modle' in {path}; did you mean 'model'?")
    path = write(tmp_path, "qqqq: 1\n")
    assert "data, tokenizer, model, train, checkpoint" in config_error(load_config, path)


def test_flat_dotted_key_is_explained(tmp_path):
    path = write(tmp_path, "model.layers: 2\n")
    message = config_error(load_config, path)
    assert "unknown section 'model.layers'" in message and "model:" in message


def test_unknown_key_from_dict_names_config():
    assert error_for({"train": {"epoch": 3}}) == ("unknown key 'train.epoch' in config; did you mean 'train.epochs'?")


# --- errors: types and ranges -----------------------------------------------------------------


@pytest.mark.parametrize(
    "section, key, value, expected",
    [
        (
            "model",
            "hidden_size",
            "abc",
            "model.hidden_size: expected an integer >= 1, got 'abc' (str)",
        ),
        (
            "model",
            "hidden_size",
            True,
            "model.hidden_size: expected an integer >= 1, got True (bool)",
        ),
        ("model", "layers", 2.0, "model.layers: expected an integer >= 1, got 2.0 (float)"),
        ("model", "layers", 2.5, "model.layers: expected an integer >= 1, got 2.5 (float)"),
        ("train", "epochs", None, "train.epochs: expected an integer >= 1, got None (NoneType)"),
        ("train", "seed", "7", "train.seed: expected an integer >= 0, got '7' (str)"),
        ("train", "lr", True, "train.lr: expected a number > 0, got True (bool)"),
        ("train", "lr", "fast", "train.lr: expected a number > 0, got 'fast' (str)"),
        ("train", "lr", [1], "train.lr: expected a number > 0, got [1] (list)"),
        ("model", "tie_weights", "yes please", "model.tie_weights: expected true or false"),
        ("model", "tie_weights", 1, "model.tie_weights: expected true or false, got 1 (int)"),
        ("tokenizer", "lowercase", "true", "tokenizer.lowercase: expected true or false"),
        ("data", "train", 5, "data.train: expected a path, glob or directory"),
        ("data", "train", {"a": 1}, "data.train: expected a path"),
        ("data", "valid", ["a.txt", 3], "data.valid[1]: expected a path"),
        ("data", "test", "", "data.test: expected a path"),
        ("data", "encoding", 8, "data.encoding: expected a text encoding"),
        ("checkpoint", "dir", None, "checkpoint.dir: expected a non-empty string, got None"),
        ("checkpoint", "dir", "", "checkpoint.dir: expected a non-empty string"),
    ],
)
def test_wrong_type(section, key, value, expected):
    assert error_for({section: {key: value}}).startswith(expected)


@pytest.mark.parametrize(
    "section, key, value, expected",
    [
        ("model", "hidden_size", 0, "model.hidden_size: must be >= 1, got 0"),
        ("model", "embedding_size", -5, "model.embedding_size: must be >= 1, got -5"),
        ("model", "layers", 0, "model.layers: must be >= 1, got 0"),
        ("model", "dropout", 1, "model.dropout: must be >= 0 and < 1, got 1"),
        ("model", "dropout", -0.1, "model.dropout: must be >= 0 and < 1, got -0.1"),
        ("model", "init_range", 0, "model.init_range: must be > 0, got 0"),
        ("data", "valid_fraction", 1.0, "data.valid_fraction: must be >= 0 and < 1, got 1.0"),
        ("tokenizer", "min_count", 0, "tokenizer.min_count: must be >= 1, got 0"),
        ("tokenizer", "max_vocab", 2, "tokenizer.max_vocab: must be 0 (no limit) or >= 3, got 2"),
        ("tokenizer", "max_vocab", -1, "tokenizer.max_vocab: must be 0 (no limit) or >= 3, got -1"),
        ("train", "lr", -1, "train.lr: must be > 0, got -1"),
        ("train", "lr", 0.0, "train.lr: must be > 0, got 0.0"),
        ("train", "clip", -0.5, "train.clip: must be >= 0, got -0.5"),
        ("train", "lr_decay", 0.5, "train.lr_decay: must be >= 1, got 0.5"),
        ("train", "weight_decay", -1e-4, "train.weight_decay: must be >= 0, got -0.0001"),
        ("train", "batch_size", 0, "train.batch_size: must be >= 1, got 0"),
        ("train", "bptt", 0, "train.bptt: must be >= 1, got 0"),
        ("train", "epochs", 0, "train.epochs: must be >= 1, got 0"),
        ("train", "max_tokens", -1, "train.max_tokens: must be >= 0, got -1"),
        ("train", "eval_batch_size", 0, "train.eval_batch_size: must be >= 1, got 0"),
        ("train", "seed", -1, "train.seed: must be >= 0, got -1"),
    ],
)
def test_out_of_range(section, key, value, expected):
    assert error_for({section: {key: value}}) == expected


@pytest.mark.parametrize("value", [float("nan"), float("inf"), float("-inf")])
def test_nan_and_inf_are_rejected(value):
    message = error_for({"train": {"lr": value}})
    assert message.startswith("train.lr: must be a finite number > 0, got")


def test_nan_from_yaml_file(tmp_path):
    path = write(tmp_path, "train:\n  clip: .nan\n")
    assert config_error(load_config, path).startswith("train.clip: must be a finite number")


@pytest.mark.parametrize(
    "section, key, value, expected",
    [
        ("model", "cell", "lstmm", "model.cell: 'lstmm' is not one of rnn, lstm, gru"),
        ("model", "cell", "LSTM", "model.cell: 'LSTM' is not one of rnn, lstm, gru"),
        ("model", "cell", 1, "model.cell: 1 is not one of rnn, lstm, gru"),
        ("train", "optimizer", "adamw", "train.optimizer: 'adamw' is not one of sgd, adam"),
        ("tokenizer", "mode", "english", "tokenizer.mode: 'english' is not one of portuguese, "),
        ("data", "errors", "ignore", "data.errors: 'ignore' is not one of strict, replace"),
    ],
)
def test_not_one_of_the_choices(section, key, value, expected):
    assert error_for({section: {key: value}}).startswith(expected)


@pytest.mark.parametrize("encoding", ["utf-9", "rot13", "base64"])
def test_unknown_or_binary_encoding(encoding):
    message = error_for({"data": {"encoding": encoding}})
    assert message.startswith(f"data.encoding: unknown text encoding {encoding!r}")


@pytest.mark.parametrize("encoding", ["utf-8", "UTF8", "latin-1", "cp1252", "utf-16"])
def test_known_encodings(encoding):
    assert config_from_dict({"data": {"encoding": encoding}}).data.encoding == encoding


def test_empty_path_list_is_rejected():
    assert error_for({"data": {"train": []}}).startswith("data.train: the list is empty")


def test_tie_weights_needs_equal_sizes(tmp_path):
    path = write(tmp_path, "model: {tie_weights: true, embedding_size: 64, hidden_size: 128}\n")
    message = config_error(load_config, path)
    assert message.startswith("model.tie_weights:")
    for word in ("model.embedding_size", "model.hidden_size", "64", "128"):
        assert word in message
    # equal sizes, or untied weights, are fine
    assert config_from_dict({"model": {"tie_weights": False, "hidden_size": 7}}).model.hidden_size == 7
    tied = {"model": {"tie_weights": True, "embedding_size": 32, "hidden_size": 32}}
    assert config_from_dict(tied).model.tie_weights is True


def test_long_values_are_shortened_in_messages():
    message = error_for({"model": {"hidden_size": "x" * 500}})
    assert len(message) < 150


# --- the reference config ---------------------------------------------------------------------


def test_reference_yaml_is_a_valid_config():
    cfg = load_config(REFERENCE)
    assert cfg.data.train == str(REPO / "data" / "train")
    assert cfg.data.test == str(REPO / "data" / "test.txt")
    assert cfg.checkpoint.dir == "checkpoints/reference"  # a run folder of its own


def test_reference_yaml_lists_every_key_with_its_default():
    raw = yaml.safe_load(REFERENCE.read_text(encoding="utf-8"))
    defaults = config_to_dict(Config())
    # the bundled corpus and a run folder of its own are the deliberate differences from the defaults
    assert raw["data"].pop("train") == "../data/train"
    assert raw["data"].pop("test") == "../data/test.txt"
    assert raw["checkpoint"].pop("dir") == "checkpoints/reference"  # not checkpoints/ itself, beside other runs
    del defaults["data"]["train"], defaults["data"]["test"], defaults["checkpoint"]["dir"]
    assert raw == defaults
    assert list(raw) == list(SECTIONS)
    for section in SECTIONS:  # same order as the dataclasses, so the doc reads like the code
        keys = [k.split(".")[1] for k in KEYS if k.startswith(section + ".")]
        assert [k for k in raw[section]] == [k for k in keys if k in raw[section]]


def test_reference_yaml_comments_are_the_key_descriptions():
    lines = REFERENCE.read_text(encoding="utf-8").splitlines()
    for info in describe_keys():
        section, key = info.path.split(".")
        start = lines.index(f"{section}:")
        line = next(i for i in range(start, len(lines)) if lines[i].startswith(f"  {key}:"))
        assert lines[line - 1] == f"  # {info.help}", info.path


def test_sections_compare_and_show_by_their_fields():
    from rnncli.config import Config, ModelConfig, TrainConfig

    assert Config() == Config() and ModelConfig(cell="lstm") == ModelConfig(cell="lstm")
    assert ModelConfig(cell="lstm") != ModelConfig() and TrainConfig(epochs=3) != TrainConfig()
    assert Config(model=ModelConfig(layers=2)) != Config()
    assert ModelConfig() != TrainConfig() and Config() != "config"
    assert repr(ModelConfig(cell="gru")).startswith("ModelConfig(cell='gru', direction='forward', ")
    with pytest.raises(TypeError):
        hash(Config())  # mutable: no hash, as a dataclass with eq
