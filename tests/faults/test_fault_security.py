"""Security basics: no plain pickle (a pickle is read only by a restricted Unpickler), Keras
safe mode, no shell strings, a read-only board, and TensorBoard on localhost only.
Checked on the package's source and on a real board run."""

from __future__ import annotations

import ast
import hashlib
from pathlib import Path

from typer.testing import CliRunner

from facenet_cli import events
from facenet_cli.cli import app
from facenet_cli.events import EventWriter

REPO = Path(__file__).resolve().parents[2]
SOURCES = sorted(p for d in ("facenet_cli", "tui", "benchmarks") for p in (REPO / d).rglob("*.py"))


def _unrestricted_pickle(tree: ast.AST, rel: Path) -> list[str]:
    """A module may import ``pickle`` to write one, or to read one only through a subclass of
    ``pickle.Unpickler`` whose ``find_class`` decides which globals resolve; ``pickle.load``,
    ``pickle.loads`` and a bare ``pickle.Unpickler(...)`` are plain pickle."""
    problems = []
    restricted = [
        node
        for node in ast.walk(tree)
        if isinstance(node, ast.ClassDef)
        and any(ast.unparse(base) == "pickle.Unpickler" for base in node.bases)
        and any(isinstance(f, ast.FunctionDef) and f.name == "find_class" for f in node.body)
    ]
    if not restricted:
        problems.append(f"{rel}: imports pickle without a restricted Unpickler (find_class)")
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module == "pickle":
            problems.append(f"{rel}:{node.lineno}: from pickle import ...")
        if isinstance(node, ast.Attribute) and getattr(node.value, "id", "") == "pickle":
            if node.attr not in ("Unpickler", "PickleBuffer", "dump", "dumps"):
                problems.append(f"{rel}:{node.lineno}: pickle.{node.attr}")
        if isinstance(node, ast.Call) and ast.unparse(node.func) == "pickle.Unpickler":
            problems.append(f"{rel}:{node.lineno}: an unrestricted pickle.Unpickler")
    return problems


def _calls(tree: ast.AST):
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            func = node.func
            name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
            yield name, {k.arg: k.value for k in node.keywords}, node


def _is_true(node: ast.AST | None) -> bool:
    return isinstance(node, ast.Constant) and node.value is True


def test_no_pickle_no_shell_and_safe_keras_loading() -> None:
    problems = []
    for path in SOURCES:
        tree = ast.parse(path.read_text(encoding="utf-8"))
        rel = path.relative_to(REPO)
        for node in ast.walk(tree):
            if isinstance(node, ast.Import | ast.ImportFrom):
                names = [a.name for a in node.names] + [getattr(node, "module", None) or ""]
                if any(n.split(".")[0] in ("cPickle", "dill", "joblib") for n in names):
                    problems.append(f"{rel}:{node.lineno}: imports a pickle module")
                if any(n.split(".")[0] == "pickle" for n in names):
                    problems.extend(_unrestricted_pickle(tree, rel))
        for name, kw, node in _calls(tree):
            where = f"{rel}:{node.lineno}"
            if _is_true(kw.get("allow_pickle")):
                problems.append(f"{where}: allow_pickle=True")
            if _is_true(kw.get("shell")):
                problems.append(f"{where}: shell=True")
            if name in ("system", "popen") and isinstance(node.func, ast.Attribute):
                if getattr(node.func.value, "id", "") == "os":
                    problems.append(f"{where}: os.{name}")
            if name == "load_model" and not _is_true(kw.get("safe_mode")):
                problems.append(f"{where}: load_model without safe_mode=True")
            if name == "load" and getattr(node.func, "value", None) is not None:
                if getattr(node.func.value, "id", "") == "np" and "allow_pickle" not in kw:
                    problems.append(f"{where}: np.load without allow_pickle=False")
    assert not problems, "\n".join(problems)


def test_tensorboard_is_bound_to_localhost(tmp_path: Path) -> None:
    from tui.tensorboard import tensorboard_command

    argv = tensorboard_command(tmp_path, 6006)
    assert argv[argv.index("--host") + 1] in ("127.0.0.1", "localhost", "::1")
    assert "0.0.0.0" not in argv and "--bind_all" not in argv


def _tree_digest(root: Path) -> dict[str, tuple[str, int]]:
    return {
        str(p.relative_to(root)): (hashlib.sha256(p.read_bytes()).hexdigest(), p.stat().st_mtime_ns)
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def test_board_only_reads_the_log_directory(tmp_path: Path) -> None:
    logdir = tmp_path / "logs"
    (logdir / "run1").mkdir(parents=True)
    with EventWriter(logdir / "run1") as w:
        for step in range(1, 20):
            w.add_scalar(events.LOSS, 1.0 / step, step)
    (logdir / "run1" / "FAILED").write_text("loss became nan at step 19\n")
    before = _tree_digest(logdir)
    dirs_before = sorted(p.name for p in logdir.rglob("*"))
    for args in (["--once"], ["--once", "--json"]):
        result = CliRunner().invoke(app, ["board", str(logdir), *args])
        assert result.exit_code in (0, 5), result.output
    assert _tree_digest(logdir) == before
    assert sorted(p.name for p in logdir.rglob("*")) == dirs_before
