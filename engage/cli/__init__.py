"""The ``engage`` command line: a thin shell over ``engage.runtime.Engine``.

Errors the user can act on are ``EngageError``s and print as one line on
stderr with a non-zero exit; anything unexpected is also reduced to one line
(set ``ENGAGE_DEBUG=1`` for the traceback).
"""

from __future__ import annotations

import os
import signal
import sys
from importlib import import_module
from types import FrameType
from typing import Any

from typer.core import TyperGroup
from typer.models import CommandInfo

from engage.cli.app import app
from engage.cli.safe_text import printable
from engage.errors import EngageError

__all__ = ["app", "main"]

COMMAND_MODULES = (
    *("backtest", "customers", "demo", "export", "identity", "import_csv", "ingest", "keys"),
    "kpis",
    *("model", "outcomes", "privacy", "processing", "replay", "rules", "serve", "triggers"),
    *("webhook_listen", "webhooks", "worker"),
)
"""The modules of ``engage.cli`` that register their commands on ``app`` when imported."""
for _module in COMMAND_MODULES:
    import_module(f"engage.cli.{_module}")

# `engage --help` lists the commands in the order of a first session: publish
# and process, look at customers, analyse, then the servers.
_ORDER = [
    *("publish", "import", "run", "status", "dlq", "demo", "rules"),
    *("profile", "timeline", "identity", "triggers"),
    *("kpis", "outcomes", "replay", "backtest", "export"),
    *("serve", "keys", "webhooks", "worker"),
]


def _rank(info: CommandInfo) -> int:
    name = info.name or (info.callback.__name__ if info.callback else "")
    return _ORDER.index(name) if name in _ORDER else len(_ORDER)


app.registered_commands.sort(key=_rank)


class _FirstSessionOrder(TyperGroup):
    """Lists sub-command groups (``dlq``, ``keys``, ``webhooks``) in the same
    order, not after every plain command."""

    def list_commands(self, ctx: Any) -> list[str]:
        names = super().list_commands(ctx)
        return sorted(names, key=lambda n: _ORDER.index(n) if n in _ORDER else len(_ORDER))


app.info.cls = _FirstSessionOrder


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised where the program is, exactly like Ctrl-C's
    KeyboardInterrupt: every command that stops cleanly on Ctrl-C (``run``,
    ``serve``, ``triggers --follow``) stops the same way, and the exit
    handlers run, so the embedded PostgreSQL server is stopped by the last
    command to leave. Python's default for SIGTERM is to die on the spot."""


_TERMINATED: list[bool] = []


def _terminate(signum: int, frame: FrameType | None) -> None:
    _TERMINATED.append(True)
    # a second SIGTERM must not interrupt the clean-up the first one started
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    raise Terminated()


def main() -> None:
    # Typer's standalone mode handles usage errors and exits itself; what
    # escapes it is ours to reduce to one line.
    signal.signal(signal.SIGTERM, _terminate)
    try:
        app()
    except EngageError as exc:
        print(f"engage: error: {printable(str(exc))}", file=sys.stderr)
        sys.exit(2)
    except SystemExit as exc:
        # Typer turns an interrupt inside a command into exit status 130
        if _TERMINATED and exc.code == 130:
            print("engage: terminated", file=sys.stderr)
            sys.exit(128 + signal.SIGTERM)
        raise
    except Terminated:
        print("engage: terminated", file=sys.stderr)
        sys.exit(128 + signal.SIGTERM)
    except KeyboardInterrupt:
        print("engage: interrupted", file=sys.stderr)
        sys.exit(130)
    except Exception as exc:
        if os.environ.get("ENGAGE_DEBUG"):
            raise
        print(
            f"engage: internal error: {type(exc).__name__}: {printable(str(exc))} "
            "(set ENGAGE_DEBUG=1 for details)",
            file=sys.stderr,
        )
        sys.exit(3)


if __name__ == "__main__":  # pragma: no cover
    main()
