"""Topological levels of a dependency graph, without recursion, and the cycle when there is one.

Level 0 holds the tasks with no dependencies; level k the tasks whose dependencies all sit in
levels below k (so a task's level is its longest path from a root). Names in a level are
sorted, which makes the result independent of definition order and of PYTHONHASHSEED.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping, Sequence

from a_la_mode.errors import DependencyError


def levels(
    deps: Mapping[str, Collection[str]], order: Sequence[str] | None = None
) -> list[list[str]]:
    """Return the topological levels of ``deps`` (task -> the tasks it depends on).

    Every dependency must itself be a key of ``deps``. When ``order`` (default: the keys of
    ``deps``) already lists every dependency before its users -- the usual case -- one linear
    pass suffices; otherwise Kahn's algorithm runs. Raises DependencyError naming the tasks
    of a cycle, in run order, when there is one.
    """
    depth = _depths_in_order(deps, deps if order is None else order)
    if depth is None:
        return _kahn(deps)
    result: list[list[str]] = [[] for _ in range(max(depth.values(), default=-1) + 1)]
    for name, level in depth.items():
        result[level].append(name)
    for names in result:
        names.sort()
    return result


def _depths_in_order(
    deps: Mapping[str, Collection[str]], order: Iterable[str]
) -> dict[str, int] | None:
    """Each task's level, if ``order`` names every task once, after all its dependencies."""
    depth: dict[str, int] = {}
    for name in order:
        level = 0
        names = deps.get(name)
        if names is None or name in depth:
            return None
        for dep in names:
            below = depth.get(dep)
            if below is None:
                return None
            if below >= level:
                level = below + 1
        depth[name] = level
    return depth if len(depth) == len(deps) else None


def _kahn(deps: Mapping[str, Collection[str]]) -> list[list[str]]:
    waiting: dict[str, int] = {}
    dependents: dict[str, list[str]] = {name: [] for name in deps}
    for name, names in deps.items():
        waiting[name] = len(names)  # a repeated dependency is counted and released twice
        for dep in names:
            dependents[dep].append(name)
    current = sorted(name for name, count in waiting.items() if count == 0)
    result: list[list[str]] = []
    placed = 0
    while current:
        result.append(current)
        placed += len(current)
        ready: list[str] = []
        for name in current:
            for child in dependents[name]:
                waiting[child] -= 1
                if waiting[child] == 0:
                    ready.append(child)
        current = sorted(ready)
    if placed != len(waiting):
        stuck = {name for name, count in waiting.items() if count > 0}
        raise DependencyError(describe_cycle(find_cycle(deps, stuck)))
    return result


def find_cycle(deps: Mapping[str, Iterable[str]], stuck: set[str]) -> list[str]:
    """Return one cycle among ``stuck`` (tasks Kahn's algorithm could not place), in run order.

    Every stuck task has a stuck dependency, so following them from any start must loop.
    """
    seen_at: dict[str, int] = {}
    path: list[str] = []
    name = min(stuck)
    while name not in seen_at:
        seen_at[name] = len(path)
        path.append(name)
        name = min(dep for dep in deps[name] if dep in stuck)
    cycle = path[seen_at[name] :]
    cycle.reverse()  # we followed "depends on"; report "runs before"
    start = cycle.index(min(cycle))  # a stable starting point for the message
    return cycle[start:] + cycle[:start]


def describe_cycle(cycle: list[str]) -> str:
    """One line naming a cycle's tasks in run order, and the way out."""
    loop = " → ".join([*cycle, cycle[0]])
    return (
        f"dependency cycle: {loop} (each must run before the next); "
        "remove one of these dependencies"
    )
