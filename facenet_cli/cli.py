"""The ``facenet`` command line: the Typer app, its option-name normalising and one-line errors.

The commands live in ``facenet_cli.commands``, one module per command group, each declaring its
commands on the app with ``register(app)``. They are thin: parse, build a config, call run().
Heavy modules (TensorFlow, the detector, Textual) are imported inside each command so that
``facenet --help`` answers instantly and never imports TensorFlow.
"""

from __future__ import annotations

import os
import re
import traceback
from typing import Annotated, Any

import typer
from typer.core import TyperGroup

from facenet_cli import __version__
from facenet_cli.commands import align, board, demo, export, train, use, validate
from facenet_cli.errors import EXIT_ERROR, EXIT_INTERRUPTED, EXIT_IO, FacenetError
from facenet_cli.tf_quiet import DEBUG, debug_requested, quiet_tensorflow

_debug = debug_requested()


def normalize_option_names(args: list[str]) -> list[str]:
    """Accept the original recipe's snake_case options: ``--image_size`` -> ``--image-size``.

    Only the option name is rewritten (``--lfw_dir=/x_y`` keeps its value); everything after a
    bare ``--`` is left alone.
    """
    out: list[str] = []
    for i, arg in enumerate(args):
        if arg == "--":
            out.extend(args[i:])
            break
        if arg.startswith("--") and "_" in arg:
            name, sep, value = arg.partition("=")
            arg = name.replace("_", "-") + sep + value
        out.append(arg)
    return out


def _one_line(text: str) -> str:
    return " ".join(str(text).split())


class FacenetGroup(TyperGroup):
    """Typer group that accepts snake_case aliases and turns errors into one-line messages."""

    def parse_args(self, ctx: Any, args: list[str]) -> list[str]:
        return super().parse_args(ctx, normalize_option_names(list(args)))

    def invoke(self, ctx: Any) -> Any:
        try:
            return super().invoke(ctx)
        except (typer.Exit, typer.TyperException, typer.Abort):
            raise
        except FacenetError as exc:
            _report(exc, _one_line(str(exc)))
            ctx.exit(exc.exit_code)
        except KeyboardInterrupt as exc:
            _report(exc, "interrupted")
            ctx.exit(EXIT_INTERRUPTED)
        except OSError as exc:
            where = f"{exc.filename}: " if exc.filename else ""
            _report(exc, f"{where}{exc.strerror or exc}")
            ctx.exit(EXIT_IO)
        except Exception as exc:  # noqa: BLE001 - the last line of defence for users
            if _DISK_FULL in str(exc):
                # TensorFlow's own writers (checkpoints, SavedModel) fail with an OpError, not
                # OSError; a full disk is still a write failure, and the path is in the message.
                _report(exc, _op_error_line(str(exc)))
                ctx.exit(EXIT_IO)
            _report(exc, f"internal error: {type(exc).__name__}: {_one_line(str(exc))}")
            ctx.exit(EXIT_ERROR)


_DISK_FULL = "No space left on device"


def _op_error_line(text: str) -> str:
    """A TensorFlow OpError message without its ``{{function_node ...}}`` and ``[Op:X]`` parts."""
    text = re.sub(r"\{\{.*?\}\}\s*", "", text, flags=re.S)
    return _one_line(re.sub(r"\s*\[Op:\w+\]", "", text))


def _report(exc: BaseException, message: str) -> None:
    if _debug:
        traceback.print_exception(exc)
    hint = "" if _debug else " (--debug shows the traceback)"
    if isinstance(exc, FacenetError | KeyboardInterrupt):
        hint = ""
    typer.echo(f"error: {message}{hint}", err=True)


app = typer.Typer(
    name="facenet",
    cls=FacenetGroup,
    help=(
        "Face-recognition embeddings with triplet loss: align faces with MTCNN, train "
        "Inception-ResNet-v1, validate on LFW, and watch training live in the terminal.\n\n"
        "Every option also accepts the original recipe's snake_case spelling "
        "(--image_size works like --image-size). With no data arguments, each command works "
        "on the built-in demo faces."
    ),
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    # Click's plain help wraps the descriptions and never cuts an option name; Rich's tables cut
    # long names (--gpu-memory-fra...) on an 80-column terminal.
    rich_markup_mode=None,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _version_callback(value: bool) -> None:
    if value:
        typer.echo(f"facenet {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool,
        typer.Option(
            "--version",
            callback=_version_callback,
            is_eager=True,
            help="Show the version.",
        ),
    ] = False,
    debug: Annotated[
        bool,
        typer.Option("--debug", help="Show full tracebacks instead of one-line errors."),
    ] = False,
) -> None:
    global _debug
    _debug = _debug or debug
    if _debug:
        # Every process this one starts (align workers, a subprocess) shows everything too.
        os.environ[DEBUG] = "1"
    quiet_tensorflow(_debug)


for command_group in (align, train, validate, export, board, demo, use):
    command_group.register(app)


def main() -> None:
    """Console-script entry point."""
    app(prog_name="facenet")


if __name__ == "__main__":  # pragma: no cover
    main()
