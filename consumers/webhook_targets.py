"""Which URLs a webhook may POST to: the target policy.

A webhook sends the engine's own requests to an address someone typed, so
without a policy it is a way to reach what only the engine's host can reach:
the cloud metadata service (169.254.169.254), the database (127.0.0.1:5432),
an admin port on the private network. The policy:

* a URL is ``http``/``https`` with a host and a port in range, and holds no
  white space or control characters (a CR/LF would split the request line);
* the host must resolve only to public addresses: private, loopback,
  link-local, shared, reserved and multicast ones are refused unless the
  subscription was added with ``--allow-private`` (a local receiver in
  development and tests). Odd spellings (``0x7f000001``, ``2130706433``,
  ``127.1``, ``[::ffff:127.0.0.1]``) are what the resolver makes of them;
* the check runs when the subscription is added and again before every
  delivery, and the delivery connects to the address that was checked, so a
  DNS answer that changes in between (rebinding) cannot redirect it.
"""

from __future__ import annotations

import ipaddress
import socket
from dataclasses import dataclass
from typing import Final
from urllib.parse import SplitResult, urlsplit

from events.errors import EngageError
from events.redact import mask_url

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
_SCHEMES: Final = {"http": 80, "https": 443}


class TargetRefused(EngageError):
    """A webhook URL the policy refuses; the message says why."""


@dataclass(frozen=True, slots=True)
class Target:
    """A checked URL: where to connect and what to call the host."""

    url: str
    scheme: str
    host: str
    port: int
    address: str | None
    """The checked address to connect to; None when the host did not resolve
    (allowed when adding: checked again before each delivery)."""


def parse_target(url: str) -> SplitResult:
    """The URL's parts, or ``TargetRefused`` for a malformed one."""
    shown = mask_url(url)
    if any(ch.isspace() or ord(ch) < 0x20 or ord(ch) == 0x7F for ch in url):
        raise TargetRefused(
            f"a webhook URL must not contain white space or control characters: {shown!r}"
        )
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise TargetRefused(f"not a valid webhook URL ({exc}): {shown!r}") from None
    if parts.scheme not in _SCHEMES or not parts.hostname:
        raise TargetRefused(f"a webhook URL must be http:// or https:// with a host, got {shown!r}")
    if port == 0:
        raise TargetRefused(f"a webhook URL needs a port from 1 to 65535, got {shown!r}")
    return parts


def refused_address(address: IPAddress) -> str | None:
    """Why ``address`` is not a public one, or None."""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    for name in ("loopback", "link_local", "private", "multicast", "reserved", "unspecified"):
        if getattr(address, f"is_{name}"):
            return f"{address} is a {name.replace('_', '-')} address"
    if not address.is_global:
        return f"{address} is not a public address"
    return None


def resolve(host: str, port: int) -> list[IPAddress]:
    """Every address ``host`` resolves to (an IP literal in any spelling the
    system resolver accepts resolves to itself); [] when it does not resolve."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError):
        return []
    found: list[IPAddress] = []
    for *_, sockaddr in infos:
        address = ipaddress.ip_address(str(sockaddr[0]).split("%", 1)[0])
        if address not in found:
            found.append(address)
    return found


def check_target(url: str, *, allow_private: bool, must_resolve: bool) -> Target:
    """Apply the policy to ``url``; ``must_resolve`` is set at delivery time,
    when an unresolvable host is a failed attempt rather than a later check."""
    parts = parse_target(url)
    assert parts.hostname is not None
    port = parts.port or _SCHEMES[parts.scheme]
    addresses = resolve(parts.hostname, port)
    if not addresses:
        if must_resolve:
            raise TargetRefused(f"cannot resolve the webhook host {parts.hostname!r}")
        return Target(url, parts.scheme, parts.hostname, port, None)
    if not allow_private:
        for address in addresses:
            why = refused_address(address)
            if why is not None:
                raise TargetRefused(
                    f"webhook target {parts.hostname!r} refused: {why}; private, loopback "
                    "and link-local targets need --allow-private"
                )
    return Target(url, parts.scheme, parts.hostname, port, str(addresses[0]))
