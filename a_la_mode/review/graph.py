"""A plan's dependency graph as Graphviz dot or Mermaid text (edges point from input to user)."""

from __future__ import annotations

import json

from a_la_mode.compile.planfile import PlanBase

SHORT_ID = 12


def to_dot(plan: PlanBase) -> str:
    """Graphviz ``digraph``: one node per task labelled with its name and short output ID."""
    lines = ["digraph plan {", "  rankdir=LR;", '  node [shape=box, fontname="monospace"];']
    for name in plan.toposort_flatten:
        label = f"{name}\\n{plan.output(name)[:SHORT_ID]}"
        lines.append(f"  {_dot_quote(name)} [label={_dot_quote(label, escape=False)}];")
    for name in plan.toposort_flatten:
        for dep in plan.inputs(name):
            lines.append(f"  {_dot_quote(dep)} -> {_dot_quote(name)};")
    lines.append("}")
    return "\n".join(lines) + "\n"


def to_mermaid(plan: PlanBase) -> str:
    """Mermaid ``flowchart``: node IDs are positional (names may hold ``.`` and ``-``)."""
    ids = {name: f"t{index}" for index, name in enumerate(plan.toposort_flatten)}
    lines = ["flowchart LR"]
    for name, node in ids.items():
        lines.append(f'  {node}["{name}<br/><small>{plan.output(name)[:SHORT_ID]}</small>"]')
    for name, node in ids.items():
        for dep in plan.inputs(name):
            lines.append(f"  {ids[dep]} --> {node}")
    return "\n".join(lines) + "\n"


def _dot_quote(text: str, escape: bool = True) -> str:
    return json.dumps(text) if escape else f'"{text}"'


FORMATS = {"dot": to_dot, "mermaid": to_mermaid}
