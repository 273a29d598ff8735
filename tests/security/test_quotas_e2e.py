"""``server.quota`` end to end: two real ``lamina run`` replicas share one SQLite quota store, behind
``oauth2_token`` auth (tokens from lamina.testing.auth_servers' JWKS), driven by llama-stack-client
0.2.12, the openai SDK and raw HTTP. The upstream is the fake OpenAI server (a fake because no real
model answers on this machine at the pace these tests need; its ``[[gate]]`` holds requests in flight).

Each test uses its own principals, so the servers (shared by the module) carry no count between tests.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
from llama_stack_client import LlamaStackClient
from llama_stack_client import RateLimitError as LSRateLimitError
from openai import OpenAI

from lamina.testing.auth_servers import AUDIENCE, ISSUER, IdentityProvider
from lamina.testing.processes import ServerProcess, fake_openai_server, lamina_server, until

pytestmark = pytest.mark.e2e

PER_DAY = 6
ANONYMOUS = 3
BUDGET = 30  # tokens: the fake's answers use 8 (13 streamed), so a few calls spend it


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    work: Path = tmp_path_factory.mktemp("quotas")
    with IdentityProvider() as idp, fake_openai_server(work) as fake:
        config = {
            "version": 2,
            "image_name": "quotas",
            "providers": {
                "inference": [
                    {
                        "provider_id": "fake",
                        "provider_type": "remote::vllm",
                        "config": {"url": f"{fake.url}/v1"},
                    }
                ]
            },
            "models": [
                {"model_id": "ok", "provider_id": "fake"},
                {"model_id": "free", "provider_id": "fake", "provider_model_id": "ok"},
            ],
            "server": {
                "auth": {
                    "provider_type": "oauth2_token",
                    "config": {"jwks": {"uri": f"{idp.url}/jwks"}, "issuer": ISSUER, "audience": AUDIENCE},
                    # one route open, so that anonymous clients (counted by address) can be tested
                    "open_paths": ["/v1/health", "/v1/version", "/v1/inspect/routes"],
                },
                "quota": {  # Llama Stack 0.2.12's keys, then Lamina's
                    "kvstore": {"type": "sqlite", "db_path": str(work / "quota.db")},
                    "anonymous_max_requests": ANONYMOUS,
                    "authenticated_max_requests": PER_DAY,
                    "period": "day",
                    "max_concurrent_requests": 2,
                    "token_budgets": {"ok": BUDGET},
                },
            },
        }
        with (
            lamina_server(config, work / "a", name="a") as one,
            lamina_server(config, work / "b", name="b") as two,
        ):
            yield {"idp": idp, "fake": fake, "servers": (one, two)}


def _get(server: ServerProcess, token: str | None, path: str = "/v1/models") -> httpx.Response:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return httpx.get(f"{server.url}{path}", headers=headers, timeout=30)


def test_the_request_quota_is_shared_by_replicas(stack: dict[str, Any]) -> None:
    one, two = stack["servers"]
    alice = stack["idp"].token(sub="quota-alice")
    for i in range(PER_DAY):  # alternating replicas: each sees 3, the shared store counts 6
        assert _get((one, two)[i % 2], alice).status_code == 200
    refused = _get(two, alice)
    assert refused.status_code == 429, refused.text
    retry_after = int(refused.headers["Retry-After"])
    assert 1 <= retry_after <= 86400
    error = refused.json()["error"]
    assert error["quota"] == "authenticated_max_requests" and error["limit"] == PER_DAY
    assert f"{PER_DAY} requests per day" in error["message"]
    assert "server.quota.authenticated_max_requests" in refused.json()["detail"]
    # Both official clients see a rate-limit error (their retries off: the server's answer shows).
    with pytest.raises(openai.RateLimitError):
        OpenAI(base_url=f"{one.url}/v1", api_key=alice, max_retries=0).models.list()
    with pytest.raises(LSRateLimitError):
        LlamaStackClient(base_url=one.url, api_key=alice, max_retries=0).models.list()
    # Another principal has its own count; health and version are never counted.
    assert _get(one, stack["idp"].token(sub="quota-bob")).status_code == 200
    assert _get(one, None, "/v1/health").status_code == 200
    assert _get(two, None, "/v1/version").status_code == 200


def test_anonymous_clients_are_counted_by_address(stack: dict[str, Any]) -> None:
    one, two = stack["servers"]
    answers = [_get((one, two)[i % 2], None, "/v1/inspect/routes").status_code for i in range(ANONYMOUS + 1)]
    assert answers == [200] * ANONYMOUS + [429]
    refused = _get(one, None, "/v1/inspect/routes")
    assert refused.json()["error"]["quota"] == "anonymous_max_requests"
    assert "no credentials sent" in refused.json()["detail"] and "Retry-After" in refused.headers


def test_failed_authentications_are_bounded_per_address(stack: dict[str, Any]) -> None:
    """Bad credentials are 401s until the address has failed anonymous_max_requests times (counted in
    the shared store, apart from its anonymous requests), then 429s with Retry-After; valid credentials
    from the same address still pass."""
    one, two = stack["servers"]
    answers = [_get((one, two)[i % 2], f"not-a-token-{i}").status_code for i in range(ANONYMOUS + 1)]
    assert answers == [401] * ANONYMOUS + [429]
    refused = _get(one, "still-not-a-token")
    assert refused.status_code == 429 and "Retry-After" in refused.headers
    assert "too many failed authentications" in refused.json()["error"]["message"]
    assert _get(two, None).status_code == 429  # no credentials at all fails authentication too
    assert _get(one, stack["idp"].token(sub="quota-carol")).status_code == 200


def test_requests_in_flight_per_client_are_bounded(stack: dict[str, Any]) -> None:
    one, _ = stack["servers"]
    fake: ServerProcess = stack["fake"]
    carol = stack["idp"].token(sub="quota-carol")
    client = OpenAI(base_url=f"{one.url}/v1", api_key=carol, max_retries=0)
    httpx.post(f"{fake.url}/_fake/gate", json={"open": False})
    results: list[Any] = []

    def held() -> None:  # model "free": no token budget, so only the in-flight bound is at play
        answer = client.chat.completions.create(
            model="free", messages=[{"role": "user", "content": "[[gate]]"}]
        )
        results.append(answer.choices[0].message.content)

    threads = [threading.Thread(target=held) for _ in range(2)]
    try:
        for t in threads:
            t.start()
        until(lambda: httpx.get(f"{fake.url}/_fake/gate").json()["waiting"] == 2, "two requests at the gate")
        refused = _get(one, carol)
        assert refused.status_code == 429 and refused.headers["Retry-After"] == "1"
        assert refused.json()["error"]["quota"] == "max_concurrent_requests"
        assert "server.quota.max_concurrent_requests" in refused.json()["detail"]
        assert _get(one, stack["idp"].token(sub="quota-dave")).status_code == 200  # others are not held up
    finally:
        httpx.post(f"{fake.url}/_fake/gate", json={"open": True})
        for t in threads:
            t.join(30)
    assert len(results) == 2
    assert _get(one, carol).status_code == 200  # the slots came back


def _spend_until_refused(call) -> Any:
    """Call until the budget refuses (each answer spends tokens: a few calls, well under 40)."""
    for _ in range(40):
        try:
            call()
        except (openai.RateLimitError, LSRateLimitError) as exc:
            return exc.response
    raise AssertionError(f"the token budget of {BUDGET} never refused a call")


def test_token_budgets_charge_streams_and_answers_then_refuse(stack: dict[str, Any]) -> None:
    one, two = stack["servers"]
    erin, gina = (stack["idp"].token(sub=s) for s in ("quota-erin", "quota-gina"))
    chat = OpenAI(base_url=f"{one.url}/v1", api_key=erin, max_retries=0).chat.completions
    hi = [{"role": "user", "content": "hi"}]

    def stream() -> None:  # charged its usage (the provider's, asked for by the client or not) at its end
        for _chunk in chat.create(model="ok", messages=hi, stream=True):
            pass

    refused = _spend_until_refused(stream)
    body = refused.json()
    assert body["error"]["quota"] == "token_budgets.ok" and body["error"]["model"] == "ok"
    assert body["error"]["used"] >= BUDGET
    assert f"of {BUDGET} tokens per day on model 'ok'" in body["detail"]
    assert 1 <= int(refused.headers["Retry-After"]) <= 86400
    # The other replica sees the same spending; a model without a budget still answers.
    with pytest.raises(openai.RateLimitError) as caught:
        OpenAI(base_url=f"{two.url}/v1", api_key=erin, max_retries=0).chat.completions.create(
            model="ok", messages=hi
        )
    assert caught.value.response.json()["error"]["quota"] == "token_budgets.ok"
    assert chat.create(model="free", messages=hi).choices
    # Non-streamed answers through llama-stack-client count too, against another principal's budget.
    ls = LlamaStackClient(base_url=two.url, api_key=gina, max_retries=0)
    refused = _spend_until_refused(lambda: ls.inference.chat_completion(model_id="ok", messages=hi))
    assert refused.json()["error"]["quota"] == "token_budgets.ok"
