"""``facenet board --once`` / ``--json`` and the board's TensorFlow-free boundary."""

from __future__ import annotations

import json
import math
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
from board_eventlog import EventLog, event_file
from typer.testing import CliRunner

from facenet_cli import events as ev
from facenet_cli.cli import app
from facenet_cli.errors import EXIT_ALERT, EXIT_BAD_INPUT, EXIT_USAGE

REPO = Path(__file__).resolve().parents[2]


def _logdir(tmp_path: Path, *, nan: bool = False) -> Path:
    now = time.time()
    logs = tmp_path / "logs"
    good = EventLog(event_file(logs / "good"))
    for step in range(0, 50, 10):
        good.scalar(ev.LOSS, 1.0 / (step + 1), step, wall_time=now - 50 + step)
        good.scalar(ev.LEARNING_RATE, 0.05, step, wall_time=now - 50 + step)
    good.scalar(ev.LFW_ACCURACY, 0.91, 40, wall_time=now)
    bad = EventLog(event_file(logs / "bad"))
    bad.scalar(ev.LOSS, 0.5, 0, wall_time=now - 1)
    bad.scalar(ev.LOSS, math.nan if nan else 0.4, 10, wall_time=now)
    return logs


def test_once_table(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["board", "--once", str(_logdir(tmp_path))])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert any(line.startswith("good") and "live" in line and "0.91" in line for line in lines)
    assert any(line.startswith("bad") and " 10 " in f" {line} " for line in lines)


def test_a_run_folder_given_as_the_log_directory_is_shown_by_its_name(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    run = _logdir(tmp_path) / "good"
    table = CliRunner().invoke(app, ["board", "--once", str(run)])
    assert table.exit_code == 0, table.output
    assert any(line.startswith("good") and "live" in line for line in table.output.splitlines())
    doc = json.loads(CliRunner().invoke(app, ["board", "--once", "--json", str(run)]).output)
    assert [r["name"] for r in doc["runs"]] == ["good"]
    monkeypatch.chdir(run)  # `board .` inside the run folder
    doc = json.loads(CliRunner().invoke(app, ["board", "--once", "--json", "."]).output)
    assert [r["name"] for r in doc["runs"]] == ["good"]


def test_once_json_and_alert_exit_code(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        app, ["board", "--once", "--json", str(_logdir(tmp_path, nan=True))]
    )
    assert result.exit_code == EXIT_ALERT
    doc = json.loads(result.output)
    runs = {r["name"]: r for r in doc["runs"]}
    assert set(runs) == {"good", "bad"}
    assert runs["good"]["status"] == "live" and runs["good"]["last_step"] == 40
    assert runs["good"]["latest"][ev.LOSS] == pytest.approx(1 / 41)
    assert runs["good"]["best_lfw_accuracy"] == pytest.approx(0.91)
    assert runs["bad"]["latest"][ev.LOSS] is None  # NaN is not JSON
    assert [a["kind"] for a in runs["bad"]["alerts"]] == ["nan_loss"]
    assert doc["alerts"] == 1


def test_once_reports_unreadable_entries_and_the_planned_steps(tmp_path: Path) -> None:
    logs = _logdir(tmp_path)
    os.symlink("loop_b", logs / "loop_a")  # a symbolic-link loop beside the runs
    os.symlink("loop_a", logs / "loop_b")
    models = tmp_path / "models" / "good"  # train's --models-base-dir beside its --logs-base-dir
    models.mkdir(parents=True)
    (models / "config.toml").write_text("max_steps = 100\nmax_nrof_epochs = 9\nepoch_size = 1000\n")
    result = CliRunner().invoke(app, ["board", "--once", "--json", str(logs)])
    assert result.exit_code == 0, result.output
    doc = json.loads(result.output)
    assert {u["path"] for u in doc["unreadable"]} == {str(logs / "loop_a"), str(logs / "loop_b")}
    assert all("symbolic links" in u["reason"] for u in doc["unreadable"])
    good = {r["name"]: r for r in doc["runs"]}["good"]
    assert good["total_steps"] == 100 and good["eta_s"] == pytest.approx(60 / good["steps_per_s"])
    table = CliRunner().invoke(app, ["board", "--once", str(logs)])
    assert f"unreadable: {logs / 'loop_a'}: Too many levels of symbolic links" in table.output
    other = tmp_path / "elsewhere" / "good"
    other.mkdir(parents=True)
    (other / "config.toml").write_text("max_steps = 80\n")
    chosen = CliRunner().invoke(
        app, ["board", "--once", "--json", str(logs), "--models-dir", str(other.parent)]
    )
    good = {r["name"]: r for r in json.loads(chosen.output)["runs"]}["good"]
    assert good["total_steps"] == 80


async def test_the_board_shows_unreadable_entries(tmp_path: Path) -> None:
    from facenet_cli.config import BoardConfig
    from tui.app import BoardApp
    from tui.widgets import AlertBar

    logs = _logdir(tmp_path)
    os.symlink("loop_b", logs / "loop_a")
    os.symlink("loop_a", logs / "loop_b")
    board = BoardApp(BoardConfig(logdir=logs, poll_interval=0.05), notify_alerts=False)
    async with board.run_test(size=(80, 24)) as pilot:
        while not board.loaded.is_set():
            await pilot.pause(0.05)
        await pilot.pause(0.1)
        bar = board.query_one(AlertBar)
        assert bar.has_class("-active")
        assert "unreadable: loop_a: Too many levels of symbolic links (+1 more)" in str(bar.content)


def test_once_errors(tmp_path: Path) -> None:
    runner = CliRunner()
    missing = runner.invoke(app, ["board", "--once", str(tmp_path / "nope")])
    assert missing.exit_code == EXIT_BAD_INPUT
    assert "nope: no such log directory" in missing.output
    both = runner.invoke(app, ["board", "--once", "--tensorboard", str(tmp_path)])
    assert both.exit_code == EXIT_USAGE and "--tensorboard" in both.output
    empty = runner.invoke(app, ["board", "--once", str(tmp_path)])
    assert empty.exit_code == 0 and "no runs" in empty.output


def _python(code: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        env=env,
        cwd=REPO,
        timeout=120,
        check=False,
    )


def test_board_never_imports_tensorflow(tmp_path: Path) -> None:
    logs = _logdir(tmp_path, nan=True)
    code = (
        "import sys\n"
        "import tui.app, facenet_cli.events\n"
        "assert not {'tensorflow', 'keras'} & set(sys.modules), 'import tui.app'\n"
        "from facenet_cli.cli import main\n"
        f"sys.argv = ['facenet', 'board', '--once', '--json', {str(logs)!r}]\n"
        "try:\n"
        "    main()\n"
        "except SystemExit as exc:\n"
        "    print('exit', exc.code)\n"
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('tensorflow', 'keras'))\n"
        "print('tf-modules', bad)\n"
    )
    result = _python(code)
    assert result.returncode == 0, result.stderr
    assert f"exit {EXIT_ALERT}" in result.stdout
    assert "tf-modules []" in result.stdout


@pytest.mark.parametrize(
    "line",
    [
        "import tensorflow",
        "from tensorflow import keras",
        "import tensorflow.keras as tk",
        "from keras import layers",
        "import mtcnn",
        "from facenet_cli.train import loop",
        "from facenet_cli.train.summaries import host_rss_mb",
        "import facenet_cli.cli",
        "from facenet_cli import models",
    ],
)
def test_ruff_bans_tensorflow_and_the_rest_of_the_package_in_tui(line: str) -> None:
    ruff = _ruff()
    result = subprocess.run(
        [str(ruff), "check", "--select", "TID251", "--stdin-filename", "tui/probe.py", "-"],
        input=f"{line}\n",
        capture_output=True,
        text=True,
        cwd=REPO,
        check=False,
    )
    assert result.returncode == 1 and "TID251" in result.stdout


def _ruff() -> str:
    local = Path(sys.executable).with_name("ruff")
    found = str(local) if local.exists() else shutil.which("ruff")
    if found is None:
        pytest.fail("ruff is not installed (pip install -e '.[test]')")
    return found


def test_ruff_allows_the_board_s_own_imports() -> None:
    ruff = _ruff()
    result = subprocess.run(
        [str(ruff), "check", "--select", "TID251", "--stdin-filename", "tui/probe.py", "-"],
        input=(
            "import numpy\nimport textual\nfrom facenet_cli import events\n"
            "from facenet_cli.events.reader import tag_prefix\n"
            "from facenet_cli.config import BoardConfig\n"
            "from facenet_cli.errors import EXIT_ALERT\n"
        ),
        capture_output=True,
        text=True,
        cwd=REPO,
        check=False,
    )
    assert result.returncode == 0, result.stdout
