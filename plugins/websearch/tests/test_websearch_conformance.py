"""remote::brave-search and remote::tavily-search pass the Tool Runtime conformance kit.

The search APIs cannot be reached from here: each server points at ``fake_search.py``, a local server
speaking both wire formats (see test_websearch_e2e.py).
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar

import pytest

from lamina.testing.conformance import ToolRuntimeConformance
from lamina.testing.processes import ServerProcess, free_port, lamina_server

HERE = Path(__file__).parent


class _SearchKit(ToolRuntimeConformance):
    provider_type: ClassVar[str] = ""
    base_path: ClassVar[str] = ""
    tool_name = "web_search"
    tool_kwargs: ClassVar[dict[str, Any]] = {"query": "llamas"}
    expected_text = "llamas - result 1"  # in both: Brave ranks web result 1 second, Tavily lists it

    @pytest.fixture(scope="class")
    @classmethod
    def conformance_lamina(cls, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
        work = tmp_path_factory.mktemp(cls.__name__.lower())
        port = free_port()
        argv = [sys.executable, str(HERE / "fake_search.py"), "--port", str(port), "--keys", "kit-key"]
        with ServerProcess(argv, port, log_path=work / "search.log") as api:
            config = {
                "version": 2,
                "image_name": cls.__name__.lower(),
                "apis": ["tool_runtime"],
                "providers": {
                    "tool_runtime": [
                        {
                            "provider_id": "search",
                            "provider_type": cls.provider_type,
                            "config": {"api_key": "kit-key", "base_url": f"{api.url}{cls.base_path}"},
                        }
                    ]
                },
            }
            with lamina_server(config, work) as server:
                yield server


class TestBraveSearchKit(_SearchKit):
    provider_type = "remote::brave-search"
    base_path = "/res/v1"
    tool_group: ClassVar[dict[str, Any] | None] = {"provider_id": "search"}


class TestTavilySearchKit(_SearchKit):
    provider_type = "remote::tavily-search"
    tool_group: ClassVar[dict[str, Any] | None] = {"provider_id": "search"}
