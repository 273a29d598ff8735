"""Hook implementations: the inline::rules safety provider.

Imported whenever plugins load: it imports nothing heavy.
"""

from __future__ import annotations

from lamina.hookspecs import hookimpl
from lamina.specs import Api, ProviderSpec

PROVIDER_TYPE = "inline::rules"


@hookimpl
def lamina_safety_providers() -> list[ProviderSpec]:
    return [
        ProviderSpec(
            api=Api.safety,
            provider_type=PROVIDER_TYPE,
            config_class="lamina_rules.config:RulesConfig",
            factory="lamina_rules.provider:create_provider",
            description=(
                "Rule shields without a model: regex patterns, keyword lists and built-in PII and secret "
                "detectors (email, phone, credit card, API keys, US SSN, IBAN, IP address), each with a "
                "violation level; rule sets come from the config or from a shield's params."
            ),
        )
    ]
