"""Decoding a model's BFCL answer into function calls.

BFCL asks the model for its calls in one line, ``[func1(a=1, b="x"), func2(c=[1, 2])]``, in the syntax
of the row's language. Python answers are read with the standard library's ``ast`` (nothing is
evaluated beyond constant arithmetic such as ``5*60``); Java and JavaScript answers with tree-sitter
(``bfcl_treesitter``). An answer that is not a call list raises ``DecodeError``: the scorer makes that
a 0 with the reason, never a crash.
"""

from __future__ import annotations

import ast
import operator
from dataclasses import dataclass, field
from typing import Any

LANGUAGES = {"python": "Python", "java": "Java", "javascript": "JavaScript"}


class DecodeError(Exception):
    """The answer is not a list of function calls in the row's language."""


class LanguageUnavailable(Exception):
    """The parser for the row's language (tree-sitter and its grammar) is not installed."""


@dataclass(frozen=True, slots=True)
class Call:
    """One decoded call: its dotted name, its named arguments (Python values for Python; syntax nodes
    that the checker converts by declared type for Java and JavaScript), and how many arguments came
    without a name."""

    name: str
    args: dict[str, Any] = field(default_factory=dict)
    positional: int = 0


def call_text(answer: str) -> str:
    """The answer as BFCL reads it: one line, any Markdown code fence dropped."""
    text = answer.strip()
    if text.startswith("```"):
        text = text.split("\n", 1)[1] if "\n" in text else text[3:]
        text = text.rstrip().removesuffix("```")
    return text.replace("\n", "").strip()


def decode(answer: str, language: str) -> list[Call]:
    """The calls an answer makes; ``language`` is one of ``LANGUAGES``' values."""
    text = call_text(answer)
    if language == "Python":
        return decode_python(text)
    from lamina_scoring_basic.bfcl_treesitter import decode_java, decode_javascript

    return decode_java(text) if language == "Java" else decode_javascript(text)


# -- Python ------------------------------------------------------------------------------------------


def decode_python(text: str) -> list[Call]:
    if not text.startswith("["):
        text = "[" + text
    if not text.endswith("]"):
        text += "]"
    try:
        tree = ast.parse(text, mode="eval")
        body = tree.body
        elements = body.elts if isinstance(body, ast.List) else [body]
        calls = []
        for i, element in enumerate(elements):
            if not isinstance(element, ast.Call):
                raise DecodeError(f"element {i} of the list is {ast.unparse(element)!r}, not a function call")
            calls.append(_call(element))
        return calls
    except SyntaxError as exc:
        raise DecodeError(f"not Python syntax ({exc.msg})") from None
    except (ValueError, TypeError, RecursionError, MemoryError) as exc:
        raise DecodeError(f"cannot read the answer's values ({type(exc).__name__}: {exc})") from None


def _call(node: ast.Call) -> Call:
    name = _dotted(node.func)
    args: dict[str, Any] = {}
    positional = 0
    for arg in node.args:
        if isinstance(arg, ast.Dict) and all(isinstance(k, ast.Constant) for k in arg.keys):
            # a model that passes one dict of arguments: Llama Stack reads its keys as the names
            for key, value in zip(arg.keys, arg.values, strict=True):
                args[str(key.value)] = _value(value)  # type: ignore[union-attr]
        else:
            positional += 1
    for keyword in node.keywords:
        if keyword.arg is None:
            raise DecodeError(f"{name}(**{ast.unparse(keyword.value)}): arguments must be named one by one")
        args[keyword.arg] = _value(keyword.value)
    return Call(name, args, positional)


def _dotted(node: ast.expr) -> str:
    parts = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if not isinstance(node, ast.Name):
        raise DecodeError(f"{ast.unparse(node)!r} is not a function name")
    parts.append(node.id)
    return ".".join(reversed(parts))


def _value(node: ast.expr) -> Any:
    """A Python value for an argument; code that is not a literal (a variable, ``math.pi``, a call
    without named arguments) reads as its source text, as BFCL's ground truth writes such values."""
    if isinstance(node, ast.Constant):
        return "..." if node.value is Ellipsis else node.value
    if isinstance(node, ast.List):
        return [_value(e) for e in node.elts]
    if isinstance(node, ast.Tuple):
        return tuple(_value(e) for e in node.elts)
    if isinstance(node, ast.Dict):
        return {
            _value(k) if k is not None else None: _value(v)
            for k, v in zip(node.keys, node.values, strict=True)
        }
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Call) and node.keywords and not node.args:
        call = _call(node)
        return {call.name: call.args}  # a nested call with named arguments, as BFCL nests it
    if isinstance(node, ast.UnaryOp | ast.BinOp):
        try:
            return _arithmetic(node)
        except _NotArithmetic:
            pass
    return ast.unparse(node)


class _NotArithmetic(Exception):
    pass


_BINARY = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
    ast.FloorDiv: operator.floordiv,
    ast.Mod: operator.mod,
    ast.Pow: operator.pow,
}


def _arithmetic(node: ast.expr) -> Any:
    """Constant arithmetic (``-5``, ``5*60``, ``1/3``, ``2**10``, ``"a" + "b"``), bounded so an answer
    cannot make the scorer compute a huge power."""
    if isinstance(node, ast.Constant) and type(node.value) in (int, float, str):
        return node.value
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub | ast.UAdd):
        operand = _arithmetic(node.operand)
        if type(operand) not in (int, float):
            raise _NotArithmetic
        return -operand if isinstance(node.op, ast.USub) else operand
    if isinstance(node, ast.BinOp) and type(node.op) in _BINARY:
        left, right = _arithmetic(node.left), _arithmetic(node.right)
        if isinstance(node.op, ast.Pow) and (
            type(right) not in (int, float)
            or abs(right) > 64
            or (type(left) in (int, float) and abs(left) > 1e6)
        ):
            raise _NotArithmetic
        if isinstance(node.op, ast.Mult) and str in (type(left), type(right)):
            raise _NotArithmetic  # "a" * 10**9 would build a gigabyte
        try:
            result = _BINARY[type(node.op)](left, right)
        except (TypeError, ZeroDivisionError, OverflowError, ValueError):
            raise _NotArithmetic from None
        if type(result) not in (int, float, str):
            raise _NotArithmetic
        return result
    raise _NotArithmetic
