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
