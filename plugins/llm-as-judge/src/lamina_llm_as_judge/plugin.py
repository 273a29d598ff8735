"""Hook implementations: the inline::llm-as-judge scoring provider and its base function.

Imported whenever plugins load: it imports nothing heavy.
"""

from __future__ import annotations

from lamina.hookspecs import hookimpl
from lamina.specs import Api, DefaultResource, ProviderSpec, ResourceType
from lamina_llm_as_judge import simpleqa

PROVIDER_TYPE = "inline::llm-as-judge"
# llm-as-judge::base's prompt_template: Llama Stack's placeholder, not a prompt (the provider refuses to
# judge with it: a call to the base function brings its own prompt_template).
BASE_PROMPT_PLACEHOLDER = "Enter custom LLM as Judge Prompt Template"


@hookimpl
def lamina_scoring_providers() -> list[ProviderSpec]:
    return [
        ProviderSpec(
            api=Api.scoring,
            provider_type=PROVIDER_TYPE,
            config_class="lamina_llm_as_judge.config:LlmAsJudgeScoringConfig",
            factory="lamina_llm_as_judge.provider:create_provider",
            api_dependencies=[Api.inference],
            description=(
                "LLM-as-judge scoring: a registered model answers a prompt built from each row; regexes "
                "read its score. Register judge functions with their model, prompt and regexes."
            ),
        )
    ]


@hookimpl
def lamina_scoring_functions() -> list[DefaultResource]:
    # Llama Stack's two: llm-as-judge::base, a placeholder judge that every score call overrides with
    # its own params (judge_model, prompt_template, judge_score_regexes), and the SimpleQA grader.
    return [
        DefaultResource(
            type=ResourceType.scoring_function,
            provider_type=PROVIDER_TYPE,
            identifier="llm-as-judge::base",
            provider_resource_id="llm-as-judge-base",
            params={
                "description": "Llm As Judge Scoring Function",
                "return_type": {"type": "number"},
                "params": {
                    "type": "llm_as_judge",
                    "judge_model": "meta-llama/Llama-3.1-405B-Instruct",
                    "prompt_template": BASE_PROMPT_PLACEHOLDER,
                },
            },
        ),
        DefaultResource(
            type=ResourceType.scoring_function,
            provider_type=PROVIDER_TYPE,
            identifier=simpleqa.IDENTIFIER,
            provider_resource_id=simpleqa.PROVIDER_RESOURCE_ID,
            params=simpleqa.scoring_function_params(),
        ),
    ]
