"""Learning rates: the original's staircase decay and its schedule-file format."""

from __future__ import annotations

from pathlib import Path

from facenet_cli.errors import InputError

STOP = -1.0
"""Learning rate meaning "stop training" (``-`` or ``-1`` in a schedule file)."""


def read_schedule_file(path: Path) -> list[tuple[int, float]]:
    """Parse a learning-rate schedule: lines ``epoch: lr``, ``#`` comments, ``-`` means stop.

    Returns:
        ``(epoch, lr)`` entries in file order (``lr == STOP`` for ``-`` / ``-1``).

    Raises:
        InputError: the file is missing, empty or has a malformed line (named with its number).
    """
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as exc:
        raise InputError(f"{path}: cannot read learning-rate schedule ({exc.strerror})") from None
    entries: list[tuple[int, float]] = []
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        epoch_text, sep, lr_text = line.partition(":")
        try:
            if not sep:
                raise ValueError
            epoch = int(epoch_text.strip())
            lr_text = lr_text.strip()
            lr = STOP if lr_text == "-" else float(lr_text)
        except ValueError:
            raise InputError(
                f"{path}:{number}: expected 'epoch: learning_rate', got {raw.strip()!r}"
            ) from None
        entries.append((epoch, STOP if lr < 0 else lr))
    if not entries:
        raise InputError(f"{path}: the learning-rate schedule has no 'epoch: lr' lines")
    return entries


def learning_rate_from_schedule(schedule: list[tuple[int, float]], epoch: int) -> float:
    """The lr of the last entry whose epoch is <= ``epoch`` (the original's rule).

    Before the first entry the first entry's rate applies. ``STOP`` means training ends.
    """
    rate = schedule[0][1]
    for start, lr in schedule:
        if start <= epoch:
            rate = lr
        else:
            break
    return rate


def learning_rate(
    step: int,
    epoch: int,
    *,
    base: float,
    decay_epochs: int,
    decay_factor: float,
    epoch_size: int,
    schedule: list[tuple[int, float]] | None = None,
) -> float:
    """The learning rate at global ``step`` / ``epoch``.

    With ``base > 0`` it is the original's staircase exponential decay,
    ``base * decay_factor ** floor(step / (decay_epochs * epoch_size))``; otherwise it comes from
    the schedule file (``STOP`` ends the run).
    """
    if base > 0:
        return float(base * decay_factor ** (step // max(decay_epochs * epoch_size, 1)))
    if schedule is None:
        raise InputError("learning_rate <= 0 needs --learning-rate-schedule-file")
    return learning_rate_from_schedule(schedule, epoch)
