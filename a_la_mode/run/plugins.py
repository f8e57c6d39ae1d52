"""Engines found through entry points, exactly as a third party's would be.

    [project.entry-points."a_la_mode.engines"]
    local = "a_la_mode.engines.local:LocalEngine"

Plugins are checked when they load, not when first used: a broken one is reported with its
name and what is wrong with it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from a_la_mode.compile.naming import did_you_mean
from a_la_mode.errors import StoreError
from a_la_mode.run.engine import Engine, EngineError, api_version
from a_la_mode.store.contract import Store

if TYPE_CHECKING:
    from importlib.metadata import EntryPoint

ENGINE_GROUP = "a_la_mode.engines"
STORE_GROUP = "a_la_mode.stores"  # entry point name: the URL scheme it opens
REQUIRED = {  # by engine API version: blocking, or submit and poll
    1: ("name", "check", "prepare", "run", "stop_all"),
    2: ("name", "check", "prepare", "submit", "poll", "stop_all"),
}


def entry_points_by_name(group: str) -> dict[str, EntryPoint]:
    """The installed entry points of ``group`` by name; of a name two distributions
    declare, the first on ``sys.path`` wins."""
    from importlib.metadata import entry_points  # only where a plugin is looked up

    found: dict[str, EntryPoint] = {}
    for entry in entry_points(group=group):
        found.setdefault(entry.name, entry)
    return found


def engine_entry_points() -> dict[str, EntryPoint]:
    """Installed engines by name (of a name two distributions declare, the first wins)."""
    return entry_points_by_name(ENGINE_GROUP)


def load_engine(name: str, options: Mapping[str, Any] | None = None) -> Engine:
    """Load, check and instantiate the engine called ``name``, passing ``options`` (the
    run's engine flags, such as ``default_image``) as keyword arguments."""
    entries = engine_entry_points()
    entry = entries.get(name)
    if entry is None:
        known = ", ".join(sorted(entries)) or "none"
        raise EngineError(
            f"no engine {name!r}{did_you_mean(name, entries)} (installed: {known}); "
            "'alamode engines' lists them"
        )
    try:
        factory = entry.load()
    except ImportError as err:
        raise EngineError(
            f"engine {name!r} ({entry.value}) cannot be imported: {err}; is its extra "
            f"installed? pip install 'a-la-mode[{name}]'"
        ) from None
    except Exception as err:  # a plugin's own bug: name the plugin, not our traceback
        raise EngineError(f"engine {name!r} ({entry.value}) failed to load: {err}") from None
    needs = REQUIRED.get(getattr(factory, "api_version", 1), REQUIRED[1])
    missing = [attr for attr in needs if not hasattr(factory, attr)]
    if missing:
        raise EngineError(
            f"engine {name!r} ({entry.value}) is not an engine: it lacks {', '.join(missing)}"
        )
    if not options:
        engine: Engine = factory()
        api_version(engine)
        return engine
    import inspect  # only to check options: 8 ms of every start-up otherwise

    try:
        signature = inspect.signature(factory).bind(**options)
    except TypeError:
        given = ", ".join("--" + key.replace("_", "-") for key in sorted(options))
        raise EngineError(f"engine {name!r} does not take {given}; leave it out") from None
    engine = factory(*signature.args, **signature.kwargs)
    api_version(engine)
    return engine


def describe_engines() -> list[dict[str, str]]:
    """Every installed engine and whether it loads (for ``alamode engines``)."""
    rows = []
    for name, entry in sorted(engine_entry_points().items()):
        try:
            engine = load_engine(name)
            try:
                engine.check()
            finally:
                getattr(engine, "close", lambda: None)()  # a client's socket, say
            detail = getattr(engine, "describe", lambda: "")()  # how it works here, if it says
            state = f"ok ({detail})" if detail else "ok"
        except EngineError as err:
            state = str(err)
        rows.append({"name": name, "target": entry.value, "state": state})
    return rows


def load_store(url: str, options: Mapping[str, Any], cache: str | None = None) -> Store:
    """Open the store at ``url`` with the plugin registered for its scheme (a worker gives
    the ``cache`` directory it keeps its copies in)."""
    scheme = url.split("://", 1)[0]
    entries = entry_points_by_name(STORE_GROUP)
    entry = entries.get(scheme)
    if entry is None:
        known = ", ".join(f"{name}://" for name in sorted(entries)) or "none"
        raise StoreError(f"store {url}: no store plugin for {scheme}:// (installed: {known})")
    try:
        factory = entry.load()
    except ImportError as err:
        raise StoreError(
            f"store {url}: its plugin cannot be imported ({err}); "
            "pip install 'a-la-mode[s3]' for s3://"
        ) from None
    store: Store = factory(url, options) if cache is None else factory(url, options, cache=cache)
    return store
