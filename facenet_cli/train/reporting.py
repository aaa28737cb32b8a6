"""How the training core tells the outside world what it does, without printing itself.

``run_train`` calls a ``Reporter``; the command line passes ``ConsoleReporter`` (Rich progress
bars on a terminal, plain lines otherwise) and tests pass a recorder.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol


@dataclass(frozen=True)
class StepReport:
    """One finished training step."""

    step: int
    epoch: int
    step_in_epoch: int
    loss: float
    learning_rate: float
    triplets: int | None  # None: a classifier step (no triplets)
    images_per_sec: float


class Reporter(Protocol):
    """Receives the training core's progress and messages."""

    def start(self, *, run_name: str, log_dir: str, model_dir: str, step: int, epoch: int,
              epoch_size: int, max_epochs: int, resumed: bool) -> None: ...  # fmt: skip

    def message(self, text: str) -> None: ...

    def warning(self, text: str) -> None: ...

    def epoch(self, epoch: int, step_in_epoch: int) -> None: ...

    def step(self, report: StepReport) -> None: ...

    def evaluation(self, epoch: int, step: int, metrics: dict[str, float]) -> None:
        """``epoch``: epochs completed; ``metrics``: ``{events tag: value}``."""

    def close(self) -> None: ...


class NullReporter:
    """Discards everything."""

    def start(self, **_: Any) -> None:
        pass

    def message(self, text: str) -> None:
        pass

    def warning(self, text: str) -> None:
        pass

    def epoch(self, epoch: int, step_in_epoch: int) -> None:
        pass

    def step(self, report: StepReport) -> None:
        pass

    def evaluation(self, epoch: int, step: int, metrics: dict[str, float]) -> None:
        pass

    def close(self) -> None:
        pass


class ConsoleReporter:
    """An epoch bar and a step bar (loss, triplets, images/s, ETA) via ``facenet_cli.progress``."""

    def __init__(self) -> None:
        self._context: Any = None
        self._bars: Any = None
        self._epoch_task: Any = None
        self._step_task: Any = None
        self._epoch_size = 0
        self._plain = False

    def _print(self, text: str, style: str = "") -> None:
        from facenet_cli.progress import console

        if self._bars is not None and hasattr(self._bars, "console"):
            self._bars.console.print(text, style=style or None, highlight=False)
        else:
            console.print(text, style=style or None, highlight=False)

    def start(self, *, run_name: str, log_dir: str, model_dir: str, step: int, epoch: int,
              epoch_size: int, max_epochs: int, resumed: bool) -> None:  # fmt: skip
        from facenet_cli.progress import progress_bars

        verb = "resuming" if resumed else "run"
        self._print(f"{verb} {run_name} at step {step}, epoch {epoch}")
        self._print(f"  logs:   {log_dir}")
        self._print(f"  models: {model_dir}")
        self._epoch_size = epoch_size
        self._context = progress_bars("loss", "triplets", "speed")
        self._bars = self._context.__enter__()
        self._plain = not hasattr(self._bars, "console")
        blank = {"loss": "", "triplets": "", "speed": ""}
        self._epoch_task = self._bars.add_task("epoch", total=max_epochs, **blank)
        self._bars.update(self._epoch_task, completed=epoch)
        self._step_task = self._bars.add_task("step", total=epoch_size, **blank)

    def message(self, text: str) -> None:
        self._print(text)

    def warning(self, text: str) -> None:
        self._print(f"warning: {text}", style="yellow")

    def epoch(self, epoch: int, step_in_epoch: int) -> None:
        if self._bars is None:
            return
        self._bars.update(self._epoch_task, completed=epoch, description=f"epoch {epoch}")
        self._bars.update(self._step_task, completed=step_in_epoch, total=self._epoch_size)

    def step(self, report: StepReport) -> None:
        if self._bars is None:
            return
        # Plain lines print fields as key=value; the bars show the values alone.
        loss, triplets = f"{report.loss:.4f}", f"{report.triplets}"
        speed = f"{report.images_per_sec:.0f} img/s"
        if not self._plain:
            loss, triplets = f"loss {loss}", f"{triplets} triplets"
        if report.triplets is None:
            triplets = ""
        self._bars.update(
            self._step_task, completed=report.step_in_epoch, loss=loss, triplets=triplets,
            speed=speed,
        )  # fmt: skip

    def evaluation(self, epoch: int, step: int, metrics: dict[str, float]) -> None:
        parts = [
            f"{tag.split('/')[-1]} {value:.4f}" if tag.startswith("lfw/") else f"{value:.1f} s"
            for tag, value in metrics.items()
        ]
        self._print(f"epoch {epoch - 1} done (step {step}): " + ", ".join(parts))

    def close(self) -> None:
        if self._context is not None:
            self._context.__exit__(None, None, None)
            self._context = None
            self._bars = None
