"""Hook implementations: the inline::meta-reference eval provider.

Imported whenever plugins load: it imports nothing heavy.
"""

from __future__ import annotations

from lamina.hookspecs import hookimpl
from lamina.specs import Api, ProviderSpec

PROVIDER_TYPE = "inline::meta-reference"


@hookimpl
def lamina_eval_providers() -> list[ProviderSpec]:
    return [
        ProviderSpec(
            api=Api.eval,
            provider_type=PROVIDER_TYPE,
            config_class="lamina_eval.config:MetaReferenceEvalConfig",
            factory="lamina_eval.provider:create_provider",
            api_dependencies=[Api.inference, Api.scoring],
            # DatasetIO feeds run_eval (evaluate_rows takes rows inline); Agents runs agent candidates.
            optional_api_dependencies=[Api.datasetio, Api.agents],
            description=(
                "Benchmarks evaluated by model or agent candidates: run_eval is a resumable job (rows "
                "answered are kept and never sent again after a restart), evaluate_rows answers inline; "
                "scores come from the Scoring API."
            ),
        )
    ]
