"""The check a receiver's URL passes when a subscription is made: http or https, a host, and (unless the operator
allows it with VE_WEBHOOK_ALLOW_PRIVATE=1) no address that is loopback, private, link-local or otherwise not on the
public internet, whether written as an IP or reached through DNS. It stops a subscription being used to make the
engine call into its own network (SSRF)."""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from urllib.parse import urlsplit

from voucher_engine.errors import EngineError

MAX_URL_CHARS = 2048


def _refuse(detail: str) -> EngineError:
    return EngineError("VALIDATION_ERROR", detail, errors=[{"loc": ["body", "url"], "message": detail}])


def _not_public(address: str) -> bool:
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return (
        ip.is_private
        or ip.is_loopback
        or ip.is_link_local
        or ip.is_multicast
        or ip.is_reserved
        or ip.is_unspecified
        or not ip.is_global
    )


async def check(url: str, *, allow_private: bool) -> str:
    """The URL as it will be called, or VALIDATION_ERROR saying what is wrong with it."""
    if len(url) > MAX_URL_CHARS:
        raise _refuse(f"The URL is longer than {MAX_URL_CHARS} characters.")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        raise _refuse("The URL cannot be parsed.") from None
    if parts.scheme not in ("http", "https"):
        raise _refuse("Only http and https URLs can receive webhooks.")
    if not parts.hostname:
        raise _refuse("The URL has no host.")
    if parts.username or parts.password:
        raise _refuse("The URL must not carry credentials; the signature authenticates deliveries.")
    if parts.fragment:
        raise _refuse("The URL must not have a fragment.")
    if allow_private:
        return url
    try:
        infos = await asyncio.get_running_loop().getaddrinfo(
            parts.hostname, port or (443 if parts.scheme == "https" else 80), type=socket.SOCK_STREAM
        )
    except (socket.gaierror, UnicodeError):
        raise _refuse(f"The host {parts.hostname!r} does not resolve.") from None
    addresses = {info[4][0] for info in infos}
    if not addresses or any(_not_public(address) for address in addresses):
        raise _refuse(
            "The URL reaches a loopback, private or otherwise non-public address; the operator allows those only "
            "with VE_WEBHOOK_ALLOW_PRIVATE=1."
        )
    return url
