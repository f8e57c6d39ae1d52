"""Geometry for the pages' pictures, drawn as inline SVG by the templates (no script, no
library, nothing fetched): the dependency graph, and bar charts of durations."""

from __future__ import annotations

from collections import defaultdict
from typing import Any

COLUMN, ROW, NODE_WIDTH, NODE_HEIGHT = 190, 34, 170, 24
MAX_BOXES = 300  # more would not read: tasks are then drawn a box per group, or per level


def graph(page: dict[str, Any]) -> dict[str, Any]:
    """Boxes by level (left to right) and lines between them. A box is a task; or, when the
    plan has groups (``ingest.fetch``; ``download[day=...]``), a group, with its count and
    worst status; or, when that is still too many boxes, or groups depend on each other
    both ways, a level of the plan. So 1,000 tasks read as a handful of boxes, and each
    box's tasks are listed, collapsible, under the picture (``members``)."""
    tasks = page["tasks"]
    by_name = {task["task"]: task for task in tasks}
    depth = {name: index for index, names in enumerate(page["levels"]) for name in names}
    groups = {task["group"] for task in tasks}
    box_of = {task["task"]: task["task"] for task in tasks}
    if len(tasks) > MAX_BOXES or len(groups) < len(tasks):
        box_of = {task["task"]: task["group"] for task in tasks}
    placed = _columns(box_of, depth, tasks) if len(set(box_of.values())) <= MAX_BOXES else None
    if placed is None:  # too many groups, or groups in a circle: a box per level
        box_of = {name: f"level {depth[name] + 1}" for name in by_name}
        placed = _columns(box_of, depth, tasks)
    assert placed is not None
    column, edges_between = placed
    members: dict[str, list[str]] = defaultdict(list)
    for task in tasks:
        members[box_of[task["task"]]].append(task["task"])
    rows: dict[int, list[str]] = defaultdict(list)
    for box in sorted(column, key=lambda b: (column[b], b)):
        rows[column[box]].append(box)
    place: dict[str, tuple[int, int]] = {}
    nodes = []
    for index, boxes in rows.items():
        for row, box in enumerate(boxes):
            x, y = 10 + index * COLUMN, 10 + row * ROW
            place[box] = (x, y)
            names = members[box]
            nodes.append(
                {
                    "id": box,
                    "x": x,
                    "y": y,
                    "label": box if len(box) <= 22 else box[:21] + "…",
                    "count": len(names),
                    "status": _worst(by_name[name]["label"] for name in names),
                    "task": names[0] if names == [box] else None,
                }
            )
    edges = []
    for source, target in sorted(edges_between):
        (x1, y1), (x2, y2) = place[source], place[target]
        middle = NODE_HEIGHT // 2
        edges.append({"x1": x1 + NODE_WIDTH, "y1": y1 + middle, "x2": x2, "y2": y2 + middle})
    width = 20 + (max(rows, default=0) + 1) * COLUMN
    height = 20 + max((len(boxes) for boxes in rows.values()), default=0) * ROW
    grouped = any(len(names) > 1 for names in members.values())
    return {
        "nodes": nodes,
        "edges": edges,
        "width": width,
        "height": height,
        "grouped": grouped,
        "members": dict(members) if grouped else {},
    }


def _columns(
    box_of: dict[str, str], depth: dict[str, int], tasks: list[dict[str, Any]]
) -> tuple[dict[str, int], set[tuple[str, str]]] | None:
    """Each box's column (right of every box it depends on) and the edges between boxes;
    None when boxes depend on each other in a circle."""
    edges = {
        (box_of[dep], box_of[task["task"]])
        for task in tasks
        for dep in task["deps"]
        if box_of[dep] != box_of[task["task"]]
    }
    column: dict[str, int] = {}
    for name, box in box_of.items():
        column[box] = max(column.get(box, 0), depth[name])
    for _ in range(len(column) + 1):
        moved = False
        for source, target in edges:
            if column[target] <= column[source]:
                column[target] = column[source] + 1
                moved = True
        if not moved:
            return column, edges
    return None


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
