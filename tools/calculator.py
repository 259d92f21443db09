"""A calculator tool: exact arithmetic on an expression, with no ``eval``."""

from __future__ import annotations

import ast
import math
import operator

from agentos.errors import ToolRetry
from agentos.runtime.tool import tool

__all__ = ["calculator", "evaluate"]

_BINARY = {
    ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul,
    ast.Div: operator.truediv, ast.FloorDiv: operator.floordiv, ast.Mod: operator.mod,
    ast.Pow: operator.pow,
}
_UNARY = {ast.UAdd: operator.pos, ast.USub: operator.neg}
_FUNCTIONS = {
    "sqrt": math.sqrt, "log": math.log, "exp": math.exp, "sin": math.sin, "cos": math.cos,
    "abs": abs, "round": round, "min": min, "max": max,
}
_CONSTANTS = {"pi": math.pi, "e": math.e}


def evaluate(expression: str) -> float | int:
    """The value of an arithmetic expression.

    Raises:
        ToolRetry: the expression is not arithmetic, or divides by zero; the message says why.
    """
    try:
        tree = ast.parse(expression, mode="eval")
    except SyntaxError as error:
        raise ToolRetry(f"not a valid expression: {error.msg}") from None

    def walk(node: ast.AST) -> float | int:
        if isinstance(node, ast.Expression):
            return walk(node.body)
        if isinstance(node, ast.Constant) and isinstance(node.value, (int, float)):
            return node.value
        if isinstance(node, ast.BinOp) and type(node.op) in _BINARY:
            left, right = walk(node.left), walk(node.right)
            if isinstance(node.op, ast.Pow) and abs(right) > 1000:
                raise ToolRetry("exponent too large (max 1000)")
            return _BINARY[type(node.op)](left, right)
        if isinstance(node, ast.UnaryOp) and type(node.op) in _UNARY:
            return _UNARY[type(node.op)](walk(node.operand))
        if isinstance(node, ast.Name) and node.id in _CONSTANTS:
            return _CONSTANTS[node.id]
        if (isinstance(node, ast.Call) and isinstance(node.func, ast.Name)
                and node.func.id in _FUNCTIONS and not node.keywords):
            return _FUNCTIONS[node.func.id](*[walk(a) for a in node.args])
        raise ToolRetry(
            f"unsupported syntax {ast.unparse(node)!r}: use numbers, + - * / // % **, "
            f"parentheses, {', '.join(_CONSTANTS)} and {', '.join(_FUNCTIONS)}()"
        )

    try:
        return walk(tree)
    except ZeroDivisionError:
        raise ToolRetry("division by zero") from None


@tool
def calculator(expression: str) -> float | int:
    """Evaluate an arithmetic expression exactly and return its value.

    Args:
        expression: numbers, + - * / // % **, parentheses, pi, e, sqrt/log/exp/sin/cos/abs/round/min/max.
    """
    return evaluate(expression)
