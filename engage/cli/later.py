"""The DESIGN.md verbs whose features are not built yet.

They exist so `engage --help` shows the whole contract, and each says plainly
that it is not available rather than pretending to work.
"""

from __future__ import annotations

from engage.cli.app import app
from engage.errors import EngageError

_LATER = {
    "worker": "starts a Faust worker (arrives with Kafka mode)",
    "serve": "starts the HTTP API and dashboard (arrives with the HTTP API)",
}


def _register(name: str, what: str) -> None:
    def command() -> None:
        raise EngageError(f"`engage {name}` is not available in this version yet: it {what}")

    command.__doc__ = f"Not available yet: {what}."
    app.command(
        name=name, context_settings={"ignore_unknown_options": True, "allow_extra_args": True}
    )(command)


for _name, _what in _LATER.items():
    _register(_name, _what)
