"""An ``rnn export`` file where a checkpoint goes: ``rnncli.load("m.onnx")`` and ``-c m.onnx`` run the
network in onnxruntime and give the checkpoint's own answers (predict, eval, score, fill), for an RNN,
an LSTM and an adaptive softmax; an int8 file loads; a foreign or damaged file is one line.
Skipped without the onnx extra.
"""

import io
import json
import math
import sys

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

import rnncli  # noqa: E402
from rnncli.cli import main  # noqa: E402
from rnncli.errors import CheckpointError, UsageError  # noqa: E402
from rnncli.onnx_model import OnnxNetwork  # noqa: E402

from .conftest import TINY_TEXT  # noqa: E402

TOLERANCE = 1e-5  # probabilities, and perplexity relative

MODELS = {  # trained_once's settings of each tiny model
    "rnn": {"model": {"cell": "rnn"}},
    "lstm": {"model": {"cell": "lstm", "layers": 2}},
    "adaptive": {"model": {"cell": "gru", "softmax": "adaptive", "cutoffs": [8, 20]}},
    "pieces": {"model": {"cell": "lstm"}, "tokenizer": {"units": "pieces", "pieces": 300}},
}
PROMPTS = ["o menino", "ela estava sentindo-se", "A mãe trouxe um"]


def _text():
    return io.StringIO(TINY_TEXT)


def _export(runner, run, path, *extra):
    result = runner.invoke(main, ["export", "-c", str(run), "-o", str(path), *extra])
    assert result.exit_code == 0, result.output
    return path


@pytest.fixture(scope="module", params=list(MODELS))
def pair(request, trained_once, tmp_path_factory):
    """(the checkpoint's Model, the .onnx file's Model, the file) for one tiny model."""
    from click.testing import CliRunner

    run = trained_once(**MODELS[request.param]) / "run"
    path = _export(CliRunner(), run, tmp_path_factory.mktemp("onnx") / "m.onnx")
    return rnncli.load(run), rnncli.load(path), path


def test_the_file_loads_as_a_model_run_by_onnxruntime(pair):
    ckpt, m, path = pair
    assert isinstance(m.forward, OnnxNetwork) and m.backward is None
    assert m.path == str(path.resolve()) and m.vocab.itos == ckpt.vocab.itos
    assert m.tokenizer.to_dict() == ckpt.tokenizer.to_dict()
    meta = {p.key: p.value for p in onnx.load(str(path)).metadata_props}
    if ckpt.pieces is None:
        assert m.pieces is None and meta["rnn.units"] == "words" and "rnn.pieces" not in meta
    else:  # a word-piece file carries the piece model: it spells words as the checkpoint does
        assert meta["rnn.units"] == "pieces" and m.pieces.proto == ckpt.pieces.proto
        for word in ("indisposta", "sentindo-se", "ç😀"):
            assert m.spell(word) == ckpt.spell(word)


def test_complete_gives_the_same_words_and_probabilities(pair):
    ckpt, m, _ = pair
    prompts = ["o meni", "ela estava sentindo-se indisp", "A mãe trouxe um c"]
    for want, got in zip(ckpt.complete(prompts, k=5), m.complete(prompts, k=5)):
        assert [c.word for c in got] == [c.word for c in want]
        assert np.allclose([c.prob for c in got], [c.prob for c in want], rtol=0, atol=TOLERANCE)


def test_predict_gives_the_same_words_and_probabilities(pair):
    ckpt, m, _ = pair
    for want, got in zip(ckpt.predict(PROMPTS, k=8), m.predict(PROMPTS, k=8)):
        assert [p.word for p in got] == [p.word for p in want]
        assert np.allclose([p.prob for p in got], [p.prob for p in want], rtol=0, atol=TOLERANCE)


def test_evaluate_gives_the_same_figures(pair):
    ckpt, m, _ = pair
    for batch_size in (1, 3):
        want = ckpt.evaluate(_text(), batch_size=batch_size, keystrokes=True)
        got = m.evaluate(_text(), batch_size=batch_size, keystrokes=True)
        assert (got.tokens, got.units) == (want.tokens, want.units)
        assert math.isclose(got.perplexity, want.perplexity, rel_tol=TOLERANCE)
        assert (got.top1, got.top5, got.oov_rate) == (want.top1, want.top5, want.oov_rate)
        assert got.keystrokes == want.keystrokes


def test_score_and_fill_give_the_same_results(pair):
    ckpt, m, _ = pair
    lines = TINY_TEXT.splitlines()[:3]
    for want, got in zip(ckpt.score(lines), m.score(lines)):
        assert math.isclose(got.logprob, want.logprob, rel_tol=TOLERANCE, abs_tol=TOLERANCE)
        assert [w.word for w in got.words] == [w.word for w in want.words]
    blanks = ["O menino ___ sentindo-se indisposto.", "A ___ trouxe um ___ quente."]
    for want, got in zip(ckpt.fill(blanks, k=3), m.fill(blanks, k=3)):
        assert [f.words for f in got.fills] == [f.words for f in want.fills]
        assert np.allclose([f.prob for f in got.fills], [f.prob for f in want.fills], atol=TOLERANCE)


def test_the_cli_reads_the_file(pair, runner, tmp_path):
    ckpt, m, path = pair
    result = runner.invoke(main, ["predict", "-c", str(path), "o menino", "--format", "json"])
    want = runner.invoke(main, ["predict", "-c", ckpt.path, "o menino", "--format", "json"])
    assert result.exit_code == 0, result.output
    got, expected = json.loads(result.stdout), json.loads(want.stdout)
    assert got["checkpoint"] == str(path.resolve())
    assert [p["word"] for p in got["predictions"]] == [p["word"] for p in expected["predictions"]]
    text = tmp_path / "test.txt"
    text.write_text(TINY_TEXT, encoding="utf-8")
    result = runner.invoke(main, ["eval", "-c", str(path), str(text), "--format", "json"])
    assert result.exit_code == 0, result.output
    got = json.loads(result.stdout)
    want = json.loads(runner.invoke(main, ["eval", "-c", ckpt.path, str(text), "--format", "json"]).stdout)
    assert math.isclose(got["perplexity"], want["perplexity"], rel_tol=TOLERANCE)
    assert (got["top1"], got["top5"]) == (want["top1"], want["top5"])
    result = runner.invoke(main, ["predict", "-c", str(path), "o menino"])  # the plain output too
    assert result.exit_code == 0 and result.stdout


@pytest.mark.parametrize("cell", ["rnn", "lstm"])
def test_an_int8_file_loads_and_predicts(cell, trained_once, tmp_path, runner):
    run = trained_once(model={"cell": cell}) / "run"
    path = _export(runner, run, tmp_path / "int8.onnx", "--int8")
    m = rnncli.load(path)
    got = m.predict("o menino", k=5)
    assert len(got) == 5 and all(0 < p.prob <= 1 for p in got)
    assert m.evaluate(_text()).perplexity > 1


def test_a_backward_export_is_a_backward_model(trained_once, tmp_path, runner):
    run = trained_once(model={"cell": "gru", "direction": "both"}) / "run"
    path = _export(runner, run, tmp_path / "b.onnx", "--direction", "backward")
    ckpt, m = rnncli.load(run), rnncli.load(path)
    assert m.forward is None and isinstance(m.backward, OnnxNetwork)
    want, got = ckpt.evaluate(_text()).backward, m.evaluate(_text())
    assert got.direction == "backward" and math.isclose(got.perplexity, want.perplexity, rel_tol=TOLERANCE)
    with pytest.raises(UsageError):
        m.predict("o menino")


def test_a_foreign_or_damaged_file_is_one_line(tmp_path, runner):
    from onnx import TensorProto, helper

    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])
    graph = helper.make_graph([helper.make_node("Identity", ["x"], ["y"])], "g", [x], [])
    graph.output.append(helper.make_tensor_value_info("y", TensorProto.FLOAT, [1]))
    foreign = tmp_path / "foreign.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(foreign))
    damaged = tmp_path / "damaged.onnx"
    damaged.write_bytes(b"not a model at all")
    for path, words in ((foreign, "not an rnn export"), (damaged, "not a readable ONNX model")):
        with pytest.raises(CheckpointError, match=words):
            rnncli.load(path)
        result = runner.invoke(main, ["predict", "-c", str(path), "o menino"])
        assert result.exit_code == 1 and result.stdout == ""
        assert result.stderr.startswith("rnn: error: ") and result.stderr.count("\n") == 1 and words in result.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["damaged.onnx", "foreign.onnx"]


def test_a_missing_onnxruntime_names_the_extra(tiny_run, tmp_path, runner, monkeypatch):
    path = _export(runner, tiny_run, tmp_path / "m.onnx")
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # `import onnxruntime` raises ImportError
    result = runner.invoke(main, ["predict", "-c", str(path), "o menino"])
    assert result.exit_code == 2
    assert result.stderr.count("\n") == 1 and 'pip install -e ".[onnx]"' in result.stderr


def test_export_and_quantize_refuse_an_onnx_file_in_one_line(tmp_path):
    from click.testing import CliRunner

    from rnncli.cli import main

    model = tmp_path / "m.onnx"
    model.write_bytes(b"not read")
    runner = CliRunner()
    for argv in (
        ["export", "-c", str(model), "-o", str(tmp_path / "x.onnx")],
        ["quantize", "-c", str(model), "-o", str(tmp_path / "q")],
    ):
        out = runner.invoke(main, argv)
        assert out.exit_code == 2, out.output
        assert out.stderr.count("\n") == 1 and "ONNX file" in out.stderr
    assert model.read_bytes() == b"not read" and not (tmp_path / "x.onnx").exists() and not (tmp_path / "q").exists()


@pytest.mark.parametrize("value", ["not base64 !", "AAAA", "AAAé", None])
def test_a_damaged_piece_model_in_the_file_is_one_line(value, trained_once, tmp_path, runner):
    run = trained_once(**MODELS["pieces"]) / "run"
    path = _export(runner, run, tmp_path / "m.onnx")
    proto = onnx.load(str(path))
    kept = [(p.key, p.value) for p in proto.metadata_props if p.key != "rnn.pieces" or value is not None]
    del proto.metadata_props[:]
    for key, text in kept:
        proto.metadata_props.add(key=key, value=value if key == "rnn.pieces" else text)
    onnx.save(proto, str(path))
    with pytest.raises(CheckpointError, match="rnn.pieces"):
        rnncli.load(path)
    result = runner.invoke(main, ["predict", "-c", str(path), "o menino"])
    assert result.exit_code == 1 and result.stdout == ""
    assert result.stderr.startswith("rnn: error: ") and result.stderr.count("\n") == 1 and "rnn.pieces" in result.stderr


def test_a_piece_model_whose_file_says_words_is_refused(trained_once, tmp_path, runner):
    """Read as words, a piece file's vocabulary would answer in pieces: a file that carries a piece
    model but says rnn.units words is damaged, in one line."""
    run = trained_once(**MODELS["pieces"]) / "run"
    path = _export(runner, run, tmp_path / "m.onnx")
    proto = onnx.load(str(path))
    for p in proto.metadata_props:
        if p.key == "rnn.units":
            p.value = "words"
    onnx.save(proto, str(path))
    with pytest.raises(CheckpointError, match="carries a piece model"):
        rnncli.load(path)
    result = runner.invoke(main, ["predict", "-c", str(path), "o menino"])
    assert result.exit_code == 1 and result.stderr.count("\n") == 1 and "rnn.pieces" in result.stderr


def test_the_api_export_refuses_a_missing_folder_and_network_in_one_line(trained_once, tmp_path):
    m = rnncli.load(trained_once(**MODELS["rnn"]) / "run")
    with pytest.raises(UsageError, match="is not a folder"):
        m.export(tmp_path / "no" / "m.onnx")
    with pytest.raises(UsageError, match="holds no backward network"):
        m.export(tmp_path / "m.onnx", direction="backward")
    assert list(tmp_path.iterdir()) == []
