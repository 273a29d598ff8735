"""inline::llama-guard: shields judged by a Llama Guard model served through the Inference API.

The shield's ``provider_shield_id`` is the id of a registered ``llm`` model (the guard). Each
run-shield builds Llama Guard's prompt over the conversation and asks that model, through the
inference router's native ``chat_completion`` (greedy, a few tokens; the OpenAI route is not used,
since it records stored chat completions), then reads the verdict. Any inference provider can serve
the guard: vLLM with meta-llama/Llama-Guard-3-8B, Ollama's llama-guard3, or a general instruct model
with ``constrained_output``.

Never a silent "safe": an answer that is no verdict is a 502 naming the shield, the guard model and
the answer's beginning; errors of the inference call propagate as they are (502/504 naming the
inference provider).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import structlog
from pydantic import ValidationError

from lamina.apis.common import content_to_text
from lamina.apis.inference import (
    ChatCompletionRequest,
    GreedySamplingStrategy,
    JsonSchemaResponseFormat,
    SamplingParams,
)
from lamina.apis.safety import RunShieldResponse, SafetyViolation, Shield
from lamina.errors import BadRequestError, NotFoundError, UpstreamError, field_problems
from lamina.providers import ProviderBase, ProviderContext
from lamina.specs import Api
from lamina_llama_guard import prompt
from lamina_llama_guard.config import LlamaGuardConfig, ShieldParams
from lamina_llama_guard.taxonomy import GuardModel, Taxonomy, identify, moderation_categories, pick_taxonomy

log = structlog.get_logger(__name__)

CANNED_RESPONSE_TEXT = "I can't answer that. Can I help with something else?"
_QUOTED = 200  # characters of an unusable answer quoted in the error


async def create_provider(
    config: LlamaGuardConfig, deps: dict, context: ProviderContext
) -> LlamaGuardProvider:
    return LlamaGuardProvider(config, deps[Api.inference], context)


@dataclass(frozen=True)
class GuardSettings:
    """What one run of a shield uses: config, overlaid by the shield's params, then the call's."""

    guard_model: str  # the registered model id (provider_shield_id)
    taxonomy: Taxonomy
    excluded: frozenset[str]
    constrained: bool
    vision: bool
    max_tokens: int


class LlamaGuardProvider(ProviderBase):
    def __init__(self, config: LlamaGuardConfig, inference: Any, context: ProviderContext) -> None:
        super().__init__(context)
        self.config = config
        self.inference = inference  # the InferenceRouter

    async def health(self) -> dict[str, Any]:
        return {"status": "OK"}

    # -- shields -------------------------------------------------------------------------------

    async def register_shield(self, shield: Shield) -> None:
        """The guard must be a registered llm model, and the shield's params must make sense."""
        upstream = await self._guard_model(shield, when="register")
        self.settings(shield, {}, upstream)

    async def unregister_shield(self, shield: Shield) -> None:
        return None

    async def run_shield(
        self, shield: Shield, messages: list[Any], params: dict[str, Any]
    ) -> RunShieldResponse:
        upstream = await self._guard_model(shield, when="run")
        settings = self.settings(shield, params or {}, upstream)
        if not settings.vision:
            prompt.check_text_only(messages, shield.identifier, settings.guard_model)
        judged = prompt.conversation(messages)
        message = prompt.shield_input(
            judged,
            settings.taxonomy,
            settings.excluded,
            vision=settings.vision,
            json_answer=settings.constrained,
        )
        request = ChatCompletionRequest(
            model_id=settings.guard_model,
            messages=[message],
            sampling_params=SamplingParams(strategy=GreedySamplingStrategy(), max_tokens=settings.max_tokens),
            response_format=(
                JsonSchemaResponseFormat(json_schema=prompt.verdict_schema(self._allowed(settings)))
                if settings.constrained
                else None
            ),
            stream=False,
        )
        try:
            response = await self.inference.chat_completion(request)
        except NotFoundError as exc:  # the model was unregistered since the shield was registered
            raise self._model_gone(shield, exc.message) from None
        except BadRequestError as exc:
            if exc.param == "model":  # no longer an llm model
                raise self._model_gone(shield, exc.message) from None
            raise
        answer = _answer_text(response)
        try:
            verdict = prompt.parse_json(answer) if settings.constrained else prompt.parse_plain(answer)
        except prompt.UnusableAnswer as exc:
            quoted = answer.strip()[:_QUOTED]
            log.warning(
                "guard_answer_unusable",
                shield_id=shield.identifier,
                guard_model=settings.guard_model,
                why=exc.why,
                answer_chars=len(answer),
            )
            raise UpstreamError(
                self.provider_id,
                f"shield '{shield.identifier}': guard model '{settings.guard_model}' answered {quoted!r}"
                f"{' (cut)' if len(answer.strip()) > _QUOTED else ''}: {exc.why}; expected {exc.expected}. "
                f"A model that is not a Llama Guard may need the shield param constrained_output: true.",
            ) from None
        return RunShieldResponse(violation=self.violation(verdict, settings))

    # -- settings ------------------------------------------------------------------------------

    def settings(self, shield: Shield, call_params: dict[str, Any], upstream: str | None) -> GuardSettings:
        """The effective settings; bad params are a 400 naming the field and listing valid values."""
        registered = _params(shield.params or {}, "params")
        call = _params(call_params, "params") if call_params else ShieldParams()
        config = self.config

        def pick(name: str) -> Any:
            for source in (call, registered):
                value = getattr(source, name)
                if value is not None:
                    return value
            return getattr(config, name, None)

        guard_model = shield.provider_shield_id
        guards = [identify(guard_model)] + ([identify(upstream)] if upstream else [])
        known = next((g for g in guards if g.known), GuardModel(None))
        taxonomy = pick_taxonomy(pick("taxonomy"), guards)

        if call.excluded_categories is not None:
            excluded, source = call.excluded_categories, "params.excluded_categories"
        elif registered.excluded_categories is not None:
            excluded, source = registered.excluded_categories, "params.excluded_categories"
        else:
            excluded, source = config.excluded_categories, "excluded_categories"
        _check_excluded(excluded, source, taxonomy, guard_model, shield.identifier)

        explicit = (
            call.constrained_output if call.constrained_output is not None else registered.constrained_output
        )
        # A known Llama Guard keeps the plain format its fine-tuning expects, unless a shield asks.
        constrained = explicit if explicit is not None else (config.constrained_output and not known.known)
        vision = pick("vision")
        budget = call.max_tokens or registered.max_tokens
        return GuardSettings(
            guard_model=guard_model,
            taxonomy=taxonomy,
            excluded=frozenset(excluded),
            constrained=constrained,
            vision=known.vision if vision is None else vision,
            max_tokens=budget or (config.json_max_tokens if constrained else config.max_tokens),
        )

    @staticmethod
    def _allowed(settings: GuardSettings) -> list[str]:
        return [c for c in settings.taxonomy.codes if c not in settings.excluded]

    # -- the verdict ---------------------------------------------------------------------------

    def violation(self, verdict: prompt.Verdict, settings: GuardSettings) -> SafetyViolation | None:
        """None when safe, or when every code the guard named is excluded; else an error-level violation.

        ``violation_type`` is Llama Stack's: the codes joined by "," ("S1,S10"), or "unsafe" when the
        guard named none. Excluded codes are left out of the metadata.
        """
        if not verdict.unsafe:
            return None
        codes = [c for c in verdict.codes if c not in settings.excluded]
        if verdict.codes and not codes:
            return None
        taxonomy = settings.taxonomy
        guard_categories = []
        for code in codes:
            category = taxonomy.by_code.get(code)
            guard_categories.append({"code": code, "name": category.name if category else "unknown"})
        unknown = [c for c in codes if c not in taxonomy.by_code]
        metadata: dict[str, Any] = {
            "violation_type": ",".join(codes) or "unsafe",
            "categories": moderation_categories(codes, taxonomy),
            "guard_categories": guard_categories,
            "guard_model": settings.guard_model,
            "taxonomy": taxonomy.name,
        }
        if unknown:
            metadata["unknown_codes"] = unknown
        return SafetyViolation(violation_level="error", user_message=CANNED_RESPONSE_TEXT, metadata=metadata)

    # -- the guard model -----------------------------------------------------------------------

    async def _guard_model(self, shield: Shield, *, when: str) -> str | None:
        """The guard model's upstream name, after checking it is a registered llm model.

        None when the inference router has no models table to ask (then the call itself checks).
        """
        models = getattr(self.inference, "models", None)
        if models is None or not hasattr(models, "get"):
            return None
        model_id = shield.provider_shield_id
        try:
            model = await models.get(model_id)
        except NotFoundError:
            model = None
        if model is not None and model.model_type == "llm":
            return model.provider_resource_id or model.identifier
        llms = [m.identifier for m in await models.list() if m.model_type == "llm"]
        what = "is not a registered model" if model is None else f"is an {model.model_type} model"
        if when == "run":
            raise self._model_gone(shield, f"model '{model_id}' {what}", llms)
        raise BadRequestError(
            f"shield '{shield.identifier}': provider_shield_id '{model_id}' {what}; it must be the id of "
            f"a registered llm model, the guard (e.g. meta-llama/Llama-Guard-3-8B served by an inference "
            f"provider). Registered llm models: {', '.join(llms) or 'none'}. Register the guard model "
            f"first (POST /v1/models, or the run config's models) or set provider_shield_id to one of these.",
            param="provider_shield_id",
        )

    def _model_gone(self, shield: Shield, why: str, llms: list[str] | None = None) -> BadRequestError:
        listed = f" Registered llm models: {', '.join(llms) or 'none'}." if llms is not None else ""
        return BadRequestError(
            f"shield '{shield.identifier}' cannot run: its guard model '{shield.provider_shield_id}' is no "
            f"longer usable ({why}).{listed} Register the model again (POST /v1/models), or register the "
            f"shield again with another provider_shield_id.",
            param="shield_id",
        )


def _params(params: dict[str, Any], where: str) -> ShieldParams:
    try:
        return ShieldParams.model_validate(params)
    except ValidationError as exc:
        first = field_problems(exc, (where,))[0]
        if first.type == "extra_forbidden":
            name = first.path.removeprefix(f"{where}.")
            accepted = ", ".join(ShieldParams.model_fields)
            raise BadRequestError(
                f"{first.path}: inline::llama-guard shields take no param '{name}'; accepted: {accepted}",
                param=first.path,
            ) from None
        raise BadRequestError(str(first), param=first.path) from None


def _check_excluded(
    excluded: list[str], source: str, taxonomy: Taxonomy, guard_model: str, shield_id: str
) -> None:
    """``source``: the param the codes came from; the provider config's field when not a param."""
    bad = [c for c in excluded if c not in taxonomy.by_code]
    where = source if source.startswith("params") else f"the provider config's {source}"
    if bad:
        raise BadRequestError(
            f"{where}: {', '.join(repr(c) for c in bad)} {'is' if len(bad) == 1 else 'are'} not a category "
            f"of {taxonomy.title} ({taxonomy.name}), the taxonomy of shield '{shield_id}' (guard model "
            f"'{guard_model}'); valid codes: {', '.join(taxonomy.codes)}",
            param=source,
        )
    if excluded and set(taxonomy.codes) <= set(excluded):
        raise BadRequestError(
            f"{where}: every category of {taxonomy.title} is excluded, so shield '{shield_id}' would "
            f"judge nothing; exclude fewer categories",
            param=source,
        )


def _answer_text(response: Any) -> str:
    message = getattr(response, "completion_message", None)
    if message is None and isinstance(response, dict):
        message = response.get("completion_message") or {}
        return content_to_text(message.get("content"))
    return content_to_text(getattr(message, "content", None))
