"""How the command line fails: one ``error:`` line, exit code 2, the details in a log file.

Every subcommand runs under :class:`CommandGroup`; a command turns the errors it knows into their own
line with :func:`fail`, and anything else becomes one here (:func:`explain_failure`).
"""

from __future__ import annotations

import shlex
import sys
from pathlib import Path
from typing import NoReturn

import typer
from rich.console import Console
from rich.text import Text
from typer.core import TyperGroup
from typer.exceptions import TyperException

from config.settings import get_settings

# soft_wrap: never break a long path across lines (people grep and copy these)
console = Console(stderr=True, soft_wrap=True)


class CommandGroup(TyperGroup):
    """The command group, with the one top-level handler every subcommand runs under.

    A failure that no command turned into its own ``error:`` line becomes one here: one line on stderr
    (what failed, the command and file concerned, what to do), exit code 2, and the traceback in a log
    file under ``<data dir>/logs`` whose path the line gives. ``--debug`` (or ``COSTDNA_DEBUG=1``)
    lets the exception through instead, traceback and all. Typer's and click's own exits, usage
    errors and aborts pass through untouched.
    """

    def make_context(self, info_name, args, parent=None, **extra):  # type: ignore[no-untyped-def]
        argv = list(args)  # before parsing consumes them: the log and the error line name the command
        ctx = super().make_context(info_name, args, parent=parent, **extra)
        ctx.meta["costdna.argv"] = argv
        return ctx

    def invoke(self, ctx: typer.Context):  # type: ignore[no-untyped-def, override]
        try:
            return super().invoke(ctx)
        except (typer.Exit, typer.Abort, TyperException, BrokenPipeError):
            raise
        except Exception as e:
            if (ctx.params or {}).get("debug"):
                raise
            _fail_unexpected(e, ctx.meta.get("costdna.argv", sys.argv[1:]))


def _one_line(msg: str) -> str:
    return "; ".join(ln.strip() for ln in str(msg).splitlines() if ln.strip()) or "failed"


def fail(msg: str, code: int = 2) -> NoReturn:
    """One ``error:`` line on stderr, and exit ``code``."""
    console.print(Text.assemble(("error:", "bold red"), " ", _one_line(msg)))
    raise typer.Exit(code)


def _fail_unexpected(e: BaseException, argv: list[str]) -> NoReturn:
    """An exception no command handled: one ``error:`` line naming the log file that holds the traceback."""
    text = _one_line(explain_failure(e, argv))
    path = write_error_log(e, text, argv)
    where = f"details in {path}" if path else "no log file could be written"
    fail(f"{text} ({where}; `costdna --debug {shlex.join(argv)}` shows the traceback)")


def log_dir() -> Path:
    """Where failure logs go: ``<data dir>/logs``, or the temp dir when the settings themselves are broken."""
    import tempfile

    try:
        return get_settings().data_dir / "logs"
    except Exception:  # a broken COSTDNA_* variable: still keep the details somewhere
        return Path(tempfile.gettempdir()) / "costdna-logs"


def write_error_log(exc: BaseException | None, summary: str, argv: list[str]) -> Path | None:
    """Write the command line, the one-line summary and the full traceback to a fresh log file."""
    import os
    import platform
    import tempfile
    import traceback
    from datetime import UTC, datetime

    now = datetime.now(UTC)
    body = (f"{now.isoformat()} costdna {_version()} (Python {platform.python_version()}, {platform.platform()})\n"
            f"command: costdna {shlex.join(argv)}\nerror: {summary}\n\n"
            + ("".join(traceback.format_exception(exc)) if exc is not None else "no exception\n"))
    name = f"costdna-{now:%Y%m%d-%H%M%S}-{os.getpid()}.log"
    for folder in (log_dir(), Path(tempfile.gettempdir()) / "costdna-logs"):
        try:
            folder.mkdir(parents=True, exist_ok=True)
            path = folder / name
            path.write_text(body, encoding="utf-8")
            return path
        except OSError:
            continue
    return None


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("costdna")
    except PackageNotFoundError:
        return "(source)"


def _env_name(loc: tuple) -> str:
    """The environment variable behind a settings field (``workers`` -> ``COSTDNA_WORKERS``)."""
    from pydantic import AliasChoices

    from config.settings import Settings

    name = str(loc[0]) if loc else "?"
    f = Settings.model_fields.get(name)
    alias = f.validation_alias if f is not None else None
    if isinstance(alias, AliasChoices) and alias.choices:
        return str(alias.choices[0])
    return f"COSTDNA_{name.upper()}"


def explain_failure(e: BaseException, argv: list[str]) -> str:
    """One line for an exception no command handled: what went wrong, with what, and what to do."""
    from pydantic import ValidationError

    from engine.records import BundleError

    cmd = "costdna " + shlex.join(argv)
    if isinstance(e, ValidationError):  # the settings: a COSTDNA_* variable (or .env line) of the wrong shape
        bad = "; ".join(f"{_env_name(err['loc'])}={err.get('input')!r}: {err['msg']}" for err in e.errors())
        return (f"configuration: {bad}. Fix that environment variable (or its line in .env); "
                "README.md's Configuration section lists them")
    if isinstance(e, BundleError):
        first = f": {e.issues[0]}" if e.issues else ""
        return f"could not read the bundle ({len(e.issues)} problem(s)){first}"
    if isinstance(e, FileNotFoundError):
        return f"no such file or directory: {e.filename or e} (in `{cmd}`); check the path"
    if isinstance(e, PermissionError):
        return f"permission denied: {e.filename or e} (in `{cmd}`); check the file's owner and mode"
    if isinstance(e, IsADirectoryError):
        return f"{e.filename or e} is a directory (in `{cmd}`); give the path of a file"
    if isinstance(e, NotADirectoryError):
        return f"{e.filename or e}: a part of this path is not a directory (in `{cmd}`); check the path"
    if isinstance(e, OSError):
        where = f" {e.filename}" if e.filename else ""
        return f"{type(e).__name__}{where}: {e.strerror or e} (in `{cmd}`)"
    if isinstance(e, ValueError) and str(e):  # the engine's input errors name their file or resource
        return str(e)
    first = (str(e).strip().splitlines() or [""])[0]
    return (f"`{cmd}` failed unexpectedly: {type(e).__name__}{': ' + first if first else ''}. "
            "This is a bug in costdna, not in your input; please report it with the log.")


