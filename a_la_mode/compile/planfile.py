"""The plan file, without pydantic: strict reading, and what every plan offers.

Reading is strict. The bytes must be exactly the canonical encoding of what they decode to,
every output ID is recomputed, every input must name a task of the plan and equal its output,
and the toposort must agree with the inputs. bencode.py decodes; encoding what it decoded,
piece by piece, must give the bytes back, and each task's entry is hashed as it is encoded.

``PlanBase`` holds every way of reading a plan; two classes carry its data. ``Plan``
(plan.py) is the pydantic model the library offers. ``VerifiedPlan`` is a plain object that
commands use when they read a plan file: ``alamode run`` starts about 0.1 s sooner without
importing pydantic (docs/benchmarks.md; pyproject.toml keeps typer from importing it too).
"""

from __future__ import annotations

import bisect
import hashlib
import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from a_la_mode.compile import toposort
from a_la_mode.compile.bulk import paused_gc
from a_la_mode.compile.canonical import decode, encode, encode_items, join_path
from a_la_mode.compile.naming import MAX_NAME, input_clash, valid_name
from a_la_mode.errors import AlamodeError, PlanError

PLAN_FORMAT: Literal[1] = 1
TOP_LEVEL_KEYS = frozenset({"format", "meta", "tasks", "toposort", "toposort_flatten"})
OUTPUT_ID = re.compile(r"^[0-9a-f]{64}$")


class PlanBase:
    """What every verified plan offers: its tasks, its bytes and its digest.

    ``tasks`` maps each name to its entry: the user's spec plus ``inputs`` (dependency name ->
    its output ID) and ``output`` (this task's output ID).
    """

    if TYPE_CHECKING:
        format: int
        meta: dict[str, Any]
        tasks: dict[str, dict[str, Any]]
        toposort: list[list[str]]
        toposort_flatten: list[str]
        _digest: str | None
        _legacy: bool  # an a-la-mode 0.1.2 plan: no "format" key
        # Each task encoded around its output, kept by the compiler so saving re-encodes
        # nothing.
        _parts: dict[str, tuple[bytes, bytes]] | None
        # A plan read from a file keeps the file's bytes: writing it again re-encodes nothing.
        _raw: bytes | None

    def __eq__(self, other: object) -> bool:
        """Plans are equal when their content is (caches and digests aside)."""
        return isinstance(other, PlanBase) and self.to_dict() == other.to_dict()

    __hash__ = None  # type: ignore[assignment]  # mutable dict fields: not hashable

    # -- reading a task ------------------------------------------------------------------

    def spec(self, name: str) -> dict[str, Any]:
        """The user's spec of task ``name``: its entry without ``inputs`` and ``output``."""
        entry = self.tasks[name]
        return {k: v for k, v in entry.items() if k not in ("inputs", "output")}

    def inputs(self, name: str) -> dict[str, str]:
        """Dependency name -> output ID, for task ``name``."""
        inputs: dict[str, str] = self.tasks[name]["inputs"]
        return inputs

    def output(self, name: str) -> str:
        """The output ID of task ``name``."""
        output: str = self.tasks[name]["output"]
        return output

    # -- writing -------------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        """The plan as the plain dict that is bencoded (``Dag.encode()`` returns this)."""
        result: dict[str, Any] = {
            "meta": self.meta,
            "tasks": self.tasks,
            "toposort": self.toposort,
            "toposort_flatten": self.toposort_flatten,
        }
        if not self._legacy:
            result = {"format": self.format, **result}
        return result

    def iter_bytes(self) -> Iterator[bytes]:
        """The canonical file bytes, in pieces of about one task each."""
        if self._raw is not None:
            yield self._raw
            return
        top = self.to_dict()
        yield b"d"
        for key in sorted(top):
            yield encode(key)
            if key == "tasks":
                yield b"d"
                parts = self._parts
                tasks = self.tasks
                for name in sorted(tasks):
                    raw = name.encode()
                    head, tail = parts[name] if parts else task_parts(tasks[name])
                    output = tasks[name]["output"].encode()
                    yield b"%d:%sd%s6:output64:%s%se" % (len(raw), raw, head, output, tail)
                yield b"e"
            else:
                yield encode(top[key])
        yield b"e"

    def to_bytes(self) -> bytes:
        """The canonical bencoding of the plan: the plan file's exact content."""
        return b"".join(self.iter_bytes())

    @property
    def digest(self) -> str:
        """sha256 of the plan file's bytes: names this exact plan (e.g. in a store)."""
        if self._digest is None:
            hasher = hashlib.sha256()
            for piece in self.iter_bytes():
                hasher.update(piece)
            self._digest = hasher.hexdigest()
        return self._digest

    def save(self, path: str | os.PathLike[str]) -> None:
        """Write the plan file atomically: a reader sees the old file or the new, never half."""
        with paused_gc():
            self._save(Path(path))

    def _save(self, target: Path) -> None:
        import tempfile  # only when saving: 3 ms of every command's start-up otherwise

        fd, tmp = tempfile.mkstemp(dir=target.parent or ".", prefix=f".{target.name}.")
        try:
            os.fchmod(fd, 0o666 & ~_umask())  # mkstemp makes it 0600: a shared store needs more
            with os.fdopen(fd, "wb") as out:
                out.writelines(self.iter_bytes())
                out.flush()
                os.fsync(out.fileno())
            os.replace(tmp, target)
        except BaseException:
            os.unlink(tmp)
            raise


def _umask() -> int:
    """The process's umask (reading it means setting it: set it straight back)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


class VerifiedPlan(PlanBase):
    """A plan read from bytes that were verified: a plain object, without pydantic."""

    def __init__(self, top: dict[str, Any], data: bytes, legacy: bool) -> None:
        self.format = PLAN_FORMAT
        self.meta = top["meta"]
        self.tasks = top["tasks"]
        self.toposort = top["toposort"]
        self.toposort_flatten = top["toposort_flatten"]
        self._legacy = legacy
        self._digest = hashlib.sha256(data).hexdigest()
        self._raw = bytes(data)  # a no-op for bytes; a copy of anything mutable
        self._parts = None

    def __repr__(self) -> str:
        return f"VerifiedPlan(digest={self.digest[:12]}…, tasks={len(self.tasks)})"


_DIGEST_NAME = re.compile(r"^[0-9a-f]{64}$")


def read_plan_file(path: str | os.PathLike[str], digest: str | None = None) -> VerifiedPlan:
    """Read and verify the plan file at ``path``; raise PlanError when it cannot be trusted.
    With ``digest`` (a plan stored by its digest), its bytes must have that digest too; a
    file named ``<digest>.bencode`` (as a store keeps plans) is held to its name, always."""
    name = Path(path).name.removesuffix(".bencode")
    if digest is None and name != Path(path).name and _DIGEST_NAME.match(name):
        digest = name
    try:
        data = Path(path).read_bytes()
    except OSError as err:
        raise PlanError(f"cannot read plan {os.fspath(path)}: {err.strerror}") from None
    return read_plan(data, os.fspath(path), digest)


def read_plan(data: bytes, source: str = "plan", digest: str | None = None) -> VerifiedPlan:
    """Decode and verify a plan file's bytes; a PlanError names ``source`` and the fault.
    With ``digest`` (a plan named by its digest), the bytes must have that digest: a plan
    replaced in a store is never run in place of the one asked for."""
    try:
        with paused_gc():
            plan = _read(data)
    except PlanError as err:
        raise PlanError(f"{source}: {err}") from None
    if digest is not None and plan.digest != digest:
        raise PlanError(
            f"{source}: holds plan {plan.digest[:12]}…, not {digest[:12]}… as its name says; "
            "it was replaced: push or run the plan again"
        )
    return plan


def task_parts(entry: dict[str, Any]) -> tuple[bytes, bytes]:
    """Encode a task entry's items around ``output``: (keys before it, keys after it).

    The hashed entry is ``d + head + tail + e``; the task in the file is
    ``d + head + 6:output64:<id> + tail + e``. One encoding serves both.
    """
    keys = sorted(entry)
    split = bisect.bisect_left(keys, "output")
    after = split + 1 if split < len(keys) and keys[split] == "output" else split
    return encode_items(entry, keys[:split]), encode_items(entry, keys[after:])


def output_id(head: bytes, tail: bytes) -> str:
    """The output ID of an entry encoded as ``task_parts``: sha256 of ``d + head + tail + e``."""
    return hashlib.sha256(b"".join((b"d", head, tail, b"e"))).hexdigest()


def entry_bytes(entry: dict[str, Any]) -> bytes:
    """The bencoded entry (spec and inputs, no output) whose sha256 is the output ID."""
    head, tail = task_parts(entry)
    return b"".join((b"d", head, tail, b"e"))


# -- reading ------------------------------------------------------------------------------


def _read(data: bytes) -> VerifiedPlan:
    if not data:
        raise PlanError("is empty, not a plan; produce one with 'alamode encode SPEC -o PLAN'")
    if not data.startswith(b"d"):
        raise PlanError(
            "is not a plan (a plan file is a bencoded dictionary and starts with 'd'); "
            "produce one with 'alamode encode SPEC -o PLAN'"
        )
    try:
        top, fault, mismatch = _decode(data)
    except Corrupt as err:
        raise PlanError(f"is corrupt or truncated ({err}); re-encode it from its spec") from None
    legacy = _check_top_level(top)
    if fault is not None:
        raise PlanError(
            f"{fault} is not in canonical bencode (unsorted or duplicate keys, or a "
            "non-canonical number); re-encode the plan from its spec"
        )
    _check_tasks(top["tasks"], mismatch)
    verify_semantics(top["tasks"], top["toposort"], top["toposort_flatten"], check_hash=False)
    return VerifiedPlan(top, data, legacy)


# The first task whose recorded output ID is not the hash of its entry, and that hash.
_Mismatch = tuple[str, str]


class Corrupt(ValueError):
    """The bytes are not bencode (or not text where text must be)."""


def _decode(data: bytes) -> tuple[dict[str, Any], str | None, _Mismatch | None]:
    """Decode a plan's bytes (a dictionary: the caller checked the ``d``) with bencode.py:
    the top dictionary, the first place whose bytes are not the canonical encoding of what
    they hold, and the first task whose output ID is not the sha256 of its entry."""
    try:
        top = decode(data)
    except Exception as err:  # bencode.py's BencodeDecodeError, and what it wraps
        raise Corrupt(_why_corrupt(err)) from None
    if not isinstance(top, dict):
        raise Corrupt("it is not a dictionary")
    fault, mismatch = _canonical_fault(data, top)
    return top, fault, mismatch


def _why_corrupt(err: Exception) -> str:
    """bencode.py's error, in words: it says "not a valid bencoded string" for every fault
    and keeps the one it met as the exception's context."""
    said, cause = str(err), err.__context__
    if "data after valid prefix" in said:
        return "it has bytes after its end"
    if "maximum depth" in said or isinstance(cause, RecursionError):
        return "it is nested too deeply"
    if isinstance(cause, UnicodeDecodeError):
        return "it holds text that is not UTF-8"
    if isinstance(cause, IndexError) or (isinstance(cause, KeyError) and cause.args == (b"",)):
        return "it ends before its last value does"  # (KeyError: no value starts with b"")
    return "it is not valid bencode"


def _canonical_fault(data: bytes, top: dict[str, Any]) -> tuple[str | None, _Mismatch | None]:
    """Encode ``top`` again, piece by piece, comparing each piece with the bytes where it
    should stand: the first that differs is the fault. Each task's entry is encoded once,
    around its ``output``, and hashed on the way."""
    mismatch: _Mismatch | None = None
    position = 1
    fault: str | None = None

    def expect(piece: bytes, where: str) -> None:
        nonlocal position, fault
        if fault is None and data[position : position + len(piece)] != piece:
            fault = where
        position += len(piece)

    for key in sorted(top):
        value = top[key]
        if key != "tasks" or not isinstance(value, dict):
            expect(encode(key) + encode(value), f"field {key!r}")
            continue
        expect(encode(key) + b"d", "field 'tasks'")
        for name in sorted(value):
            entry = value[name]
            where = f"task {name!r}"
            if not isinstance(entry, dict):  # not an entry: the shape check will say so
                expect(encode(name) + encode(entry), where)
                continue
            head, tail = task_parts(entry)
            output = entry.get("output")
            middle = b"6:output" + encode(output) if "output" in entry else b""
            expect(b"".join((encode(name), b"d", head, middle, tail, b"e")), where)
            if mismatch is None:
                computed = output_id(head, tail)
                if computed != output:
                    mismatch = (name, computed)
        expect(b"e", "field 'tasks'")
    expect(b"e", "the plan")
    if fault is None and position != len(data):
        fault = "the plan"
    return fault, mismatch


def _check_tasks(tasks: dict[str, Any], mismatch: _Mismatch | None) -> None:
    """Every task's shape, then (in plan order, as a reader would meet them) the first
    output ID that does not match its entry."""
    for name, entry in tasks.items():
        _check_entry_shape(name, entry)
        if mismatch is not None and mismatch[0] == name:
            raise PlanError(
                f"task {name!r}: field 'output' does not match its spec and inputs "
                f"(recorded {entry['output'][:12]}…, computed {mismatch[1][:12]}…): the plan "
                "was edited or corrupted; re-encode it from its spec"
            )


def _check_top_level(top: Any) -> bool:
    """Check the plan's outer shape and format; return True for an a-la-mode 0.1.2 plan."""
    if not isinstance(top, dict):
        raise PlanError("is not a plan: its top level is not a dictionary")
    fmt = top.get("format")
    if fmt is not None and fmt != PLAN_FORMAT:
        if isinstance(fmt, int) and fmt > PLAN_FORMAT:
            raise PlanError(
                f"has plan format {fmt}, newer than this alamode reads ({PLAN_FORMAT}); "
                "upgrade a-la-mode"
            )
        raise PlanError(f"has unknown plan format {fmt!r}; this alamode reads format {PLAN_FORMAT}")
    unknown = sorted(set(top) - TOP_LEVEL_KEYS)
    if unknown:
        raise PlanError(
            f"has unknown field {unknown[0]!r}; a format-1 plan has only "
            f"{', '.join(sorted(TOP_LEVEL_KEYS))}"
        )
    for key, kind in (
        ("meta", dict),
        ("tasks", dict),
        ("toposort", list),
        ("toposort_flatten", list),
    ):
        if key not in top:
            raise PlanError(f"has no {key!r} field; it is not a complete plan")
        if not isinstance(top[key], kind):
            raise PlanError(f"field {key!r} is a {type(top[key]).__name__}, not a {kind.__name__}")
    return "format" not in top


def _check_entry_shape(name: str, entry: Any) -> None:
    where = f"task {name!r}"
    if not valid_name(name):
        raise PlanError(
            f"{where}: the name is not a valid task name (letters, digits, '_', '.', '-', "
            f"at most {MAX_NAME}); "
            "rename it in the spec and re-encode"
        )
    if not isinstance(entry, dict):
        raise PlanError(f"{where} is a {type(entry).__name__}, not a dictionary")
    output = entry.get("output")
    if not isinstance(output, str) or not OUTPUT_ID.match(output):
        raise PlanError(f"{where}: field 'output' is missing or not a 64-hex-digit output ID")
    inputs = entry.get("inputs")
    if not isinstance(inputs, dict) or not all(isinstance(v, str) for v in inputs.values()):
        raise PlanError(f"{where}: field 'inputs' is missing or not a dictionary of output IDs")
    clash = input_clash(inputs)
    if clash is not None:
        raise PlanError(f"{where}: {clash} and re-encode")


def verify_semantics(
    tasks: dict[str, Any],
    order: list[Any],
    flatten: list[Any],
    *,
    check_hash: bool,
) -> None:
    """Inputs resolve to their tasks' outputs, and the toposort matches; optionally re-hash."""
    for name, entry in tasks.items():
        if check_hash:
            _check_entry_shape(name, entry)
            if output_id(*task_parts(entry)) != entry["output"]:
                raise PlanError(f"task {name!r}: field 'output' does not match its spec and inputs")
        for dep, output in entry["inputs"].items():
            upstream = tasks.get(dep)
            if upstream is None:
                raise PlanError(
                    f"task {name!r}: field {join_path('inputs', dep)} names no task of the plan"
                )
            if upstream["output"] != output:
                raise PlanError(
                    f"task {name!r}: field {join_path('inputs', dep)} is {output[:12]}…, "
                    f"but task {dep!r} outputs {upstream['output'][:12]}…"
                )
    try:
        deps = {name: entry["inputs"] for name, entry in tasks.items()}
        expected = toposort.levels(deps, flatten if _all_str(flatten) else None)
    except AlamodeError as err:
        raise PlanError(str(err)) from None
    if len(order) != len(expected) or not all(map(_same_level, order, expected)):
        raise PlanError("field 'toposort' does not match the tasks' inputs; re-encode the plan")
    if flatten != [name for level in expected for name in level]:
        raise PlanError(
            "field 'toposort_flatten' does not match the tasks' inputs; re-encode the plan"
        )


def _same_level(got: Any, want: list[str]) -> bool:
    """A recorded level holds the expected names, in any order (a-la-mode 0.1.2 left them
    unsorted)."""
    if not isinstance(got, list) or len(got) != len(want):
        return False
    try:
        return set(got) == set(want)
    except TypeError:  # an unhashable item: certainly not a task name
        return False


def _all_str(items: list[Any]) -> bool:
    return all(type(item) is str for item in items)
