"""Topological levels of a dependency graph, without recursion, and the cycle when there is one.

Level 0 holds the tasks with no dependencies; level k the tasks whose dependencies all sit in
levels below k (so a task's level is its longest path from a root). Names in a level are
sorted, which makes the result independent of definition order and of PYTHONHASHSEED.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from .errors import DependencyError


def levels(deps: Mapping[str, Iterable[str]]) -> list[list[str]]:
    """Return the topological levels of ``deps`` (task -> the tasks it depends on).

    Every dependency must itself be a key of ``deps``. Raises DependencyError naming the
    tasks of a cycle, in run order, when there is one.
    """
    waiting: dict[str, int] = {}
    dependents: dict[str, list[str]] = {name: [] for name in deps}
    for name, names in deps.items():
        unique = set(names)
        waiting[name] = len(unique)
        for dep in unique:
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
    return cycle


def describe_cycle(cycle: list[str]) -> str:
    """One line naming a cycle's tasks in run order, and the way out."""
    loop = " → ".join([*cycle, cycle[0]])
    return (
        f"dependency cycle: {loop} (each must run before the next); "
        "remove one of these dependencies"
    )
