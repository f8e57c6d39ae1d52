"""The small expression language of ``--eval-param NAME=EXPR``: a list of values, never Python.

    days_range(-2, 0)               ISO dates from two days before today to today
    dates('2026-11-28', '2026-12-01')   every date from one to the other
    months_range(-1, 0)             YYYY-MM, last month and this one
    range(1, 4)                     1, 2, 3 (the end excluded, as Python's)
    ['eu', 'us']                    a list of literals (text or whole numbers)

The expression is parsed with ``ast`` and walked: literals, lists, a minus sign and these
functions are all there is. Nothing is ever evaluated as Python, and a value is text.
"""

from __future__ import annotations

import ast
import datetime
from collections.abc import Callable

from a_la_mode.compile.naming import did_you_mean
from a_la_mode.errors import SpecError

MAX_VALUES = 100_000


class ExpressionError(SpecError):
    """An --eval-param expression that is not one of the language's."""


def evaluate(expression: str, today: datetime.date) -> list[str]:
    """The values ``expression`` stands for, as text, in order (``today`` anchors the
    relative date functions)."""
    try:
        tree = ast.parse(expression.strip(), mode="eval")
    except SyntaxError as err:
        raise ExpressionError(f"{expression!r} is not an expression: {err.msg}") from None
    value = _Evaluator(expression, today).value(tree.body)
    values = value if isinstance(value, list) else [value]
    if not values:
        raise ExpressionError(f"{expression!r} gives no values")
    if len(values) > MAX_VALUES:
        raise ExpressionError(
            f"{expression!r} gives {len(values):,} values; at most {MAX_VALUES:,}"
        )
    return [str(item) for item in values]


Scalar = str | int
Value = Scalar | list[Scalar]


class _Evaluator:
    def __init__(self, expression: str, today: datetime.date) -> None:
        self.expression = expression
        self.today = today
        self.functions: dict[str, Callable[..., list[Scalar]]] = {
            "days_range": self.days_range,
            "dates": self.dates,
            "months_range": self.months_range,
            "range": self.range,
        }

    def fail(self, why: str) -> ExpressionError:
        return ExpressionError(f"{self.expression!r}: {why}")

    def value(self, node: ast.expr) -> Value:
        if isinstance(node, ast.Constant) and isinstance(node.value, str | int):
            if isinstance(node.value, bool):
                raise self.fail("True and False are not values here; write 'true' or 1")
            return node.value
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
            inner = self.value(node.operand)
            if type(inner) is not int:
                raise self.fail("a minus sign goes before a whole number")
            return -inner
        if isinstance(node, ast.List | ast.Tuple):
            items = [self.value(item) for item in node.elts]
            if any(isinstance(item, list) for item in items):
                raise self.fail("a list holds text or whole numbers, not lists")
            return items  # type: ignore[return-value]
        if isinstance(node, ast.Call):
            if not isinstance(node.func, ast.Name):
                raise self.fail("only days_range, dates, months_range and range may be called")
            return self.call(node)
        raise self.fail(
            "use a list of literals or days_range, dates, months_range or range "
            f"(not {type(node).__name__})"
        )

    def call(self, node: ast.Call) -> list[Scalar]:
        assert isinstance(node.func, ast.Name)
        name = node.func.id
        function = self.functions.get(name)
        if function is None:
            raise self.fail(
                f"no function {name!r}{did_you_mean(name, self.functions)}; "
                f"there are {', '.join(self.functions)}"
            )
        if node.keywords:
            raise self.fail(f"{name}() takes its arguments in order, without names")
        args = [self.value(arg) for arg in node.args]
        try:
            return function(*args)
        except TypeError:
            raise self.fail(f"{name}() does not take {len(args)} argument(s) like these") from None

    def days_range(self, first: int, last: int) -> list[Scalar]:
        """Dates from ``today + first`` to ``today + last`` days, both included."""
        self.whole(first, last)
        return [
            (self.today + datetime.timedelta(days=offset)).isoformat()
            for offset in range(first, last + 1)
        ]

    def dates(self, first: str, last: str) -> list[Scalar]:
        """Every date from ``first`` to ``last`` (ISO dates), both included."""
        start, end = self.date(first), self.date(last)
        days = (end - start).days
        return [(start + datetime.timedelta(days=n)).isoformat() for n in range(days + 1)]

    def months_range(self, first: int, last: int) -> list[Scalar]:
        """Months (YYYY-MM) from ``first`` to ``last`` months after this one, both included."""
        self.whole(first, last)
        base = self.today.year * 12 + self.today.month - 1
        return [
            f"{(base + offset) // 12:04d}-{(base + offset) % 12 + 1:02d}"
            for offset in range(first, last + 1)
        ]

    def range(self, *bounds: int) -> list[Scalar]:
        """Python's ``range``: whole numbers up to the end, the end excluded."""
        self.whole(*bounds)
        if not 1 <= len(bounds) <= 3:
            raise TypeError
        return list(range(*bounds))

    def whole(self, *numbers: object) -> None:
        if not all(type(number) is int for number in numbers):
            raise self.fail("these bounds are whole numbers")

    def date(self, text: object) -> datetime.date:
        try:
            return datetime.date.fromisoformat(str(text))
        except ValueError:
            raise self.fail(f"{text!r} is not a date such as '2026-12-01'") from None


def parse_today(text: str | None) -> datetime.date:
    """``--today DATE`` (what the relative date functions count from), else today."""
    if text is None:
        return datetime.date.today()
    try:
        return datetime.date.fromisoformat(text)
    except ValueError:
        raise ExpressionError(f"--today {text!r} is not a date such as 2026-12-01") from None
