"""Geometry for the pages' pictures, drawn as inline SVG by the templates (no script, no
library, nothing fetched): the dependency graph, and bar charts of durations."""

from __future__ import annotations

from collections import defaultdict
from typing import Any

COLUMN, ROW, NODE_WIDTH, NODE_HEIGHT = 190, 34, 170, 24
MAX_NODES = 2000  # beyond, the page lists groups only


def graph(page: dict[str, Any]) -> dict[str, Any]:
    """Boxes by level (left to right) and lines between them. With groups of more than one
    task, a box is a group (with its count and worst status), so 1,000 tasks in ten groups
    read as ten boxes; each group's tasks are listed, collapsible, beside the picture."""
    tasks = page["tasks"]
    by_name = {task["name"]: task for task in tasks}
    groups: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for task in tasks:
        groups[task["group"]].append(task)
    grouped = any(len(members) > 1 for members in groups.values())

    def key(name: str) -> str:
        return str(by_name[name]["group"]) if grouped else name

    level: dict[str, int] = {}
    for depth, names in enumerate(page["levels"]):
        for name in names:
            node = key(name)
            level[node] = max(level.get(node, 0), depth)
    # a group sits right of every group it depends on
    edges_between: set[tuple[str, str]] = set()
    for task in tasks:
        for dep in task["deps"]:
            if key(dep) != key(task["name"]):
                edges_between.add((key(dep), key(task["name"])))
    changed = True
    while changed and grouped:
        changed = False
        for source, target in edges_between:
            if level[target] <= level[source]:
                level[target] = level[source] + 1
                changed = True
    if len(level) > MAX_NODES:
        return {"nodes": [], "edges": [], "width": 0, "height": 0, "grouped": grouped}
    columns: dict[int, list[str]] = defaultdict(list)
    for node in sorted(level, key=lambda n: (level[n], n)):
        columns[level[node]].append(node)
    place: dict[str, tuple[int, int]] = {}
    nodes = []
    for column, names in columns.items():
        for row, node in enumerate(names):
            x, y = 10 + column * COLUMN, 10 + row * ROW
            place[node] = (x, y)
            members = groups[node] if grouped else [by_name[node]]
            nodes.append(
                {
                    "id": node,
                    "x": x,
                    "y": y,
                    "label": node if len(node) <= 22 else node[:21] + "…",
                    "count": len(members),
                    "status": _worst(member["status"] for member in members),
                    "task": None if grouped and len(members) > 1 else members[0]["name"],
                }
            )
    edges = []
    for source, target in sorted(edges_between):
        (x1, y1), (x2, y2) = place[source], place[target]
        edges.append(
            {
                "x1": x1 + NODE_WIDTH,
                "y1": y1 + NODE_HEIGHT // 2,
                "x2": x2,
                "y2": y2 + NODE_HEIGHT // 2,
            }
        )
    width = 20 + (max(columns, default=0) + 1) * COLUMN
    height = 20 + max((len(names) for names in columns.values()), default=0) * ROW
    return {"nodes": nodes, "edges": edges, "width": width, "height": height, "grouped": grouped}


STATUS_ORDER = ["failed last time", "blocked", "output missing", "revoked", "would run", "done"]


def _worst(statuses: Any) -> str:
    found = set(statuses)
    return next((status for status in STATUS_ORDER if status in found), "done")


def bars(
    values: list[tuple[str, float, str]], width: int = 600, height: int = 120
) -> dict[str, Any]:
    """A vertical bar per value: (label, value, class)."""
    top = max((value for _, value, _ in values), default=0.0) or 1.0
    step = min(width / max(len(values), 1), 40.0)
    drawn = []
    for index, (label, value, kind) in enumerate(values):
        tall = max(1.0, value / top * (height - 20))
        drawn.append(
            {
                "x": round(index * step + 1, 1),
                "y": round(height - tall, 1),
                "w": round(max(step - 2, 1), 1),
                "h": round(tall, 1),
                "label": label,
                "value": value,
                "kind": kind,
            }
        )
    return {"bars": drawn, "width": width, "height": height, "top": top}


def rows(values: list[tuple[str, float]], width: int = 600, row: int = 20) -> dict[str, Any]:
    """A horizontal bar per value, labelled: (label, value)."""
    top = max((value for _, value in values), default=0.0) or 1.0
    label_width = 200
    drawn = [
        {
            "y": index * row,
            "w": round(max(1.0, value / top * (width - label_width - 80)), 1),
            "label": label if len(label) <= 28 else label[:27] + "…",
            "value": value,
        }
        for index, (label, value) in enumerate(values)
    ]
    return {"rows": drawn, "width": width, "height": max(len(values), 1) * row, "x": label_width}
