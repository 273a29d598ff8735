"""What every provider object gets and may implement."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

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


class ProviderBase:
    """Default lifecycle for providers; override what you need.

    ``initialize`` and ``shutdown`` are awaited once by the server's cleanup context; ``health``
    backs ``GET /v1/providers``. None of them may block the event loop.
    """

    def __init__(self, context: ProviderContext) -> None:
        self.context = context

    @property
    def provider_id(self) -> str:
        return self.context.provider_id

    async def initialize(self) -> None:
        return None

    async def shutdown(self) -> None:
        return None

    async def health(self) -> dict[str, Any]:
        return {"status": "Not Implemented"}
