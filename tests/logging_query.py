"""A small evaluator of the Cloud Logging query language, for the subset terraform/alerts.tf writes.

Written against https://cloud.google.com/logging/docs/view/logging-query-language (read 2026-12):

- "Boolean operators": AND and OR; "The NOT operator has the highest precedence, followed by OR and AND
  in that order", so ``a AND b OR c`` is ``a AND (b OR c)``; an omitted operator between comparisons is
  AND; lower-case ``and``/``or``/``not`` are search terms, not operators (refused here).
- "Comparisons": ``FIELD OP VALUE``; ``=``, ``!=``, ``>``, ``>=``, ``<``, ``<=``, and ``:`` ("has":
  "matches any substring in the log entry field"); a parenthesised Boolean combination of values
  applies the field and the operator to each (``logName=("a" OR "b")``).
- "Comparison operators": for strings, "Comparisons ignore letter case. Specifically, both operands are
  first normalized using NFKC_CF"; the substring operator is "handled like equality except that the
  right-hand operand need only equal some part of the left-hand field". Severity is an enum: "Inequality
  uses the underlying numeric values of the enumeration literals" (LogSeverity: DEFAULT 0 … EMERGENCY 800).
- "Missing fields": a missing payload or label field fails every comparison (and ``NOT`` of it succeeds);
  a field the LogEntry type defines is "defaulted" (compared as if present with its default value);
  ``FIELD:*`` tests presence.
- "Object and array types": an array field is compared member by member, joined with OR.

Anything else (global restrictions, regular expressions, functions) is refused with ValueError rather than
guessed: a filter that uses it needs this evaluator extended first.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from typing import Any

SEVERITIES = {"DEFAULT": 0, "DEBUG": 100, "INFO": 200, "NOTICE": 300, "WARNING": 400, "ERROR": 500,
              "CRITICAL": 600, "ALERT": 700, "EMERGENCY": 800}  # fmt: skip
# Fields whose absence is "missing" (maps, structs); every other LogEntry field is "defaulted".
_MISSING_ROOTS = ("jsonPayload", "protoPayload", "labels", "resource.labels", "metadata")
_TOKEN = re.compile(
    r"""\s*(?:(?P<string>"(?:[^"\\]|\\.)*")|(?P<op>!=|>=|<=|=~|!~|=|:|>|<)|(?P<paren>[()])"""
    r"""|(?P<word>[A-Za-z0-9_*][\w.*/%@-]*))"""
)


@dataclass(frozen=True)
class Token:
    kind: str  # string, op, paren, word
    text: str


def tokens(query: str) -> list[Token]:
    found, at = [], 0
    text = query.strip()
    while at < len(text):
        match = _TOKEN.match(text, at)
        if not match or match.end() == at:
            raise ValueError(f"cannot read the query at {text[at : at + 30]!r}")
        at = match.end()
        kind = match.lastgroup
        value = match.group(kind)
        if kind == "string":
            value = re.sub(r"\\(.)", r"\1", value[1:-1])
        found.append(Token(kind, value))
    return found


class Query:
    """A parsed filter; :meth:`matches` says whether a LogEntry (as JSON) passes it."""

    def __init__(self, text: str) -> None:
        self.text = text
        self._tokens = tokens(text)
        self._at = 0
        self._tree = self._conjunction(top=True)
        if self._at != len(self._tokens):
            raise ValueError(f"unexpected {self._peek().text!r} in {text!r}")

    def matches(self, entry: dict) -> bool:
        return _evaluate(self._tree, entry)

    # --- parsing, lowest precedence first: AND (explicit or omitted), OR, NOT

    def _peek(self) -> Token | None:
        return self._tokens[self._at] if self._at < len(self._tokens) else None

    def _take(self) -> Token:
        token = self._peek()
        if token is None:
            raise ValueError(f"the query ends too early: {self.text!r}")
        self._at += 1
        return token

    def _conjunction(self, top: bool = False) -> tuple:
        terms = [self._disjunction()]
        while (token := self._peek()) is not None and not (token.kind == "paren" and token.text == ")"):
            if token == Token("word", "AND"):
                self._take()
            terms.append(self._disjunction())  # an omitted operator is AND
        return ("and", terms) if len(terms) > 1 else terms[0]

    def _disjunction(self) -> tuple:
        terms = [self._negation()]
        while self._peek() == Token("word", "OR"):
            self._take()
            terms.append(self._negation())
        return ("or", terms) if len(terms) > 1 else terms[0]

    def _negation(self) -> tuple:
        if self._peek() == Token("word", "NOT"):
            self._take()
            return ("not", self._negation())
        return self._primary()

    def _primary(self) -> tuple:
        token = self._take()
        if token == Token("paren", "("):
            inner = self._conjunction()
            if self._take() != Token("paren", ")"):
                raise ValueError(f"unbalanced parentheses in {self.text!r}")
            return inner
        if token.kind != "word" or token.text in ("AND", "OR", "NOT"):
            raise ValueError(f"global restrictions are not supported here: {token.text!r} in {self.text!r}")
        if token.text.lower() in ("and", "or", "not"):
            raise ValueError(f"lower-case {token.text!r} is a search term, not an operator: {self.text!r}")
        operator = self._take()
        if operator.kind != "op" or operator.text in ("=~", "!~"):
            raise ValueError(f"unsupported comparison {token.text} {operator.text} in {self.text!r}")
        return ("compare", token.text, operator.text, self._value())

    def _value(self) -> Any:
        """A value, or a parenthesised Boolean combination of values (each compared with the same field)."""
        token = self._take()
        if token == Token("paren", "("):
            terms, joiner = [self._value()], None
            while (nxt := self._take()) != Token("paren", ")"):
                if nxt.kind != "word" or nxt.text not in ("AND", "OR") or joiner not in (None, nxt.text):
                    raise ValueError(f"unsupported value expression in {self.text!r}")
                joiner = nxt.text
                terms.append(self._value())
            return (joiner or "OR", terms)
        if token.kind in ("string", "word"):
            return token.text
        raise ValueError(f"expected a value, got {token.text!r} in {self.text!r}")


def _evaluate(tree: tuple, entry: dict) -> bool:
    kind = tree[0]
    if kind == "and":
        return all(_evaluate(t, entry) for t in tree[1])
    if kind == "or":
        return any(_evaluate(t, entry) for t in tree[1])
    if kind == "not":
        return not _evaluate(tree[1], entry)
    _, field, operator, value = tree
    if isinstance(value, tuple):  # logName=("a" OR "b")
        joiner, values = value
        results = (_evaluate(("compare", field, operator, v), entry) for v in values)
        return all(results) if joiner == "AND" else any(results)
    present, found = _lookup(entry, field)
    if operator == ":" and value == "*":
        return present
    if not present:
        if field.startswith(_MISSING_ROOTS):
            return False  # a missing field fails every comparison
        found = "DEFAULT" if field == "severity" else ""  # a LogEntry field is defaulted
    members = found if isinstance(found, list) else [found]
    return any(_compare(field, operator, member, value) for member in members)


def _lookup(entry: dict, field: str) -> tuple[bool, Any]:
    data: Any = entry
    for part in field.split("."):
        if not isinstance(data, dict) or part not in data:
            return False, None
        data = data[part]
    return True, data


def _fold(text: str) -> str:
    return unicodedata.normalize("NFKC", text).casefold()


def _compare(field: str, operator: str, found: Any, value: str) -> bool:
    if field == "severity":
        left, right = SEVERITIES.get(str(found).upper(), 0), SEVERITIES[value.upper()]
    elif isinstance(found, bool):
        left, right = found, value.lower() == "true"
    elif isinstance(found, (int, float)):
        left, right = float(found), float(value)
    elif isinstance(found, str):
        left, right = _fold(found), _fold(value)
    else:
        return False  # an object is not compared with a scalar
    if operator == ":":
        return isinstance(left, str) and right in left
    return {
        "=": left == right, "!=": left != right, ">": left > right, ">=": left >= right, "<": left < right,
        "<=": left <= right,
    }[operator]  # fmt: skip
