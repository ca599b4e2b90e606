"""`rnn export` (ONNX): the file, run in onnxruntime, gives rnn's own log-probabilities and states.

Every cell, one and two layers, tied weights and the adaptive softmax; the state carried window to
window and step by step; the metadata; the command's errors.  Skipped without the onnx extra.
"""

import json
import shutil
import sys

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

import rnncli  # noqa: E402
from rnncli.cli import main  # noqa: E402

from .conftest import TINY_TEXT  # noqa: E402

TOLERANCE = 1e-5  # max absolute difference of log-probabilities and states

SHAPES = {
    "1 layer": {},
    "2 layers": {"layers": 2},
    "tied": {"embedding_size": 12, "tie_weights": True},
    "adaptive": {"softmax": "adaptive", "cutoffs": [8, 20]},
}


def _session(path) -> "ort.InferenceSession":
    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    return ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])


def _export(runner, run, path, *extra) -> None:
    result = runner.invoke(main, ["export", "-c", str(run), "-o", str(path), *extra])
    assert result.exit_code == 0, result.output
    assert result.stdout == ""  # talk goes to stderr


def _state(net, B: int, seed: int = 0) -> list[tuple[np.ndarray, ...]]:
    """A non-zero state (zeros would hide a wrong h0/c0 wiring)."""
    rng = np.random.default_rng(seed)
    return [tuple(rng.uniform(-0.5, 0.5, a.shape).astype(np.float32) for a in layer) for layer in net.initial_state(B)]


def _feeds(ids: np.ndarray, state, lstm: bool) -> dict:
    feeds = {"input_ids": ids.astype(np.int64), "h0": np.stack([layer[0] for layer in state])}  # (L, B, H)
    if lstm:
        feeds["c0"] = np.stack([layer[1] for layer in state])
    return feeds


def _run(sess, ids, state, lstm: bool):
    """(log_probs (T, B, V), state as the model keeps it) from onnxruntime."""
    out = sess.run(None, _feeds(ids, state, lstm))
    layers = [(h,) for h in out[1]] if not lstm else list(zip(out[1], out[2]))
    return out[0], layers


def _reference(net, ids, state):
    """rnn's own log-probabilities (T, B, V) and the state after the window."""
    top, new_state, _ = net.hidden(ids, state)  # (T, B, H)
    T, B, H = top.shape
    return net.log_probs(top.reshape(T * B, H)).reshape(T, B, -1), new_state


def _max_diff(a_state, b_state) -> float:
    return max(float(np.abs(a - b).max()) for la, lb in zip(a_state, b_state) for a, b in zip(la, lb))


@pytest.fixture(scope="module")
def tokens_of_the_text():
    """The tiny text as the tiny models read it: one token stream."""
    return lambda m: m.vocab.encode(m.tokenizer.tokenize(TINY_TEXT))


@pytest.mark.parametrize("shape", list(SHAPES))
@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
def test_onnxruntime_gives_rnns_log_probs_and_state(cell, shape, trained_once, tmp_path, runner, tokens_of_the_text):
    run = trained_once(model={"cell": cell, **SHAPES[shape]}) / "run"
    _export(runner, run, tmp_path / "m.onnx")
    m = rnncli.load(run)
    net, lstm = m.forward, cell == "lstm"
    if shape == "adaptive":
        assert net.shape.softmax == "adaptive" and len(m.vocab) > 20  # two tail clusters really exist
    sess = _session(tmp_path / "m.onnx")
    stream = tokens_of_the_text(m)

    # a window of B=3 streams from a non-zero state
    ids = stream[:24].reshape(8, 3)
    state = _state(net, 3)
    want, want_state = _reference(net, ids, state)
    got, got_state = _run(sess, ids, state, lstm)
    assert got.shape == want.shape == (8, 3, len(m.vocab))
    assert np.abs(got - want).max() <= TOLERANCE
    assert _max_diff(got_state, want_state) <= TOLERANCE

    # the whole text, one stream, scored in windows of 7 with the state carried
    ids = stream[:, None]  # (N, 1)
    want, want_state = _reference(net, ids, net.initial_state(1))
    state, parts = net.initial_state(1), []
    for lo in range(0, len(ids), 7):
        out, state = _run(sess, ids[lo : lo + 7], state, lstm)
        parts.append(out)
    assert np.abs(np.concatenate(parts) - want).max() <= TOLERANCE
    assert _max_diff(state, want_state) <= TOLERANCE

    # T = 1, step by step, carrying hn (and cn), equals one window
    ids = stream[:20].reshape(10, 2)
    window, window_state = _run(sess, ids, _state(net, 2, seed=1), lstm)
    state, steps = _state(net, 2, seed=1), []
    for t in range(len(ids)):
        out, state = _run(sess, ids[t : t + 1], state, lstm)
        steps.append(out)
    assert np.abs(np.concatenate(steps) - window).max() <= TOLERANCE
    assert _max_diff(state, window_state) <= TOLERANCE


def test_the_graph_is_checked_and_the_metadata_makes_it_self_contained(tiny_run, tmp_path, runner):
    _export(runner, tiny_run, tmp_path / "m.onnx")
    proto = onnx.load(str(tmp_path / "m.onnx"))
    onnx.checker.check_model(proto, full_check=True)
    assert any(o.domain in ("", "ai.onnx") and o.version == 17 for o in proto.opset_import)
    meta = {p.key: p.value for p in proto.metadata_props}
    m = rnncli.load(tiny_run)
    assert json.loads(meta["rnn.vocab"]) == m.vocab.itos
    assert json.loads(meta["rnn.tokenizer"]) == m.checkpoint.meta["tokenizer"]
    assert (meta["rnn.units"], meta["rnn.cell"], meta["rnn.direction"]) == ("words", m.forward.shape.cell, "forward")

    def names(values):
        return [(v.name, [d.dim_param or d.dim_value for d in v.type.tensor_type.shape.dim]) for v in values]

    H, V = m.forward.shape.hidden_size, len(m.vocab)
    assert names(proto.graph.input) == [("input_ids", ["T", "B"]), ("h0", [1, "B", H])]
    assert names(proto.graph.output) == [("log_probs", ["T", "B", V]), ("hn", [1, "B", H])]
    assert [p.name for p in tmp_path.iterdir()] == ["m.onnx"]  # no temporary file left behind


def test_a_two_way_checkpoint_exports_either_network(trained_once, tmp_path, runner, tokens_of_the_text):
    run = trained_once(model={"cell": "gru", "direction": "both"}) / "run"
    m = rnncli.load(run)
    ids = tokens_of_the_text(m)[::-1][:12].reshape(6, 2)  # any ids will do: the graph is what is tested
    for direction, net in (("forward", m.forward), ("backward", m.backward)):
        path = tmp_path / f"{direction}.onnx"
        _export(runner, run, path, "--direction", direction)
        meta = {p.key: p.value for p in onnx.load(str(path)).metadata_props}
        assert meta["rnn.direction"] == direction
        want, _ = _reference(net, ids, _state(net, 2))
        got, _ = _run(_session(path), ids, _state(net, 2), False)
        assert np.abs(got - want).max() <= TOLERANCE
    assert np.abs(m.forward.params["encoder.weight"] - m.backward.params["encoder.weight"]).max() > 0


def test_an_existing_output_is_refused_unless_overwrite(tiny_run, tmp_path, runner):
    out = tmp_path / "m.onnx"
    out.write_bytes(b"keep me")
    result = runner.invoke(main, ["export", "-c", str(tiny_run), "-o", str(out)])
    assert result.exit_code == 2
    assert result.stderr.count("\n") == 1 and "--overwrite" in result.stderr and "Traceback" not in result.stderr
    assert out.read_bytes() == b"keep me"
    _export(runner, tiny_run, out, "--overwrite")
    onnx.checker.check_model(onnx.load(str(out)))


def test_a_missing_onnx_package_names_the_extra(tiny_run, tmp_path, runner, monkeypatch):
    monkeypatch.setitem(sys.modules, "onnx", None)  # `import onnx` raises ImportError
    result = runner.invoke(main, ["export", "-c", str(tiny_run), "-o", str(tmp_path / "m.onnx")])
    assert result.exit_code == 2
    assert result.stderr.count("\n") == 1 and 'pip install -e ".[onnx]"' in result.stderr
    assert not (tmp_path / "m.onnx").exists()


def test_a_missing_or_damaged_checkpoint_is_one_line(tiny_run, tmp_path, runner):
    (tmp_path / "empty").mkdir()
    damaged = tmp_path / "damaged"
    shutil.copytree(tiny_run, damaged)
    weights = next(damaged.glob("ckpt-*/model.safetensors"))
    weights.write_bytes(weights.read_bytes()[:100])
    for folder, code in (("empty", 2), ("damaged", 1)):  # as every command: no checkpoint 2, damaged 1
        result = runner.invoke(main, ["export", "-c", str(tmp_path / folder), "-o", str(tmp_path / "m.onnx")])
        assert result.exit_code == code, result.output
        assert result.stderr.startswith("rnn: error: ") and result.stderr.count("\n") == 1
        assert not (tmp_path / "m.onnx").exists()


def test_a_missing_direction_is_refused(trained_once, tmp_path, runner):
    run = trained_once(model={"cell": "rnn", "direction": "backward"}) / "run"
    result = runner.invoke(main, ["export", "-c", str(run), "-o", str(tmp_path / "m.onnx")])
    assert result.exit_code == 2 and "--direction backward" in result.stderr and result.stderr.count("\n") == 1
    assert not (tmp_path / "m.onnx").exists()


def test_help(runner):
    result = runner.invoke(main, ["export", "--help"])
    assert result.exit_code == 0 and "input_ids" in result.stdout and "--overwrite" in result.stdout
    assert "--int8" in result.stdout and "DynamicQuantizeLSTM" in result.stdout


INT8_TOLERANCE = 0.2  # max |int8 - float32| of log-probs and states, tiny models: measured 0.058-0.068 and <= 0.021


@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
def test_int8_runs_in_onnxruntime_close_to_float32_and_smaller(
    cell, trained_once, tmp_path, runner, tokens_of_the_text
):
    # wide enough that the weights, not the graph, make most of the file
    model = {"cell": cell, "softmax": "adaptive", "cutoffs": [8, 20], "hidden_size": 64, "embedding_size": 64}
    run = trained_once(model=model) / "run"
    _export(runner, run, tmp_path / "f32.onnx")
    result = runner.invoke(main, ["export", "-c", str(run), "-o", str(tmp_path / "int8.onnx"), "--int8"])
    assert result.exit_code == 0, result.output
    assert result.stdout == "" and result.stderr.count("\n") == 1  # no quantizer logging
    assert sorted(p.name for p in tmp_path.iterdir()) == ["f32.onnx", "int8.onnx"]  # no temporary file left
    f32, int8 = (onnx.load(str(tmp_path / n)) for n in ("f32.onnx", "int8.onnx"))
    assert (tmp_path / "int8.onnx").stat().st_size < (tmp_path / "f32.onnx").stat().st_size
    meta32, meta8 = ({p.key: p.value for p in m.metadata_props} for m in (f32, int8))
    assert {k: v for k, v in meta8.items() if k.startswith("rnn.")} == meta32
    ops = {(n.domain or "", n.op_type) for n in int8.graph.node}
    assert ("", "MatMulInteger") in ops and ("", "DequantizeLinear") in ops  # output and embedding quantized
    assert (("com.microsoft", "DynamicQuantizeLSTM") in ops) == (cell == "lstm")
    if cell != "lstm":
        onnx.checker.check_model(int8, full_check=True)  # standard ops only

    m = rnncli.load(run)
    net, lstm = m.forward, cell == "lstm"
    ids = tokens_of_the_text(m)[:24].reshape(8, 3)
    want, want_state = _run(_session(tmp_path / "f32.onnx"), ids, _state(net, 3), lstm)
    got, got_state = _run(_session(tmp_path / "int8.onnx"), ids, _state(net, 3), lstm)
    assert got.shape == want.shape
    assert 0 < np.abs(got - want).max() <= INT8_TOLERANCE  # > 0: the weights really are quantized
    assert _max_diff(got_state, want_state) <= INT8_TOLERANCE
