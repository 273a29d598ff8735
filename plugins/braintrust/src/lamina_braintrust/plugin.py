"""Hook implementations: the inline::braintrust scoring provider and its nine autoevals functions.

Imported whenever plugins load: it imports nothing heavy (autoevals and openai load with the provider).
"""

from __future__ import annotations

from lamina.hookspecs import hookimpl
from lamina.specs import Api, DefaultResource, ProviderSpec, ResourceType

PROVIDER_TYPE = "inline::braintrust"

# provider_scoring_fn_id -> description, as Llama Stack registers them (all aggregate with average).
FUNCTIONS = {
    "factuality": "Test output factuality against expected value using Braintrust LLM scorer. "
    "See: github.com/braintrustdata/autoevals",
    "answer-correctness": "Scores the correctness of the answer based on the ground truth. "
    "Uses Braintrust LLM-based scorer from autoevals library.",
    "answer-relevancy": "Test output relevancy against the input query using Braintrust LLM scorer. "
    "See: github.com/braintrustdata/autoevals",
    "answer-similarity": "Test output similarity against expected value using Braintrust LLM scorer. "
    "See: github.com/braintrustdata/autoevals",
    "faithfulness": "Test output faithfulness to the input query using Braintrust LLM scorer. "
    "See: github.com/braintrustdata/autoevals",
    "context-entity-recall": "Evaluates how well the context captures the named entities present in the "
    "reference answer. See: github.com/braintrustdata/autoevals",
    "context-precision": "Measures how much of the provided context is actually relevant to answering the "
    "question. See: github.com/braintrustdata/autoevals",
    "context-recall": "Evaluates how well the context covers the information needed to answer the "
    "question. See: github.com/braintrustdata/autoevals",
    "context-relevancy": "Assesses how relevant the provided context is to the given question. See: "
    "github.com/braintrustdata/autoevals",
}


@hookimpl
def lamina_scoring_providers() -> list[ProviderSpec]:
    return [
        ProviderSpec(
            api=Api.scoring,
            provider_type=PROVIDER_TYPE,
            config_class="lamina_braintrust.config:BraintrustScoringConfig",
            factory="lamina_braintrust.provider:create_provider",
            provider_data_validator="lamina_braintrust.config:BraintrustProviderData",
            description=(
                "Braintrust's autoevals scorers (factuality, answer correctness/relevancy/similarity, "
                "faithfulness, context precision/recall/relevancy/entity recall), judged by a model this "
                "server serves through its own OpenAI-compatible routes."
            ),
        )
    ]


@hookimpl
def lamina_scoring_functions() -> list[DefaultResource]:
    return [
        DefaultResource(
            type=ResourceType.scoring_function,
            provider_type=PROVIDER_TYPE,
            identifier=f"braintrust::{name}",
            provider_resource_id=name,
            params={
                "description": description,
                "return_type": {"type": "number"},
                "params": {"type": "basic", "aggregation_functions": ["average"]},
            },
        )
        for name, description in FUNCTIONS.items()
    ]
