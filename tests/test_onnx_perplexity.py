"""benchmarks/onnx_perplexity.py, the independent script of issue 21 (acceptance 2): given only an
``.onnx`` file and ``rnn tokenize`` output (``--pieces`` for a word-piece model) it reproduces ``rnn
eval``'s perplexity within 1e-5 relative, and its top-1 for a word model. Skipped without the onnx extra.
"""

import importlib.util
import json
import math
from pathlib import Path

import pytest

pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")

from rnncli.cli import main  # noqa: E402

from .conftest import TINY_TEXT  # noqa: E402

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "onnx_perplexity.py"
MODELS = {
    "gru-adaptive": {"model": {"cell": "gru", "softmax": "adaptive", "cutoffs": [8, 20]}},
    "lstm-2": {"model": {"cell": "lstm", "layers": 2}},
    "pieces": {"model": {"cell": "lstm"}, "tokenizer": {"units": "pieces", "pieces": 300}},
}


def _script():
    spec = importlib.util.spec_from_file_location("onnx_perplexity", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("name", list(MODELS))
def test_the_script_reproduces_rnn_eval_from_the_file_alone(name, trained_once, tmp_path, runner, capsys):
    run = trained_once(**MODELS[name]) / "run"
    text, model = tmp_path / "test.txt", tmp_path / "m.onnx"
    text.write_text(TINY_TEXT * 3, encoding="utf-8")
    assert runner.invoke(main, ["export", "-c", str(run), "-o", str(model)]).exit_code == 0
    pieces = ["--pieces"] if "tokenizer" in MODELS[name] else []
    tokens = runner.invoke(main, ["tokenize", "-c", str(run), str(text), *pieces])
    assert tokens.exit_code == 0, tokens.output
    (tmp_path / "tokens.txt").write_text(tokens.stdout, encoding="utf-8")
    want = json.loads(runner.invoke(main, ["eval", "-c", str(run), str(text), "--format", "json"]).stdout)
    script = _script()
    top1 = [] if pieces else ["--top1"]
    for window in ("256", "7"):
        capsys.readouterr()
        script.main([str(model), str(tmp_path / "tokens.txt"), "--window", window, "--format", "json", *top1])
        got = json.loads(capsys.readouterr().out)
        assert got["tokens"] == want["tokens"]
        assert math.isclose(got["perplexity"], want["perplexity"], rel_tol=1e-5)
        if not pieces:
            assert got["top1"] == want["top1"]
