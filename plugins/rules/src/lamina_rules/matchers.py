"""Compiling a rule's ``pattern`` or ``keywords`` into one regular expression, once.

Patterns are user-supplied, so they run on the ``regex`` engine, whose matching functions take a
``timeout``: a pattern that backtracks catastrophically (``(a|aa)+$``) costs one call its
``pattern_timeout_seconds`` instead of a worker thread forever. Keywords are escaped literals
compiled into a prefix trie (linear, no timeout needed): hundreds of keywords cost about as much
as one.
"""

from __future__ import annotations

import functools
import re
from typing import Any

import regex

MAX_PATTERN_CHARS = 10_000
MAX_KEYWORDS = 10_000
MAX_KEYWORD_CHARS = 256


class PatternError(ValueError):
    """A pattern that cannot serve as a rule (does not compile, or matches the empty string)."""


@functools.lru_cache(maxsize=1024)
def compile_pattern(pattern: str, case_sensitive: bool) -> Any:
    """A compiled ``regex`` pattern (VERSION0: the syntax of Python's ``re``), or ``PatternError``."""
    if not pattern:
        raise PatternError("the pattern is empty; give a regular expression")
    if len(pattern) > MAX_PATTERN_CHARS:
        raise PatternError(f"the pattern has {len(pattern)} characters; at most {MAX_PATTERN_CHARS}")
    flags = regex.VERSION0 | (0 if case_sensitive else regex.IGNORECASE)
    try:
        compiled = regex.compile(pattern, flags)
    except regex.error as exc:
        raise PatternError(
            f"the pattern does not compile: {exc}; write a Python `re` regular expression"
        ) from None
    except (OverflowError, RecursionError, ValueError) as exc:  # absurd repeat counts, deep nesting
        raise PatternError(f"the pattern does not compile: {exc}") from None
    try:
        empty = compiled.search("", timeout=0.1) is not None
    except TimeoutError:
        empty = False
    if empty:
        raise PatternError(
            "the pattern matches the empty string, so it would flag every message; make it require "
            "at least one character (for example `+` instead of `*`)"
        )
    return compiled


def _trie_regex(words: list[str]) -> str:
    """One alternation sharing common prefixes: ``cat|car|dog`` -> ``(?:ca(?:t|r)|dog)``.

    A space in a keyword matches any run of whitespace, so "credit card" matches "credit\\ncard".
    """
    trie: dict[str, Any] = {}
    for word in words:
        node = trie
        for char in word:
            node = node.setdefault(char, {})
        node[""] = {}  # end of a keyword

    def render(node: dict[str, Any]) -> str:
        branches = [
            (r"\s+" if char == " " else re.escape(char)) + render(child)
            for char, child in sorted(node.items())
            if char != ""
        ]
        if not branches:
            return ""
        if "" in node:  # a keyword may end here, or go on along a branch
            return "(?:" + "|".join(branches) + ")?"
        return branches[0] if len(branches) == 1 else "(?:" + "|".join(branches) + ")"

    return render(trie)


def keyword_regex(keywords: list[str], case_sensitive: bool) -> Any:
    """Whole-word (or whole-phrase) matching of any keyword.

    "Whole" means no letter, digit or underscore right before or after, so ``c++`` and ``@admin``
    work and "ass" does not match "class". Whitespace inside a keyword matches any whitespace run;
    other characters match literally. Case-insensitive unless ``case_sensitive``.
    """
    if not keywords:
        raise PatternError("keywords is empty; list at least one keyword")
    if len(keywords) > MAX_KEYWORDS:
        raise PatternError(f"{len(keywords)} keywords; at most {MAX_KEYWORDS} per rule")
    words = []
    for i, keyword in enumerate(keywords):
        word = " ".join(keyword.split())
        if not word:
            raise PatternError(f"keyword [{i}] is blank; remove it")
        if len(word) > MAX_KEYWORD_CHARS:
            raise PatternError(f"keyword [{i}] has {len(word)} characters; at most {MAX_KEYWORD_CHARS}")
        words.append(word)
    flags = regex.VERSION0 | (0 if case_sensitive else regex.IGNORECASE)
    return regex.compile(r"(?<!\w)" + _trie_regex(sorted(set(words))) + r"(?!\w)", flags)
