"""Our entry-point reader finds what importlib.metadata finds, on real installed metadata."""

from __future__ import annotations

from importlib import metadata
from pathlib import Path

import pytest

from a_la_mode.entrypoints import EntryPoint, entry_points, entry_points_by_name


def _groups_installed_here() -> list[str]:
    return sorted(metadata.entry_points().groups)


@pytest.mark.parametrize("group", ["a_la_mode.engines", "a_la_mode.stores", "console_scripts"])
def test_same_entry_points_as_importlib_metadata(group: str) -> None:
    ours = [(e.name, e.value) for e in entry_points(group)]
    theirs = [(e.name, e.value) for e in metadata.entry_points(group=group)]
    assert sorted(ours) == sorted(theirs)
    assert ours, f"nothing installed in {group}: the comparison proves nothing"


def test_every_group_installed_here_agrees() -> None:
    groups = _groups_installed_here()
    assert "a_la_mode.engines" in groups
    for group in groups:
        ours = sorted((e.name, e.value) for e in entry_points(group))
        theirs = sorted((e.name, e.value) for e in metadata.entry_points(group=group))
        assert ours == theirs, group


def test_our_engines_load_to_the_classes_they_name() -> None:
    loaded = {entry.name: entry.load() for entry in entry_points("a_la_mode.engines")}
    assert loaded["local"].__name__ == "LocalEngine"
    assert loaded["docker"].__name__ == "DockerEngine"


def _install(where: Path, dist_info: str, text: str) -> None:
    (where / dist_info).mkdir(parents=True)
    (where / dist_info / "entry_points.txt").write_text(text)


def _install_first_and_second(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, first: tuple[str, str], second: tuple[str, str]
) -> None:
    """Two distributions (dist-info name, entry_points.txt), each in a folder of its own on
    sys.path, ``first`` ahead of ``second``."""
    _install(tmp_path / "first", *first)
    _install(tmp_path / "second", *second)
    monkeypatch.syspath_prepend(str(tmp_path / "second"))
    monkeypatch.syspath_prepend(str(tmp_path / "first"))


def test_a_distribution_found_twice_counts_once_first_on_the_path_winning(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _install_first_and_second(
        tmp_path,
        monkeypatch,
        ("My.Plugin-2.0.dist-info", "[demo.group]\nx = first:X\n"),
        ("my_plugin-1.0.dist-info", "[demo.group]\nx = second:X\n"),
    )
    assert entry_points("demo.group") == [EntryPoint("x", "first:X", "demo.group")]
    theirs = [(e.name, e.value) for e in metadata.entry_points(group="demo.group")]
    assert theirs == [("x", "first:X")]


def test_a_name_two_distributions_declare_goes_to_the_first_on_the_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _install_first_and_second(
        tmp_path,
        monkeypatch,
        ("alpha-1.0.dist-info", "[demo.group]\nx = alpha:X\n"),
        ("beta-1.0.dist-info", "[demo.group]\nx = beta:X\ny = beta:Y\n"),
    )
    assert len(entry_points("demo.group")) == 3  # every declaration, as importlib.metadata
    by_name = entry_points_by_name("demo.group")
    assert {name: entry.value for name, entry in by_name.items()} == {"x": "alpha:X", "y": "beta:Y"}


def test_comments_other_groups_and_extras(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    text = (
        "# a comment\n[console_scripts]\nnot-this = a:b\n\n"
        "[demo.group]\n; another\nplain = os.path:join\nwith_extras = os:path.join [fast, small]\n"
    )
    _install(tmp_path, "demo-1.0.dist-info", text)
    monkeypatch.syspath_prepend(str(tmp_path))
    found = {entry.name: entry for entry in entry_points("demo.group")}
    assert sorted(found) == ["plain", "with_extras"]
    assert found["with_extras"].value == "os:path.join [fast, small]"
    import os.path

    assert found["plain"].load() is os.path.join
    assert found["with_extras"].load() is os.path.join


def test_a_module_that_is_not_there_raises_import_error() -> None:
    with pytest.raises(ImportError):
        EntryPoint("gone", "no_such_module_anywhere:Thing", "demo.group").load()
