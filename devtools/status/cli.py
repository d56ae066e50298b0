"""The status command: arguments, the database to read, text or JSON out, and the exit status
(0 done, 1 no such workspace, 2 the database or an argument is unusable; one line on stderr)."""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TextIO

from devtools.status import function_view
from devtools.status.overview import Overview, build_overview
from devtools.status.queries import cache_rows
from devtools.status.render import render_overview, render_story
from devtools.status.session import DEFAULT_STATEMENT_TIMEOUT_S, database_now, read_only_session
from devtools.status.story import load_story
from lib.db import Database
from lib.dburl import DatabaseTarget, parse_database_url
from lib.errors import AvailabilityCronError, ConfigError
from lib.model import Source

EXIT_OK = 0
EXIT_UNKNOWN_CLIENT = 1
EXIT_UNUSABLE = 2

DESCRIPTION = """\
The availability caches at a glance, for support: per source and provider, how many workspaces
the application's reader takes as fresh, how long the others have been stale, the erroring ones
and those in backoff; the most common failures; the oldest successful refreshes. With --client,
one workspace's whole story. Reads DIRECT_URL (else DATABASE_URL) like the function, in a
read-only transaction with a short statement timeout, and never takes the run's lock."""


def main(argv: list[str] | None = None, *, env: Mapping[str, str] | None = None, out: TextIO | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if args.plot is not None and args.client is not None:
        parser.error("--plot draws the whole table; it does not combine with --client")
    environment = os.environ if env is None else env
    stdout = out or sys.stdout
    target: DatabaseTarget | None = None
    try:
        with _database_url(args.local, environment) as (url, variable):
            target = parse_database_url(url, variable=variable)
            return _show(args, target, stdout)
    except AvailabilityCronError as exc:
        print(f"status: {_one_line(str(exc), target)}", file=sys.stderr)
        return EXIT_UNUSABLE
    except OSError as exc:  # the plot file could not be written
        print(f"status: {_one_line(f'{type(exc).__name__}: {exc}', target)}", file=sys.stderr)
        return EXIT_UNUSABLE


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m devtools.status", description=DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--client", metavar="ID", help="one workspace's whole story")
    parser.add_argument("--json", action="store_true", help="JSON on stdout, for scripts")
    parser.add_argument(
        "--plot", metavar="FILE.png", type=Path, help="write the distribution of cache ages per provider"
    )
    parser.add_argument(
        "--statement-timeout",
        metavar="SECONDS",
        type=_positive_seconds,
        default=DEFAULT_STATEMENT_TIMEOUT_S,
        help=f"cancel any statement running longer (default {DEFAULT_STATEMENT_TIMEOUT_S:g})",
    )
    parser.add_argument("--local", action="store_true", help="the local database of `make run` (`make status`)")
    return parser


def _positive_seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0 < value <= 600:
        raise argparse.ArgumentTypeError("a number of seconds in (0, 600]")
    return value


@contextmanager
def _database_url(local: bool, env: Mapping[str, str]) -> Iterator[tuple[str, str]]:
    """The URL to read and the name to give it in errors: the local server, or the function's variables."""
    if local:
        # Imported here: the embedded server's package is for the local database only (and its import
        # warns about XDG_RUNTIME_DIR on some machines).
        from devtools.status.local import local_database_url  # noqa: PLC0415

        with local_database_url() as url:
            yield url, "the local database"
        return
    variable = "DIRECT_URL" if env.get("DIRECT_URL", "").strip() else "DATABASE_URL"
    url = env.get(variable, "").strip()
    if not url:
        raise ConfigError("DATABASE_URL", "not set (nor DIRECT_URL)")
    yield url, variable


def _show(args: argparse.Namespace, target: DatabaseTarget, out: TextIO) -> int:
    where = f"{target.describe()}, read-only, statement timeout {args.statement_timeout:g} s"
    if args.client is not None:
        with read_only_session(target, statement_timeout_s=args.statement_timeout) as db:
            story = load_story(db, args.client, database_now(db))
        if story is None:
            print(f"status: no workspace with id {args.client!r} (Client.id)", file=sys.stderr)
            return EXIT_UNKNOWN_CLIENT
        out.write(_json({"database": where, **story.as_dict()}) if args.json else render_story(story))
        return EXIT_OK
    with read_only_session(target, statement_timeout_s=args.statement_timeout) as db:
        overview = _load_overview(db)
    out.write(_json({"database": where, **overview.as_dict()}) if args.json else render_overview(overview, where=where))
    if args.plot is not None:
        _plot(overview, args.plot, to=sys.stderr if args.json else out)
    return EXIT_OK


def _load_overview(db: Database) -> Overview:
    now = database_now(db)
    rows = cache_rows(db)
    candidates = {Source.DEFAULT: function_view.load_workspaces(db, Source.DEFAULT)}
    # The DIRECT_BOOK candidate query costs as much as the DEFAULT one (about a second per 10,000
    # workspaces): asked only when some workspace has a direct-book calendar or a DIRECT_BOOK row.
    if any(row.source is Source.DIRECT_BOOK for row in rows) or any(
        function_view.has_distinct_direct_book(candidate) for candidate in candidates[Source.DEFAULT]
    ):
        candidates[Source.DIRECT_BOOK] = function_view.load_workspaces(db, Source.DIRECT_BOOK)
    return build_overview(candidates, rows, now)


def _plot(overview: Overview, path: Path, *, to: TextIO) -> None:
    try:
        from devtools.status.plot import write_plot  # noqa: PLC0415 - matplotlib only when a plot is asked for
    except ImportError as exc:
        raise ConfigError("--plot", "needs matplotlib (pip install -r requirements-dev.txt)") from exc
    rows = write_plot(overview, path)
    print(f"plot of {rows} cache ages written to {path}", file=to)


def _json(value: dict[str, Any]) -> str:
    return json.dumps(value, indent=2, default=str) + "\n"


def _one_line(message: str, target: DatabaseTarget | None) -> str:
    if target is not None and target.password:
        message = message.replace(target.password, "***")
    return " ".join(message.split())
