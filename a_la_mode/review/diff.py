"""What changed between two plans, and why.

Output IDs form a Merkle DAG: an unchanged ID means the task and its whole upstream cone are
unchanged, so only tasks whose ID moved are examined, and field-level comparison (DeepDiff)
runs only on tasks whose own entry changed. Every task whose ID moved is either

- **changed itself**: its spec differs, or the set of its dependencies does; or
- **changed because of upstream**: same spec and dependencies, but an input's ID moved. Its
  root causes are the tasks upstream that changed themselves, each with the path to it.

Tasks only in one plan are added or removed, unless a task of the other plan has the same
output ID (or the same spec and input IDs): then it was renamed.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass, field
from typing import Any, Literal

from a_la_mode.compile.bulk import paused_gc
from a_la_mode.compile.canonical import join_path
from a_la_mode.compile.files import FILES
from a_la_mode.compile.functions import CODE
from a_la_mode.compile.images import split_pinned
from a_la_mode.compile.planfile import PlanBase

LONG_TEXT = 60  # strings longer than this are shown as a word diff


@dataclass(frozen=True)
class FieldChange:
    """One spec (or meta) field that differs: its path, and old/new (absent: ``None``)."""

    path: str
    kind: Literal["changed", "added", "removed"]
    old: Any = None
    new: Any = None
    file: str = ""  # for a change under spec.files: the file's path
    module: str = ""  # for a change under spec.code (a function task): the module's name

    def describe(self) -> str:
        """``sha: '6f09d' → 'qwetr3'``, ``env.X: added '1'``, ``file x.py changed``, or a word
        diff for long text."""
        if self.file:
            return f"file {self.file} {self.kind}"
        if self.module:
            return f"code of module {self.module} {self.kind}"
        if self.kind == "added":
            return f"{self.path}: added {_short(self.new)}"
        if self.kind == "removed":
            return f"{self.path}: removed (was {_short(self.old)})"
        if self.path == "image" and isinstance(self.old, str) and isinstance(self.new, str):
            old, new = split_pinned(self.old), split_pinned(self.new)
            if old and new and old[0] == new[0]:  # the same image, another digest
                return f"image {old[0]}: {_short_digest(old[1])} → {_short_digest(new[1])}"
        if (
            isinstance(self.old, str)
            and isinstance(self.new, str)
            and (len(self.old) > LONG_TEXT or len(self.new) > LONG_TEXT)
        ):
            return f"{self.path}: {word_diff(self.old, self.new)}"
        return f"{self.path}: {_short(self.old)} → {_short(self.new)}"


def _short_digest(digest: str) -> str:
    """``sha256:`` and the first 12 hex digits, as Docker shows image IDs."""
    return digest[: len("sha256:") + 12] + "…"


@dataclass(frozen=True)
class InputChange:
    """A dependency added, removed, or renamed (same output ID under a new name)."""

    kind: Literal["added", "removed", "renamed"]
    name: str
    old_name: str | None = None

    def describe(self) -> str:
        if self.kind == "renamed":
            return f"input {self.old_name} renamed to {self.name}"
        return f"input {self.name} {self.kind}"


@dataclass(frozen=True)
class TaskChange:
    """A task present in both plans whose output ID differs, and why."""

    name: str
    old_output: str
    new_output: str
    reason: Literal["self", "upstream"]
    fields: tuple[FieldChange, ...] = ()
    inputs: tuple[InputChange, ...] = ()
    # For reason == "upstream": each root cause -> the path from it to this task.
    causes: dict[str, tuple[str, ...]] = field(default_factory=dict)

    def details(self) -> list[str]:
        """What changed in the task itself: its inputs, then its fields."""
        return [c.describe() for c in self.inputs] + [c.describe() for c in self.fields]

    def why(self) -> str:
        """A one-line reason, as ``status`` and ``explain`` will print it."""
        if self.reason == "self":
            return "changed itself: " + "; ".join(self.details())
        return "changed because of upstream " + ", ".join(
            " → ".join(path) for path in self.causes.values()
        )


@dataclass(frozen=True)
class PlanDiff:
    """The difference between two plans; ``a_la_mode.diff_plans`` returns one."""

    old_digest: str
    new_digest: str
    changed: tuple[TaskChange, ...]
    added: tuple[str, ...]
    removed: tuple[str, ...]
    renamed: tuple[tuple[str, str], ...]
    unchanged: tuple[str, ...]
    meta: tuple[FieldChange, ...]
    added_outputs: dict[str, str] = field(default_factory=dict)  # added task -> its output

    @property
    def same_outputs(self) -> bool:
        """True when both plans produce the same outputs under the same names (renames and
        meta changes aside): nothing would be recomputed."""
        return not (self.changed or self.added or self.removed)

    def changed_itself(self) -> list[TaskChange]:
        return [c for c in self.changed if c.reason == "self"]

    def changed_upstream(self) -> list[TaskChange]:
        return [c for c in self.changed if c.reason == "upstream"]

    def to_json(self) -> dict[str, Any]:
        """The documented, stable JSON form (docs/diff.md)."""
        return {
            "old": self.old_digest,
            "new": self.new_digest,
            "same_outputs": self.same_outputs,
            "counts": {
                "changed_itself": len(self.changed_itself()),
                "changed_upstream": len(self.changed_upstream()),
                "added": len(self.added),
                "removed": len(self.removed),
                "renamed": len(self.renamed),
                "unchanged": len(self.unchanged),
            },
            "changed": [_change_json(c) for c in self.changed],
            "added": list(self.added),
            "removed": list(self.removed),
            "renamed": [{"old": old, "new": new} for old, new in self.renamed],
            "meta": [_field_json(f) for f in self.meta],
        }


def diff_plans(old: PlanBase, new: PlanBase) -> PlanDiff:
    """Compare two plans: what changed, why, and what stayed the same."""
    with paused_gc():  # a change per moved task, next to two plans' millions of objects
        return _diff(old, new)


def _diff(old: PlanBase, new: PlanBase) -> PlanDiff:
    old_tasks, new_tasks = old.tasks, new.tasks
    unchanged: list[str] = []
    moved: list[str] = []
    for name in new.toposort_flatten:  # run order: upstream causes are classified first
        entry = old_tasks.get(name)
        if entry is None:
            continue
        if entry["output"] == new_tasks[name]["output"]:
            unchanged.append(name)
        else:
            moved.append(name)

    added = [name for name in new.toposort_flatten if name not in old_tasks]
    removed = [name for name in old.toposort_flatten if name not in new_tasks]
    renamed = _match_renames(old, new, removed, added)
    renamed_old = {o for o, _ in renamed}
    renamed_new = {n for _, n in renamed}

    changes: dict[str, TaskChange] = {}
    for name in moved:
        changes[name] = _classify(name, old, new, changes)
    return PlanDiff(
        old_digest=old.digest,
        new_digest=new.digest,
        changed=tuple(changes[name] for name in moved),
        added=tuple(n for n in added if n not in renamed_new),
        removed=tuple(n for n in removed if n not in renamed_old),
        renamed=tuple(renamed),
        unchanged=tuple(unchanged),
        meta=tuple(field_changes(old.meta, new.meta)),
        added_outputs={n: new.output(n) for n in added if n not in renamed_new},
    )


def _classify(name: str, old: PlanBase, new: PlanBase, known: dict[str, TaskChange]) -> TaskChange:
    old_entry, new_entry = old.tasks[name], new.tasks[name]
    old_inputs, new_inputs = old_entry["inputs"], new_entry["inputs"]
    outputs = (old_entry["output"], new_entry["output"])
    if old_inputs.keys() != new_inputs.keys() or not _same_spec(old_entry, new_entry):
        old_spec, new_spec = old.spec(name), new.spec(name)
        return TaskChange(
            name,
            *outputs,
            reason="self",
            fields=tuple(field_changes(old_spec, new_spec)),
            inputs=tuple(_input_changes(old_inputs, new_inputs)),
        )
    causes: dict[str, tuple[str, ...]] = {}
    for dep in sorted(new_inputs):
        if old_inputs[dep] == new_inputs[dep]:
            continue
        upstream = known[dep]  # dep's ID moved, and run order put it first
        if upstream.reason == "self":
            causes.setdefault(dep, (dep, name))
        else:
            for root, path in upstream.causes.items():
                causes.setdefault(root, (*path, name))
    return TaskChange(name, *outputs, reason="upstream", causes=causes)


def _same_spec(old: dict[str, Any], new: dict[str, Any]) -> bool:
    """The two entries' specs are equal (their ``inputs`` and ``output`` aside), compared
    without copying either: most tasks whose ID moved only follow an upstream change."""
    if old.keys() != new.keys():
        return False
    return all(old[key] == new[key] for key in old if key != "inputs" and key != "output")


def _input_changes(old: dict[str, str], new: dict[str, str]) -> list[InputChange]:
    gone = {dep: old[dep] for dep in old if dep not in new}
    came = {dep: new[dep] for dep in new if dep not in old}
    by_output = {output: dep for dep, output in gone.items()}
    result = []
    for dep, output in sorted(came.items()):
        was = by_output.pop(output, None)
        if was is not None:
            result.append(InputChange("renamed", dep, was))
            del gone[was]
        else:
            result.append(InputChange("added", dep))
    result += [InputChange("removed", dep) for dep in sorted(gone)]
    return result


def _match_renames(
    old: PlanBase, new: PlanBase, removed: list[str], added: list[str]
) -> list[tuple[str, str]]:
    """Pair removed with added tasks of the same output ID, else same spec and input IDs."""

    def identity(plan: PlanBase, name: str) -> tuple[str, tuple[str, ...]]:
        inputs = tuple(sorted(plan.inputs(name).values()))
        return repr(sorted(plan.spec(name).items())), inputs

    pairs: list[tuple[str, str]] = []
    for key in (lambda p, n: p.output(n), identity):
        waiting: dict[Any, list[str]] = {}
        taken = {o for o, _ in pairs}
        for name in removed:
            if name not in taken:
                waiting.setdefault(key(old, name), []).append(name)
        paired_new = {n for _, n in pairs}
        for name in added:
            if name in paired_new:
                continue
            candidates = waiting.get(key(new, name))
            if candidates:
                pairs.append((candidates.pop(0), name))
    return pairs


def field_changes(old: dict[str, Any], new: dict[str, Any]) -> list[FieldChange]:
    """Field-level differences between two specs (or metas), sorted by path."""
    if old == new:
        return []
    from deepdiff import DeepDiff  # imported here: it costs every other command 0.17 s

    report = DeepDiff(old, new, view="tree", ignore_order=False)
    result: list[FieldChange] = []
    for kind, levels in report.items():
        for level in levels:
            parts = level.path(output_format="list")
            path = _path(parts)
            file = "".join(str(part) for part in parts[1:]) if parts[:1] == [FILES] else ""
            if file and (isinstance(level.t1, dict) or isinstance(level.t2, dict)):
                result.extend(_folder_changes(path, file, level.t1, level.t2))
            elif parts[:1] == [CODE] and len(parts) == 2:
                change = FieldChange(path, "changed", level.t1, level.t2, module=str(parts[1]))
                if kind.endswith("_added"):
                    change = FieldChange(path, "added", new=level.t2, module=change.module)
                elif kind.endswith("_removed"):
                    change = FieldChange(path, "removed", old=level.t1, module=change.module)
                result.append(change)
            elif kind.endswith("_added"):
                result.append(FieldChange(path, "added", new=level.t2, file=file))
            elif kind.endswith("_removed"):
                result.append(FieldChange(path, "removed", old=level.t1, file=file))
            else:
                result.append(FieldChange(path, "changed", old=level.t1, new=level.t2, file=file))
    return sorted(result, key=lambda c: c.path)


def _folder_changes(path: str, folder: str, old: Any, new: Any) -> list[FieldChange]:
    """A listed folder's files that came, went or changed (a folder is {file: digest})."""
    before = old if isinstance(old, dict) else {}
    after = new if isinstance(new, dict) else {}
    changes = []
    for name in sorted(set(before) | set(after)):
        if name not in before:
            changes.append(FieldChange(path, "added", file=folder + name))
        elif name not in after:
            changes.append(FieldChange(path, "removed", file=folder + name))
        elif before[name] != after[name]:
            changes.append(FieldChange(path, "changed", file=folder + name))
    return changes


def _path(parts: list[Any]) -> str:
    """DeepDiff's path parts as ``env.X``, ``args[2]`` or ``['my key']``."""
    text = ""
    for part in parts:
        text = f"{text}[{part}]" if isinstance(part, int) else join_path(text, str(part))
    return text.lstrip(".") or "(whole value)"


def word_diff(old: str, new: str) -> str:
    """A compact diff of two long strings: ``…context [-old-]{+new+} context…``."""
    a, b = old.split(" "), new.split(" ")
    pieces: list[str] = []
    for op, a1, a2, b1, b2 in difflib.SequenceMatcher(a=a, b=b, autojunk=False).get_opcodes():
        if op == "equal":
            same = a[a1:a2]
            pieces.append(
                " ".join(same) if len(same) <= 4 else " ".join([*same[:2], "…", *same[-2:]])
            )
        else:
            if a1 != a2:
                pieces.append("[-" + " ".join(a[a1:a2]) + "-]")
            if b1 != b2:
                pieces.append("{+" + " ".join(b[b1:b2]) + "+}")
    return " ".join(piece for piece in pieces if piece)


def _short(value: Any) -> str:
    shown = repr(value)
    return shown if len(shown) <= LONG_TEXT else shown[: LONG_TEXT - 1] + "…"


def _field_json(change: FieldChange) -> dict[str, Any]:
    result: dict[str, Any] = {"path": change.path, "kind": change.kind}
    if change.kind != "added":
        result["old"] = change.old
    if change.kind != "removed":
        result["new"] = change.new
    if change.file:
        result["file"] = change.file
    if change.module:
        result["module"] = change.module
    return result


def _change_json(change: TaskChange) -> dict[str, Any]:
    return {
        "name": change.name,
        "reason": change.reason,
        "old_output": change.old_output,
        "new_output": change.new_output,
        "fields": [_field_json(f) for f in change.fields],
        "inputs": [
            {"kind": c.kind, "name": c.name, **({"old_name": c.old_name} if c.old_name else {})}
            for c in change.inputs
        ],
        "causes": [{"root": root, "path": list(path)} for root, path in change.causes.items()],
    }
