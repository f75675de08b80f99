"""The ``engage`` command: thin subcommands that parse arguments and call library functions.

This module is the entry point: the Typer app gathers the command groups
(:mod:`engage.data_commands`, :mod:`engage.model_commands`, :mod:`engage.serve_commands`),
which share :mod:`engage.options` and :mod:`engage.common`; none of them imports this one.
``engage --help`` lists the commands, ``engage COMMAND --help`` their options with defaults.

Exit status: 0 on success; 2 for anything the user can fix: input that breaks the data contract
or cannot be read (the report on stderr names file, column and rows), an argument out of range,
an output path that cannot be written, a model folder that cannot be loaded; 1 on any other
failure (a bug: the traceback is for us).
"""

from __future__ import annotations

import errno
import sys
from collections.abc import Sequence
from importlib.metadata import PackageNotFoundError, version
from typing import Annotated

import typer

from engage import data_commands, model_commands, serve_commands
from engage.common import EXIT_BAD_INPUT, UsageError, embedded_posts, embedded_profiles

__all__ = ["EXIT_BAD_INPUT", "app", "embedded_posts", "embedded_profiles", "main"]

app = typer.Typer(
    name="engage",
    help="Predict an influencer's next-post engagement, with an honest interval.",
    add_completion=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)
for group in (data_commands.app, model_commands.app, serve_commands.app):
    app.add_typer(group)


def installed_version() -> str:
    try:
        return version("engage")
    except PackageNotFoundError:  # run from a source tree that was never installed
        return "unknown (not installed)"


def _print_version(asked: bool) -> None:
    if asked:
        print(f"engage {installed_version()}")
        raise typer.Exit()


@app.callback()
def _engage(
    show_version: Annotated[
        bool,
        typer.Option(
            "--version",
            callback=_print_version,
            is_eager=True,
            help="Print the installed version and exit.",
        ),
    ] = False,
) -> None:
    """Predict an influencer's next-post engagement, with an honest interval."""


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``engage`` with ``argv`` (default: the command line) and return the exit status."""
    args = list(sys.argv[1:] if argv is None else argv)
    command = args[0] if args and not args[0].startswith("-") else ""
    try:
        status = typer.main.get_command(app).main(
            args=args, prog_name="engage", standalone_mode=False
        )
    except typer.TyperException as exc:
        # Usage errors (an unknown option, a value out of range): exit 2, as before.
        _show_usage_error(exc)
        return exc.exit_code
    except typer.Abort:
        return 130  # end of input at a prompt: as Ctrl-C
    except Exception as exc:
        if isinstance(exc, _user_errors()):
            # Messages quote the input's own values (handles, categories): never raw to a
            # terminal.
            print(f"engage {command}: {_console_text(exc)}", file=sys.stderr)
            return EXIT_BAD_INPUT
        if isinstance(exc, OSError):
            # A file that cannot be read or written past the checks above (disk full,
            # permissions changed, a network filesystem gone): the user's to fix, and the
            # message says which file.
            return _cannot_read_or_write(command, exc)
        raise
    except SystemExit as exc:
        # Typer turns a closed output pipe (`engage score | head`) into exit 1, which is ours for
        # a bug: it is an output that cannot be written, so 2 as for any other.
        cause = exc.__context__
        if isinstance(cause, OSError) and cause.errno == errno.EPIPE:
            return _cannot_read_or_write(command, cause)
        raise
    return int(status or 0)


def _user_errors() -> tuple[type[Exception], ...]:
    """The errors that are the user's to fix (exit 2). Imported when one is to be told apart:
    their modules load pandas, which ``engage --help`` does not need."""
    from features.artifact import ArtifactError
    from features.contract import DataError, DataValidationError
    from features.outputs import OutputError

    return (DataValidationError, DataError, UsageError, ArtifactError, OutputError)


def _console_text(exc: BaseException) -> str:
    from features.outputs import console_text

    return console_text(exc, keep_newlines=True)


def _cannot_read_or_write(command: str, exc: OSError) -> int:
    print(f"engage {command}: cannot read or write a file: {_console_text(exc)}", file=sys.stderr)
    return EXIT_BAD_INPUT


def _show_usage_error(exc: typer.TyperException) -> None:
    show = getattr(exc, "show", None)  # usage errors print the usage line and a help hint
    if sys.stderr.isatty():
        from typer import rich_utils

        rich_utils.rich_format_error(exc)  # type: ignore[arg-type]  # Typer's own panel
    elif show is not None:
        show()  # plain lines for logs and scripts
    else:
        print(f"Error: {exc.format_message()}", file=sys.stderr)


if __name__ == "__main__":
    sys.exit(main())
