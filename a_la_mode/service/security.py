"""The service holds the power to run commands, so every request passes these checks:

- **Host**: the Host header must name the address the service is bound to (bound to
  loopback, ``localhost``/``127.0.0.1``; bound to every interface, ``0.0.0.0`` or ``::``,
  this machine's names and the addresses of its interfaces), or a name given with
  ``--allow-host`` (behind a proxy): a page on another site cannot reach it by DNS
  rebinding.
- **Token**: bound anywhere but loopback, every request needs the token from
  ``--token-file``: as ``?token=`` once (it is then kept in a cookie), or as
  ``Authorization: Bearer``.
- **CSRF**: every state-changing request is a POST carrying the page's CSRF token (a form
  field or the ``X-CSRF-Token`` header), and its Origin, if sent, must be the service's own.
  Nothing changes state on GET.
"""

from __future__ import annotations

import contextlib
import fcntl
import hmac
import secrets
import socket
import struct
from collections.abc import Awaitable, Callable, Iterable
from urllib.parse import urlsplit

from starlette.requests import Request
from starlette.responses import PlainTextResponse, RedirectResponse, Response

TOKEN_COOKIE = "alamode_token"
LOOPBACK = ("127.0.0.1", "localhost", "::1", "[::1]")
EVERY_INTERFACE = ("0.0.0.0", "::", "[::]", "")
MAX_FORM_BYTES = 64 * 1024  # a form of this service is a few hundred bytes


class Guard:
    """The checks, for one bound address."""

    def __init__(
        self, host: str, port: int, token: str | None, allowed: Iterable[str] = ()
    ) -> None:
        self.port = port
        self.token = token
        self.csrf = secrets.token_urlsafe(32)
        loopback = {"127.0.0.1", "localhost", "::1"}
        if host in LOOPBACK:
            self.hosts = loopback
        elif host in EVERY_INTERFACE:
            self.hosts = loopback | this_machine()
        else:
            self.hosts = {host.strip("[]").lower()}
        self.hosts |= {name.strip("[]").lower() for name in allowed}

    def host_allowed(self, header: str) -> bool:
        """``header`` (``host[:port]``) names this service."""
        try:
            parts = urlsplit(f"//{header}")
            port = parts.port
        except ValueError:
            return False
        return parts.hostname in self.hosts and port in (None, self.port)

    def token_given(self, request: Request) -> bool:
        if self.token is None:
            return True
        given = (
            request.query_params.get("token")
            or request.cookies.get(TOKEN_COOKIE)
            or request.headers.get("authorization", "").removeprefix("Bearer ").strip()
        )
        return same_secret(given, self.token)

    def csrf_given(self, request: Request, form_token: str | None) -> bool:
        given = form_token or request.headers.get("x-csrf-token", "")
        return same_secret(given, self.csrf)

    def origin_allowed(self, request: Request) -> bool:
        origin = request.headers.get("origin")
        return origin is None or self.host_allowed(urlsplit(origin).netloc)

    async def middleware(
        self, request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        if not self.host_allowed(request.headers.get("host", "")):
            return PlainTextResponse(
                "error: this service does not answer to that Host header", status_code=421
            )
        if not self.token_given(request):
            return PlainTextResponse(
                "error: this service needs its token: open it with ?token=... (from the "
                "--token-file it was started with)",
                status_code=401,
            )
        if request.method not in ("GET", "HEAD") and not self.origin_allowed(request):
            return PlainTextResponse("error: a request from another site", status_code=403)
        if self.token is not None and request.method == "GET" and "token" in request.query_params:
            # The token goes into a cookie, and out of the address bar (and history).
            clean = request.url.remove_query_params("token")
            redirect = RedirectResponse(str(clean), status_code=303)
            redirect.set_cookie(TOKEN_COOKIE, self.token, httponly=True, samesite="strict")
            return redirect
        response = await call_next(request)
        response.headers["X-Frame-Options"] = "DENY"
        response.headers["Content-Security-Policy"] = (
            "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
            "frame-ancestors 'none'"
        )
        response.headers["X-Content-Type-Options"] = "nosniff"
        return response


def same_secret(given: str | None, secret: str) -> bool:
    """``given`` is ``secret``, compared in constant time as bytes (any text may be given:
    compare_digest refuses non-ASCII ``str``)."""
    if not given:
        return False
    return hmac.compare_digest(given.encode("utf-8", "surrogateescape"), secret.encode())


def this_machine() -> set[str]:
    """The names and interface addresses this machine is reachable by (lower case)."""
    names = {socket.gethostname().lower(), socket.getfqdn().lower()}
    with contextlib.suppress(OSError):
        for *_, address in socket.getaddrinfo(socket.gethostname(), None):
            names.add(str(address[0]).lower())
    names |= _interface_addresses()
    return {name for name in names if name}


def _interface_addresses() -> set[str]:
    """Every interface's IPv4 address (SIOCGIFADDR) and IPv6 addresses (/proc), on Linux."""
    found: set[str] = set()
    with contextlib.suppress(OSError), socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        for _, name in socket.if_nameindex():
            with contextlib.suppress(OSError):
                request = struct.pack("256s", name.encode()[:15])
                answer = fcntl.ioctl(probe.fileno(), 0x8915, request)  # SIOCGIFADDR
                found.add(socket.inet_ntoa(answer[20:24]))
    with contextlib.suppress(OSError), open("/proc/net/if_inet6") as table:
        for line in table:
            raw = bytes.fromhex(line.split()[0])
            found.add(socket.inet_ntop(socket.AF_INET6, raw))
    return found
