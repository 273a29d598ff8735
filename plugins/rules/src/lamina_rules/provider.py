"""The inline::rules safety provider: rule sets compiled once per shield, scanned per call.

A shield's rule set is the one inline in its ``params`` (keys of ``RuleSet``: ``rules``, ``pii``,
``scope``, ``roles``, ``user_message``) or else the configured (or built-in ``pii``) rule set its
``provider_shield_id`` names. ``register_shield`` validates and compiles it (400 naming the field
otherwise) and caches it under the shield's identifier; ``run_shield`` only scans. A call's
``params`` may narrow the shield (``pii`` and ``rules`` subsets, ``scope``, ``roles``); any other
key is a 400.

Scanning is regex work: on the event loop for small texts, in a worker thread for texts over
``offload_chars`` and for rule sets with user ``pattern`` rules (whose cost only their timeout
bounds). Violations never carry the matched text: metadata lists rules, kinds, categories and
offsets.
"""

from __future__ import annotations

import asyncio
import copy
import functools
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, ValidationError

from lamina.apis.inference import Message
from lamina.apis.safety import RunShieldResponse, Shield
from lamina.errors import BadRequestError, UpstreamTimeoutError, validation_error
from lamina.providers import ProviderBase, ProviderContext
from lamina_rules.config import Role, RulesConfig, RuleSet
from lamina_rules.engine import (
    CompiledRuleSet,
    RuleTimeout,
    compile_rule_set,
    scan,
    segments_of,
    violation_of,
)

RULE_SET_KEYS = tuple(RuleSet.model_fields)
CALL_PARAM_KEYS = ("pii", "rules", "scope", "roles")


async def create_provider(
    config: RulesConfig, deps: dict[Any, Any], context: ProviderContext
) -> RulesProvider:
    return RulesProvider(config, context)


class _ShieldParams(BaseModel):
    """Wraps a shield's params so validation errors read ``params.rules[0].pattern``."""

    params: RuleSet


class _CallParams(BaseModel):
    model_config = ConfigDict(extra="forbid")

    pii: list[str] | None = None
    rules: list[str] | None = None
    scope: Literal["last", "all"] | None = None
    roles: list[Role] | None = None


class _RunParams(BaseModel):
    params: _CallParams


class RulesProvider(ProviderBase):
    def __init__(self, config: RulesConfig, context: ProviderContext) -> None:
        super().__init__(context)
        self.config = config
        self._rule_sets = config.all_rule_sets()
        self._named: dict[str, CompiledRuleSet] = {}
        # shield identifier -> ((provider_shield_id, params) it was compiled from, the compiled rule set)
        self._shields: dict[str, tuple[tuple[str, Any], CompiledRuleSet]] = {}

    async def health(self) -> dict[str, Any]:
        return {"status": "OK"}

    # -- shields -----------------------------------------------------------------------------------

    async def register_shield(self, shield: Shield) -> None:
        self._shields[shield.identifier] = (self._source(shield), self._resolve(shield))

    async def unregister_shield(self, shield: Shield) -> None:
        self._shields.pop(shield.identifier, None)

    @staticmethod
    def _source(shield: Shield) -> tuple[str, Any]:
        return shield.provider_shield_id, copy.deepcopy(shield.params)

    def _compiled(self, shield: Shield) -> CompiledRuleSet:
        cached = self._shields.get(shield.identifier)
        if cached is None or cached[0] != self._source(shield):
            cached = (self._source(shield), self._resolve(shield))
            self._shields[shield.identifier] = cached
        return cached[1]

    def _resolve(self, shield: Shield) -> CompiledRuleSet:
        params = shield.params or {}
        if params:
            unknown = sorted(set(params) - set(RULE_SET_KEYS))
            if unknown:
                raise BadRequestError(
                    f"shield {shield.identifier!r}: params has unknown key(s) {', '.join(unknown)}; an "
                    f"inline rule set takes {', '.join(RULE_SET_KEYS)}. Or leave params empty to use the "
                    f"rule set named by provider_shield_id (available: {', '.join(sorted(self._rule_sets))})",
                    param=f"params.{unknown[0]}",
                )
            try:
                rule_set = _ShieldParams.model_validate({"params": params}).params
            except ValidationError as exc:
                raise validation_error(exc, where=f"params of shield {shield.identifier!r}") from None
            return compile_rule_set("params", rule_set)
        name = shield.provider_shield_id
        if name not in self._rule_sets:
            raise BadRequestError(
                f"shield {shield.identifier!r}: provider_shield_id {name!r} names no rule set of provider "
                f"{self.provider_id!r}; available: {', '.join(sorted(self._rule_sets))}. Name one of those, "
                f"add '{name}' under rule_sets in the provider's config, or give the rules inline in params "
                f'(e.g. {{"pii": ["email"]}} or {{"rules": [{{"name": ..., "keywords": [...]}}]}}).',
                param="provider_shield_id",
            )
        if name not in self._named:
            self._named[name] = compile_rule_set(name, self._rule_sets[name])
        return self._named[name]

    # -- running -----------------------------------------------------------------------------------

    def _narrow(self, shield: Shield, rule_set: CompiledRuleSet, params: dict[str, Any]) -> CompiledRuleSet:
        # The router hands over the shield's registered params overlaid by the call's: only keys the call
        # set to something else than the registered value narrow the shield.
        registered = shield.params or {}
        given = {k: v for k, v in params.items() if not (k in registered and registered[k] == v)}
        if not given:
            return rule_set
        unknown = sorted(set(given) - set(CALL_PARAM_KEYS))
        if unknown:
            raise BadRequestError(
                f"params: {', '.join(unknown)} cannot be set per call; a call's params can only narrow "
                f"shield {shield.identifier!r}: pii (a subset of {rule_set.pii_kinds}), rules (a subset of "
                f"{rule_set.rule_names}), scope ('last' or 'all') and roles. To check other rules, register "
                "a shield with them.",
                param=f"params.{unknown[0]}",
            )
        try:
            call = _RunParams.model_validate({"params": given}).params
        except ValidationError as exc:
            raise validation_error(exc, where="params") from None
        for key, asked, offered in (
            ("pii", call.pii, rule_set.pii_kinds),
            ("rules", call.rules, rule_set.rule_names),
        ):
            extra = [item for item in asked or [] if item not in offered]
            if extra:
                raise BadRequestError(
                    f"params.{key}: {', '.join(map(repr, extra))} not in shield {shield.identifier!r}, "
                    f"whose {key} are {offered}; a call's params can only narrow a shield.",
                    param=f"params.{key}",
                )
        return rule_set.narrowed(rules=call.rules, pii=call.pii, scope=call.scope, roles=call.roles)

    async def run_shield(
        self, shield: Shield, messages: list[Message], params: dict[str, Any]
    ) -> RunShieldResponse:
        rule_set = self._narrow(shield, self._compiled(shield), params or {})
        segments = segments_of(messages, rule_set.scope, rule_set.roles)
        total = sum(len(segment.text) for segment in segments)
        if total > self.config.max_chars:
            raise BadRequestError(
                f"messages: shield {shield.identifier!r} would check {total} characters; provider "
                f"{self.provider_id!r} checks at most {self.config.max_chars} per call (config max_chars). "
                "Send less text per call.",
                param="messages",
            )
        if not segments or not rule_set.checks:
            return RunShieldResponse(violation=None)
        work = functools.partial(
            scan,
            rule_set,
            segments,
            max_matches=self.config.max_reported_matches,
            timeout=self.config.pattern_timeout_seconds,
        )
        try:
            if total > self.config.offload_chars or rule_set.has_patterns:
                result = await asyncio.to_thread(work)
            else:
                result = work()
        except RuleTimeout as exc:
            raise UpstreamTimeoutError(
                self.provider_id,
                f"rule {exc.rule!r} of shield {shield.identifier!r} ran past pattern_timeout_seconds "
                f"({self.config.pattern_timeout_seconds} s) on this input, so there is no verdict. Simplify "
                "its pattern (nested or overlapping repeats such as (a|aa)+ backtrack) or raise the timeout.",
            ) from None
        return RunShieldResponse(violation=violation_of(rule_set, result))
