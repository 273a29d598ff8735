"""A router for an API that one provider serves at a time (files, agents): the first started provider
in run-config order answers; others configured beside it are named once in the log as unused."""

from __future__ import annotations

from typing import Any, ClassVar

import structlog

from lamina.errors import ServiceUnavailableError

log = structlog.get_logger(__name__)


class SingleProviderRouter:
    #: the API's name in messages and in the run config's ``providers:``
    api_name: ClassVar[str] = ""

    def __init__(self, impls: dict[str, Any], order: list[str] | None = None) -> None:
        self.impls = impls  # provider_id -> provider; filled as providers start
        self.order = order or []  # provider ids in run-config order
        self._warned = False

    @property
    def provider(self) -> Any:
        ids = [pid for pid in self.order if pid in self.impls] or list(self.impls)
        if not ids:
            raise ServiceUnavailableError(
                f"no {self.api_name} provider has started; add one under providers.{self.api_name}"
            )
        if len(ids) > 1 and not self._warned:
            self._warned = True
            log.warning(f"{self.api_name}_providers_unused", serving=ids[0], unused=ids[1:])
        return self.impls[ids[0]]
