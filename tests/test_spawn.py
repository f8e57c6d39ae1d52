"""How the local engine starts a command: both ways (libc through ctypes, and os.posix_spawn
where that is not available) must give the command the same start."""

from __future__ import annotations

import errno
import os
import signal
from collections.abc import Iterator

import pytest

from engines import spawn as spawn_module

PROBE = (
    'echo "sid=$(cut -d" " -f6 /proc/self/stat)"; echo "pid=$$"; '
    'echo "stdin=$(readlink /proc/self/fd/0)"; '
    'grep SigIgn /proc/self/status; echo "greeting=$GREETING"; echo oops >&2'
)


@pytest.fixture(params=["libc", "os.posix_spawn"])
def way(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    if request.param == "os.posix_spawn":
        monkeypatch.setattr(spawn_module, "_glibc", lambda: None)  # as on musl or macOS
    elif spawn_module._glibc() is None:
        pytest.skip("this libc is not glibc 2.34 or later")
    yield request.param


BASE = spawn_module.Environment({"PATH": "/bin"})


def run_probe(command: str) -> dict[str, str]:
    return run_with(BASE.overlay({"GREETING": "hi"}), command)


def run_with(env: spawn_module.Environment, command: str) -> dict[str, str]:
    reader, writer = os.pipe()
    try:
        pid = spawn_module.spawn("/bin/sh", ["/bin/sh", "-c", command], env, writer)
    finally:
        os.close(writer)
    with os.fdopen(reader, "rb") as output:
        text = output.read().decode()
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    lines = [line.replace(":\t", "=") for line in text.splitlines()]
    facts = dict(line.split("=", 1) for line in lines if "=" in line)
    facts["stderr"] = "oops" if "oops" in lines else ""
    return facts


def test_a_command_starts_in_its_own_session_with_a_clean_start(way: str) -> None:
    facts = run_probe(PROBE)
    assert facts["sid"] == facts["pid"]  # a new session: its group can be ended as one
    assert facts["stdin"] == "/dev/null"
    assert facts["greeting"] == "hi"  # exactly the environment given
    assert facts["stderr"] == "oops"  # stdout and stderr both go to the descriptor given
    ignored = int(facts["SigIgn"], 16)
    assert not ignored & (1 << (signal.SIGPIPE - 1))
    assert not ignored & (1 << (signal.SIGXFSZ - 1))


def test_a_missing_program_is_an_oserror_naming_it(way: str) -> None:
    with pytest.raises(OSError) as raised:
        spawn_module.spawn("/no/such/program", ["/no/such/program"], BASE, 1)
    assert raised.value.errno == errno.ENOENT
    assert raised.value.strerror == "No such file or directory"


def test_glibc_takes_the_path_that_releases_the_gil() -> None:
    """On glibc 2.34+ (this project's CI) a silent fall-back to os.posix_spawn, which holds
    the GIL while the child starts, would cost every run time; nothing else would notice."""
    name, _, version = (os.confstr("CS_GNU_LIBC_VERSION") or "").partition(" ")
    if name != "glibc" or tuple(int(p) for p in version.split(".")[:2]) < (2, 34):
        pytest.skip("not glibc 2.34 or later")
    assert spawn_module._glibc() is not None


def test_the_libc_way_closes_even_descriptors_made_inheritable_later() -> None:
    """No process-wide marking needed: the child closes everything above stderr itself.
    (With os.posix_spawn the local engine marks inherited ones when it is made.)"""
    if not spawn_module.closes_inherited_descriptors():
        pytest.skip("this libc is not glibc 2.34 or later")
    reader, writer = os.pipe()
    os.set_inheritable(writer, True)
    try:
        facts = run_probe('echo "fds=$(ls /proc/self/fd | tr "\\n" " ")"')
    finally:
        os.close(reader)
        os.close(writer)
    assert sorted(int(fd) for fd in facts["fds"].split()) == [0, 1, 2, 3]  # 3: ls's own


def test_a_nul_in_an_argument_is_refused_not_cut_short(way: str) -> None:
    with pytest.raises((OSError, ValueError)):
        spawn_module.spawn("/bin/echo", ["/bin/echo", "a\0b"], BASE, 1)


@pytest.mark.parametrize(
    ("variables", "message"),
    [
        ({"A=B": "1"}, "'A=B' cannot be a variable's name"),
        ({"A\0": "1"}, "cannot be a variable's name"),
        ({"": "1"}, "'' cannot be a variable's name"),
        ({"A": "x\0y"}, "variable A holds a NUL character"),
    ],
)
def test_a_variable_a_command_cannot_be_given_is_refused(
    variables: dict[str, str], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        BASE.overlay(variables)
    with pytest.raises(ValueError, match=message):
        spawn_module.Environment(variables)


def test_an_overlay_replaces_and_adds_and_leaves_the_base_alone(way: str) -> None:
    base = spawn_module.Environment({"PATH": "/bin", "KEEP": "base", "SWAP": "base"})
    for _ in range(2):  # the second time from the arrays made the first
        env = base.overlay({"SWAP": "overlay", "NEW": "ünïcode"})
        facts = run_with(env, 'echo "keep=$KEEP"; echo "swap=$SWAP"; echo "new=$NEW"')
        assert facts["keep"] == "base" and facts["swap"] == "overlay"
        assert facts["new"] == "ünïcode"
        assert run_with(base, 'echo "swap=$SWAP"; echo "n=$(env | grep -c .)"') == {
            "swap": "base",
            "n": "4",  # PATH, KEEP, SWAP and the shell's own PWD: no NEW
            "stderr": "",
        }
    assert env.get(b"SWAP") == b"overlay" and env.get(b"KEEP") == b"base"
    assert env.get(b"MISSING") is None
    assert env.as_dict() == {
        b"PATH": b"/bin",
        b"KEEP": b"base",
        b"SWAP": b"overlay",
        b"NEW": "ünïcode".encode(),
    }


def test_commands_with_variables_of_their_own_names_leave_no_memory_behind() -> None:
    """Each task of a plan has its own ALAMODE_INPUT_<dep> names. The engine's environment
    once kept a pointer array for every such set of names: memory grew with every command
    of a run, and every command rebuilt the array."""
    import tracemalloc

    base = spawn_module.Environment({f"VAR{i}": "x" * 20 for i in range(40)})

    def commands(first: int, count: int) -> None:
        for n in range(first, first + count):
            base.overlay({"SWAP": "y", f"ALAMODE_INPUT_T{n}": "/out", "VAR3": "z"}).pointers()

    commands(0, 100)
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        commands(100, 3000)
        grown = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert grown < 50_000, f"{grown} bytes kept for 3,000 commands"
