"""Plans at URLs: read a plan that was pushed to a store (pipelayer's "upload the
definitions, then activate them"), and find the store a plan's URL lies in."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from a_la_mode.compile.planfile import OUTPUT_ID, PlanBase, read_plan
from a_la_mode.errors import PlanError

PLANS = "/plans/"


def load_plan_url(url: str, options: Mapping[str, Any]) -> PlanBase:
    """Fetch and strictly verify the plan at ``url`` (any fsspec URL)."""
    import fsspec  # only URLs need it

    try:
        with fsspec.open(url, "rb", **fsspec_settings(options)) as handle:
            data = handle.read()
    except FileNotFoundError:
        raise PlanError(
            f"{url}: no such plan; 'alamode push PLAN --store URL' uploads one"
        ) from None
    except Exception as err:  # the backends raise many kinds: name the URL and the cause
        raise PlanError(f"{url}: cannot read it ({type(err).__name__}: {err})") from None
    name = url.rsplit("/", 1)[-1].removesuffix(".bencode")
    named = PLANS in url and OUTPUT_ID.fullmatch(name) is not None
    return read_plan(data, url, digest=name if named else None)


def fsspec_settings(options: Mapping[str, Any]) -> dict[str, Any]:
    """``--store-option`` settings as fsspec takes them: s3fs wants ``endpoint_url`` among
    its client's arguments."""
    settings = dict(options)
    if "endpoint_url" in settings:
        client = dict(settings.get("client_kwargs", {}))
        client["endpoint_url"] = settings.pop("endpoint_url")
        settings["client_kwargs"] = client
    return settings


def store_of(plan_url: str) -> str | None:
    """``s3://b/team/plans/<digest>`` lies in the store ``s3://b/team``."""
    if "://" not in plan_url or PLANS not in plan_url:
        return None
    return plan_url.rsplit(PLANS, 1)[0]
