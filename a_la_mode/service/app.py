"""``alamode serve``: a Starlette app over one store. Every page has its JSON twin under
``/api/`` with the same data (pages.py); runs go through ``alamode run`` (runs.py); due
schedules are run by the clock (clock.py); security.py guards every request.

Starlette (with Jinja2 templates, under uvicorn) was chosen for being small and well kept:
the app needs routing, templates, a streaming response for live progress and middleware,
and nothing of a bigger framework. Its pages need no script from elsewhere: the stylesheet
and the one script (live progress) are served by the app.
"""

from __future__ import annotations

import asyncio
import json
import re
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, quote

from jinja2 import Environment, FileSystemLoader, select_autoescape
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.base import BaseHTTPMiddleware
from starlette.requests import Request
from starlette.responses import (
    HTMLResponse,
    JSONResponse,
    PlainTextResponse,
    RedirectResponse,
    Response,
    StreamingResponse,
)
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from a_la_mode.compile.planfile import PlanBase
from a_la_mode.errors import AlamodeError
from a_la_mode.service import drawing, pages
from a_la_mode.service.clock import Clock
from a_la_mode.service.runs import RunManager
from a_la_mode.service.schedules import ScheduleBook, describe, iso
from a_la_mode.service.security import MAX_FORM_BYTES, Guard
from a_la_mode.store.contract import Store

HERE = Path(__file__).parent
DIGEST = re.compile(r"^[0-9a-f]{64}$")
RUN_ID = re.compile(r"^[0-9a-f]{12}$")
MAX_STREAMS = 1000  # open live streams; past it, a 503 (each costs a little memory)
STREAM_POLL_SECONDS = 0.25
KEEP_ALIVE_SECONDS = 15.0


@dataclass
class Settings:
    """How ``alamode serve`` was started."""

    store: str  # the store's path or URL, as given to child runs
    open_store: Any  # () -> Store, called on the server's thread
    host: str = "127.0.0.1"
    port: int = 8787
    token: str | None = None
    engine: str = "local"
    store_options: dict[str, Any] = field(default_factory=dict)  # for runs, as parsed
    allowed_hosts: list[str] = field(default_factory=list)  # --allow-host names
    missed: str = "once"
    clock_seconds: float = 10.0


class BadRequest(AlamodeError):
    """A malformed request: a 400 with one line."""


def create_app(settings: Settings) -> Starlette:
    guard = Guard(settings.host, settings.port, settings.token, settings.allowed_hosts)
    templates = Environment(
        loader=FileSystemLoader(HERE / "templates"),
        autoescape=select_autoescape(default=True, default_for_string=True),
    )
    templates.filters["when"] = lambda stamp: iso(stamp) if stamp else "—"
    templates.filters["seconds"] = _seconds
    templates.filters["short"] = lambda digest: str(digest)[:12]
    templates.filters["url"] = lambda text: quote(str(text), safe="")
    templates.filters["pretty"] = lambda value: json.dumps(value, indent=2, ensure_ascii=False)
    state: dict[str, Any] = {}

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        store: Store = settings.open_store()
        state["store"] = store
        state["plans"] = pages.PlanCache(store)
        state["book"] = book = ScheduleBook(store.root)
        state["streams"] = 0
        state["runs"] = manager = RunManager(
            settings.store, settings.store_options, settings.engine
        )
        clock = Clock(book, manager, _plan_file, settings.missed, settings.clock_seconds)
        state["clock"] = clock
        clock.start()
        try:
            yield
        finally:
            clock.stop()
            manager.stop_all()
            store.close()

    def _plan_file(digest: str) -> str:
        return str(state["store"].outputs.plan_path(digest))

    def plan_of(digest: str) -> PlanBase:
        if not DIGEST.match(digest):
            raise BadRequest(f"{digest[:80]!r} is not a plan digest (64 lowercase hex digits)")
        plan: PlanBase = state["plans"].get(digest)
        return plan

    def render(request: Request, name: str, data: dict[str, Any], **more: Any) -> Response:
        if request.url.path.startswith("/api/"):
            return JSONResponse(data)
        html = templates.get_template(name).render(
            data=data, csrf=guard.csrf, time_zone="UTC", request=request, **more
        )
        return HTMLResponse(html)

    async def plans_page(request: Request) -> Response:
        return render(request, "plans.html", pages.plans_page(state["store"], state["plans"]))

    async def plan_page(request: Request) -> Response:
        plan = plan_of(request.path_params["digest"])
        data = pages.plan_page(state["store"], plan)
        running = state["runs"].running(plan.digest)
        data["running"] = running.id if running else None
        if request.url.path.startswith("/api/"):
            return JSONResponse(data)
        runs_chart = drawing.bars(
            [(f"run {r['run']}", r["seconds"], r["status"]) for r in data["runs_30_days"]]
        )
        cost_chart = drawing.rows(
            [(e["task"], e["average_seconds"]) for e in data["expensive_tasks"]]
        )
        return render(
            request, "plan.html", data,
            graph=drawing.graph(data), runs_chart=runs_chart, cost_chart=cost_chart,
        )  # fmt: skip

    async def task_page(request: Request) -> Response:
        plan = plan_of(request.path_params["digest"])
        data = pages.task_page(state["store"], plan, request.path_params["task"])
        chart = drawing.bars(
            [(f"run {r['run']}", r["seconds"] or 0.0, r["status"]) for r in data["run_times"]]
        )
        return render(request, "task.html", data, chart=chart)

    async def review_page(request: Request) -> Response:
        old = request.query_params.get("old", "")
        new = request.query_params.get("new", "")
        if not old or not new:
            known = pages.plans_page(state["store"], state["plans"])
            return render(request, "review_pick.html", known)
        data = pages.review_page(state["store"], plan_of(old), plan_of(new))
        return render(request, "review.html", data)

    async def schedules_page(request: Request) -> Response:
        now = time.time()
        good, broken = state["book"].load()
        data = {"schedules": [describe(s, now) for s in good], "broken": broken, "time_zone": "UTC"}
        return render(request, "schedules.html", data)

    async def run_page(request: Request) -> Response:
        run = _run_of(request)
        data = {**run.summary(), "log": list(run.events)}
        return render(request, "run.html", data)

    def _run_of(request: Request) -> Any:
        run_id = request.path_params["run"]
        if not RUN_ID.match(run_id):
            raise BadRequest(f"{run_id[:40]!r} is not a run ID")
        run = state["runs"].get(run_id)
        if run is None:
            raise pages.NotFound(f"no run {run_id} in this service (runs are kept until it stops)")
        return run

    async def run_events(request: Request) -> Response:
        """Server-sent events: each of the run's events, then ``end`` with its summary.
        Asynchronous: an open stream holds no thread, so streams never starve the pages."""
        run = _run_of(request)
        since_text = request.query_params.get("since", "0") or "0"
        if not since_text.isdigit() or len(since_text) > 9:
            raise BadRequest(f"since={since_text[:20]!r}: give the index of an event (0, 1...)")
        if state["streams"] >= MAX_STREAMS:
            return PlainTextResponse(
                f"error: {MAX_STREAMS} live streams are open; close some pages", status_code=503
            )

        async def lines() -> AsyncIterator[str]:
            index, quiet = int(since_text), 0.0
            state["streams"] += 1
            try:
                while True:
                    fresh, over = run.snapshot(index)
                    for event in fresh:
                        yield f"id: {index}\ndata: {json.dumps(event)}\n\n"
                        index += 1
                    if over and not run.snapshot(index)[0]:
                        yield f"event: end\ndata: {json.dumps(run.summary())}\n\n"
                        return
                    quiet = 0.0 if fresh else quiet + STREAM_POLL_SECONDS
                    if quiet >= KEEP_ALIVE_SECONDS:
                        quiet = 0.0
                        yield ": still running\n\n"
                    await asyncio.sleep(STREAM_POLL_SECONDS)
            finally:
                state["streams"] -= 1

        return StreamingResponse(
            lines(), media_type="text/event-stream", headers={"Cache-Control": "no-store"}
        )

    async def form(request: Request) -> dict[str, str]:
        declared = request.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > MAX_FORM_BYTES:
            raise TooLarge(f"error: a form of this service is under {MAX_FORM_BYTES} bytes")
        chunks, size = [], 0
        async for chunk in request.stream():  # bounded as it is read, whatever was declared
            size += len(chunk)
            if size > MAX_FORM_BYTES:
                raise TooLarge(f"error: a form of this service is under {MAX_FORM_BYTES} bytes")
            chunks.append(chunk)
        body = b"".join(chunks).decode("utf-8", "replace")
        fields = {key: values[-1] for key, values in parse_qs(body).items()}
        if not guard.csrf_given(request, fields.get("csrf")):
            raise Forbidden("error: the form's CSRF token is missing or stale: reload the page")
        return fields

    async def start_run(request: Request) -> Response:
        plan = plan_of(request.path_params["digest"])
        fields = await form(request)
        task = fields.get("task", "").strip()
        if task and task not in plan.tasks:
            raise BadRequest(f"no task {task[:80]!r} in plan {plan.digest[:12]}…")
        run = state["runs"].start(plan.digest, _plan_file(plan.digest), [task] if task else [])
        if request.headers.get("accept", "").startswith("application/json"):
            return JSONResponse(run.summary(), status_code=202)
        return RedirectResponse(f"/runs/{run.id}", status_code=303)

    async def cancel_run(request: Request) -> Response:
        run = _run_of(request)
        await form(request)
        run.cancel()
        if request.headers.get("accept", "").startswith("application/json"):
            return JSONResponse(run.summary(), status_code=202)
        return RedirectResponse(f"/runs/{run.id}", status_code=303)

    async def failed(request: Request, exc: Exception) -> Response:
        status = 404 if isinstance(exc, pages.NotFound) else 400
        if isinstance(exc, Forbidden):
            status = 403
        if isinstance(exc, TooLarge):
            status = 413
        message = str(exc) if isinstance(exc, Forbidden | TooLarge) else f"error: {exc}"
        if request.url.path.startswith("/api/"):
            return JSONResponse({"error": message.removeprefix("error: ")}, status_code=status)
        return PlainTextResponse(message, status_code=status)

    async def not_found(request: Request, exc: Exception) -> Response:
        return PlainTextResponse(f"error: no page at {request.url.path[:100]}", status_code=404)

    async def not_allowed(request: Request, exc: Exception) -> Response:
        return PlainTextResponse(
            "error: that method is not allowed here (changes are POSTs from the pages)",
            status_code=405,
        )

    def both(path: str, endpoint: Any) -> list[Route]:
        return [Route(path, endpoint), Route(f"/api{path}", endpoint)]

    routes = [
        *both("/", plans_page),
        *both("/plans", plans_page),
        *both("/plans/{digest}", plan_page),
        *both("/plans/{digest}/tasks/{task:path}", task_page),
        *both("/review", review_page),
        *both("/schedules", schedules_page),
        *both("/runs/{run}", run_page),
        Route("/runs/{run}/events", run_events),
        Route("/plans/{digest}/run", start_run, methods=["POST"]),
        Route("/runs/{run}/cancel", cancel_run, methods=["POST"]),
        Mount("/static", StaticFiles(directory=HERE / "static"), name="static"),
    ]
    return Starlette(
        routes=routes,
        middleware=[Middleware(BaseHTTPMiddleware, dispatch=guard.middleware)],
        exception_handlers={
            AlamodeError: failed,
            404: not_found,
            405: not_allowed,
        },
        lifespan=lifespan,
    )


class Forbidden(AlamodeError):
    """A POST without the page's CSRF token."""


class TooLarge(AlamodeError):
    """A request body past MAX_FORM_BYTES: refused before it is read whole."""


def _seconds(value: float | None) -> str:
    if value is None:
        return "—"
    if value < 60:
        return f"{value:.2f} s"
    return f"{value / 60:.1f} min"
