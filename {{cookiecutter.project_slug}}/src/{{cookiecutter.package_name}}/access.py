"""Who may call the service: a bearer token, required whenever it listens beyond loopback. Adapt with care: the service relies on it.

Standard library only, so that ``serve`` refuses a non-loopback address without a token at
once, before it imports pandas, scikit-learn or FastAPI.
"""

from __future__ import annotations

import ipaddress
import socket

TOKEN_ENV = "{{ cookiecutter.package_name | upper }}_TOKEN"


def is_loopback(host: str) -> bool:
    """Whether binding ``host`` listens on this machine only (every address it names is loopback)."""
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        pass
    try:
        addresses = {info[4][0] for info in socket.getaddrinfo(host, None)}
    except (socket.gaierror, UnicodeError):
        return False
    return bool(addresses) and all(ipaddress.ip_address(a.split("%")[0]).is_loopback for a in addresses)


def check_exposure(host: str, token: str | None) -> None:
    """Refuse to listen beyond loopback without a token (ValueError saying what to do)."""
    if not token and not is_loopback(host):
        raise ValueError(
            f"refusing to serve on {host!r} without a token: beyond loopback every route but /health needs "
            f"'Authorization: Bearer <token>'. Set {TOKEN_ENV} to a secret (e.g. "
            f"`export {TOKEN_ENV}=$(python -c 'import secrets; print(secrets.token_urlsafe(32))')`), "
            "or bind 127.0.0.1 behind your gateway"
        )
