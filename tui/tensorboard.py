"""Start the real TensorBoard on the board's log directory, on localhost."""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from facenet_cli.errors import FacenetError


def tensorboard_command(logdir: Path, port: int) -> list[str]:
    """The argv for ``tensorboard --logdir X --host 127.0.0.1 --port P`` (no shell)."""
    exe = shutil.which("tensorboard")
    # Next to this interpreter first: the venv's tensorboard, not some other one on PATH.
    local = Path(sys.executable).with_name("tensorboard")
    if local.exists():
        exe = str(local)
    prefix = [exe] if exe else [sys.executable, "-m", "tensorboard.main"]
    return [*prefix, "--logdir", str(logdir), "--host", "127.0.0.1", "--port", str(port)]


@dataclass
class TensorBoardProcess:
    """A running TensorBoard; :meth:`stop` ends it."""

    process: subprocess.Popen[bytes]
    url: str
    log_path: Path

    def failure(self) -> str | None:
        """None while it runs, else the last line of its log."""
        if self.process.poll() is None:
            return None
        try:
            lines = self.log_path.read_text(errors="replace").strip().splitlines()
        except OSError:
            lines = []
        return lines[-1] if lines else f"exited with code {self.process.returncode}"

    def stop(self) -> None:
        """Terminate TensorBoard (kill it if it lingers)."""
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def start_tensorboard(logdir: Path, port: int) -> TensorBoardProcess:
    """Start TensorBoard in the background; its output goes to a temporary log file."""
    log = Path(tempfile.mkstemp(prefix="facenet-tensorboard-", suffix=".log")[1])
    argv = tensorboard_command(logdir, port)
    try:
        with open(log, "wb") as out:
            process = subprocess.Popen(
                argv, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL
            )
    except OSError as exc:
        raise FacenetError(f"{argv[0]}: cannot start TensorBoard ({exc.strerror})") from exc
    return TensorBoardProcess(process, f"http://127.0.0.1:{port}/", log)
