"""Evaluate the HCL expressions of terraform/ that build strings (filters), as python-hcl2 hands them over.

python-hcl2 parses the files but leaves expressions as text: a template string keeps its quotes and
``${…}`` interpolations, any other expression comes as ``${…}``. This evaluates the subset the module
uses to build its Logging filters: template strings (``\\"`` escapes, ``${expr}``, ``$${`` for a literal
``${``), references (``local.x``, ``var.x``, ``each.key``, ``each.value.name``, loop variables, ``.attr``
and ``[index]``), list literals, object literals (``{name = expr, …}``), ``for`` expressions over maps
(with an optional ``if``), and the functions ``join``, ``sort``, ``keys`` and ``length``. Anything else raises ValueError, so a filter built
some other way is noticed rather than guessed.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import hcl2

FUNCTIONS: dict[str, Callable[..., Any]] = {
    "join": lambda sep, items: sep.join(items),
    "sort": lambda items: sorted(items),
    "keys": lambda mapping: sorted(mapping),
    "length": len,
}


class Locals(Mapping):
    """``local.*``, each evaluated on first use (locals refer to one another)."""

    def __init__(self, raw: dict[str, Any], scope: dict[str, Any], given: dict[str, Any]) -> None:
        self._raw, self._scope, self._done = raw, scope, dict(given)

    def __getitem__(self, name: str) -> Any:
        if name not in self._done:
            self._done[name] = evaluate(self._raw[name], self._scope)
        return self._done[name]

    def __iter__(self):
        return iter({**self._raw, **self._done})

    def __len__(self) -> int:
        return len({**self._raw, **self._done})


def module(directory: Path) -> dict[str, list]:
    """Every top-level block of the module's .tf files, merged by block type (python-hcl2's shape)."""
    merged: dict[str, list] = {}
    for path in sorted(directory.glob("*.tf")):
        with path.open() as handle:
            for key, items in hcl2.load(handle).items():
                merged.setdefault(key, []).extend(items)
    return merged


def scope(directory: Path, given_locals: dict[str, Any], variables: dict[str, Any] | None = None) -> dict:
    """``var`` (the defaults, then ``variables``) and ``local`` (``given_locals`` for those read from data)."""
    blocks = module(directory)
    defaults = {
        _unquote(name): evaluate(body.get("default"), {})
        for item in blocks.get("variable", [])
        for name, body in item.items()
        if not name.startswith("__")
    }
    names = {}
    for item in blocks.get("locals", []):
        names.update({k: v for k, v in item.items() if not k.startswith("__")})
    result: dict[str, Any] = {"var": {**defaults, **(variables or {})}}
    result["local"] = Locals(names, result, given_locals)
    return result


def resources(directory: Path, rtype: str) -> dict[str, dict]:
    found = {}
    for item in module(directory).get("resource", []):
        for kind, named in item.items():
            if _unquote(kind) == rtype:
                found.update({_unquote(k): v for k, v in named.items()})
    return found


def evaluate(value: Any, names: dict[str, Any]) -> Any:
    """The value of an attribute as python-hcl2 returns it."""
    if isinstance(value, list):
        return [evaluate(v, names) for v in value]
    if isinstance(value, dict):
        return {_unquote(k): evaluate(v, names) for k, v in value.items() if not k.startswith("__")}
    if not isinstance(value, str):
        return value
    if value.startswith('"'):
        parser = _Parser(value, names)
        result = parser.template()
        parser.end()
        return result
    if value.startswith("${") and value.endswith("}"):
        parser = _Parser(value[2:-1], names)
        result = parser.expression()
        parser.end()
        return result
    return value


def _unquote(text: str) -> str:
    return text[1:-1] if len(text) >= 2 and text[0] == text[-1] == '"' else text


class _Parser:
    def __init__(self, text: str, names: dict[str, Any]) -> None:
        self.text, self.at, self.names = text, 0, names

    def end(self) -> None:
        self._space()
        if self.at != len(self.text):
            raise ValueError(f"unsupported HCL at {self.text[self.at : self.at + 40]!r}")

    def _space(self) -> None:
        while self.at < len(self.text) and self.text[self.at] in " \t\n\r":
            self.at += 1

    def _see(self, literal: str) -> bool:
        self._space()
        return self.text.startswith(literal, self.at)

    def _expect(self, literal: str) -> None:
        if not self._see(literal):
            raise ValueError(f"expected {literal!r} at {self.text[self.at : self.at + 40]!r}")
        self.at += len(literal)

    def _name(self) -> str:
        self._space()
        match = re.compile(r"[A-Za-z_][\w-]*").match(self.text, self.at)
        if not match:
            raise ValueError(f"expected a name at {self.text[self.at : self.at + 40]!r}")
        self.at = match.end()
        return match.group(0)

    def template(self) -> str:
        """A quoted template string, from its opening quote to its closing one."""
        self._expect('"')
        out = []
        while True:
            if self.at >= len(self.text):
                raise ValueError(f"unterminated string in {self.text!r}")
            char = self.text[self.at]
            if char == '"':
                self.at += 1
                return "".join(out)
            if char == "\\":
                escaped = self.text[self.at + 1]
                out.append({"n": "\n", "t": "\t"}.get(escaped, escaped))
                self.at += 2
            elif self.text.startswith("$${", self.at):
                out.append("${")
                self.at += 3
            elif self.text.startswith("${", self.at):
                self.at += 2
                value = self.expression()
                self._expect("}")
                out.append(str(value).lower() if isinstance(value, bool) else str(value))
            else:
                out.append(char)
                self.at += 1

    def expression(self) -> Any:
        left = self._postfix(self._primary())
        if self._see(">") and not self._see(">="):
            self._expect(">")
            return left > self._postfix(self._primary())
        return left

    def _primary(self) -> Any:
        self._space()
        if self._see('"'):
            return self.template()
        if self._see("["):
            return self._list()
        if self._see("{"):
            return self._map()
        if self._see("("):
            self._expect("(")
            value = self.expression()
            self._expect(")")
            return value
        number = re.compile(r"-?\d+(?:\.\d+)?").match(self.text, self.at)
        if number:
            self.at = number.end()
            return float(number.group(0)) if "." in number.group(0) else int(number.group(0))
        name = self._name()
        if name in ("true", "false"):
            return name == "true"
        if self._see("("):
            self._expect("(")
            args = []
            while not self._see(")"):
                args.append(self.expression())
                if self._see(","):
                    self._expect(",")
            self._expect(")")
            if name not in FUNCTIONS:
                raise ValueError(f"unsupported function {name}()")
            return FUNCTIONS[name](*args)
        if name not in self.names:
            raise ValueError(f"unknown name {name!r}")
        return self.names[name]

    def _postfix(self, value: Any) -> Any:
        while True:
            if self._see(".") and not self._see(".."):
                self._expect(".")
                value = value[self._name()]
            elif self._see("["):
                self._expect("[")
                key = self.expression()
                self._expect("]")
                value = value[key]
            else:
                return value

    def _for(self, closing: str) -> Any:
        self._expect("for")
        first = self._name()
        second = None
        if self._see(","):
            self._expect(",")
            second = self._name()
        self._expect("in")
        source = self.expression()
        self._expect(":")
        start = self.at
        items = source.items() if isinstance(source, Mapping) else enumerate(source)
        results = []
        for key, item in items:
            names = {**self.names, **({first: key, second: item} if second else {first: item})}
            self.at = start
            inner = _Parser(self.text, names)
            inner.at = start
            produced = inner.expression()
            mapped = None
            if closing == "}":
                inner._expect("=>")
                mapped = inner.expression()
            keep = True
            if inner._see("if"):
                inner._expect("if")
                keep = bool(inner.expression())
            inner._expect(closing)
            end = inner.at
            if keep:
                results.append((produced, mapped))
        if not results:  # nothing to iterate: skip the body by parsing it once with no names bound
            raise ValueError("a for expression over nothing is not supported here")
        self.at = end
        return [p for p, _ in results] if closing == "]" else dict(results)

    def _list(self) -> list:
        self._expect("[")
        if self._see("for "):
            return self._for("]")
        items = []
        while not self._see("]"):
            items.append(self.expression())
            if self._see(","):
                self._expect(",")
        self._expect("]")
        return items

    def _map(self) -> dict:
        self._expect("{")
        if self._see("for "):
            return self._for("}")
        # an object literal as python-hcl2 writes it back: {name = expr, name = expr}
        found = {}
        while not self._see("}"):
            name = self._name()
            self._expect("=")
            found[name] = self.expression()
            if self._see(","):
                self._expect(",")
        self._expect("}")
        return found
