"""The ray executor against a real local Ray cluster of two nodes (conftest.py): ``map`` fans work items
out to actors holding worker stacks (built from the run config of a real stack started here, whose
registry they read) that call a real upstream process (the fake OpenAI server: its ``gated`` model holds
requests in flight on demand, its marks count each answer a client received)."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from lamina.config import RunConfig
from lamina.jobs.work import WorkApis, WorkEnvironment
from lamina.plugins import load_plugin_manager
from lamina.request_context import PROVIDER_DATA
from lamina.stack import Stack
from lamina.testing.processes import ServerProcess, fake_openai_server

HERE = Path(__file__).resolve().parent
# The exceptions ray_work raises come back pickled by class: this process must import it by name too (a
# plugin's work functions are importable wherever it is installed).
if str(HERE) not in sys.path:
    sys.path.append(str(HERE))
ANSWER = "Hello from the fake upstream."
HEAD, WORKER = "127.0.0.2", "127.0.0.3"

if sys.platform != "linux":  # several loopback addresses (127.0.0.2, .3) are Linux's
    pytest.skip("the local two-node Ray cluster needs Linux", allow_module_level=True)


@pytest.fixture(scope="module")
def fake(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    with fake_openai_server(tmp_path_factory.mktemp("fake")) as server:
        yield server


def gate(fake: ServerProcess, open_: bool | None = None) -> dict[str, Any]:
    if open_ is None:
        return httpx.get(f"{fake.url}/_fake/gate").json()
    return httpx.post(f"{fake.url}/_fake/gate", json={"open": open_}).json()


def marks(fake: ServerProcess) -> dict[str, int]:
    return httpx.get(f"{fake.url}/_fake/marks").json()


async def until(check: Callable[[], Any], what: str, within: float = 60.0) -> Any:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while loop.time() < deadline:
        value = await asyncio.to_thread(check)
        if value:
            return value
        await asyncio.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.fixture
async def stack(fake: ServerProcess, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Stack]:
    """The server's stack: it registers the models (in the registry the actors read)."""
    monkeypatch.setenv("LAMINA_HOME", str(tmp_path / "home"))
    config = RunConfig.model_validate(
        {
            "image_name": "ray-tests",
            "providers": {
                "inference": [
                    {
                        "provider_id": "fake",
                        "provider_type": "remote::vllm",
                        "config": {"url": f"{fake.url}/v1"},
                    }
                ]
            },
            "metadata_store": {"type": "sqlite", "db_path": str(tmp_path / "registry.db")},
            "models": [
                {"model_id": m, "provider_id": "fake", "provider_model_id": m}
                for m in ("ok", "gated", "echo")
            ],
        }
    )
    stack = Stack.build(config, load_plugin_manager())
    await stack.start()
    try:
        yield stack
    finally:
        await stack.shutdown()


@pytest.fixture
async def executor(ray_cluster: Any) -> AsyncIterator[Callable[..., Any]]:
    """``await executor(**settings)``: a started ray executor on the test cluster, shut down afterwards."""
    from lamina_ray.executor import create_executor

    made: list[Any] = []

    async def make(**settings: Any) -> Any:
        config = {
            "address": ray_cluster.address,
            "num_actors": 2,
            # This folder on the actors' path: they import ray_work by name.
            "runtime_env": {"env_vars": {"PYTHONPATH": str(HERE)}},
            **settings,
        }
        ex = create_executor(config)
        await ex.start()
        made.append(ex)
        return ex

    yield make
    for ex in made:
        await ex.shutdown()


def work(stack: Stack) -> WorkEnvironment:
    return WorkEnvironment(WorkApis(stack.routers, tuple(stack.providers)), stack.config)


def items(prefix: str, n: int, **extra: Any) -> list[dict[str, Any]]:
    return [{"mark": f"{prefix}{i}", **extra} for i in range(n)]


async def test_map_runs_every_item_on_both_nodes_with_the_callers_provider_data(
    stack: Stack, executor: Callable[..., Any], fake: ServerProcess
) -> None:
    ex = await executor(max_in_flight=4)
    seen: dict[int, Any] = {}

    async def on_result(index: int, result: Any) -> None:
        seen[index] = result

    token = PROVIDER_DATA.set({"vllm_api_token": "caller-token"})
    try:
        await ex.map("ray_work:chat", items("a", 40), work=work(stack), concurrency=8, on_result=on_result)
    finally:
        PROVIDER_DATA.reset(token)
    assert sorted(seen) == list(range(40))
    assert [seen[i]["mark"] for i in range(40)] == [f"a{i}" for i in range(40)]
    assert {r["content"] for r in seen.values()} == {ANSWER}
    assert {r["provider_data"]["vllm_api_token"] for r in seen.values()} == {"caller-token"}
    assert {r["work_class"] for r in seen.values()} == {"batch"}
    assert {r["node_ip"] for r in seen.values()} == {HEAD, WORKER}  # one actor per node (1 CPU each)
    assert all(marks(fake).get(f"a{i}") == 1 for i in range(40))
    # Provider data reaches the upstream call as it would in the server: the echo model answers its key.
    out: list[Any] = []

    async def keep(index: int, result: Any) -> None:
        out.append(result)

    token = PROVIDER_DATA.set({"vllm_api_token": "caller-token"})
    try:
        await ex.map(
            "ray_work:chat", [{"mark": "e", "model": "echo"}], work=work(stack), concurrency=1, on_result=keep
        )
    finally:
        PROVIDER_DATA.reset(token)
    assert '"_authorization": "Bearer caller-token"' in out[0]["content"]


async def test_at_most_concurrency_items_in_flight_and_at_most_max_in_flight_per_actor(
    stack: Stack, executor: Callable[..., Any], fake: ServerProcess
) -> None:
    ex = await executor(max_in_flight=2)
    for concurrency, bound in ((3, 3), (10, 4)):  # 10 wanted, but 2 actors x 2 in flight
        gate(fake, False)
        peak = 0

        async def watch() -> None:
            nonlocal peak
            while True:
                peak = max(peak, (await asyncio.to_thread(gate, fake))["waiting"])
                await asyncio.sleep(0.02)

        task = asyncio.create_task(
            ex.map(
                "ray_work:chat",
                items(f"c{concurrency}-", 12, model="gated"),
                work=work(stack),
                concurrency=concurrency,
            )
        )
        watcher = asyncio.create_task(watch())
        await until(lambda b=bound: gate(fake)["waiting"] == b, f"{bound} items held at the gate")
        await asyncio.sleep(0.3)  # room for an item beyond the bound to arrive, were there one
        held = gate(fake)["waiting"]
        gate(fake, True)
        await task
        watcher.cancel()
        # The bound was reached and never passed (the watcher samples every 20 ms while items are held).
        assert held == bound and peak <= bound, (concurrency, held, peak)
    assert all(marks(fake).get(f"c10-{i}") == 1 for i in range(12))


async def test_the_first_raising_item_stops_the_map_with_its_own_exception(
    stack: Stack, executor: Callable[..., Any], fake: ServerProcess
) -> None:
    ex = await executor()
    batch = items("r", 60)
    batch[3]["bad"] = "no such thing"
    with pytest.raises(ValueError, match=r"item r3 is bad: no such thing") as info:
        await ex.map("ray_work:fail_on", batch, work=work(stack), concurrency=2)
    assert type(info.value).__name__ == "BadItemError"  # its own type, not Ray's wrapper
    sent = [m for m in marks(fake) if m.startswith("r")]
    assert "r3" not in sent and len(sent) < 30  # items not started never start


async def test_cancelling_the_map_cancels_the_ray_tasks_in_flight(
    stack: Stack, executor: Callable[..., Any], fake: ServerProcess
) -> None:
    ex = await executor()
    gate(fake, False)
    task = asyncio.create_task(
        ex.map("ray_work:chat", items("x", 20, model="gated"), work=work(stack), concurrency=4)
    )
    await until(lambda: gate(fake)["waiting"] == 4, "four items held at the gate")
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    # The actors' coroutines were cancelled: their upstream requests are gone, none gets an answer.
    gate(fake, True)
    await until(lambda: gate(fake)["waiting"] == 0, "the held requests to end")
    await asyncio.sleep(0.2)
    assert not [m for m in marks(fake) if m.startswith("x")]


async def test_an_item_whose_actor_dies_is_retried_on_another_and_bounded(
    stack: Stack, executor: Callable[..., Any], fake: ServerProcess, tmp_path: Path
) -> None:
    ex = await executor(max_attempts=2)
    flag = tmp_path / "crashed"
    batch = items("d", 6)
    batch[0]["crash_flag"] = str(flag)
    out: dict[int, Any] = {}

    async def keep(index: int, result: Any) -> None:
        out[index] = result

    await ex.map("ray_work:crash_once", batch, work=work(stack), concurrency=2, on_result=keep)
    assert sorted(out) == list(range(6)) and {r["content"] for r in out.values()} == {ANSWER}
    crashed_pid = int(flag.read_text())
    assert out[0]["pid"] != crashed_pid  # answered by another actor
    assert sum(1 for a in ex._pool.actors if a.dead) == 1

    # An item that kills every actor it reaches: tried max_attempts times, then the map fails naming why.
    with pytest.raises(
        RuntimeError, match=r"item 0 was tried 2 times .*max_attempts.* died: actor #\d+ on node"
    ) as info:
        await ex.map("ray_work:crash_always", [{"mark": "z"}], work=work(stack), concurrency=1)
    assert "ActorDiedError" in str(info.value)


async def test_actors_that_cannot_build_their_stack_fail_the_map_naming_why(
    stack: Stack, executor: Callable[..., Any]
) -> None:
    ex = await executor(apis=["safety"])  # no safety provider in the run config
    with pytest.raises(
        RuntimeError, match=r"2 of 2 actors could not start their worker stack: ConfigError: .*safety"
    ):
        await ex.map("ray_work:chat", items("s", 2), work=work(stack), concurrency=2)


async def test_with_server_the_pool_starts_on_prepare_and_the_first_map_uses_it(
    stack: Stack, executor: Callable[..., Any]
) -> None:
    """``start_actors: with_server``: ``prepare`` (the job manager calls it at start-up) starts the actors
    in the background; the first map runs on that pool, starting no other."""
    from lamina_ray.pool import ActorPool

    ex = await executor(start_actors="with_server")
    assert ex._pool is None
    await ex.prepare(work(stack))  # returns at once: the actors start in a task
    assert ex._warming is not None
    await asyncio.wait_for(asyncio.shield(ex._warming), 120)
    pool = ex._pool
    assert isinstance(pool, ActorPool) and len(pool.live()) == 2 and pool.started == 2
    seen: list[Any] = []

    async def keep(index: int, result: Any) -> None:
        seen.append(result)

    await ex.map("ray_work:chat", items("p", 4), work=work(stack), concurrency=4, on_result=keep)
    assert len(seen) == 4 and ex._pool is pool and pool.started == 2


async def test_first_batch_starts_no_actors_until_a_map(stack: Stack, executor: Callable[..., Any]) -> None:
    """The default: no actor (and no cluster CPU held) until a job fans work out."""
    ex = await executor()
    await ex.prepare(work(stack))
    assert ex._warming is None and ex._pool is None
    await ex.map("ray_work:chat", items("f", 2), work=work(stack), concurrency=2)
    assert ex._pool is not None and ex._pool.started == 2


async def test_a_pool_that_cannot_start_with_the_server_is_logged_and_the_first_map_says_why(
    stack: Stack, executor: Callable[..., Any]
) -> None:
    from structlog.testing import capture_logs

    # no safety provider in the run config: the actors cannot start
    ex = await executor(apis=["safety"], start_actors="with_server")
    with capture_logs() as logs:
        await ex.prepare(work(stack))
        await asyncio.wait_for(asyncio.shield(ex._warming), 120)
    [failed] = [e for e in logs if e["event"] == "ray_pool_start_failed"]
    assert "could not start their worker stack" in failed["error"] and failed["when"] == "with_server"
    assert ex._pool is None
    with pytest.raises(RuntimeError, match=r"2 of 2 actors could not start their worker stack: .*safety"):
        await ex.map("ray_work:chat", items("s", 2), work=work(stack), concurrency=2)


async def test_shutdown_while_the_pool_starts_leaves_no_actor(
    stack: Stack, executor: Callable[..., Any]
) -> None:
    import ray

    await executor()  # connected first: it keeps Ray connected here after the one below shuts down
    ex = await executor(start_actors="with_server")
    await ex.prepare(work(stack))
    await asyncio.sleep(0.5)  # its actors are being created (each takes seconds to start its stack)
    await ex.shutdown()
    assert ex._warming is None and ex._pool is None

    def all_cpus_free() -> bool:  # each actor holds one of the cluster's two CPUs while it lives
        return ray.available_resources().get("CPU", 0) == ray.cluster_resources().get("CPU")

    await until(all_cpus_free, "the starting actors to be killed", within=60)


async def test_an_idle_pool_is_stopped_freeing_its_cpus_and_the_next_map_starts_another(
    stack: Stack, executor: Callable[..., Any], fake: ServerProcess
) -> None:
    """idle_timeout: no map for that long stops the actors (their CPUs free for other Ray work); a map in
    flight, even a long one, keeps them; the next map starts a new pool."""
    import ray

    ex = await executor(idle_timeout=1)
    gate(fake, False)
    held = asyncio.create_task(
        ex.map("ray_work:chat", items("i", 2, model="gated"), work=work(stack), concurrency=2)
    )
    await until(lambda: gate(fake)["waiting"] == 2, "two items held on the actors")
    first = ex._pool
    await asyncio.sleep(2)  # longer than idle_timeout, but a map is in flight
    assert ex._pool is first and len(first.live()) == 2
    gate(fake, True)
    await held

    def all_cpus_free() -> bool:
        return ray.available_resources().get("CPU", 0) == ray.cluster_resources().get("CPU")

    await until(lambda: ex._pool is None, "the idle pool to be stopped", within=30)
    await until(all_cpus_free, "the idle pool's actors to free their CPUs", within=60)
    seen: list[Any] = []

    async def keep(index: int, result: Any) -> None:
        seen.append(result)

    await ex.map("ray_work:chat", items("j", 2), work=work(stack), concurrency=2, on_result=keep)
    assert len(seen) == 2 and {r["content"] for r in seen} == {ANSWER}
    assert ex._pool is not None and ex._pool is not first


async def test_an_item_on_a_node_that_dies_is_retried_on_the_other_node(
    stack: Stack, executor: Callable[..., Any], fake: ServerProcess, ray_cluster: Any
) -> None:
    """Last in this module: the cluster has one node left afterwards."""
    ex = await executor(max_in_flight=1)
    gate(fake, False)
    out: dict[int, Any] = {}

    async def keep(index: int, result: Any) -> None:
        out[index] = result

    task = asyncio.create_task(
        ex.map("ray_work:chat", items("n", 6, model="gated"), work=work(stack), concurrency=2, on_result=keep)
    )
    await until(lambda: gate(fake)["waiting"] == 2, "one item held on each node")
    ray_cluster.kill_node(0)
    [dead] = await until(
        lambda: [a for a in ex._pool.actors if a.dead], "the pool to see the node's actor die"
    )
    gate(fake, True)
    await task
    assert sorted(out) == list(range(6)) and {r["content"] for r in out.values()} == {ANSWER}
    assert dead.where["node_ip"] == WORKER
    assert {r["node_ip"] for r in out.values()} == {HEAD}  # the worker node's item was answered on the head
    # Which Ray reports first depends on timing: the GCS's death notice or the closed socket to the node
    assert "ActorDiedError" in dead.dead or "ActorUnavailableError: The actor" in dead.dead, dead.dead
