"""What every provider object gets and may implement."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lamina.apis.models import Model
from lamina.jobs.manager import JobManager
from lamina.specs import Api


@dataclass
class ProviderContext:
    """Handed to a provider factory: who the provider is and where it may keep state."""

    api: Api
    provider_id: str
    provider_type: str
    state_dir: Path
    metadata_store: dict[str, Any] | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    # The server's job manager (lamina.jobs): register job kinds in ``initialize`` and submit jobs.
    jobs: JobManager | None = None


class ProviderBase:
    """Default lifecycle for providers; override what you need.

    ``initialize`` and ``shutdown`` are awaited once by the server's cleanup context; ``health``
    backs ``GET /v1/providers``. None of them may block the event loop.

    An inference provider whose backend knows which models it serves may also implement
    ``list_models`` (and ``should_refresh_models``, with an optional ``refresh_interval``
    attribute in seconds, default 60): the core then registers those models itself, at start-up
    and, when asked, periodically. See the two methods below.
    """

    def __init__(self, context: ProviderContext) -> None:
        self.context = context

    @property
    def provider_id(self) -> str:
        return self.context.provider_id

    async def initialize(self) -> None:
        """Awaited once at start-up, after the factory and before any request: open clients, load models.

        Raising stops start-up with the provider named. Bound any probe of a remote backend by a
        couple of seconds and do not fail because it is down: ``health`` reports that.
        """
        return None

    async def shutdown(self) -> None:
        """Awaited once at shutdown (in reverse start order): close clients, stop workers, flush state."""
        return None

    async def health(self) -> dict[str, Any]:
        """``{"status": "OK"}``, or ``{"status": "Error", "message": ...}`` when the backend is down.

        Asked at start-up and behind ``GET /v1/providers``; an ``Error`` marks the provider down in
        ``/v1/health`` and the core asks again with backoff until it answers ``OK``. Keep it cheap
        and bounded. The default, ``Not Implemented``, counts as healthy.
        """
        return {"status": "Not Implemented"}

    async def list_models(self) -> list[Model] | None:
        """The models the backend serves now, or None when it cannot say (the default).

        Inference providers only. Called once at start-up, after the run config's models are
        registered, and by the refresh loop. The core registers each listed model that is not
        registered yet (``metadata.source: listed_from_provider``; the identifier is the listed
        ``identifier``, upstream name ``provider_resource_id``), re-registers a listed one whose
        ``model_type`` or ``metadata`` changed, and unregisters the ones this provider listed before
        and lists no more. Identifiers registered by the run config, a user or another provider are
        never touched. Each new registration still passes through ``register_model``. Raising
        (backend down) is logged as a warning and changes nothing; start-up goes on.
        """
        return None

    async def should_refresh_models(self) -> bool:
        """True to have the core call ``list_models`` again every ``refresh_interval`` seconds.

        Asked once after start-up (a loop starts only when true) and before each refresh. The loop
        runs until shutdown; a failed refresh is logged and the loop goes on.
        """
        return False
