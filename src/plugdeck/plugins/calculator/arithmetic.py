"""Exact arithmetic for the calculator plugin: a small recursive-descent parser and a tree walker.

Nothing is ever handed to eval/exec/compile: the input is read character by character into a
tree of `_Node` tuples, which is then walked. Values are `Fraction` (exact) or `float`
(approximate); anything that touches a float becomes a float. Every operation that could build
a huge number checks the size *before* computing, so hostile input fails fast with
`CalcError(kind="limit")`.

Conventions:
- error positions are 0-based character offsets into the input as given;
- '%' is always percent (x/100); 'mod' is modulo with Python's sign convention (the result
  has the sign of the divisor: -7 mod 3 = 2, 7 mod -3 = -2);
- calculator percentages: 200 + 15% = 230, 200 - 15% = 170, 15% more/less than 200 = 230/170;
- inside a function's argument list a comma separates arguments, so max(1,234) has two
  arguments; elsewhere (including inside plain parentheses) 2,340 is two thousand three hundred
  and forty.
"""

from __future__ import annotations

import math
import operator
import re
import sys
from dataclasses import dataclass
from decimal import MAX_EMAX, MIN_EMIN, Context, Decimal
from fractions import Fraction
from typing import NamedTuple, NoReturn

from ...errors import UserError

MAX_LENGTH = 1000  # characters of input
MAX_DEPTH = 100  # nesting of parentheses, function calls and exponents
# Tree height bounds the evaluator's recursion (2-3 Python frames per level); chains, signs and
# postfix operators are kept flat, so only nesting makes a tree tall.
_MAX_HEIGHT = 3 * MAX_DEPTH
MAX_BITS = 100_000  # size of any exact numerator or denominator (about 30,000 digits)
_MAX_ROUND_DIGITS = 1000
_HUGE = 10**1000  # exact values at least this big are shown in scientific notation

_ADD_OPS = {"+": "+", "-": "-", "−": "-"}
_MUL_OPS = {"*": "*", "×": "*", "·": "*", "/": "/", "÷": "/"}
_WORD_OPS = {"mod": 1, "of": 2, "more": 2, "less": 2}  # word operator -> precedence level
_LEVELS = 3  # 0: + -   1: * / mod   2: of, more than, less than
_KEYWORDS = set(_WORD_OPS) | {"than"}
_CONSTANTS = {"pi": math.pi, "e": math.e, "tau": math.tau}

_WORD = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_SNIPPET = re.compile(r"[A-Za-z0-9_.,]{1,20}")
_FRACTION_PART = r"(?:\.(?P<frac>[0-9]*))?(?:[eE](?P<exp>[+-]?[0-9]+))?"
# Thousands groups must be exactly three digits and end the digit run: "2,340" but not "2,34".
_NUMBER_GROUPED = re.compile(r"(?P<int>[0-9]{1,3}(?:,[0-9]{3})+(?![0-9])|[0-9]+)?" + _FRACTION_PART)
_NUMBER_PLAIN = re.compile(r"(?P<int>[0-9]+)?" + _FRACTION_PART)


class CalcError(UserError, ValueError):
    """A problem with an expression; str(err) is one sentence meant for a person.

    kind is "syntax", "limit", "math" or "name"; position is a 0-based character offset.
    """

    def __init__(self, message: str, kind: str, position: int | None = None):
        super().__init__(message)
        self.kind = kind
        self.position = position


def _fail(kind: str, pos: int | None, what: str, hint: str = "") -> NoReturn:
    where = "" if pos is None else f" at position {pos}"
    raise CalcError(what + where + (f"; {hint}" if hint else ""), kind, pos)


def _too_big(pos: int | None) -> NoReturn:
    _fail("limit", pos, f"the result would be too large (over {MAX_BITS:,} bits, about 30,000 digits)")


class _Node(NamedTuple):
    op: str  # "num", "neg", "pow", "post", "call" or "chain"
    pos: int  # where the node (or its operator) is in the input
    args: tuple
    height: int


def _node(op: str, pos: int, args: tuple, children: tuple[_Node, ...] = ()) -> _Node:
    height = 1 + max((child.height for child in children), default=0)
    if height > _MAX_HEIGHT:
        _fail("limit", pos, "the expression is nested too deeply")
    return _Node(op, pos, args, height)


# ---- parsing -------------------------------------------------------------------------------------


class _Parser:
    def __init__(self, text: str):
        self.s = text
        self.i = 0
        self.depth = 0
        self.in_args = [False]  # top: does a comma separate function arguments here?

    def parse_all(self) -> _Node:
        node = self._expression()
        if self._peek():
            self._stray()
        return node

    def _peek(self) -> str:
        """Skip whitespace; the next character, or "" at the end."""
        while self.i < len(self.s) and self.s[self.i].isspace():
            self.i += 1
        return self.s[self.i] if self.i < len(self.s) else ""

    def _expression(self) -> _Node:
        """Operands joined by binary operators; precedence is applied afterwards by _fold."""
        operands, ops = [self._unary()], []
        while (found := self._operator()) is not None:
            ops.append(found)
            operands.append(self._unary())
        return _fold(operands, ops, 0)

    def _operator(self) -> tuple[int, str, int] | None:
        """Consume a binary operator if one comes next: (level, op, position)."""
        ch, pos = self._peek(), self.i
        if ch in _ADD_OPS:
            self.i += 1
            return 0, _ADD_OPS[ch], pos
        if ch in _MUL_OPS and not self.s.startswith("**", pos):
            self.i += 1
            return 1, _MUL_OPS[ch], pos
        match = _WORD.match(self.s, pos)
        word = match[0].lower() if match else ""
        if word not in _WORD_OPS:
            return None
        self.i = match.end()
        if word in ("more", "less"):
            self._peek()
            than = _WORD.match(self.s, self.i)
            if not than or than[0].lower() != "than":
                _fail("syntax", self.i, f"expected 'than' after '{match[0]}'")
            self.i = than.end()
        return _WORD_OPS[word], word, pos

    def _enter(self, pos: int) -> None:
        """Count one level of nesting; parentheses and exponents are the only recursion."""
        self.depth += 1
        if self.depth > MAX_DEPTH:
            _fail("limit", pos, "the expression is nested too deeply", f"the limit is {MAX_DEPTH} levels")

    def _unary(self) -> _Node:
        """Signs, then an operand with its postfix operators, then an optional ^ exponent."""
        self._peek()
        pos, negative = self.i, False
        while self._peek() in _ADD_OPS:  # signs
            negative ^= self.s[self.i] != "+"
            self.i += 1
        node = self._postfix(self._primary())
        if self._peek() == "^" or self.s.startswith("**", self.i):
            op_pos = self.i
            self.i += 1 if self.s[self.i] == "^" else 2
            self._enter(op_pos)
            exponent = self._unary()  # right associative, and 2^-1 is allowed
            self.depth -= 1
            node = _node("pow", op_pos, (node, exponent), (node, exponent))
        return _node("neg", pos, (node,), (node,)) if negative else node

    def _postfix(self, node: _Node) -> _Node:
        ops = []
        while self._peek() in ("%", "!"):
            ops.append((self.s[self.i], self.i))
            self.i += 1
        return _node("post", node.pos, (node, tuple(ops)), (node,)) if ops else node

    def _primary(self) -> _Node:
        ch, pos = self._peek(), self.i
        if ch == "(":
            self.i += 1
            return self._group(pos, in_args=False)[0]
        if "0" <= ch <= "9" or (ch == "." and "0" <= self.s[pos + 1 : pos + 2] <= "9"):
            return self._number()
        match = _WORD.match(self.s, pos)
        if match:
            return self._name(match)
        if not ch:
            _fail("syntax", pos, "the expression ends too early", "expected a number, a name or '('")
        _fail("syntax", pos, f"expected a number, a name or '(' but found {ch!r}")

    def _number(self) -> _Node:
        pos = self.i
        pattern = _NUMBER_PLAIN if self.in_args[-1] else _NUMBER_GROUPED
        match = pattern.match(self.s, pos)
        self.i = match.end()
        fraction = match["frac"] or ""
        mantissa = int((match["int"] or "").replace(",", "") + fraction)
        scale = int(match["exp"] or 0) - len(fraction)
        if mantissa and abs(scale) > MAX_BITS // 3:  # 10**k has about 3.32*k bits
            _fail("limit", pos, "this number is too large or too small")
        value = mantissa * Fraction(10) ** scale if mantissa else Fraction(0)
        return _node("num", pos, (_fit(value, pos),))

    def _name(self, match: re.Match) -> _Node:
        name, pos = match[0].lower(), match.start()
        self.i = match.end()
        if name in _FUNCTIONS:
            if self._peek() != "(":
                _fail("syntax", pos, f"the function '{name}' needs parentheses", f"write {name}(...)")
            self.i += 1
            args = tuple(self._group(self.i - 1, in_args=True))
            _check_arity(name, len(args), pos)
            return _node("call", pos, (name, args), args)
        if name in _CONSTANTS:
            return _node("num", pos, (_CONSTANTS[name],))
        if name in _KEYWORDS:
            _fail("syntax", pos, f"unexpected word '{match[0]}'", "expected a number, a name or '('")
        known = ", ".join(sorted(_FUNCTIONS))
        if self._peek() == "(":
            _fail("name", pos, f"unknown function '{match[0]}'", f"known: {known}")
        _fail("name", pos, f"unknown name '{match[0]}'", f"known constants: e, pi, tau; functions: {known}")

    def _group(self, open_pos: int, in_args: bool) -> list[_Node]:
        """After '(' through the matching ')': one expression, or a function's arguments."""
        self._enter(open_pos)
        self.in_args.append(in_args)
        items = [] if in_args and self._peek() == ")" else [self._expression()]
        while in_args and self._peek() == ",":
            self.i += 1
            items.append(self._expression())
        self.in_args.pop()
        if self._peek() != ")":
            if self.i == len(self.s):
                _fail("syntax", open_pos, "this '(' is never closed", "add the missing ')'")
            self._stray()
        self.i += 1
        self.depth -= 1
        return items

    def _stray(self) -> NoReturn:
        """Fail on the character at self.i, which cannot follow a complete operand."""
        pos, ch = self.i, self.s[self.i]
        if ch == ")":
            _fail("syntax", pos, "unmatched ')'", "remove it or add a '(' before it")
        if ch == ",":
            _fail("syntax", pos, "unexpected ','", "commas separate function arguments or group digits as in 2,340")
        snippet = _SNIPPET.match(self.s, pos)
        if snippet or ch == "(":
            _fail("syntax", pos, f"missing operator before '{snippet[0] if snippet else ch}'")
        _fail("syntax", pos, f"unexpected character {ch!r}")


def _fold(operands: list[_Node], ops: list[tuple[int, str, int]], level: int) -> _Node:
    """Group 'a op b op c ...' into n-ary chain nodes; level 0 (+ -) binds loosest.

    Chains are flat so that a long sum like 1+1+...+1 does not make a deep tree.
    """
    if level == _LEVELS:
        return operands[0]
    pieces, joins, start = [], [], 0
    for k, (op_level, op, pos) in enumerate(ops):
        if op_level == level:
            pieces.append(_fold(operands[start : k + 1], ops[start:k], level + 1))
            joins.append((op, pos))
            start = k + 1
    pieces.append(_fold(operands[start:], ops[start:], level + 1))
    if not joins:
        return pieces[0]
    rest = tuple((op, pos, piece) for (op, pos), piece in zip(joins, pieces[1:]))
    return _node("chain", pieces[0].pos, (pieces[0], rest), tuple(pieces))


def _check_arity(name: str, count: int, pos: int) -> None:
    low, high = _FUNCTIONS[name][:2]
    if low <= count and (high is None or count <= high):
        return
    if high is None:
        wanted = f"at least {low}"
    else:
        wanted = str(low) if low == high else f"{low} to {high}"
    plural = "" if wanted == "1" else "s"
    hint = "inside a function, commas separate arguments (write 1000000, not 1,000,000)" if count > low else ""
    _fail("name", pos, f"{name}() takes {wanted} argument{plural} but got {count}", hint)


def parse(expression: str) -> _Node:
    """Parse without evaluating; raises CalcError for bad syntax, unknown names or size limits."""
    if not isinstance(expression, str):
        raise CalcError("the expression must be text", "syntax")
    if len(expression) > MAX_LENGTH:
        raise CalcError(f"the expression is too long ({len(expression)} characters; the limit is {MAX_LENGTH})", "limit")
    if not expression.strip():
        raise CalcError("the expression is empty", "syntax")
    try:
        return _Parser(expression).parse_all()
    except RecursionError:  # only when the caller itself is already deep in the stack
        raise CalcError("the expression is nested too deeply", "limit") from None


# ---- arithmetic ----------------------------------------------------------------------------------

Value = Fraction | float


def _fit(x: Fraction, pos: int | None) -> Fraction:
    if x.numerator.bit_length() > MAX_BITS or x.denominator.bit_length() > MAX_BITS:
        _too_big(pos)
    return x


def _float_range(pos: int | None, side: str = "large") -> NoReturn:
    limit = "above about 1.8e308" if side == "large" else "below about 1e-308"
    _fail("limit", pos, f"a number is too {side} for approximate (floating-point) arithmetic, {limit}")


def _float(x: Value, pos: int | None) -> float:
    try:
        return float(x)
    except OverflowError:
        _float_range(pos)


def _finite(x: float, pos: int | None) -> float:
    if not math.isfinite(x):
        _float_range(pos)
    return x


def _combine(a: Value, b: Value, pos: int, fn) -> Value:
    if isinstance(a, Fraction) and isinstance(b, Fraction):
        return _fit(fn(a, b), pos)
    try:
        return _finite(fn(_float(a, pos), _float(b, pos)), pos)
    except ZeroDivisionError:  # b is not zero (that was checked), but it is below the float range
        _float_range(pos, "small")


def _mul(a: Value, b: Value, pos: int) -> Value:
    if isinstance(a, Fraction) and isinstance(b, Fraction):
        if (a.numerator.bit_length() + b.numerator.bit_length() > MAX_BITS
                or a.denominator.bit_length() + b.denominator.bit_length() > MAX_BITS):
            _too_big(pos)
    return _combine(a, b, pos, operator.mul)


def _div(a: Value, b: Value, pos: int) -> Value:
    if b == 0:
        _fail("math", pos, "division by zero")
    if isinstance(a, Fraction) and isinstance(b, Fraction):
        return _mul(a, 1 / b, pos)
    return _combine(a, b, pos, operator.truediv)


def _mod(a: Value, b: Value, pos: int) -> Value:
    if b == 0:
        _fail("math", pos, "modulo by zero (division by zero)")
    return _combine(a, b, pos, operator.mod)


def _apply(op: str, a: Value, b: Value, a_is_pct: bool, b_is_pct: bool, pos: int) -> Value:
    """One step of a chain; the percentage flags give calculator semantics (200 + 15% = 230)."""
    if op == "+":
        return _mul(a, 1 + b, pos) if b_is_pct else _combine(a, b, pos, operator.add)
    if op == "-":
        return _mul(a, 1 - b, pos) if b_is_pct else _combine(a, b, pos, operator.sub)
    if op in ("*", "of"):
        return _mul(a, b, pos)
    if op == "/":
        return _div(a, b, pos)
    if op == "mod":
        return _mod(a, b, pos)
    if op == "more":
        return _mul(b, 1 + a, pos) if a_is_pct else _combine(b, a, pos, operator.add)
    return _mul(b, 1 - a, pos) if a_is_pct else _combine(b, a, pos, operator.sub)  # "less than"


def _int_pow(a: Fraction, n: int, pos: int) -> Fraction:
    if a in (0, 1, -1):  # cheap whatever the exponent
        return a**n
    if max(a.numerator.bit_length(), a.denominator.bit_length()) * abs(n) > MAX_BITS:
        _too_big(pos)
    return a**n


def _iroot(n: int, q: int) -> int | None:
    """The integer r with r**q == n, or None (n >= 0, q >= 2)."""
    if n < 2:
        return n
    if q >= n.bit_length():  # then 1 < root < 2
        return None
    # Start a little above the root (the float estimate is good to ~2**-37), so that
    # Newton's method descends to the floor of the root in a few steps.
    log2_root = math.log2(n) / q
    shift = max(0, int(log2_root) - 52)
    r = (int(2 ** (log2_root - shift)) + 1) << shift
    r += (r >> 20) + 1
    while True:
        s = ((q - 1) * r + n // r ** (q - 1)) // q
        if s >= r:
            return r if r**q == n else None
        r = s


def _approx_pow(a: Value, b: Value, pos: int) -> float:
    try:
        return _finite(math.pow(_float(a, pos), _float(b, pos)), pos)
    except OverflowError:
        _float_range(pos)
    except ValueError:
        if a > 0:  # a positive base too small for a float became 0.0, and 0.0**-x fails
            _float_range(pos, "small")
        _fail("math", pos, "a negative number raised to a non-integer power has no real value")


def _power(a: Value, b: Value, pos: int) -> Value:
    if a == 0 and b < 0:
        _fail("math", pos, "0 raised to a negative power is a division by zero")
    if isinstance(b, float):
        return _approx_pow(a, b, pos)
    p, q = b.numerator, b.denominator
    if q == 1:
        return _int_pow(a, p, pos) if isinstance(a, Fraction) else _approx_pow(a, b, pos)
    # a**(p/q) = (a**(1/q))**p, real for a negative base only when q is odd
    if a < 0 and q % 2 == 0:
        _fail("math", pos, "a negative number has no real even root (complex numbers are not supported)")
    sign = -1 if a < 0 and p % 2 else 1
    if isinstance(a, Fraction):
        num, den = _iroot(abs(a.numerator), q), _iroot(a.denominator, q)
        if num is not None and den is not None:
            return sign * _int_pow(Fraction(num, den), p, pos)
    return sign * _approx_pow(abs(a), b, pos)


def _whole(x: Value, pos: int, what: str) -> int:
    if isinstance(x, float) and x.is_integer():
        return int(x)
    if isinstance(x, Fraction) and x.denominator == 1:
        return x.numerator
    _fail("math", pos, f"{what} needs a whole number")


def _like(result: Fraction, inputs: list[Value], pos: int) -> Value:
    """An exactly computed result, made a float if any input was approximate."""
    if all(isinstance(x, Fraction) for x in inputs):
        return _fit(result, pos)
    return _float(result, pos)


def _factorial(x: Value, pos: int) -> Value:
    n = _whole(x, pos, "factorial")
    if n < 0:
        _fail("math", pos, "the factorial of a negative number is undefined")
    # lgamma(n + 1) = ln(n!): check the size before computing it
    if n > 10**6 or math.lgamma(n + 1) / math.log(2) > MAX_BITS:
        _too_big(pos)
    return _like(Fraction(math.factorial(n)), [x], pos)


def _ln(x: Value) -> float:
    """Natural log of a positive value, even an exact one outside the float range."""
    if isinstance(x, float):
        return math.log(x)
    try:
        f = float(x)
    except OverflowError:
        f = 0.0
    if f >= sys.float_info.min:
        return math.log(f)
    return math.log(x.numerator) - math.log(x.denominator)


def _log(x: Value, base: Value | None, pos: int) -> Value:
    """Log of x (natural when base is None); exact when an integer answer checks out."""
    if x <= 0:
        _fail("math", pos, "the logarithm of zero or a negative number is undefined")
    if base is None:
        return Fraction(0) if x == 1 and isinstance(x, Fraction) else _ln(x)
    if base <= 0 or base == 1:
        _fail("math", pos, "a logarithm base must be positive and not 1")
    ln_base = _ln(base)
    if ln_base == 0:
        _fail("limit", pos, "the logarithm base is too close to 1 to compute")
    approx = _ln(x) / ln_base
    if isinstance(x, Fraction) and isinstance(base, Fraction):
        n = round(approx)
        # |base**n| >= 2**(|n|*(bits-1)); beyond MAX_BITS it cannot equal x, so skip computing it
        bits = max(base.numerator.bit_length(), base.denominator.bit_length())
        if abs(n) * (bits - 1) <= MAX_BITS and base**n == x:
            return Fraction(n)
    return approx


def _round(args: list[Value], pos: int) -> Value:
    """Round half away from zero, exactly (round(2.5) = 3, round(1.005, 2) = 1.01)."""
    x = args[0]
    digits = _whole(args[1], pos, "round's number of digits") if len(args) > 1 else 0
    if abs(digits) > _MAX_ROUND_DIGITS:
        _fail("limit", pos, f"round() keeps at most {_MAX_ROUND_DIGITS} digits")
    scale = Fraction(10) ** digits
    y = Fraction(x) * scale  # Fraction(float) is exact
    rounded = math.floor(abs(y) + Fraction(1, 2)) * (1 if y >= 0 else -1)
    return _like(rounded / scale, [x], pos)


def _lcm(args: list[Value], pos: int) -> Value:
    ints = [_whole(x, pos, "lcm") for x in args]
    if sum(n.bit_length() for n in ints) > MAX_BITS:
        _too_big(pos)
    return _like(Fraction(math.lcm(*ints)), args, pos)


def _approx(fn, name: str):
    def call(args: list[Value], pos: int) -> float:
        try:
            return _finite(fn(*(_float(x, pos) for x in args)), pos)
        except OverflowError:
            _float_range(pos)
        except ValueError:
            _fail("math", pos, f"{name}() is undefined for this value")

    return call


def _root(args: list[Value], pos: int) -> Value:
    if args[1] == 0:
        _fail("math", pos, "the 0th root is undefined")
    return _power(args[0], 1 / args[1], pos)


def _exactly(fn):
    """A function computed exactly on the arguments, giving a float if any argument was one."""
    return lambda args, pos: _like(Fraction(fn(args)), args, pos)


# name -> (fewest arguments, most arguments or None, implementation(args, position))
_FUNCTIONS = {
    "sqrt": (1, 1, lambda a, p: _power(a[0], Fraction(1, 2), p)),
    "cbrt": (1, 1, lambda a, p: _power(a[0], Fraction(1, 3), p)),
    "root": (2, 2, _root),
    "abs": (1, 1, lambda a, p: abs(a[0])),
    "round": (1, 2, _round),
    "floor": (1, 1, _exactly(lambda a: math.floor(a[0]))),
    "ceil": (1, 1, _exactly(lambda a: math.ceil(a[0]))),
    "trunc": (1, 1, _exactly(lambda a: math.trunc(a[0]))),
    "min": (1, None, _exactly(min)),
    "max": (1, None, _exactly(max)),
    "exp": (1, 1, _approx(math.exp, "exp")),
    "ln": (1, 1, lambda a, p: _log(a[0], None, p)),
    "log": (1, 2, lambda a, p: _log(a[0], a[1] if len(a) > 1 else Fraction(10), p)),
    "log2": (1, 1, lambda a, p: _log(a[0], Fraction(2), p)),
    "log10": (1, 1, lambda a, p: _log(a[0], Fraction(10), p)),
    "sin": (1, 1, _approx(math.sin, "sin")),
    "cos": (1, 1, _approx(math.cos, "cos")),
    "tan": (1, 1, _approx(math.tan, "tan")),
    "asin": (1, 1, _approx(math.asin, "asin")),
    "acos": (1, 1, _approx(math.acos, "acos")),
    "atan": (1, 1, _approx(math.atan, "atan")),
    "factorial": (1, 1, lambda a, p: _factorial(a[0], p)),
    "gcd": (1, None, lambda a, p: _like(Fraction(math.gcd(*(_whole(x, p, "gcd") for x in a))), a, p)),
    "lcm": (1, None, _lcm),
}


# ---- evaluation ----------------------------------------------------------------------------------


def _is_pct(node: _Node) -> bool:
    """A bare percentage: an operand whose last postfix operator is '%'."""
    return node.op == "post" and node.args[1][-1][0] == "%"


def _eval(node: _Node) -> Value:
    return _EVALUATORS[node.op](node)


def _eval_post(node: _Node) -> Value:
    child, ops = node.args
    value = _eval(child)
    for op, pos in ops:
        value = _div(value, Fraction(100), pos) if op == "%" else _factorial(value, pos)
    return value


def _eval_chain(node: _Node) -> Value:
    first, rest = node.args
    value, value_is_pct = _eval(first), _is_pct(first)
    for op, pos, operand in rest:
        value = _apply(op, value, _eval(operand), value_is_pct, _is_pct(operand), pos)
        value_is_pct = False
    return value


_EVALUATORS = {
    "num": lambda n: n.args[0],
    "neg": lambda n: -_eval(n.args[0]),
    "pow": lambda n: _power(_eval(n.args[0]), _eval(n.args[1]), n.pos),
    "post": _eval_post,
    "call": lambda n: _FUNCTIONS[n.args[0]][2]([_eval(a) for a in n.args[1]], n.pos),
    "chain": _eval_chain,
}


# ---- results -------------------------------------------------------------------------------------


def _decimal_places(den: int) -> int | None:
    """Digits after the point in the exact decimal form of 1/den, or None if it never ends."""
    twos = (den & -den).bit_length() - 1
    rest = den >> twos
    fives = round(math.log(rest, 5)) if rest > 1 else 0
    return max(twos, fives) if 5**fives == rest else None


def _divide(x: Fraction, digits: int) -> Decimal:
    context = Context(prec=digits, Emax=MAX_EMAX, Emin=MIN_EMIN)
    return context.divide(Decimal(x.numerator), Decimal(x.denominator))


def _scientific(x: Fraction) -> str:
    return f"≈ {_divide(x, 15):.14e}"


def _int_text(n: int) -> str:
    return str(Decimal(n))  # unlike str(int), not limited to 4300 digits


def _float_text(x: float) -> str:
    text = f"{x:.15g}"
    return "0" if text == "-0" else text


def _exact_text(x: Fraction) -> str:
    num, den = x.numerator, x.denominator
    places = _decimal_places(den)
    if places is None:
        return _scientific(x) if max(abs(num), den) >= _HUGE else f"{_int_text(num)}/{_int_text(den)}"
    if places > 1000:
        return _scientific(x)
    scaled = abs(num) * (10**places // den)
    if scaled >= _HUGE:
        return _scientific(x)
    digits = _int_text(scaled).rjust(places + 1, "0")
    if places:
        digits = f"{digits[:-places]}.{digits[-places:]}"
    return "-" + digits if num < 0 else digits


@dataclass(frozen=True)
class CalcResult:
    expression: str
    value: Fraction | float
    exact: bool

    def text(self) -> str:
        """"421.5", "1/3", "1.4142135623731" (15 significant digits) or "≈ 1.00000000000000e+5000"."""
        return _exact_text(self.value) if self.exact else _float_text(self.value)

    def decimal(self) -> str | None:
        """Twelve significant digits of an exact value whose decimal form never ends, else None."""
        if not self.exact or _decimal_places(self.value.denominator) is not None:
            return None
        return str(_divide(self.value, 12))

    def to_dict(self) -> dict:
        out = {"expression": self.expression, "result": self.text(), "exact": self.exact}
        decimal = self.decimal()
        if decimal is not None:
            out["decimal"] = decimal
        if self.exact and self.value.denominator == 1 and abs(self.value.numerator) >= _HUGE:
            out["digits"] = Decimal(abs(self.value.numerator)).adjusted() + 1
        return out


def evaluate(expression: str) -> CalcResult:
    """Parse and compute exactly; raises CalcError (never anything else) for any bad input."""
    tree = parse(expression)
    try:
        value = _eval(tree)
    except RecursionError:  # only when the caller itself is already deep in the stack
        raise CalcError("the expression is nested too deeply", "limit") from None
    return CalcResult(expression.strip(), value, isinstance(value, Fraction))
