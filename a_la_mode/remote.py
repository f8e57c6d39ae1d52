"""Plans at URLs: read a plan that was pushed to a store (pipelayer's "upload the
definitions, then activate them"), and find the store a plan's URL lies in."""

from __future__ import annotations

from typing import Any

from .errors import PlanError
from .plan import Plan

PLANS = "/plans/"


def load_plan_url(url: str, options: dict[str, Any]) -> Plan:
    """Fetch and strictly verify the plan at ``url`` (any fsspec URL)."""
    import fsspec  # only URLs need it

    settings = dict(options)
    if "endpoint_url" in settings:
        settings.setdefault("client_kwargs", {})["endpoint_url"] = settings.pop("endpoint_url")
    try:
        with fsspec.open(url, "rb", **settings) as handle:
            data = handle.read()
    except FileNotFoundError:
        raise PlanError(
            f"{url}: no such plan; 'alamode push PLAN --store URL' uploads one"
        ) from None
    except Exception as err:  # the backends raise many kinds: name the URL and the cause
        raise PlanError(f"{url}: cannot read it ({type(err).__name__}: {err})") from None
    return Plan.from_bytes(data, source=url)


def store_of(plan_url: str) -> str | None:
    """``s3://b/team/plans/<digest>`` lies in the store ``s3://b/team``."""
    if "://" not in plan_url or PLANS not in plan_url:
        return None
    return plan_url.rsplit(PLANS, 1)[0]
