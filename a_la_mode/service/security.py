"""The service holds the power to run commands, so every request passes these checks:

- **Host**: the Host header must name the address the service is bound to (or, bound to
  loopback, ``localhost``/``127.0.0.1``): a page on another site cannot reach it by DNS
  rebinding.
- **Token**: bound anywhere but loopback, every request needs the token from
  ``--token-file``: as ``?token=`` once (it is then kept in a cookie), or as
  ``Authorization: Bearer``.
- **CSRF**: every state-changing request is a POST carrying the page's CSRF token (a form
  field or the ``X-CSRF-Token`` header), and its Origin, if sent, must be the service's own.
  Nothing changes state on GET.
"""

from __future__ import annotations

import hmac
import secrets
from collections.abc import Awaitable, Callable
from urllib.parse import urlsplit

from starlette.requests import Request
from starlette.responses import PlainTextResponse, RedirectResponse, Response

TOKEN_COOKIE = "alamode_token"
LOOPBACK = ("127.0.0.1", "localhost", "::1", "[::1]")


class Guard:
    """The checks, for one bound address."""

    def __init__(self, host: str, port: int, token: str | None) -> None:
        self.port = port
        self.token = token
        self.csrf = secrets.token_urlsafe(32)
        loopback = host in LOOPBACK
        self.hosts = {"127.0.0.1", "localhost", "::1"} if loopback else {host.strip("[]")}

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
        return bool(given) and hmac.compare_digest(given, self.token)

    def csrf_given(self, request: Request, form_token: str | None) -> bool:
        given = form_token or request.headers.get("x-csrf-token", "")
        return bool(given) and hmac.compare_digest(given, self.csrf)

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
