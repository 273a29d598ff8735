"""Hook implementations: the inline::basic scoring provider and its built-in scoring functions.

Imported whenever plugins load: it imports nothing heavy.
"""

from __future__ import annotations

from lamina.hookspecs import hookimpl
from lamina.specs import Api, DefaultResource, ProviderSpec, ResourceType

PROVIDER_TYPE = "inline::basic"


@hookimpl
def lamina_scoring_providers() -> list[ProviderSpec]:
    return [
        ProviderSpec(
            api=Api.scoring,
            provider_type=PROVIDER_TYPE,
            config_class="lamina_scoring_basic.config:BasicScoringConfig",
            factory="lamina_scoring_basic.provider:create_provider",
            description=(
                "Scoring functions without a model: equality, subset_of, multiple-choice and math answer "
                "parsers, DocVQA answer matching, IFEval instruction checks, BFCL function-call checking."
            ),
        )
    ]


@hookimpl
def lamina_scoring_functions() -> list[DefaultResource]:
    from lamina_scoring_basic.functions import FUNCTIONS, NUMBER

    return [
        DefaultResource(
            type=ResourceType.scoring_function,
            provider_type=PROVIDER_TYPE,
            identifier=spec["identifier"],
            provider_resource_id=provider_fn_id,
            params={"description": spec["description"], "return_type": NUMBER, "params": spec["params"]},
        )
        for provider_fn_id, (_, _, spec) in FUNCTIONS.items()
    ]
