"""Request checks every answer of the app goes through: Host header, access token, same origin, security headers.

- Host: only the bound address (plus ``localhost`` names on loopback, IP literals and this machine's name on a
  wildcard bind), so a DNS-rebinding page cannot talk to the server under its own name.
- Token (required when bound beyond loopback): ``?token=...`` once, then an HttpOnly, SameSite=Strict cookie;
  401 without one, 403 with a wrong one.
- State-changing requests must come from the app's own origin (``Origin``, else ``Referer``).
- Every answer carries a strict Content-Security-Policy and nosniff.
"""

from __future__ import annotations

import hmac
import ipaddress
import json
import socket
from collections.abc import Awaitable, Callable, MutableMapping
from http.cookies import SimpleCookie
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

COOKIE = "efficientpose_token"

#: The app's pages: own scripts, styles, images and media only; no inline script, no plug-ins, no framing by others.
CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; media-src 'self'; "
       "connect-src 'self'; frame-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'self'")
#: The analysis report (inline styles, data: images) shown in a frame: no script at all, sandboxed.
REPORT_CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src data:; frame-ancestors 'self'; sandbox"

_SAFE_METHODS = ("GET", "HEAD", "OPTIONS")


def is_loopback(host: str) -> bool:
    """Whether ``host`` (an address or ``localhost``) only reaches this machine."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host.strip("[]"))
        return True
    except ValueError:
        return False


class Guard:
    """ASGI middleware applying the checks above to every HTTP request."""

    def __init__(self, app: ASGIApp, host: str, port: int, token: str | None) -> None:
        self.app, self.port, self.token = app, port, token
        self.wildcard = host in ("0.0.0.0", "::", "")
        names = {host.lower(), f"[{host.lower()}]"}
        if is_loopback(host):
            names |= {"localhost", "127.0.0.1", "[::1]"}
        if self.wildcard:
            names |= {socket.gethostname().lower(), socket.getfqdn().lower(), "localhost"}
        self.names = names

    def host_allowed(self, header: str) -> bool:
        """The Host header names the bound address (with its port, or none)."""
        header = header.lower()
        name, _, port = header.rpartition(":") if header.rfind(":") > header.rfind("]") else (header, "", "")
        if port and port != str(self.port):
            return False
        return name in self.names or (self.wildcard and _is_ip(name))

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}
        host = headers.get("host", "")
        if not self.host_allowed(host):
            await _refuse(send, 403, f"Host header {host!r} is not this server's address")
            return
        if self.token is not None:
            query = dict(parse_qsl(scope.get("query_string", b"").decode("latin-1")))
            given = query.get("token")
            if given is not None and hmac.compare_digest(given, self.token):
                await self._set_cookie(scope, send, query)
                return
            cookie = SimpleCookie(headers.get("cookie", ""))
            held = cookie[COOKIE].value if COOKIE in cookie else None
            if held is None and given is None:
                await _refuse(send, 401, "an access token is required: open the URL printed when the server started")
                return
            if held is None or not hmac.compare_digest(held, self.token):
                await _refuse(send, 403, "wrong access token")
                return
        if scope["method"] not in _SAFE_METHODS and not self._same_origin(headers, host):
            await _refuse(send, 403, "cross-origin request refused")
            return
        await self.app(scope, receive, _with_headers(send))

    def _same_origin(self, headers: dict[str, str], host: str) -> bool:
        origin = headers.get("origin") or headers.get("referer")
        if not origin or origin == "null":
            return False
        parts = urlsplit(origin)
        return parts.scheme == "http" and parts.netloc.lower() == host.lower()

    async def _set_cookie(self, scope: Scope, send: Send, query: dict[str, str]) -> None:
        """Keep the token in an HttpOnly cookie and redirect to the same page without it in the address."""
        query.pop("token", None)
        location = scope["path"] + (f"?{urlencode(query)}" if query else "")
        cookie = f"{COOKIE}={self.token}; HttpOnly; SameSite=Strict; Path=/"
        await _with_headers(send)({"type": "http.response.start", "status": 303, "headers": [
            (b"location", location.encode("latin-1")), (b"set-cookie", cookie.encode("latin-1")),
            (b"content-length", b"0")]})
        await send({"type": "http.response.body", "body": b""})


def _with_headers(send: Send) -> Send:
    """Add the security headers to an answer (keeping a stricter CSP the route set itself)."""

    async def wrapped(message: MutableMapping[str, Any]) -> None:
        if message["type"] == "http.response.start":
            headers = list(message.get("headers", []))
            present = {k.lower() for k, _ in headers}
            extra = [(b"x-content-type-options", b"nosniff"), (b"referrer-policy", b"same-origin"),
                     (b"cross-origin-opener-policy", b"same-origin"), (b"cache-control", b"no-store")]
            if b"content-security-policy" not in present:
                extra.append((b"content-security-policy", CSP.encode()))
            message["headers"] = headers + [(k, v) for k, v in extra if k not in present]
        await send(message)

    return wrapped


async def _refuse(send: Send, status: int, message: str) -> None:
    body = json.dumps({"error": message}).encode()
    await _with_headers(send)({"type": "http.response.start", "status": status, "headers": [
        (b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})
