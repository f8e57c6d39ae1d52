"""Task names and suggestions."""

from __future__ import annotations

import pytest

from a_la_mode import SpecError
from a_la_mode.compile.naming import check_name, did_you_mean


def test_valid_names_pass() -> None:
    for name in ("a", "A_1", "group.task", "user-details", "0day", "_private"):
        assert check_name(name) == name


def test_a_bad_name_comes_with_a_valid_alternative() -> None:
    with pytest.raises(SpecError, match=r"e.g. 'my_task_'"):
        check_name("my task!")
    with pytest.raises(SpecError, match="task names are strings"):
        check_name(3)


def test_suggestions_only_when_close() -> None:
    assert did_you_mean("colage", ["collage", "blur"]) == ", did you mean 'collage'?"
    assert did_you_mean("zzz", ["collage", "blur"]) == ""
