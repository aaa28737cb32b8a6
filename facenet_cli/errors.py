"""User-facing errors: one line that names the file and the problem, and an exit code.

Every command raises these for bad input; ``cli.main`` prints ``error: <message>`` and exits
with the code below, never a traceback (``--debug`` shows it).

Exit codes (also listed in the README):
    0  success
    1  a FacenetError not covered below
    2  bad command line (unknown option, wrong type) - Click's own code
    3  bad input data: missing/empty dataset, unreadable file, malformed pairs or config file
    4  training stopped: NaN/infinite loss (the last good checkpoint is kept)
    5  ``board --once``: an alert is active
    6  out of disk space or another OS-level write failure (completed work is kept)
    130 interrupted (Ctrl-C); state was saved where the command supports it
"""

from __future__ import annotations

EXIT_ERROR = 1
EXIT_USAGE = 2
EXIT_BAD_INPUT = 3
EXIT_DIVERGED = 4
EXIT_ALERT = 5
EXIT_IO = 6
EXIT_INTERRUPTED = 130


class FacenetError(Exception):
    """An error meant for the user: its message is a single line."""

    exit_code = EXIT_ERROR


class InputError(FacenetError):
    """Bad input data: a missing, empty, unreadable or malformed file or directory."""

    exit_code = EXIT_BAD_INPUT


class TrainingDiverged(FacenetError):
    """The loss became NaN or infinite."""

    exit_code = EXIT_DIVERGED


class StorageError(FacenetError):
    """A write failed (disk full, permissions): work completed so far is kept."""

    exit_code = EXIT_IO
