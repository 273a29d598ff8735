"""Safety and Shields: the Shield resource, run-shield, OpenAI moderations, and what providers implement.

A shield is a registered resource served by one ``safety`` provider (a guard model, a classifier,
a set of rules). ``POST /v1/safety/run-shield`` runs one shield over messages and answers a
violation or none. ``POST /v1/openai/v1/moderations`` runs a shield over each input text and
answers in OpenAI's shape; the core builds that answer from the shield's violations (see
``SafetyProvider`` for the metadata that carries categories and scores), so a provider writes
``run_shield`` once and serves both routes.
"""

from __future__ import annotations

from typing import Any, Literal, Protocol

from pydantic import BaseModel, ConfigDict, Field

from lamina.access.declarations import creates, deletes, lists, reads, uses
from lamina.apis.common import Empty, Resource
from lamina.apis.inference import Message
from lamina.apis.webmethod import webmethod

# -- the Shield resource ---------------------------------------------------------------------------


class Shield(Resource):
    type: Literal["shield"] = "shield"
    params: dict[str, Any] | None = None

    @property
    def shield_id(self) -> str:
        return self.identifier

    @property
    def provider_shield_id(self) -> str:
        return self.provider_resource_id or self.identifier


class ListShieldsResponse(BaseModel):
    data: list[Shield]


class GetShieldRequest(BaseModel):
    identifier: str = Field(min_length=1)


class RegisterShieldRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    shield_id: str = Field(min_length=1, description="The identifier clients will use.")
    provider_shield_id: str | None = Field(
        default=None,
        description="What the provider knows it as (a guard model, a rule set, a classifier); "
        "omitted: the shield_id.",
    )
    provider_id: str | None = Field(
        default=None, description="Required when several providers are configured."
    )
    params: dict[str, Any] | None = Field(
        default=None, description="Provider-specific settings of this shield."
    )


# -- running a shield ------------------------------------------------------------------------------

ViolationLevel = Literal["info", "warn", "error"]


class SafetyViolation(BaseModel):
    violation_level: ViolationLevel
    user_message: str | None = Field(default=None, description="What to tell the end user.")
    metadata: dict[str, Any] = Field(
        default_factory=dict,
        description="violation_type, categories, category_scores and provider details (never the "
        "offending text itself).",
    )


class RunShieldRequest(BaseModel):
    shield_id: str = Field(min_length=1)
    messages: list[Message] = Field(
        min_length=1, description="The conversation; most shields judge the last."
    )
    params: dict[str, Any] = Field(
        default_factory=dict, description="Per-call settings, over the shield's registered params."
    )


class RunShieldResponse(BaseModel):
    violation: SafetyViolation | None = None


# -- OpenAI moderations ----------------------------------------------------------------------------

# The categories of OpenAI's moderation results, all present in every result; shields map theirs onto
# these, and may add categories of their own (``prompt_injection``, ``pii``, ...) as extra keys.
OPENAI_MODERATION_CATEGORIES: tuple[str, ...] = (
    "harassment",
    "harassment/threatening",
    "hate",
    "hate/threatening",
    "illicit",
    "illicit/violent",
    "self-harm",
    "self-harm/instructions",
    "self-harm/intent",
    "sexual",
    "sexual/minors",
    "violence",
    "violence/graphic",
)
MAX_MODERATION_INPUTS = 256


class ModerationTextInput(BaseModel):
    type: Literal["text"]
    text: str


class ModerationImageInput(BaseModel):
    type: Literal["image_url"]
    image_url: dict[str, Any]


class ModerationRequest(BaseModel):
    input: str | list[str | ModerationTextInput | ModerationImageInput] = Field(
        description="A text, or a list of texts (strings or {type: text} objects); each gets its own result."
    )
    model: str | None = Field(
        default=None,
        description="The shield to run: its identifier or its provider_shield_id. Omitted: the run "
        "config's safety.default_shield_id, else its first shield under `shields:`, else the only "
        "registered shield.",
    )


class ModerationResult(BaseModel):
    flagged: bool
    categories: dict[str, bool]
    category_scores: dict[str, float]
    category_applied_input_types: dict[str, list[str]]
    user_message: str | None = None
    metadata: dict[str, Any] = Field(default_factory=dict)


class ModerationObject(BaseModel):
    id: str
    model: str
    results: list[ModerationResult]


# -- the API ---------------------------------------------------------------------------------------


class Shields(Protocol):
    @webmethod(
        "GET",
        "/v1/shields",
        request=Empty,
        response=ListShieldsResponse,
        access=lists("shield", "identifier"),
    )
    async def list_shields(self, request: Empty) -> ListShieldsResponse:
        """List registered shields."""
        ...

    @webmethod(
        "GET",
        "/v1/shields/{identifier:.+}",
        request=GetShieldRequest,
        response=Shield,
        access=reads("shield", "identifier"),
    )
    async def get_shield(self, request: GetShieldRequest) -> Shield:
        """Get a shield by its identifier."""
        ...

    @webmethod(
        "POST",
        "/v1/shields",
        request=RegisterShieldRequest,
        response=Shield,
        access=creates("shield", "identifier", requested="shield_id"),
    )
    async def register_shield(self, request: RegisterShieldRequest) -> Shield:
        """Register a shield with a safety provider (the provider checks it can serve it)."""
        ...

    @webmethod(
        "DELETE",
        "/v1/shields/{identifier:.+}",
        request=GetShieldRequest,
        response=None,
        access=deletes("shield", "identifier"),
    )
    async def unregister_shield(self, request: GetShieldRequest) -> None:
        """Unregister a shield."""
        ...


class Safety(Protocol):
    @webmethod(
        "POST",
        "/v1/safety/run-shield",
        request=RunShieldRequest,
        response=RunShieldResponse,
        cancel_on_disconnect=True,
        access=uses(("shield", "shield_id")),
    )
    async def run_shield(self, request: RunShieldRequest) -> RunShieldResponse:
        """Run a shield over messages: a violation, or none."""
        ...

    @webmethod(
        "POST",
        "/v1/openai/v1/moderations",
        cancel_on_disconnect=True,
        aliases=("/v1/moderations",),
        request=ModerationRequest,
        response=ModerationObject,
        openai=True,
        access=uses(("model", "model")),
    )
    async def run_moderation(self, request: ModerationRequest) -> ModerationObject:
        """Classify texts with a shield, in OpenAI's moderation shape (one result per input)."""
        ...


# -- what a provider implements ----------------------------------------------------------------------


class SafetyProvider(Protocol):
    """A Safety provider: serves the shields registered with it.

    Contract (``lamina.testing.conformance.SafetyConformance`` checks it):

    * ``register_shield`` checks the provider can serve the shield (its ``provider_shield_id`` and
      ``params``) and raises ``BadRequestError`` naming the field and the fix when not; it is
      called again for every registered shield after a restart. ``unregister_shield`` forgets it.
    * ``run_shield`` judges ``messages`` (validated, at least one) with the shield's registered
      ``params`` overlaid by the call's ``params``, and returns ``RunShieldResponse(violation=None)``
      when nothing is wrong. A verdict it cannot reach (a guard model answering nonsense, a backend
      down) raises (``UpstreamError`` and friends), never a silent "safe".
    * A violation's ``metadata`` carries ``violation_type`` (a short machine-readable string) and,
      for moderations, ``categories`` (the moderation categories it falls under: names from
      ``OPENAI_MODERATION_CATEGORIES`` or the provider's own, such as ``prompt_injection``) and
      optionally ``category_scores`` (category -> score in [0, 1]). It never holds the offending
      text or secret itself: metadata is logged and returned to clients.
    * Optional ``run_moderation(shield, texts, params) -> list[ModerationResult]``: a provider that
      can score safe texts too (a classifier) implements it to fill ``category_scores`` for every
      input; without it, the core runs ``run_shield`` once per text (a user message each) and
      scores each category 1.0 when flagged, 0.0 otherwise.
    * CPU-heavy work (classifiers) runs off the event loop.
    """

    async def register_shield(self, shield: Shield) -> None:
        """Check the provider can serve ``shield``; ``BadRequestError`` naming the field otherwise."""
        ...

    async def unregister_shield(self, shield: Shield) -> None:
        """Forget ``shield`` (``DELETE /v1/shields/{identifier}``)."""
        ...

    async def run_shield(
        self, shield: Shield, messages: list[Message], params: dict[str, Any]
    ) -> RunShieldResponse:
        """Judge ``messages``: ``RunShieldResponse(violation=None)``, or a ``SafetyViolation``.

        ``params`` is the shield's registered params overlaid by the call's. Raise when no verdict
        can be reached; never answer a silent "safe".
        """
        ...
