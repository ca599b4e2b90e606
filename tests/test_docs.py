"""Every Python example in README.md and docs/ runs, as written, after `rnn train configs/default.yaml`.

Each ```python block runs on its own in a fresh interpreter, in a folder that holds the trained
default model (checkpoints/default) and the bundled corpus (data/), as a user's checkout does.
"""

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from .conftest import rewrite_recorded_paths

REPO = Path(__file__).resolve().parents[1]
DOCS = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
BLOCK = re.compile(r"^```python\n(.*?)^```", re.S | re.M)


def _examples():
    for doc in DOCS:
        text = doc.read_text(encoding="utf-8")
        for m in BLOCK.finditer(text):
            line = text.count("\n", 0, m.start()) + 1
            yield pytest.param(m.group(1), id=f"{doc.name}:{line}")


@pytest.fixture(scope="module")
def checkout(tmp_path_factory, golden_models):
    """A folder like a user's checkout after `rnn train configs/default.yaml`: data/, configs/ and
    checkpoints/default, a copy of the session's default model (trained once, for test_golden too),
    with the paths it recorded naming this folder."""
    folder = tmp_path_factory.mktemp("checkout")
    shutil.copytree(REPO / "data", folder / "data")
    shutil.copytree(REPO / "configs", folder / "configs")
    source, run = golden_models[0]["default"], folder / "checkpoints" / "default"
    shutil.copytree(source, run)
    rewrite_recorded_paths(run, {str(source): str(run), str(REPO): str(folder)})
    return folder


def test_the_docs_have_python_examples():
    assert len(list(_examples())) >= 3


@pytest.mark.slow
@pytest.mark.parametrize("code", list(_examples()))
def test_a_python_example_runs_as_written(checkout, code):
    if "import torch" in code:
        pytest.importorskip("torch")
    if "import onnxruntime" in code:
        pytest.importorskip("onnxruntime")
    env = {k: v for k, v in os.environ.items() if k != "RNN_CHECKPOINT"}
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=checkout, env=env, capture_output=True, text=True, timeout=600
    )
    assert out.returncode == 0, out.stderr[-3000:]
    assert "Traceback" not in out.stderr
