"""Put on PYTHONPATH (with NET_PROBE_LOG=<file>) to record every host a Python process looks up or
connects to, one `<kind> <host>` line each. Hosts other than loopback are refused, not contacted: a
test that finds one must not have sent anything anywhere on the way."""

from __future__ import annotations

import ipaddress
import os
import socket
from typing import Any

_LOG = os.environ.get("NET_PROBE_LOG")


def _loopback(host: Any) -> bool:
    if isinstance(host, bytes):
        host = host.decode(errors="replace")
    if not isinstance(host, str):
        return False
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.split("%")[0]).is_loopback
    except ValueError:
        return False


def _check(kind: str, host: Any) -> None:
    assert _LOG is not None
    with open(_LOG, "a", encoding="utf-8") as log:
        log.write(f"{kind} {host}\n")
    if not _loopback(host):
        raise OSError(f"network probe: {kind} of {host!r} refused (not loopback)")


if _LOG:
    _getaddrinfo = socket.getaddrinfo
    _gethostbyname = socket.gethostbyname
    _connect = socket.socket.connect
    _connect_ex = socket.socket.connect_ex

    def getaddrinfo(host: Any, *args: Any, **kwargs: Any) -> Any:
        _check("getaddrinfo", host)
        return _getaddrinfo(host, *args, **kwargs)

    def gethostbyname(host: str) -> str:
        _check("gethostbyname", host)
        return _gethostbyname(host)

    def _address_host(address: Any) -> Any:
        return address[0] if isinstance(address, tuple) else address

    def connect(self: socket.socket, address: Any) -> None:
        if self.family in (socket.AF_INET, socket.AF_INET6):
            _check("connect", _address_host(address))
        _connect(self, address)

    def connect_ex(self: socket.socket, address: Any) -> int:
        if self.family in (socket.AF_INET, socket.AF_INET6):
            _check("connect", _address_host(address))
        return _connect_ex(self, address)

    socket.getaddrinfo = getaddrinfo
    socket.gethostbyname = gethostbyname
    socket.socket.connect = connect  # type: ignore[method-assign]
    socket.socket.connect_ex = connect_ex  # type: ignore[method-assign]
