"""Expressions over parameters (``filters: make_divisible($c * $width)``): parsed by Python's ``ast``
and evaluated by walking a whitelist of node types, never ``eval``.

The grammar is the contract's: numbers, ``$name``, ``+ - * / // % **``, parentheses, comparisons,
``and``/``or``/``not``, ``A if C else B`` and the functions in :data:`FUNCTIONS`. Everything else
(names without ``$``, attributes, indexing, strings, lambdas, other calls) is refused before anything
is evaluated. Hostile input meets limits: the text's length, the tree's depth and size, and the size
of every number computed (a ``**`` is refused before it is computed where its result would be too
big), so no expression can hang or exhaust memory.

A value is an int, a float or a bool. Integral floats are handed on as ints (``$w * 1.5`` giving
48.0 fills ``filters``); other floats are :class:`Evaluated`, a float that remembers its expression,
so a slot that needs a whole number can quote it (see :func:`shown`).
"""
from __future__ import annotations

import ast
import math
import operator
import re

MAX_LENGTH = 500        # characters of one expression
MAX_DEPTH = 32          # nesting of the syntax tree
MAX_NODES = 400         # nodes of the syntax tree
MAX_MAGNITUDE = 10 ** 15  # |int| results (the loader's limit on written integers: 15 digits)
MAX_FLOAT = 1e300

_PARAM = re.compile(r"\$([A-Za-z_][A-Za-z0-9_]*)")
_MANGLE = "_cnnspec_param_"


class ExpressionError(Exception):
    """What is wrong with an expression, as one line (the caller adds where)."""


class Evaluated(float):
    """A non-integral float an expression gave, carrying its text for messages."""

    expression: str = ""
    where = None  # the Location where it is written, set by the expander

    def __new__(cls, value: float, expression: str):
        obj = super().__new__(cls, value)
        obj.expression = expression
        return obj

    def __reduce__(self):  # pickles (and deep-copies) as the plain float it is
        return (float, (float(self),))


def is_expression(value) -> bool:
    """A string containing '$' is an expression (a bare '$name' is the simplest one)."""
    return isinstance(value, str) and "$" in value


def shown(value) -> str:
    """A value as a message shows it: with the expression that gave it, where one did."""
    if isinstance(value, Evaluated):
        at = f", line {value.where.line}" if value.where is not None else ""
        return f"{float(value)!r} (from '{value.expression}'{at})"
    if isinstance(value, bool):
        return "true" if value else "false"
    return repr(value)


def _kind(value) -> str:
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, str):
        return f"the string '{value}'"
    if value is None:
        return "null"
    return "a list" if isinstance(value, list) else "a mapping"


def _number(value, what: str):
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ExpressionError(f"{what} needs a number, got {_kind(value)}")
    return value


def _checked(value):
    """Every result passes here: finite, not complex, and of bounded size."""
    if isinstance(value, complex):
        raise ExpressionError("the result is not a real number (a negative number to a fractional power)")
    if isinstance(value, bool):
        return value
    if isinstance(value, int):
        if abs(value) > MAX_MAGNITUDE:
            raise ExpressionError(f"a result is too large (more than {len(str(MAX_MAGNITUDE)) - 1} digits)")
        return value
    if isinstance(value, float):
        if not math.isfinite(value) or abs(value) > MAX_FLOAT:
            raise ExpressionError("a result is not a finite number")
        return value
    raise ExpressionError(f"a result is {_kind(value)}, not a number")


def _power(a, b):
    a, b = _number(a, "'**'"), _number(b, "'**'")
    if isinstance(a, int) and isinstance(b, int) and b >= 0 and abs(a) > 1:
        if b * math.log10(abs(a)) > 15.5:  # refused before it is computed: 10 ** 10 ** 9 would hang
            raise ExpressionError(f"{a} ** {b} is too large (more than 15 digits)")
    try:
        return a ** b
    except OverflowError:
        raise ExpressionError(f"{a} ** {b} is too large") from None
    except ZeroDivisionError:
        raise ExpressionError(f"{a} ** {b}: zero to a negative power") from None


def _arith(fn, symbol):
    def apply(a, b):
        a, b = _number(a, f"'{symbol}'"), _number(b, f"'{symbol}'")
        try:
            return fn(a, b)
        except ZeroDivisionError:
            raise ExpressionError(f"division by zero ({a!r} {symbol} {b!r})") from None
        except OverflowError:
            raise ExpressionError(f"{a!r} {symbol} {b!r} is too large") from None
    return apply


_BINARY = {
    ast.Add: _arith(operator.add, "+"), ast.Sub: _arith(operator.sub, "-"), ast.Mult: _arith(operator.mul, "*"),
    ast.Div: _arith(operator.truediv, "/"), ast.FloorDiv: _arith(operator.floordiv, "//"),
    ast.Mod: _arith(operator.mod, "%"), ast.Pow: _power,
}
_COMPARE = {ast.Eq: operator.eq, ast.NotEq: operator.ne, ast.Lt: operator.lt, ast.LtE: operator.le,
            ast.Gt: operator.gt, ast.GtE: operator.ge}
_SYMBOLS = {ast.Lt: "<", ast.LtE: "<=", ast.Gt: ">", ast.GtE: ">="}


def _to_int(value, what):
    try:
        return int(value)
    except (OverflowError, ValueError):
        raise ExpressionError(f"{what}({value!r}) is not a whole number") from None


def make_divisible(v, divisor=8, min_value=None):
    """torchvision's ``_make_divisible`` exactly (torchvision/models/_utils.py): round to the nearest
    multiple of ``divisor``, never below ``min_value`` (default: the divisor), and never more than 10%
    below ``v``."""
    v = _number(v, "make_divisible")
    divisor = _number(divisor, "make_divisible's divisor")
    if min_value is not None:
        min_value = _number(min_value, "make_divisible's min_value")
    if divisor <= 0:
        raise ExpressionError(f"make_divisible's divisor must be positive, got {divisor!r}")
    if min_value is None:
        min_value = divisor
    new_v = max(min_value, _to_int(v + divisor / 2, "int") // divisor * divisor)
    if new_v < 0.9 * v:  # make sure that rounding down does not go down by more than 10%
        new_v += divisor
    return new_v


def _round(x, digits=None):
    x = _number(x, "round")
    if digits is None:
        return _to_int(round(x), "round") if isinstance(x, float) else x
    digits = _number(digits, "round's digits")
    if not isinstance(digits, int) or not -20 <= digits <= 20:
        raise ExpressionError(f"round's digits must be a whole number from -20 to 20, got {digits!r}")
    return round(x, digits)


def _unary(fn, name):
    def apply(x):
        return fn(_number(x, name))
    return apply


def _extreme(fn, name):
    def apply(*values):
        if not values:
            raise ExpressionError(f"{name}() needs at least one value")
        return fn(_number(v, name) for v in values)
    return apply


FUNCTIONS = {
    "min": (_extreme(min, "min"), 1, 64),
    "max": (_extreme(max, "max"), 1, 64),
    "abs": (_unary(abs, "abs"), 1, 1),
    "round": (_round, 1, 2),           # half to even, as Python
    "floor": (_unary(lambda x: _to_int(math.floor(x), "floor"), "floor"), 1, 1),
    "ceil": (_unary(lambda x: _to_int(math.ceil(x), "ceil"), "ceil"), 1, 1),
    "int": (_unary(lambda x: _to_int(x, "int"), "int"), 1, 1),   # towards zero
    "make_divisible": (make_divisible, 1, 3),
}
_KEYWORDS = {"make_divisible": ("v", "divisor", "min_value"), "round": ("x", "ndigits")}


def _parse(text: str) -> ast.Expression:
    if len(text) > MAX_LENGTH:
        raise ExpressionError(f"an expression may be at most {MAX_LENGTH} characters, got {len(text)}")
    depth = deepest = 0
    for ch in text:
        depth += ch in "([{"
        depth -= ch in ")]}"
        deepest = max(deepest, depth)
    if deepest > MAX_DEPTH:
        raise ExpressionError(f"parentheses nest deeper than {MAX_DEPTH} levels")
    bad = re.search(r"\$(?![A-Za-z_])", text)
    if bad:
        raise ExpressionError("'$' must be followed by a parameter's name ($width)")
    source = _PARAM.sub(lambda m: _MANGLE + m.group(1), text)
    try:
        tree = ast.parse(source.strip(), mode="eval")
    except (SyntaxError, ValueError, RecursionError, MemoryError, OverflowError):
        raise ExpressionError("not a valid expression (numbers, $names, + - * / // % **, comparisons, "
                              "and/or/not, A if C else B, " + ", ".join(FUNCTIONS) + ")") from None
    _check_tree(tree)
    return tree


_ALLOWED = (ast.Expression, ast.BinOp, ast.UnaryOp, ast.BoolOp, ast.Compare, ast.IfExp, ast.Call, ast.Name,
            ast.Constant, ast.Load, ast.keyword, ast.And, ast.Or, ast.Not, ast.UAdd, ast.USub,
            *_BINARY, *_COMPARE)


def _check_tree(tree) -> None:
    """Refuse any node outside the grammar, and trees too deep or too big, before evaluating anything."""
    stack, count = [(tree, 0)], 0
    while stack:
        node, depth = stack.pop()
        count += 1
        if count > MAX_NODES:
            raise ExpressionError(f"the expression is too long (more than {MAX_NODES} parts)")
        if depth > MAX_DEPTH:
            raise ExpressionError(f"the expression nests deeper than {MAX_DEPTH} levels")
        if not isinstance(node, _ALLOWED):
            raise ExpressionError(f"{_describe_node(node)} is not part of the expression language")
        if isinstance(node, ast.Constant) and (isinstance(node.value, bool) or
                                               not isinstance(node.value, (int, float))):
            raise ExpressionError(f"{node.value!r} is not allowed: an expression holds numbers and $names")
        if isinstance(node, ast.Constant):
            _checked(node.value)  # 1e999 is inf; a 16-digit literal is past the limit
        if isinstance(node, ast.Name) and not node.id.startswith(_MANGLE):
            hint = f" (functions: {', '.join(FUNCTIONS)})" if node.id not in FUNCTIONS else " (call it with (...))"
            raise ExpressionError(f"'{node.id}' is not a parameter; write '${node.id}' for one{hint}")
        if isinstance(node, ast.Call):
            if not isinstance(node.func, ast.Name):
                raise ExpressionError(f"{_describe_node(node.func)} called is not part of the expression language; "
                                      f"the functions are {', '.join(FUNCTIONS)}")
            if node.func.id not in FUNCTIONS:
                raise ExpressionError(f"'{node.func.id}' is no function here; the functions are {', '.join(FUNCTIONS)}")
            for arg in node.args:
                stack.append((arg, depth + 1))
            for kw in node.keywords:
                if kw.arg is None or kw.arg not in _KEYWORDS.get(node.func.id, ()):
                    raise ExpressionError(f"{node.func.id}() takes no argument '{kw.arg}'")
                stack.append((kw.value, depth + 1))
            continue
        stack.extend((child, depth + 1) for child in ast.iter_child_nodes(node))


def _describe_node(node) -> str:
    names = {ast.Attribute: "an attribute ('.')", ast.Subscript: "indexing ('[...]')", ast.Lambda: "a lambda",
             ast.List: "a list", ast.Tuple: "a tuple (',')", ast.Dict: "a mapping", ast.Set: "a set",
             ast.JoinedStr: "an f-string", ast.Starred: "'*'", ast.NamedExpr: "':='",
             ast.ListComp: "a comprehension", ast.GeneratorExp: "a comprehension", ast.Await: "await"}
    for kind, text in names.items():
        if isinstance(node, kind):
            return text
    if isinstance(node, (ast.BitAnd, ast.BitOr, ast.BitXor, ast.LShift, ast.RShift, ast.Invert, ast.MatMult)):
        return "a bitwise operator"
    if isinstance(node, (ast.In, ast.NotIn, ast.Is, ast.IsNot)):
        return "'in'/'is'"
    return type(node).__name__


class _Evaluator:
    def __init__(self, params: dict):
        self.params = params

    def value(self, node):
        kind = type(node)
        if kind is ast.Constant:
            return node.value
        if kind is ast.Name:
            name = node.id[len(_MANGLE):]
            if name not in self.params:
                raise _Unknown(name)
            return self.params[name]
        if kind is ast.BinOp:
            return _checked(_BINARY[type(node.op)](self.value(node.left), self.value(node.right)))
        if kind is ast.UnaryOp:
            operand = self.value(node.operand)
            if isinstance(node.op, ast.Not):
                return not _boolean(operand, "'not'")
            operand = _number(operand, "'-'" if isinstance(node.op, ast.USub) else "'+'")
            return _checked(-operand if isinstance(node.op, ast.USub) else operand)
        if kind is ast.BoolOp:
            word = "'and'" if isinstance(node.op, ast.And) else "'or'"
            for sub in node.values:  # short-circuit, as Python
                result = _boolean(self.value(sub), word)
                if result is isinstance(node.op, ast.Or):
                    return result
            return result
        if kind is ast.Compare:
            left = self.value(node.left)
            for op, right_node in zip(node.ops, node.comparators):
                right = self.value(right_node)
                if type(op) in _SYMBOLS:
                    _number(left, f"'{_SYMBOLS[type(op)]}'")
                    _number(right, f"'{_SYMBOLS[type(op)]}'")
                if not _COMPARE[type(op)](left, right):
                    return False
                left = right
            return True
        if kind is ast.IfExp:
            return self.value(node.body) if _boolean(self.value(node.test), "'if'") else self.value(node.orelse)
        if kind is ast.Call:
            fn, low, high = FUNCTIONS[node.func.id]
            args = [self.value(a) for a in node.args]
            kwargs = {kw.arg: self.value(kw.value) for kw in node.keywords}
            n = len(args) + len(kwargs)
            if not low <= n <= high:
                want = str(low) if low == high else f"{low} to {high}"
                raise ExpressionError(f"{node.func.id}() takes {want} arguments, got {n}")
            if node.func.id == "round" and "ndigits" in kwargs:
                args.append(kwargs.pop("ndigits"))
            try:
                return _checked(fn(*args, **kwargs))
            except TypeError:
                raise ExpressionError(f"{node.func.id}(): wrong arguments") from None
        raise ExpressionError(f"{type(node).__name__} is not part of the expression language")  # unreachable


class _Unknown(Exception):
    def __init__(self, name):
        self.name = name


def _boolean(value, what):
    if not isinstance(value, bool):
        raise ExpressionError(f"{what} needs true or false, got {_kind(value)} ({shown(value)})")
    return value


def evaluate(text: str, params: dict):
    """The value of one expression; raises :class:`ExpressionError` (one line, no location), or
    :class:`UnknownParameter` for a ``$name`` that ``params`` lacks."""
    tree = _parse(text)
    try:
        result = _Evaluator(params).value(tree.body)
    except _Unknown as exc:
        raise UnknownParameter(exc.name) from None
    except RecursionError:  # bounded by MAX_DEPTH already; kept as a last guard
        raise ExpressionError(f"the expression nests deeper than {MAX_DEPTH} levels") from None
    if isinstance(result, (int, float)) and not isinstance(result, bool) and abs(result) > MAX_MAGNITUDE:
        raise ExpressionError(f"the result, {result:.6g}, is too large (more than 15 digits)")
    if isinstance(result, float) and not isinstance(result, bool):
        if result.is_integer():
            return int(result)
        return Evaluated(result, text)
    return result


class UnknownParameter(ExpressionError):
    def __init__(self, name: str):
        super().__init__(f"'${name}' is not a parameter")
        self.name = name
