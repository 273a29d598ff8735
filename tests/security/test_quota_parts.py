"""The quota parts on their own: Llama Stack 0.2.12's ``server.quota`` shape, Lamina's additions,
the windows, and which request fields ``server.request_bounds`` checks (the servers that act on them:
test_quotas_e2e.py and test_attacks_e2e.py)."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from lamina.apis.datasets import AppendRowsRequest, GetDatasetRequest
from lamina.apis.inference import ChatCompletionRequest, OpenAIChatCompletionRequest
from lamina.config import load_run_config_text
from lamina.errors import BadRequestError, ConfigError
from lamina.quotas.bounds import RequestBounds, request_check
from lamina.quotas.config import QuotaConfig, QuotaPeriod
from lamina.quotas.counting import current_window

PROVIDERS = "providers:\n  inference:\n  - {provider_id: v, provider_type: remote::vllm, config: {url: http://h/v1}}\n"


def test_llama_stack_0_2_12_quota_runs_unchanged() -> None:
    config = load_run_config_text(
        "version: 2\n" + PROVIDERS + "server:\n  quota:\n    kvstore: {type: sqlite, db_path: /tmp/q.db}\n"
        "    anonymous_max_requests: 5\n    authenticated_max_requests: 50\n    period: day\n",
        source="run.yaml",
    )
    quota = config.server.quota
    assert quota is not None and quota.period is QuotaPeriod.day and quota.authenticated_max_requests == 50
    assert quota.token_budgets == {} and quota.max_concurrent_requests is None
    assert "/v1/health" in quota.exempt_paths
    empty = load_run_config_text("version: 2\n" + PROVIDERS + "server:\n  quota: {}\n", source="run.yaml")
    assert empty.server.quota is None  # Llama Stack templates' "not set"


@pytest.mark.parametrize(
    ("quota", "says"),
    [
        ({"kvstore": {"type": "sqlite", "db_path": "q"}, "period": "week"}, "minute"),
        ({"kvstore": {"type": "sqlite", "db_path": "q"}, "token_budgets": {"m": 0}}, "at least 1"),
        (
            {"kvstore": {"type": "sqlite", "db_path": "q"}, "max_concurent_requests": 2},
            "max_concurent_requests",
        ),
        ({"anonymous_max_requests": 1}, "kvstore"),
    ],
)
def test_bad_quota_configs_are_refused(quota: dict, says: str) -> None:
    with pytest.raises(ValidationError, match=says):
        QuotaConfig.model_validate(quota)


def test_a_bad_quota_in_a_run_config_names_the_key() -> None:
    with pytest.raises(ConfigError, match=r"server\.quota\.period"):
        load_run_config_text(
            "version: 2\n"
            + PROVIDERS
            + "server:\n  quota: {kvstore: {type: sqlite, db_path: q}, period: week}\n",
            source="run.yaml",
        )


def test_windows_are_aligned_to_the_clock() -> None:
    config = QuotaConfig.model_validate({"kvstore": {"type": "sqlite", "db_path": "q"}, "period": "hour"})
    window = current_window(config, now=7200 + 1800.5)
    assert window.index == 2 and window.ends_at == 3 * 3600
    assert window.retry_after(7200 + 1800.5) == 1800
    assert window.retry_after(3 * 3600 - 0.2) == 1  # never 0: a client retrying at once would be refused


def test_bounds_check_only_the_fields_that_multiply_work() -> None:
    bounds = RequestBounds(max_n=2, max_tokens=100, dataset_append_max_rows=1)
    assert request_check(GetDatasetRequest, bounds) is None  # nothing to check: no cost
    assert request_check(OpenAIChatCompletionRequest, None) is None
    check = request_check(OpenAIChatCompletionRequest, bounds)
    hi = [{"role": "user", "content": "hi"}]
    check(OpenAIChatCompletionRequest(model="m", messages=hi, n=2, max_tokens=100))
    with pytest.raises(BadRequestError, match=r"server\.request_bounds\.max_n") as caught:
        check(OpenAIChatCompletionRequest(model="m", messages=hi, n=3))
    assert caught.value.param == "n" and caught.value.status == 400
    with pytest.raises(BadRequestError, match="max_completion_tokens: 101 completion tokens"):
        check(OpenAIChatCompletionRequest(model="m", messages=hi, max_completion_tokens=101))
    native = request_check(ChatCompletionRequest, bounds)
    with pytest.raises(BadRequestError) as caught:
        native(ChatCompletionRequest(model_id="m", messages=hi, sampling_params={"max_tokens": 500}))
    assert caught.value.param == "sampling_params.max_tokens"
    with pytest.raises(BadRequestError, match="rows: 2 rows asked"):
        request_check(AppendRowsRequest, bounds)(AppendRowsRequest(dataset_id="d", rows=[{}, {}]))


class _CountingKV:
    """The real SQLite kvstore, counting the increments that reach it."""

    def __init__(self, kv) -> None:
        self.kv, self.increments = kv, 0

    async def increment(self, key, amount, expiration):
        self.increments += 1
        return await self.kv.increment(key, amount, expiration)

    async def get(self, key):
        return await self.kv.get(key)


async def test_concurrent_additions_are_coalesced_and_each_sees_its_own_count(tmp_path) -> None:
    """64 requests of one client at once: every count from 1 to 64 is handed out once (as if counted
    one by one), the store holds 64, and it was written far fewer than 64 times."""
    import asyncio

    from lamina.quotas.counting import Client, QuotaCounter
    from lamina.storage import open_kvstore

    config = QuotaConfig.model_validate({"kvstore": {"type": "sqlite", "db_path": str(tmp_path / "q.db")}})
    kv = await open_kvstore(config.kvstore)
    try:
        counting = _CountingKV(kv)
        counter = QuotaCounter(config, counting)  # type: ignore[arg-type]
        client, window = Client("user:alice", True), current_window(config)
        counts = await asyncio.gather(*(counter.add("requests", client, 1, window) for _ in range(64)))
        assert sorted(counts) == list(range(1, 65))
        assert counting.increments < 64
        assert await counter.get("requests", client, window) == 64
        assert await counter.add("requests", client, 3, window) == 67  # a lone addition: its own write
        assert await counter.add("requests", Client("user:bob", True), 1, window) == 1  # keys apart
    finally:
        await kv.close()


async def test_a_failed_increment_fails_every_addition_of_its_batch(tmp_path) -> None:
    import asyncio

    from lamina.quotas.counting import Client, QuotaCounter
    from lamina.storage.kvstore import StorageError

    class Down:
        async def increment(self, key, amount, expiration):
            raise StorageError("sqlite store q.db: disk I/O error")

    config = QuotaConfig.model_validate({"kvstore": {"type": "sqlite", "db_path": str(tmp_path / "q.db")}})
    counter = QuotaCounter(config, Down())  # type: ignore[arg-type]
    window = current_window(config)
    alice = Client("user:a", True)
    adds = [counter.add("requests", alice, 1, window) for _ in range(5)]
    results = await asyncio.gather(*adds, return_exceptions=True)
    assert all(isinstance(r, StorageError) and "disk I/O" in str(r) for r in results)
    assert counter._writers == {} and counter._batches == {}  # nothing left waiting
