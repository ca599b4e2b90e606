"""The shape of the code that issue 19 set: the CLI is a thin package over the API, functions are
short, and each command imports only what it uses (checked on the source and on a real start)."""

import ast
import subprocess
import sys
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "rnncli"


def _functions(path: Path):
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            yield node.name, node.end_lineno - node.lineno + 1


def test_no_function_is_over_60_lines():
    long = [
        f"{p.relative_to(PACKAGE)}:{name} ({n} lines)"
        for p in sorted(PACKAGE.rglob("*.py"))
        for name, n in _functions(p)
        if n > 60
    ]
    assert long == []


def test_the_cli_is_a_package_of_short_modules_that_never_import_numpy():
    modules = sorted((PACKAGE / "cli").glob("*.py"))
    assert {p.name for p in modules} >= {"__init__.py", "predict.py", "fill.py", "text.py", "train.py", "report.py"}
    assert not (PACKAGE / "cli.py").exists()
    for p in modules:
        assert len(p.read_text(encoding="utf-8").splitlines()) <= 400, p.name
        for node in ast.walk(ast.parse(p.read_text(encoding="utf-8"))):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                names = [node.module or ""]
            assert not any(n == "numpy" or n.startswith("numpy.") for n in names), f"{p.name} imports {names}"


def test_a_command_imports_only_what_it_uses(tiny_run):
    code = (
        "import sys\n"
        "from rnncli.cli import main\n"
        f"sys.argv = ['rnn', 'predict', '-c', {str(tiny_run)!r}, 'o menino']\n"
        "try:\n    main(prog_name='rnn')\nexcept SystemExit:\n    pass\n"
        "print(sorted(m for m in ('yaml', 'tqdm', 'rnncli.training', 'rnncli.optim', 'mpi4py', 'threadpoolctl')"
        " if m in sys.modules), file=sys.stderr)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.stderr.strip().splitlines()[-1] == "[]", out.stderr
