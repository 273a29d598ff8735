"""Compiled rule sets, the texts a shield inspects, and the scan that turns matches into a violation.

Everything here is synchronous and pure: the provider decides whether a scan runs on the event loop
or in a worker thread. A violation's metadata names rules, kinds, categories and offsets, never the
matched text.
"""

from __future__ import annotations

import dataclasses
import json
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from lamina.apis.common import content_to_text
from lamina.apis.safety import SafetyViolation
from lamina_rules.config import PII_USER_MESSAGE, RULE_USER_MESSAGE, RuleSet
from lamina_rules.matchers import compile_pattern, keyword_regex
from lamina_rules.pii import DETECTORS, Span

LEVELS = {"info": 0, "warn": 1, "error": 2}


class RuleTimeout(Exception):
    """A ``pattern`` rule ran past the call's time budget."""

    def __init__(self, rule: str) -> None:
        super().__init__(rule)
        self.rule = rule


@dataclass(frozen=True)
class Check:
    """One compiled rule or PII detector."""

    name: str  # the rule's name, or "pii:<kind>"
    kind: str  # "pattern", "keyword", or the PII kind
    level: str
    categories: tuple[str, ...]
    user_message: str | None
    find: Callable[[str, float], Iterator[Span]]  # (text, deadline) -> spans

    @property
    def is_pii(self) -> bool:
        return self.name.startswith("pii:")


@dataclass(frozen=True)
class CompiledRuleSet:
    name: str  # the configured rule set's name, or "params" for one inline in a shield's params
    checks: tuple[Check, ...]
    scope: str
    roles: frozenset[str] | None
    user_message: str | None

    @property
    def has_patterns(self) -> bool:
        return any(check.kind == "pattern" for check in self.checks)

    @property
    def rule_names(self) -> list[str]:
        return [c.name for c in self.checks if not c.is_pii]

    @property
    def pii_kinds(self) -> list[str]:
        return [c.kind for c in self.checks if c.is_pii]

    def narrowed(
        self,
        *,
        rules: list[str] | None = None,
        pii: list[str] | None = None,
        scope: str | None = None,
        roles: list[str] | None = None,
    ) -> CompiledRuleSet:
        checks = tuple(
            c
            for c in self.checks
            if (c.is_pii and (pii is None or c.kind in pii))
            or (not c.is_pii and (rules is None or c.name in rules))
        )
        return dataclasses.replace(
            self,
            checks=checks,
            scope=scope or self.scope,
            roles=frozenset(roles) if roles is not None else self.roles,
        )


def _pattern_finder(compiled: Any, rule: str) -> Callable[[str, float], Iterator[Span]]:
    def find(text: str, deadline: float) -> Iterator[Span]:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise RuleTimeout(rule)
        try:
            for m in compiled.finditer(text, timeout=remaining, concurrent=True):
                if m.end() > m.start():
                    yield m.span()
        except TimeoutError:
            raise RuleTimeout(rule) from None

    return find


def _plain_finder(finditer: Callable[[str], Iterator[Any]]) -> Callable[[str, float], Iterator[Span]]:
    def find(text: str, deadline: float) -> Iterator[Span]:
        for m in finditer(text, concurrent=True):
            yield m.span()

    return find


def _detector_finder(detect: Callable[[str], Iterator[Span]]) -> Callable[[str, float], Iterator[Span]]:
    def find(text: str, deadline: float) -> Iterator[Span]:
        return detect(text)

    return find


def compile_rule_set(name: str, rule_set: RuleSet) -> CompiledRuleSet:
    """Compile every rule once (the pattern cache makes re-registering a shield cheap)."""
    checks: list[Check] = []
    for rule in rule_set.rules:
        if rule.pattern is not None:
            compiled = compile_pattern(rule.pattern, rule.pattern_case_sensitive)
            kind, find = "pattern", _pattern_finder(compiled, rule.name)
        else:
            kind = "keyword"
            find = _plain_finder(keyword_regex(rule.keywords or [], rule.keywords_case_sensitive).finditer)
        checks.append(Check(rule.name, kind, rule.violation_level, (rule.category,), rule.user_message, find))
    for detector in rule_set.pii:
        checks.append(
            Check(
                f"pii:{detector.kind}",
                detector.kind,
                detector.violation_level,
                ("pii", f"pii/{detector.kind}"),
                detector.user_message,
                _detector_finder(DETECTORS[detector.kind]),
            )
        )
    return CompiledRuleSet(
        name=name,
        checks=tuple(checks),
        scope=rule_set.scope,
        roles=frozenset(rule_set.roles) if rule_set.roles is not None else None,
        user_message=rule_set.user_message,
    )


# -- what gets inspected ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Segment:
    message_index: int
    field: str  # "content", "context" or "tool_calls[<i>].arguments"
    text: str


def content_text(content: Any) -> str:
    """The text parts of interleaved content, one per line (images are not inspected)."""
    if isinstance(content, list):
        return "\n".join(text for text in (content_to_text(item) for item in content) if text)
    return content_to_text(content)


def _arguments_text(call: Any) -> str:
    if getattr(call, "arguments_json", None):
        return call.arguments_json
    arguments = call.arguments
    if isinstance(arguments, str):
        return arguments
    return json.dumps(arguments, ensure_ascii=False)


def segments_of(messages: Sequence[Any], scope: str, roles: frozenset[str] | None) -> list[Segment]:
    """The texts a rule set checks: per selected message, its content, a user message's context and an
    assistant message's tool-call arguments."""
    indices = range(len(messages)) if scope == "all" else range(len(messages) - 1, len(messages))
    segments = []
    for i in indices:
        message = messages[i]
        if roles is not None and message.role not in roles:
            continue
        segments.append(Segment(i, "content", content_text(message.content)))
        context = getattr(message, "context", None)
        if context is not None:
            segments.append(Segment(i, "context", content_text(context)))
        for j, call in enumerate(getattr(message, "tool_calls", None) or []):
            segments.append(Segment(i, f"tool_calls[{j}].arguments", _arguments_text(call)))
    return [s for s in segments if s.text]


# -- the scan --------------------------------------------------------------------------------------


@dataclass
class ScanResult:
    matched: list[Check]  # in the rule set's order
    matches: list[dict[str, Any]]
    truncated: bool


def scan(
    rule_set: CompiledRuleSet, segments: list[Segment], *, max_matches: int, timeout: float
) -> ScanResult:
    """Run every check over every segment; list at most ``max_matches`` matches (offsets, no text)."""
    deadline = time.monotonic() + timeout
    matched: list[Check] = []
    matches: list[dict[str, Any]] = []
    truncated = False
    for check in rule_set.checks:
        hit = False
        for segment in segments:
            for start, end in check.find(segment.text, deadline):
                hit = True
                if len(matches) >= max_matches:
                    truncated = True
                    break
                matches.append(
                    {
                        "rule": check.name,
                        "kind": check.kind,
                        "violation_level": check.level,
                        "message_index": segment.message_index,
                        "field": segment.field,
                        "start": start,
                        "end": end,
                    }
                )
            if hit and truncated:
                break
        if hit:
            matched.append(check)
    matches.sort(key=lambda m: (m["message_index"], m["field"], m["start"], m["rule"]))
    return ScanResult(matched, matches, truncated)


def violation_of(rule_set: CompiledRuleSet, result: ScanResult) -> SafetyViolation | None:
    """The most severe level among the matched checks, the message of the first check at that level."""
    if not result.matched:
        return None
    top = max(LEVELS[c.level] for c in result.matched)
    lead = next(c for c in result.matched if LEVELS[c.level] == top)
    default = PII_USER_MESSAGE if lead.is_pii else RULE_USER_MESSAGE
    pii = [c.kind for c in result.matched if c.is_pii]
    rules = [c.name for c in result.matched if not c.is_pii]
    violation_type = ";".join(
        part
        for part in (f"pii:{','.join(pii)}" if pii else "", f"rule:{','.join(rules)}" if rules else "")
        if part
    )
    categories = sorted({category for c in result.matched for category in c.categories})
    return SafetyViolation(
        violation_level=lead.level,  # type: ignore[arg-type]
        user_message=lead.user_message or rule_set.user_message or default,
        metadata={
            "violation_type": violation_type,
            "categories": categories,
            "rule_set": rule_set.name,
            "matches": result.matches,
            "matches_truncated": result.truncated,
        },
    )
