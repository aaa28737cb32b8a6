"""The last line of defence in ``FacenetGroup.invoke``: every escaping error becomes one line and
the documented exit code (6 for a full disk, even when TensorFlow's writer reports it)."""

from __future__ import annotations

import errno
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from facenet_cli.cli import FacenetGroup
from facenet_cli.errors import EXIT_ERROR, EXIT_INTERRUPTED, EXIT_IO, StorageError
from tests.faults.fault_helpers import assert_one_line_error


class ResourceExhaustedError(Exception):
    """Shaped like TensorFlow's: the op's wrapper, the path, the OS reason, the op name."""


TF_MESSAGE = (
    "{{function_node __wrapped__SaveV2_dtypes_97_device_/job:localhost/replica:0/task:0/"
    "device:CPU:0}} /runs/r1/ckpt-2_temp/part-00000-of-00001.data-00000-of-00001.tempstate96; "
    "No space left on device [Op:SaveV2]"
)

RAISES = {
    "tf-disk-full": lambda: ResourceExhaustedError(TF_MESSAGE),
    "os-disk-full": lambda: OSError(errno.ENOSPC, "No space left on device", "/runs/r1/x.png"),
    "storage": lambda: StorageError("/runs/r1/x.png: cannot write (No space left on device)"),
    "bug": lambda: RuntimeError("boom\nsecond line"),
    "ctrl-c": lambda: KeyboardInterrupt(),
}


def _app() -> typer.Typer:
    app = typer.Typer(cls=FacenetGroup, add_completion=False)

    @app.command()
    def fail(kind: str) -> None:
        raise RAISES[kind]()

    @app.command()
    def ok() -> None:
        pass

    return app


@pytest.mark.parametrize(
    ("kind", "code", "named"),
    [
        ("tf-disk-full", EXIT_IO, "/runs/r1/ckpt-2_temp"),
        ("os-disk-full", EXIT_IO, "/runs/r1/x.png"),
        ("storage", EXIT_IO, "/runs/r1/x.png"),
        ("bug", EXIT_ERROR, "internal error: RuntimeError: boom second line"),
        ("ctrl-c", EXIT_INTERRUPTED, "interrupted"),
    ],
)
def test_escaping_errors_become_one_line(kind: str, code: int, named: str) -> None:
    result = CliRunner().invoke(_app(), ["fail", kind])
    line = assert_one_line_error((result.exit_code, result.output), code, named)
    assert "{{" not in line and "[Op:" not in line


@pytest.mark.slow
def test_train_disk_full_names_where_it_was_writing(tmp_path: Path) -> None:
    from facenet_cli.cli import app
    from tests.conftest import make_image_tree
    from tests.faults.fs import small_tmpfs

    data = make_image_tree(tmp_path / "ds", {f"id{i}": 4 for i in range(5)}, size=20)
    base = tmp_path / "fs"
    with small_tmpfs(base, "2m") as fs:  # holds the run's small files, not one checkpoint
        if fs is None:
            pytest.skip("no tmpfs mount here (not root)")
        result = CliRunner().invoke(app, [
            "train", "--data-dir", str(data), "--logs-base-dir", str(base / "logs"),
            "--models-base-dir", str(base / "models"), "--model-def", "small", "--image-size",
            "16", "--embedding-size", "4", "--batch-size", "6", "--people-per-batch", "3",
            "--images-per-person", "3", "--epoch-size", "2", "--max-steps", "4",
        ])  # fmt: skip
    assert_one_line_error((result.exit_code, result.output), EXIT_IO, base / "models")
