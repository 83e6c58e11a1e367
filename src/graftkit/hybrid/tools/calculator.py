"""A safe arithmetic evaluator: an AST walk over numbers and + - * / // % ** and unary +/-.

Never ``eval``: the expression is parsed with ``ast.parse(mode="eval")`` and every node that
is not a number literal or one of those operators is refused, so names, calls, attributes,
subscripts and strings (``__import__('os')``) cannot run. Length, nesting depth, exponent
size and result size are bounded so that ``2**99999999`` or deeply nested input fail fast.
"""

from __future__ import annotations

import ast
import operator

MAX_LENGTH = 500
MAX_DEPTH = 50
MAX_EXPONENT = 1000
MAX_MAGNITUDE = 10 ** 100

_BINARY = {ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul, ast.Div: operator.truediv,
           ast.FloorDiv: operator.floordiv, ast.Mod: operator.mod, ast.Pow: operator.pow}
_UNARY = {ast.UAdd: operator.pos, ast.USub: operator.neg}


class CalculatorError(ValueError):
    """The expression is not plain, bounded arithmetic."""


def _check(value: int | float) -> int | float:
    if abs(value) > MAX_MAGNITUDE:
        raise CalculatorError(f"result too large (limit 1e{len(str(MAX_MAGNITUDE)) - 1})")
    return value


def _walk(node: ast.AST, depth: int) -> int | float:
    if depth > MAX_DEPTH:
        raise CalculatorError(f"expression nested deeper than {MAX_DEPTH} levels")
    if isinstance(node, ast.Constant) and type(node.value) in (int, float):
        return _check(node.value)
    if isinstance(node, ast.UnaryOp) and type(node.op) in _UNARY:
        return _UNARY[type(node.op)](_walk(node.operand, depth + 1))
    if isinstance(node, ast.BinOp) and type(node.op) in _BINARY:
        left, right = _walk(node.left, depth + 1), _walk(node.right, depth + 1)
        if isinstance(node.op, ast.Pow) and (abs(right) > MAX_EXPONENT or (abs(left) > 1 and abs(right) * len(str(int(abs(left)))) > 100)):
            raise CalculatorError(f"exponent {right} too large for base {left}")
        try:
            return _check(_BINARY[type(node.op)](left, right))
        except ZeroDivisionError:
            raise CalculatorError("division by zero") from None
        except OverflowError:
            raise CalculatorError("result too large") from None
    raise CalculatorError(f"only numbers and + - * / // % ** are allowed, found {type(node).__name__}")


def calculate(expression: str) -> int | float:
    """The value of an arithmetic expression, or CalculatorError saying what is not allowed."""
    if not isinstance(expression, str):
        raise CalculatorError("expression must be a string")
    if len(expression) > MAX_LENGTH:
        raise CalculatorError(f"expression longer than {MAX_LENGTH} characters")
    expression = expression.replace("^", "**").replace("×", "*").replace("÷", "/").strip()
    if expression.count("(") > MAX_DEPTH:
        raise CalculatorError(f"expression nested deeper than {MAX_DEPTH} levels")
    try:
        tree = ast.parse(expression, mode="eval")
    except (SyntaxError, ValueError) as exc:
        raise CalculatorError(f"not an arithmetic expression: {exc.msg if isinstance(exc, SyntaxError) else exc}") from None
    value = _walk(tree.body, 0)
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return value


def format_result(value: int | float) -> str:
    """Integers as digits, floats with at most 10 significant digits."""
    return str(value) if isinstance(value, int) else f"{value:.10g}"
