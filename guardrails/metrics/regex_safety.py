"""Static check of user-supplied regexes for catastrophic backtracking (ReDoS).

Canary ``pattern`` regexes are matched against model output, which nobody controls; a pattern
such as ``(a+)+$`` takes time exponential in the answer's length on a near-miss. Python's
``re`` has no match timeout, so :func:`backtracking_risk` inspects the parsed pattern
(``re._parser``, the tree ``re.compile`` itself builds) and names the construct that can
backtrack exponentially:

* **nested quantifier** — a repeat that can run more than once (``+``, ``*``, ``{2,}``,
  ``{1,5}``) whose body contains an unbounded repeat: ``(a+)+``, ``(a*)*``, ``(\\w+\\s?)+$``;
* **ambiguous alternation under a repeat** — an unbounded repeat over alternatives that can
  be empty or start with the same character: ``(a|a)*``, ``(a|ab)*``, ``(\\d|x)+``.

Possessive repeats (``a++``) and atomic groups (``(?>...)``) never backtrack into their body
and are accepted. The check is deliberately conservative: a few safe patterns (``(ab+c)+``)
are refused too; bound the inner repeat (``\\w{1,50}``) or make it possessive.
"""

from __future__ import annotations

import importlib
import sys
from typing import Any

__all__ = ["backtracking_risk"]

# the parser ``re.compile`` uses (``re._parser`` since 3.11, ``sre_parse`` before); typeshed
# does not describe it, hence ``Any``
_p: Any = importlib.import_module("re._parser" if sys.version_info >= (3, 11) else "sre_parse")
_c: Any = importlib.import_module(
    "re._constants" if sys.version_info >= (3, 11) else "sre_constants"
)

_REPEATS = {_c.MAX_REPEAT, _c.MIN_REPEAT}
_UNBOUNDED = _c.MAXREPEAT


def backtracking_risk(pattern: str) -> str | None:
    """A short description of the risky construct in ``pattern``, or ``None`` when safe.

    Raises :class:`re.error` when ``pattern`` does not parse.
    """
    return _scan(list(_p.parse(pattern)), under_repeat=False)


def _scan(items: list[Any], *, under_repeat: bool) -> str | None:
    for op, av in items:
        found = _scan_item(op, av, under_repeat)
        if found:
            return found
    return None


def _scan_item(op: Any, av: Any, under_repeat: bool) -> str | None:
    if op in _REPEATS:
        _lo, hi, body = av
        if under_repeat and hi == _UNBOUNDED:
            return "nested quantifier (an unbounded repeat inside a repeated group)"
        repeats = hi > 1
        if repeats and hi == _UNBOUNDED and _ambiguous_branch(list(body)):
            return "alternation whose branches overlap (or can be empty) under a repeat"
        return _scan(list(body), under_repeat=under_repeat or repeats)
    if op is _c.SUBPATTERN:
        return _scan(list(av[-1]), under_repeat=under_repeat)
    if op is _c.BRANCH:
        for alt in av[1]:
            found = _scan(list(alt), under_repeat=under_repeat)
            if found:
                return found
        return None
    if op in (_c.ASSERT, _c.ASSERT_NOT):
        return _scan(list(av[1]), under_repeat=under_repeat)
    if op is _c.GROUPREF_EXISTS:
        return _scan(list(av[1]), under_repeat=under_repeat) or (
            _scan(list(av[2]), under_repeat=under_repeat) if av[2] is not None else None
        )
    # POSSESSIVE_REPEAT and ATOMIC_GROUP never backtrack into their body: safe by construction
    return None


def _ambiguous_branch(items: list[Any]) -> bool:
    """Whether a BRANCH directly in ``items`` (through groups) has overlapping alternatives."""
    for op, av in items:
        if op is _c.SUBPATTERN and _ambiguous_branch(list(av[-1])):
            return True
        if op is _c.BRANCH and _overlapping(av[1]):
            return True
    return False


def _overlapping(alternatives: list[Any]) -> bool:
    firsts: list[int] = []
    for alt in alternatives:
        alt = list(alt)
        if not alt or alt[0][0] is not _c.LITERAL:
            return True  # empty (optional) branch, or a class / wildcard start: may overlap
        firsts.append(alt[0][1])
    return len(set(firsts)) < len(firsts)
