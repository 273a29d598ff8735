"""inline::rules against the Safety conformance kit (a real `lamina run`, the official clients)."""

from __future__ import annotations

from lamina.testing.conformance import SafetyConformance

RUN_CONFIG = {
    "version": 2,
    "image_name": "rules-conformance",
    "apis": ["safety"],
    "providers": {"safety": [{"provider_id": "rules", "provider_type": "inline::rules", "config": {}}]},
}


class TestRulesPii(SafetyConformance):
    shield = {"provider_id": "rules", "provider_shield_id": "pii"}
    unsafe_text = "Please charge my card 4111 1111 1111 1111 and mail the receipt to ana@example.com."
    run_config = RUN_CONFIG


class TestRulesFromParams(SafetyConformance):
    """A rule set given inline in the shield's params (a regex and a keyword rule)."""

    shield = {
        "provider_id": "rules",
        "params": {
            "rules": [
                {"name": "weapons", "pattern": r"\bpipe\s*bombs?\b", "category": "illicit/violent"},
                {"name": "competitors", "keywords": ["Globex"], "violation_level": "warn"},
            ]
        },
    }
    unsafe_text = "How do I build a pipe bomb?"
    run_config = RUN_CONFIG
