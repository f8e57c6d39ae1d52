"""What a run is asked to do (``RunOptions``), and the checks made before it starts."""

from __future__ import annotations

from pathlib import Path
from typing import NamedTuple

from a_la_mode.compile.planfile import PlanBase
from a_la_mode.errors import AlamodeError


class RunOptions(NamedTuple):
    jobs: int | None = 1  # None: the engine's choice (the number of cores for local ones)
    targets: list[str] | None = None
    keep_going: bool = False
    skip_events: bool = True  # a "skip" event per task done before; off where none is shown
    force: tuple[str, ...] = ()  # run these again though a success is recorded
    force_downstream: bool = False  # and everything downstream of them
    files_root: Path | None = None  # the spec's folder: where the tasks' listed files are


def forced(plan: PlanBase, names: list[str], options: RunOptions) -> list[str]:
    """The wanted tasks ``--force`` (and ``--force-downstream``) run again, in plan order."""
    unknown = [name for name in options.force if name not in plan.tasks]
    if unknown:
        from a_la_mode.compile.naming import did_you_mean

        raise AlamodeError(
            f"--force: unknown task {unknown[0]!r}{did_you_mean(unknown[0], plan.tasks)}; "
            "'alamode show' lists the tasks"
        )
    chosen = set(options.force)
    for name in names:  # plan order: a task's inputs come before it
        if options.force_downstream and chosen.intersection(plan.inputs(name)):
            chosen.add(name)
    return [name for name in names if name in chosen]


def check_engine_keys(plan: PlanBase, names: list[str]) -> None:
    """Refuse, before anything starts, engine keys of the wrong type (the table of spec
    keys in docs/plan-format.md)."""
    for name in names:
        spec = plan.tasks[name]
        command = spec.get("command")
        where = f"task {name!r}: spec key"
        if command is not None and not (
            (isinstance(command, str) and command.strip())
            or (isinstance(command, list) and command and all(isinstance(c, str) for c in command))
        ):
            raise AlamodeError(f"{where} 'command' must be a non-empty string or list of strings")
        if command is not None and any("\0" in part for part in _parts(command)):
            raise AlamodeError(f"{where} 'command' must not contain a NUL character")
        env = spec.get("env", {})
        if not isinstance(env, dict) or not all(isinstance(v, str) for v in env.values()):
            raise AlamodeError(f"{where} 'env' must be a dict of strings, e.g. {{'LANG': 'C'}}")
        for variable, value in env.items():
            if not variable or "=" in variable or "\0" in variable + value:
                raise AlamodeError(
                    f"{where} 'env': {variable!r} is not a variable a command can be given "
                    "(a name without '=' or NUL, a value without NUL)"
                )
        for key, least in (("timeout", 1), ("retries", 0)):
            value = spec.get(key, least)
            if not isinstance(value, int) or value < least:
                raise AlamodeError(f"{where} {key!r} must be an integer of at least {least}")


def _parts(command: str | list[str]) -> list[str]:
    return [command] if isinstance(command, str) else command
