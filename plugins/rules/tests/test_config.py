"""Config validation (what start-up reports) and the rule matchers' semantics."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from lamina_rules.config import DEFAULT_PII_KINDS, RulesConfig, RuleSet
from lamina_rules.matchers import PatternError, compile_pattern, keyword_regex


def error_of(data: dict) -> tuple[str, str]:
    with pytest.raises(ValidationError) as info:
        RulesConfig.model_validate(data)
    err = info.value.errors()[0]
    return ".".join(str(p) for p in err["loc"]), err["msg"]


def rules_config(*rules: dict, **rule_set: object) -> dict:
    return {"rule_sets": {"mine": {"rules": list(rules), **rule_set}}}


def test_empty_config_has_the_builtin_pii_rule_set() -> None:
    config = RulesConfig.model_validate({})
    sets = config.all_rule_sets()
    assert list(sets) == ["pii"]
    assert [d.kind for d in sets["pii"].pii] == list(DEFAULT_PII_KINDS)
    assert "ip_address" not in DEFAULT_PII_KINDS
    assert config.max_chars == 1_000_000


def test_a_configured_pii_rule_set_replaces_the_builtin() -> None:
    config = RulesConfig.model_validate({"rule_sets": {"pii": {"pii": ["email"]}}})
    assert [d.kind for d in config.all_rule_sets()["pii"].pii] == ["email"]


def test_a_full_rule_set_validates() -> None:
    config = RulesConfig.model_validate(
        rules_config(
            {"name": "competitors", "keywords": ["Acme Corp", "Globex"], "violation_level": "warn"},
            {
                "name": "weapons",
                "pattern": r"\bbombs?\b",
                "category": "illicit/violent",
                "user_message": "No.",
            },
            pii=["email", {"kind": "api_key", "violation_level": "info"}],
            scope="all",
            roles=["user", "tool"],
            user_message="Blocked.",
        )
    )
    rule_set = config.rule_sets["mine"]
    assert rule_set.rules[0].category == "custom"
    assert rule_set.rules[0].keywords_case_sensitive is False
    assert rule_set.rules[1].pattern_case_sensitive is True
    assert [(d.kind, d.violation_level) for d in rule_set.pii] == [("email", "error"), ("api_key", "info")]


def test_invalid_regex_names_the_rule_and_field() -> None:
    loc, msg = error_of(rules_config({"name": "broken", "pattern": "(unclosed"}))
    assert loc == "rule_sets.mine.rules.0.pattern"
    assert "rule 'broken'" in msg and "does not compile" in msg


def test_a_pattern_matching_the_empty_string_is_refused() -> None:
    loc, msg = error_of(rules_config({"name": "everything", "pattern": "x*"}))
    assert loc == "rule_sets.mine.rules.0.pattern"
    assert "empty string" in msg


@pytest.mark.parametrize(
    ("rule", "word"),
    [({"name": "r"}, "neither"), ({"name": "r", "pattern": "x", "keywords": ["x"]}, "both")],
)
def test_exactly_one_of_pattern_and_keywords(rule: dict, word: str) -> None:
    loc, msg = error_of(rules_config(rule))
    assert loc == "rule_sets.mine.rules.0"
    assert "exactly one of `pattern`" in msg and word in msg


def test_unknown_pii_kind() -> None:
    loc, msg = error_of({"rule_sets": {"mine": {"pii": ["passport"]}}})
    assert loc == "rule_sets.mine.pii.0.kind"
    assert "'email'" in msg and "'iban'" in msg


@pytest.mark.parametrize(
    ("data", "where", "text"),
    [
        (
            rules_config({"name": "a", "keywords": ["x"]}, {"name": "a", "keywords": ["y"]}),
            "rule_sets.mine",
            "unique",
        ),
        ({"rule_sets": {"mine": {"pii": ["email", "email"]}}}, "rule_sets.mine", "twice"),
        ({"rule_sets": {"mine": {}}}, "rule_sets.mine", "neither"),
        ({"rule_sets": {"mine": {"pii": ["email"], "roles": []}}}, "rule_sets.mine", "roles is empty"),
        ({"rule_sets": {"mine": {"pii": ["email"], "roles": ["bot"]}}}, "rule_sets.mine.roles.0", "'user'"),
        ({"rule_sets": {"mine": {"pii": ["email"], "scope": "first"}}}, "rule_sets.mine.scope", "'last'"),
        ({"rule_sets": {"mine": {"pii": ["email"], "extra": 1}}}, "rule_sets.mine.extra", "Extra inputs"),
        (rules_config({"name": "bad name!", "keywords": ["x"]}), "rule_sets.mine.rules.0.name", "rule name"),
        (rules_config({"name": "k", "keywords": []}), "rule_sets.mine.rules.0.keywords", "empty"),
        (rules_config({"name": "k", "keywords": ["ok", "  "]}), "rule_sets.mine.rules.0.keywords", "blank"),
        (
            rules_config({"name": "k", "keywords": ["x"], "category": "no spaces"}),
            "rule_sets.mine.rules.0.category",
            "category",
        ),
        (
            rules_config({"name": "k", "keywords": ["x"], "violation_level": "fatal"}),
            "rule_sets.mine.rules.0.violation_level",
            "'error'",
        ),
        ({"max_chars": 0}, "max_chars", "greater than"),
        ({"pattern_timeout_seconds": 0}, "pattern_timeout_seconds", "greater than"),
        ({"rule_set": {}}, "rule_set", "Extra inputs"),
    ],
)
def test_config_errors_name_the_field(data: dict, where: str, text: str) -> None:
    loc, msg = error_of(data)
    assert loc == where
    assert text in msg


def test_rule_set_alone_validates_params_shape() -> None:
    assert RuleSet.model_validate({"pii": ["email"]}).scope == "last"


# -- matchers --------------------------------------------------------------------------------------


def words(keywords: list[str], text: str, case_sensitive: bool = False) -> list[str]:
    return [m.group() for m in keyword_regex(keywords, case_sensitive).finditer(text)]


def test_keywords_match_whole_words_case_insensitively() -> None:
    assert words(["cat"], "Cat, cat. CAT! cats concat category") == ["Cat", "cat", "CAT"]
    assert words(["ass"], "class assignment bass") == []
    assert words(["Acme Corp"], "I like acme  corp and ACME\ncorp but not acmecorp") == [
        "acme  corp",
        "ACME\ncorp",
    ]


def test_keywords_sharing_prefixes() -> None:
    keywords = ["car", "cart", "carton", "cat", "dog"]
    assert words(keywords, "a car, a cart, a carton, a cat and a dog; carts") == [
        "car",
        "cart",
        "carton",
        "cat",
        "dog",
    ]


def test_keywords_with_symbols_and_unicode() -> None:
    assert words(["c++", "@admin", "naïve"], "I write C++ for @admin, naïvely naïve") == [
        "C++",
        "@admin",
        "naïve",
    ]
    assert words(["(x)"], "f(x) or (x)") == ["(x)"]  # regex metacharacters are literal


def test_case_sensitive_keywords() -> None:
    assert words(["NASA"], "nasa NASA Nasa", case_sensitive=True) == ["NASA"]


def test_many_keywords_compile_to_one_trie() -> None:
    keywords = [f"word{i}" for i in range(5000)]
    assert words(keywords, "word12 and word4999 but not word5000") == ["word12", "word4999"]


def test_compile_pattern_errors() -> None:
    with pytest.raises(PatternError, match="empty"):
        compile_pattern("", True)
    with pytest.raises(PatternError, match="does not compile"):
        compile_pattern("[a-", True)
    with pytest.raises(PatternError, match="at most"):
        compile_pattern("a" * 20_000, True)
    assert compile_pattern("(?i)abc", True).search("xABCx")
    assert compile_pattern("abc", False).search("xABCx")
    assert not compile_pattern("abc", True).search("xABCx")
