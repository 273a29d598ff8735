"""Java and JavaScript BFCL answers, read with tree-sitter, and their values converted by declared type.

A model answers a Java row with ``[Foo.bar(count=5L, names=new ArrayList<>(Arrays.asList("a", "b")))]``
and a JavaScript row with ``[fetch(url="https://x", options={retries: 3})]``. The call and its named
arguments come from the syntax tree; each argument stays a syntax node until the checker knows the
parameter's declared type, because the same text reads differently by type (BFCL's rules): a Java
``long`` needs its ``L``, a ``float`` its ``f``, a JavaScript ``Bigint`` its ``n``; ``ArrayList``,
``Array`` and ``HashMap`` values are read from the creation forms BFCL accepts (``Arrays.asList``, an
``add``/``put`` initializer block, ``new int[]{...}``); a value of another form stays its source text
(string literals without their quotes), which passes only where the ground truth names it as written
(a variable). ``Set``, ``Hashtable``, ``Queue`` and ``Stack`` values are not converted (BFCL does not
either) and so compare as source text.

tree-sitter, tree-sitter-java and tree-sitter-javascript are dependencies of this package, imported on
the first Java or JavaScript row. A parser per thread: a tree-sitter parser is not thread-safe, and
large pages score in a worker thread.
"""

from __future__ import annotations

import re
import threading
from typing import Any

from lamina_scoring_basic.bfcl_decode import Call, DecodeError, LanguageUnavailable

_INT = re.compile(r"-?\d+")
_LONG = re.compile(r"-?\d+[lL]")
_JAVA_FLOAT = re.compile(r"-?\d+(\.\d+)?([eE][+-]?\d+)?[fF]")
_JAVA_DOUBLE = re.compile(r"-?\d+(\.\d+)?([eE][+-]?\d+)?")
_JS_FLOAT = re.compile(r"-?\d+(\.\d+)?")
_BIGINT = re.compile(r"-?\d+n")
_SPACE = re.compile(r"\s+")
_COMMENTS = {"comment", "line_comment", "block_comment"}
_ESCAPE = re.compile(r"\\([\\\"'nrtb0])")
_ESCAPED = {"n": "\n", "r": "\r", "t": "\t", "b": "\b", "0": "\0"}
_local = threading.local()


def _parser(language: str) -> Any:
    parsers = getattr(_local, "parsers", None)
    if parsers is None:
        parsers = _local.parsers = {}
    if language not in parsers:
        try:
            import tree_sitter

            if language == "Java":
                import tree_sitter_java as grammar
            else:
                import tree_sitter_javascript as grammar
        except ImportError as exc:
            raise LanguageUnavailable(
                f"{language} answers are read with tree-sitter, which is not installed here ({exc}); "
                "install lamina-scoring-basic with its dependencies (tree-sitter, tree-sitter-java, "
                "tree-sitter-javascript)"
            ) from None
        parsers[language] = tree_sitter.Parser(tree_sitter.Language(grammar.language()))
    return parsers[language]


def _parse(text: str, language: str) -> Any:
    # the list's brackets, either of which a model may leave out (as Python answers may)
    text = text.removeprefix("[").removesuffix("]").strip()
    if not text:
        return None
    if not text.endswith(";"):
        text += ";"
    tree = _parser(language).parse(text.encode())
    if tree.root_node.has_error and language == "Java":
        # "[a(x=1), b(y=2)]": Java has no comma operator; read the calls as statements
        tree = _parser(language).parse(";".join(_top_level_split(text.rstrip(";"))).encode() + b";")
    if tree.root_node.has_error:
        raise DecodeError(f"not {language} syntax")
    return tree.root_node


def _top_level_split(text: str) -> list[str]:
    parts, depth, quote, start, i = [], 0, "", 0, 0
    while i < len(text):
        ch = text[i]
        if quote:
            if ch == "\\":
                i += 1
            elif ch == quote:
                quote = ""
        elif ch in "\"'":
            quote = ch
        elif ch in "([{":
            depth += 1
        elif ch in ")]}":
            depth -= 1
        elif ch == "," and depth == 0:
            parts.append(text[start:i])
            start = i + 1
        i += 1
    parts.append(text[start:])
    return parts


def _text(node: Any) -> str:
    return node.text.decode()


def _unquote(node: Any) -> str:
    """A string literal's value: its quotes dropped, its common escapes read (``\\"`` is ``"``)."""
    return _ESCAPE.sub(lambda m: _ESCAPED.get(m.group(1), m.group(1)), _text(node)[1:-1])


def _statements(root: Any) -> list[Any]:
    expressions = []
    for statement in root.named_children:
        if statement.type in _COMMENTS:
            continue
        if statement.type != "expression_statement" or not statement.named_children:
            raise DecodeError(f"{_text(statement)!r} is not a function call")
        expressions.append(statement.named_children[0])
    return expressions


def _named_args(arguments: Any, name: str) -> tuple[dict[str, Any], int]:
    args: dict[str, Any] = {}
    positional = 0
    for arg in arguments.named_children:
        if arg.type in _COMMENTS:
            continue
        left, op = arg.child_by_field_name("left"), arg.child_by_field_name("operator")
        if arg.type == "assignment_expression" and left is not None and left.type == "identifier":
            if op is not None and _text(op) != "=":
                raise DecodeError(f"{name}: {_text(arg)!r} is not an argument")
            key = _text(left)
            if key in args:
                raise DecodeError(f"{name} names argument {key!r} twice")
            args[key] = arg.child_by_field_name("right")
        else:
            positional += 1
    return args, positional


# -- Java --------------------------------------------------------------------------------------------


def decode_java(text: str) -> list[Call]:
    root = _parse(text, "Java")
    calls = []
    for expression in _statements(root) if root is not None else []:
        if expression.type != "method_invocation":
            raise DecodeError(f"{_text(expression)!r} is not a method call")
        name = _text(expression.child_by_field_name("name"))
        owner = expression.child_by_field_name("object")
        if owner is not None:
            name = f"{_SPACE.sub('', _text(owner))}.{name}"
        args, positional = _named_args(expression.child_by_field_name("arguments"), name)
        calls.append(Call(name, args, positional))
    return calls


def _java(node: Any, declared: str, items: str | None) -> Any:
    t = _SPACE.sub("", _text(node))
    if declared in ("byte", "short", "integer"):
        return int(t) if _INT.fullmatch(t) else _java_text(node)
    if declared == "long":
        return int(t[:-1]) if _LONG.fullmatch(t) else _java_text(node)
    if declared == "float":
        return float(t[:-1]) if _JAVA_FLOAT.fullmatch(t) else _java_text(node)
    if declared == "double":
        return float(t) if _JAVA_DOUBLE.fullmatch(t) else _java_text(node)
    if declared == "boolean":
        return t == "true" if t in ("true", "false") else _java_text(node)
    if declared == "Array" and node.type == "array_creation_expression":
        initializer = node.child_by_field_name("value")
        if initializer is not None:
            return [_java_element(e, items) for e in initializer.named_children if e.type not in _COMMENTS]
    if declared == "ArrayList" and _created_type(node) == "ArrayList":
        elements = _array_list(node)
        if elements is not None:
            return [_java_element(e, items) for e in elements]
    if declared == "HashMap" and _created_type(node) == "HashMap":
        entries = _initializer_calls(node, "put")
        if entries is not None:
            return {_java_text(k): _java_generic(v) for k, v in (e[:2] for e in entries if len(e) >= 2)}
    return _java_text(node)


def _java_text(node: Any) -> str:
    """A string or char literal without its quotes; any other code as written."""
    if node.type in ("string_literal", "character_literal"):
        return _unquote(node)
    return _text(node)


def _java_element(node: Any, items: str | None) -> Any:
    # an element of type "any" reads as the literal it is (42, true, "a"), as the ground truth writes it
    return _java(node, items, None) if items and items != "any" else _java_generic(node)


def _java_generic(node: Any) -> Any:
    """An element whose type is not declared: read as the literal it is."""
    if node.type in ("string_literal", "character_literal"):
        return _unquote(node)
    t = _SPACE.sub("", _text(node))
    if t in ("true", "false"):
        return t == "true"
    if _LONG.fullmatch(t):
        return int(t[:-1])
    if _JAVA_FLOAT.fullmatch(t):
        return float(t[:-1])
    if _INT.fullmatch(t):
        return int(t)
    if _JAVA_DOUBLE.fullmatch(t):
        return float(t)
    return _text(node)


def _created_type(node: Any) -> str | None:
    if node.type != "object_creation_expression":
        return None
    kind = node.child_by_field_name("type")
    if kind is not None and kind.type == "generic_type":
        kind = kind.named_children[0]
    return _text(kind).rsplit(".", 1)[-1] if kind is not None else None


def _array_list(node: Any) -> list[Any] | None:
    """``new ArrayList<>(Arrays.asList(a, b))``, ``new ArrayList<>() {{ add(a); add(b); }}`` or
    ``new ArrayList<>()``: the elements' nodes."""
    arguments = [a for a in node.child_by_field_name("arguments").named_children if a.type not in _COMMENTS]
    if len(arguments) == 1 and arguments[0].type == "method_invocation":
        inner = arguments[0]
        if _text(inner.child_by_field_name("name")) == "asList":
            return [
                a for a in inner.child_by_field_name("arguments").named_children if a.type not in _COMMENTS
            ]
        return None
    if arguments:
        return None
    entries = _initializer_calls(node, "add")
    return [e[0] for e in entries if e] if entries is not None else None


def _initializer_calls(node: Any, method: str) -> list[list[Any]] | None:
    """The arguments of each ``method(...)`` call in an anonymous class's initializer block
    (``new HashMap<>() {{ put("k", v); }}``); [] for a plain ``new X<>()``; None for anything else."""
    body = next((c for c in node.named_children if c.type == "class_body"), None)
    if body is None:
        arguments = node.child_by_field_name("arguments")
        return [] if arguments is not None and not arguments.named_children else None
    found = []
    for block in body.named_children:
        if block.type != "block":
            continue
        for statement in block.named_children:
            call = statement.named_children[0] if statement.named_children else None
            if call is None or call.type != "method_invocation":
                continue
            if _text(call.child_by_field_name("name")) == method:
                found.append([a for a in call.child_by_field_name("arguments").named_children])
    return found


# -- JavaScript --------------------------------------------------------------------------------------


def decode_javascript(text: str) -> list[Call]:
    root = _parse(text, "JavaScript")
    expressions = []
    for expression in _statements(root) if root is not None else []:
        expressions.extend(_sequence(expression))
    calls = []
    for expression in expressions:
        if expression.type != "call_expression":
            raise DecodeError(f"{_text(expression)!r} is not a function call")
        function = expression.child_by_field_name("function")
        if function.type not in ("identifier", "member_expression"):
            raise DecodeError(f"{_text(function)!r} is not a function name")
        name = _SPACE.sub("", _text(function))
        arguments = expression.child_by_field_name("arguments")
        if arguments is None or arguments.type != "arguments":
            raise DecodeError(f"{_text(expression)!r} is not a function call")
        args, positional = _named_args(arguments, name)
        calls.append(Call(name, args, positional))
    return calls


def _sequence(node: Any) -> list[Any]:
    """``a(x=1), b(y=2)`` is one JavaScript sequence expression: its calls."""
    if node.type == "sequence_expression":
        return [n for child in node.named_children for n in _sequence(child)]
    if node.type == "parenthesized_expression" and len(node.named_children) == 1:
        return _sequence(node.named_children[0])
    return [node]


def _javascript(node: Any, declared: str, items: str | None) -> Any:
    t = _SPACE.sub("", _text(node))
    if declared == "integer":
        return int(t) if _INT.fullmatch(t) else _js_text(node)
    if declared == "float":
        return float(t) if _JS_FLOAT.fullmatch(t) else _js_text(node)
    if declared == "Bigint":
        return int(t[:-1]) if _BIGINT.fullmatch(t) else _js_text(node)
    if declared == "Boolean":
        return t == "true" if t in ("true", "false") else _js_text(node)
    if declared == "dict" and node.type == "object":
        return _js_object(node)
    if declared == "array":
        elements = _js_array(node)
        if elements is not None:
            typed = items is not None and items != "any"  # an element of type any is the literal it is
            return [_javascript(e, items, None) if typed else _js_generic(e) for e in elements]
    return _js_text(node)


def _js_text(node: Any) -> str:
    if node.type in ("string", "template_string"):
        return _unquote(node)
    return _text(node)


def _js_array(node: Any) -> list[Any] | None:
    if node.type == "array":
        return [e for e in node.named_children if e.type not in _COMMENTS]
    if node.type == "new_expression":
        constructor = node.child_by_field_name("constructor")
        arguments = node.child_by_field_name("arguments")
        if constructor is not None and _text(constructor) == "Array" and arguments is not None:
            return [e for e in arguments.named_children if e.type not in _COMMENTS]
    return None


def _js_object(node: Any) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for member in node.named_children:
        if member.type == "pair":
            key = member.child_by_field_name("key")
            out[_js_text(key)] = _js_generic(member.child_by_field_name("value"))
        elif member.type == "shorthand_property_identifier":
            out[_text(member)] = _text(member)
    return out


def _js_generic(node: Any) -> Any:
    if node.type in ("string", "template_string"):
        return _unquote(node)
    if node.type in ("true", "false"):
        return node.type == "true"
    if node.type == "object":
        return _js_object(node)
    elements = _js_array(node)
    if elements is not None:
        return [_js_generic(e) for e in elements]
    t = _SPACE.sub("", _text(node))
    if node.type == "number" or (node.type == "unary_expression" and _JS_FLOAT.fullmatch(t)):
        for parse in (int, float):
            try:
                return parse(t)
            except ValueError:
                continue
    return _text(node)


def convert(value: Any, declared: str, items: str | None, language: str) -> Any:
    """An argument's syntax node read as a Python value of the parameter's declared type (BFCL's
    converters); a value that is not of that form is its source text."""
    if not hasattr(value, "type") or not hasattr(value, "text"):
        return value
    try:
        return _java(value, declared, items) if language == "Java" else _javascript(value, declared, items)
    except RecursionError:
        return _text(value)  # nested deeper than Python recurses: compared as written (and so no match)
