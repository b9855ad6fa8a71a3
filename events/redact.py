"""Secrets out of messages: a password in a URL or libpq string is never echoed.

Error lines end up in terminals, CI logs and bug reports; the database URL and
webhook URLs may carry credentials, so every message that quotes one quotes
it through here.
"""

from __future__ import annotations

import re
from typing import Final
from urllib.parse import urlsplit, urlunsplit

MASK: Final = "***"

_KEYWORD_PASSWORD: Final = re.compile(
    r"""(\bpassword\s*=\s*)('(?:[^'\\]|\\.)*(?:'|$)|\S+)""", re.IGNORECASE
)
_QUERY_PASSWORD: Final = re.compile(r"([?&]password=)[^&#]*", re.IGNORECASE)
_USERINFO: Final = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*://)([^/?#@]*)@")


def mask_url(url: str) -> str:
    """``scheme://user:secret@host/...`` -> ``scheme://user:***@host/...``; a
    ``password=`` query parameter or libpq keyword is masked too. Works on
    malformed input (it is used to report malformed input)."""
    text = _KEYWORD_PASSWORD.sub(lambda m: m.group(1) + MASK, url)
    text = _QUERY_PASSWORD.sub(lambda m: m.group(1) + MASK, text)
    match = _USERINFO.match(text)
    if match is not None:
        user, sep, _secret = match.group(2).partition(":")
        userinfo = f"{user}:{MASK}" if sep else user
        text = match.group(1) + userinfo + "@" + text[match.end() :]
    return text


def strip_credentials(url: str) -> str:
    """The URL without its user-info at all (for listings)."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return mask_url(url)
    if "@" not in parts.netloc:
        return url
    host = parts.netloc.rpartition("@")[2]
    return urlunsplit((parts.scheme, f"{MASK}@{host}", parts.path, parts.query, parts.fragment))
