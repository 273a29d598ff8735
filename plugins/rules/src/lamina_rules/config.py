"""The provider config and the rule-set model a shield's ``params`` may also hold.

A ``RuleSet`` is what one shield checks: its own ``rules`` (a regex ``pattern`` or a list of
``keywords`` each) and built-in ``pii`` detectors, over the messages its ``scope`` and ``roles``
select. The config names rule sets (``rule_sets``), which a shield selects with its
``provider_shield_id``; a shield may instead carry a whole rule set in its ``params``. The rule
set ``pii`` (every default PII and secret detector) exists even when the config is empty.
"""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator, model_validator

from lamina.apis.safety import ViolationLevel
from lamina_rules.matchers import PatternError, compile_pattern, keyword_regex

PiiKind = Literal["email", "phone", "credit_card", "api_key", "us_ssn", "iban", "ip_address"]
PII_KINDS: tuple[str, ...] = ("email", "phone", "credit_card", "api_key", "us_ssn", "iban", "ip_address")
# The built-in `pii` rule set: every detector but ip_address (version strings such as 1.2.3.4 are
# valid IPv4 addresses, and addresses are rarely personal data in the messages shields see).
DEFAULT_PII_KINDS: tuple[str, ...] = ("email", "phone", "credit_card", "api_key", "us_ssn", "iban")
Role = Literal["user", "system", "assistant", "tool"]

PII_USER_MESSAGE = "I can't process messages containing personal data or secrets; please remove them."
RULE_USER_MESSAGE = "I can't process this message: it breaks a content rule of this service."

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")
_CATEGORY = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_./-]{0,127}$")


class Rule(BaseModel):
    """One rule: a regex ``pattern`` or a list of ``keywords`` (exactly one of the two)."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(
        description="Unique within its rule set; reported as `rule:<name>` in violation_type. Letters, "
        "digits, '_', '.', '-'."
    )
    pattern: str | None = Field(
        default=None,
        description="A Python `re` regular expression (run on the `regex` engine with a timeout); "
        "case-sensitive unless case_sensitive is false.",
    )
    keywords: list[str] | None = Field(
        default=None,
        description="Words or phrases matched whole (no letter, digit or '_' right before or after), "
        "case-insensitive unless case_sensitive is true; a space matches any whitespace.",
    )
    case_sensitive: bool | None = Field(
        default=None, description="Default: false for keywords, true for a pattern."
    )
    violation_level: ViolationLevel = "error"
    user_message: str | None = Field(
        default=None, description="What to tell the end user; default the rule set's user_message."
    )
    category: str = Field(
        default="custom",
        description="The moderation category this rule falls under: one of OpenAI's (e.g. 'harassment', "
        "'illicit') or a name of your own.",
    )

    @field_validator("name")
    @classmethod
    def _name_shape(cls, value: str) -> str:
        if not _NAME.match(value):
            raise ValueError(
                "a rule name is 1-128 letters, digits, '_', '.' or '-' (starting with a letter or digit)"
            )
        return value

    @field_validator("category")
    @classmethod
    def _category_shape(cls, value: str) -> str:
        if not _CATEGORY.match(value):
            raise ValueError(
                "a category is 1-128 letters, digits, '_', '.', '/' or '-', such as 'illicit' or 'pii/email'"
            )
        return value

    @field_validator("pattern")
    @classmethod
    def _pattern_compiles(cls, value: str | None, info: ValidationInfo) -> str | None:
        if value is not None:
            try:
                compile_pattern(value, True)  # case folding changes neither syntax nor empty matches
            except PatternError as exc:
                raise ValueError(f"rule {info.data.get('name', '?')!r}: {exc}") from None
        return value

    @field_validator("keywords")
    @classmethod
    def _keywords_compile(cls, value: list[str] | None, info: ValidationInfo) -> list[str] | None:
        if value is not None:
            try:
                keyword_regex(value, True)
            except PatternError as exc:
                raise ValueError(f"rule {info.data.get('name', '?')!r}: {exc}") from None
        return value

    @model_validator(mode="after")
    def _one_matcher(self) -> Rule:
        if (self.pattern is None) == (self.keywords is None):
            raise ValueError(
                f"rule {self.name!r} needs exactly one of `pattern` (a regex) or `keywords` (a list), "
                f"not {'both' if self.pattern is not None else 'neither'}"
            )
        return self

    @property
    def pattern_case_sensitive(self) -> bool:
        return True if self.case_sensitive is None else self.case_sensitive

    @property
    def keywords_case_sensitive(self) -> bool:
        return False if self.case_sensitive is None else self.case_sensitive


class PiiDetector(BaseModel):
    """A built-in detector with its own level or message; a plain kind name in ``pii`` means defaults."""

    model_config = ConfigDict(extra="forbid")

    kind: PiiKind
    violation_level: ViolationLevel = "error"
    user_message: str | None = None


class RuleSet(BaseModel):
    """What one shield checks."""

    model_config = ConfigDict(extra="forbid")

    rules: list[Rule] = Field(default_factory=list)
    pii: list[PiiDetector] = Field(
        default_factory=list,
        description="Built-in detectors: kind names (email, phone, credit_card, api_key, us_ssn, iban, "
        "ip_address) or {kind, violation_level, user_message}.",
    )
    scope: Literal["last", "all"] = Field(
        default="last",
        description="'last': only the conversation's final message (the one being judged, as Llama Guard "
        "does); 'all': every message.",
    )
    roles: list[Role] | None = Field(
        default=None, description="Only messages of these roles are checked; default all roles."
    )
    user_message: str | None = Field(
        default=None,
        description="Default message for rules without one; without it, a message about personal data or "
        "secrets for PII matches and a generic one for rules.",
    )

    @field_validator("pii", mode="before")
    @classmethod
    def _kind_names(cls, value: Any) -> Any:
        if isinstance(value, list):
            return [{"kind": item} if isinstance(item, str) else item for item in value]
        return value

    @model_validator(mode="after")
    def _consistent(self) -> RuleSet:
        if not self.rules and not self.pii:
            raise ValueError("a rule set needs `rules`, `pii` detectors, or both; it has neither")
        seen: set[str] = set()
        for rule in self.rules:
            if rule.name in seen:
                raise ValueError(f"two rules are named {rule.name!r}; rule names must be unique")
            seen.add(rule.name)
        kinds = [detector.kind for detector in self.pii]
        for kind in kinds:
            if kinds.count(kind) > 1:
                raise ValueError(f"pii lists {kind!r} twice; list each detector once")
        if self.roles is not None and not self.roles:
            raise ValueError("roles is empty, so nothing would be checked; omit it to check every role")
        return self


def default_pii_rule_set() -> RuleSet:
    return RuleSet(pii=[PiiDetector(kind=kind) for kind in DEFAULT_PII_KINDS])  # type: ignore[arg-type]


class RulesConfig(BaseModel):
    """``config:`` of an ``inline::rules`` provider; every field has a default, so ``config: {}`` works."""

    model_config = ConfigDict(extra="forbid")

    rule_sets: dict[str, RuleSet] = Field(
        default_factory=dict,
        description="Named rule sets a shield selects with its provider_shield_id. The built-in 'pii' "
        "exists unless a rule set of that name replaces it.",
    )
    max_chars: int = Field(
        default=1_000_000,
        ge=1,
        description="Most characters one run_shield call may have checked (400 beyond).",
    )
    pattern_timeout_seconds: float = Field(
        default=1.0,
        gt=0,
        le=60,
        description="Time budget of all `pattern` rules in one call; beyond it the call fails (504) rather "
        "than answering 'safe'.",
    )
    offload_chars: int = Field(
        default=64 * 1024,
        ge=0,
        description="Texts longer than this are scanned in a worker thread (so are all texts of rule sets "
        "with `pattern` rules), keeping the event loop free.",
    )
    max_reported_matches: int = Field(
        default=50, ge=1, le=10_000, description="Most matches listed in a violation's metadata."
    )

    @field_validator("rule_sets")
    @classmethod
    def _names(cls, value: dict[str, RuleSet]) -> dict[str, RuleSet]:
        for name in value:
            if not name.strip():
                raise ValueError("a rule set name is blank; name it as shields will (provider_shield_id)")
        return value

    def all_rule_sets(self) -> dict[str, RuleSet]:
        """The configured rule sets plus the built-in ``pii`` (which a configured one may replace)."""
        return {"pii": default_pii_rule_set(), **self.rule_sets}
