"""The plugin system through real installed distributions and real ``lamina`` processes.

Each test composes the installed plugins with ``PYTHONPATH`` (see conftest): nothing here patches
the plugin manager. The test distributions live in ``tests/plugin_dists``:

- lamina-test-alpha: inference provider remote::test-alpha, default model alpha-default, route
  GET /alpha/ping, command ``alpha-hello``, distribution alpha-demo
- lamina-test-beta: safety provider inline::test-beta, default shield, a veto on model ids starting
  with ``forbidden-``, a middleware adding ``X-Lamina-Test-Beta``
- lamina-test-broken: fails on import
- lamina-test-dup: offers remote::vllm, which lamina-openai-compat offers too
- lamina-test-badhook: implements ``lamina_model`` (misspelled ``lamina_models``)
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from lamina.testing.processes import ServerProcess, free_port

ROOT = Path(__file__).resolve().parents[2]

ALPHA_CONFIG = {
    "version": 2,
    "image_name": "plugin-dists",
    "providers": {
        "inference": [
            {
                "provider_id": "alpha",
                "provider_type": "remote::test-alpha",
                "config": {"greeting": "hi there"},
            }
        ],
        "safety": [{"provider_id": "beta", "provider_type": "inline::test-beta", "config": {}}],
    },
}

VLLM_CONFIG = {
    "version": 2,
    "image_name": "dup",
    "providers": {
        "inference": [
            {
                "provider_id": "vllm",
                "provider_type": "remote::vllm",
                "config": {"url": "http://127.0.0.1:9/v1"},
            }
        ]
    },
}


def warnings_about(stderr: str, plugin: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith("lamina: warning:") and plugin in line]


# -- lamina plugins ------------------------------------------------------------------------------


def test_plugins_json_lists_versions_providers_resources_and_hooks(dists) -> None:
    result = dists.lamina("plugins", "--json", dists=["alpha", "beta"])
    rows = result.plugins()
    assert rows["test_alpha"] == {
        "name": "test_alpha",
        "distribution": "lamina-test-alpha",
        "version": "0.1.0",
        "module": "lamina_test_alpha.plugin",
        # Where it came from: installed like a wheel (pip --target), so the directory it lies in.
        "path": str(dists.dirs["alpha"]),
        "editable": False,
        "status": "loaded",
        "error": None,
        "hooks": [
            "lamina_cli_commands",
            "lamina_distributions",
            "lamina_inference_providers",
            "lamina_models",
            "lamina_routes",
        ],
        "providers": {"inference": ["remote::test-alpha"]},
        "resources": {"model": ["alpha-default"]},
        "distributions": ["alpha-demo"],
    }
    beta = rows["test_beta"]
    assert (beta["distribution"], beta["version"], beta["status"]) == ("lamina-test-beta", "0.1.0", "loaded")
    assert beta["hooks"] == [
        "lamina_middlewares",
        "lamina_safety_providers",
        "lamina_shields",
        "lamina_validate_resource",
    ]
    assert beta["providers"] == {"safety": ["inline::test-beta"]}
    assert beta["resources"] == {"shield": ["beta-shield"]}
    compat = rows["openai_compat"]
    assert compat["status"] == "loaded" and "remote::vllm" in compat["providers"]["inference"]
    # The in-repo plugins are installed editable (hatch's workspace): their project directory.
    assert (compat["path"], compat["editable"]) == (str(ROOT / "plugins" / "openai-compat"), True)
    assert not result.stderr.strip() or "warning" not in result.stderr, result.explain()

    text = dists.lamina("plugins", dists=["alpha", "beta"])
    assert text.returncode == 0, text.explain()
    assert "lamina-test-alpha 0.1.0 (test_alpha): loaded" in text.stdout
    assert f"  from: {dists.dirs['alpha']}\n" in text.stdout
    assert f"  from: {ROOT / 'plugins' / 'openai-compat'} (editable)\n" in text.stdout
    assert "  inference: remote::test-alpha" in text.stdout
    assert "  model resources: alpha-default" in text.stdout
    assert "  safety: inline::test-beta" in text.stdout


# -- broken plugins ------------------------------------------------------------------------------


def test_broken_plugin_is_reported_by_name_and_skipped(dists) -> None:
    result = dists.lamina("plugins", "--json", dists=["alpha", "broken"])
    # `lamina plugins` lists everything, then exits 1 naming the broken plugin (`lamina run` skips it).
    assert result.returncode == 1, result.explain()
    assert "1 plugin(s) failed to load: lamina-test-broken" in result.stderr
    rows = result.plugins()  # stdout is still pure JSON
    broken = rows["test_broken"]
    assert broken["status"] == "failed"
    assert broken["distribution"] == "lamina-test-broken"
    assert "RuntimeError: lamina-test-broken fails to import on purpose" in broken["error"]
    assert broken["hooks"] == [] and broken["providers"] == {}
    [warning] = warnings_about(result.stderr, "test_broken")
    assert "'lamina-test-broken'" in warning and "fails to import on purpose" in warning
    assert "LAMINA_DISABLE_PLUGINS=lamina-test-broken" in warning
    # The others still work.
    assert rows["test_alpha"]["status"] == "loaded"
    assert rows["test_alpha"]["providers"] == {"inference": ["remote::test-alpha"]}
    text = dists.lamina("plugins", dists=["alpha", "broken"])
    assert text.returncode == 1 and "lamina-test-broken 0.1.0 (test_broken): failed" in text.stdout
    assert "LAMINA_DISABLE_PLUGINS=lamina-test-broken" in text.stderr.splitlines()[-1]
    assert dists.lamina("plugins", dists=["alpha"]).returncode == 0, "nothing broken: exit 0"
    hello = dists.lamina("alpha-hello", dists=["alpha", "broken"])
    assert hello.returncode == 0 and hello.stdout == "alpha says hello to world\n", hello.explain()
    assert len(warnings_about(hello.stderr, "test_broken")) == 1, "reported once per command"


def test_strict_mode_makes_a_broken_plugin_fatal(dists) -> None:
    strict = {"LAMINA_STRICT_PLUGINS": "1"}
    result = dists.lamina("plugins", "--json", dists=["alpha", "broken"], env=strict)
    assert result.returncode != 0, result.explain()
    assert result.stdout == ""
    assert "plugin 'test_broken' from distribution 'lamina-test-broken' is broken" in result.stderr
    assert "fails to import on purpose" in result.stderr
    run = dists.lamina("run", "alpha-demo", "--port", str(free_port()), dists=["alpha", "broken"], env=strict)
    assert run.returncode != 0 and "lamina-test-broken" in run.stderr, run.explain()
    # Strict mode with nothing broken is quiet and fine.
    ok = dists.lamina("plugins", "--json", dists=["alpha", "beta"], env=strict)
    assert ok.plugins()["test_alpha"]["status"] == "loaded"


# -- allow- and deny-lists -------------------------------------------------------------------------


def test_allow_list_loads_only_the_named_plugins(dists) -> None:
    result = dists.lamina(
        "plugins",
        "--json",
        dists=["alpha", "beta", "broken"],
        env={"LAMINA_LOAD_PLUGINS": "lamina-test-alpha"},
    )
    rows = result.plugins()
    assert rows["test_alpha"]["status"] == "loaded"
    for name in ("test_beta", "test_broken", "openai_compat"):
        assert rows[name]["status"] == "disabled", rows[name]
        assert rows[name]["providers"] == {} and rows[name]["hooks"] == []
    assert "test_broken" not in result.stderr, "a disabled plugin is not even imported"

    # Names compare like pip compares them, and entry-point names work too.
    mixed = dists.lamina(
        "plugins",
        "--json",
        dists=["alpha", "beta"],
        env={"LAMINA_LOAD_PLUGINS": "Lamina_Test.Beta, test-alpha"},
    )
    statuses = {name: row["status"] for name, row in mixed.plugins().items()}
    assert statuses["test_alpha"] == statuses["test_beta"] == "loaded"
    assert statuses["openai_compat"] == "disabled"

    # A name matching nothing installed is a warning naming it.
    typo = dists.lamina(
        "plugins", "--json", dists=["alpha"], env={"LAMINA_LOAD_PLUGINS": "lamina-test-alpah"}
    )
    assert typo.plugins()["test_alpha"]["status"] == "disabled"
    assert "LAMINA_LOAD_PLUGINS names 'lamina-test-alpah', which is not an installed plugin" in typo.stderr


def test_deny_list_disables_the_named_plugins(dists) -> None:
    result = dists.lamina(
        "plugins",
        "--json",
        dists=["alpha", "beta", "broken"],
        env={"LAMINA_DISABLE_PLUGINS": "lamina-test-broken,TEST_BETA"},
    )
    rows = result.plugins()
    assert rows["test_broken"]["status"] == "disabled" and rows["test_broken"]["error"] is None
    assert rows["test_beta"]["status"] == "disabled" and rows["test_beta"]["providers"] == {}
    assert rows["test_alpha"]["status"] == "loaded"
    assert not warnings_about(result.stderr, "test_broken"), "disabling a broken plugin silences it"
    # What a disabled plugin offers is gone: a config using the safety provider no longer builds.
    config = dists.write_config("beta-only", {**ALPHA_CONFIG, "image_name": "deny"})
    routes = dists.lamina(
        "routes", str(config), dists=["alpha", "beta"], env={"LAMINA_DISABLE_PLUGINS": "lamina-test-beta"}
    )
    assert routes.returncode != 0
    assert "no installed plugin offers 'inline::test-beta'" in routes.stderr, routes.explain()


# -- conflicts and mistakes ----------------------------------------------------------------------


def test_duplicate_provider_type_fails_startup_naming_both_distributions(dists) -> None:
    config = dists.write_config("vllm", VLLM_CONFIG)
    run = dists.lamina("run", str(config), "--port", str(free_port()), dists=["dup"], timeout=30)
    assert run.returncode != 0, run.explain()
    assert "provider type 'remote::vllm' is offered by two distributions" in run.stderr
    assert "lamina-openai-compat and lamina-test-dup" in run.stderr
    assert "LAMINA_DISABLE_PLUGINS" in run.stderr
    # Listing still works and shows who offers what.
    rows = dists.lamina("plugins", "--json", dists=["dup"]).plugins()
    assert rows["test_dup"]["providers"] == {"inference": ["remote::vllm"]}
    assert "remote::vllm" in rows["openai_compat"]["providers"]["inference"]
    # Disabling one of the two resolves it.
    fixed = dists.lamina(
        "routes", str(config), dists=["dup"], env={"LAMINA_DISABLE_PLUGINS": "lamina-test-dup"}
    )
    assert fixed.returncode == 0, fixed.explain()
    assert "/v1/chat/completions" in fixed.stdout


def test_misspelled_hook_is_reported_with_a_hint_and_the_plugin_skipped(dists) -> None:
    result = dists.lamina("plugins", "--json", dists=["alpha", "badhook"])
    bad = result.plugins()["test_badhook"]
    assert bad["status"] == "failed"
    assert bad["error"] == "implements unknown hooks: lamina_model (did you mean lamina_models?)"
    assert bad["hooks"] == [] and bad["providers"] == {}, "its correctly spelled hook is skipped too"
    [warning] = warnings_about(result.stderr, "test_badhook")
    assert "'lamina-test-badhook'" in warning and "did you mean lamina_models?" in warning
    assert result.plugins()["test_alpha"]["status"] == "loaded"
    strict = dists.lamina("plugins", dists=["badhook"], env={"LAMINA_STRICT_PLUGINS": "1"})
    assert strict.returncode != 0 and "did you mean lamina_models?" in strict.stderr, strict.explain()


def test_output_does_not_depend_on_load_order(dists) -> None:
    forward = dists.lamina("plugins", "--json", dists=DIST_ORDER)
    backward = dists.lamina("plugins", "--json", dists=reversed(DIST_ORDER))
    # DIST_ORDER includes broken plugins: both list everything and exit 1 naming them.
    assert forward.returncode == backward.returncode == 1, forward.explain()
    assert forward.stdout == backward.stdout
    assert _warning_lines(forward.stderr) == _warning_lines(backward.stderr)
    assert len(forward.plugins()) >= 6
    dists_forward = dists.lamina("distributions", dists=["alpha", "beta"])
    dists_backward = dists.lamina("distributions", dists=["beta", "alpha"])
    assert dists_forward.stdout == dists_backward.stdout and "alpha-demo" in dists_forward.stdout


DIST_ORDER = ["alpha", "beta", "broken", "dup", "badhook"]


def _warning_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith("lamina: ")]


def test_trace_prints_every_hook_call_on_stderr(dists) -> None:
    traced = dists.lamina("plugins", "--json", dists=["alpha", "beta"], env={"LAMINA_TRACE_PLUGINS": "1"})
    traced.plugins()  # stdout stays pure JSON
    lines = [line for line in traced.stderr.splitlines() if line.startswith("lamina: trace: ")]
    assert "lamina: trace: lamina_inference_providers() <- lamina-test-alpha: [remote::test-alpha]" in lines
    assert "lamina: trace: lamina_models() <- lamina-test-alpha: [alpha-default]" in lines
    assert "lamina: trace: lamina_safety_providers() <- lamina-test-beta: [inline::test-beta]" in lines
    assert "lamina: trace: lamina_cli_commands() <- lamina-test-alpha: [alpha-hello]" in lines
    assert any(
        line.startswith("lamina: trace: lamina_inference_providers() <- lamina-openai-compat")
        for line in lines
    )
    quiet = dists.lamina("plugins", "--json", dists=["alpha", "beta"])
    assert "lamina: trace:" not in quiet.stderr


# -- contributions served by `lamina run` ---------------------------------------------------------


@pytest.fixture(scope="module")
def alpha_server(dists, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """``lamina run`` with alpha and beta installed: the alpha inference and beta safety providers."""
    work = tmp_path_factory.mktemp("alpha-server")
    with dists.server(ALPHA_CONFIG, work, dists=["alpha", "beta"]) as server:
        yield server


def test_default_model_from_a_plugin_is_listed_over_http(alpha_server: ServerProcess) -> None:
    models = httpx.get(f"{alpha_server.url}/v1/models").json()["data"]
    [model] = [m for m in models if m["identifier"] == "alpha-default"]
    assert model["provider_id"] == "alpha"
    assert model["provider_resource_id"] == "alpha-upstream-1"
    assert model["model_type"] == "llm"
    assert model["metadata"] == {"contributed_by": "lamina-test-alpha"}
    openai_ids = [m["id"] for m in httpx.get(f"{alpha_server.url}/v1/openai/v1/models").json()["data"]]
    assert "alpha-default" in openai_ids


def test_chat_through_the_plugin_provider(alpha_server: ServerProcess) -> None:
    resp = httpx.post(
        f"{alpha_server.url}/v1/openai/v1/chat/completions",
        json={"model": "alpha-default", "messages": [{"role": "user", "content": "hello?"}]},
    )
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert body["model"] == "alpha-default"
    assert body["choices"][0]["message"]["content"] == "hi there from alpha-upstream-1"


def test_plugin_route_is_served(alpha_server: ServerProcess) -> None:
    resp = httpx.get(f"{alpha_server.url}/alpha/ping")
    assert resp.status_code == 200 and resp.json() == {"pong": "alpha"}


def test_plugin_middleware_wraps_every_request(alpha_server: ServerProcess) -> None:
    for path in ("/v1/health", "/alpha/ping", "/v1/models", "/v1/openai/v1/models/alpha-default"):
        resp = httpx.get(alpha_server.url + path)
        assert resp.status_code == 200 and resp.headers.get("X-Lamina-Test-Beta") == "seen", path
    # Errors are raised through plugin middlewares and rendered by the core's (outer) middleware.
    missing = httpx.get(f"{alpha_server.url}/v1/models/no-such-model")
    assert missing.status_code == 404 and "X-Request-ID" in missing.headers


def test_plugin_veto_refuses_a_registration_with_its_reason(alpha_server: ServerProcess) -> None:
    resp = httpx.post(
        f"{alpha_server.url}/v1/models", json={"model_id": "forbidden-x", "provider_id": "alpha"}
    )
    assert 400 <= resp.status_code < 500, resp.text
    message = resp.json()["error"]["message"]
    assert "forbidden-x" in message
    assert "lamina-test-beta: model ids starting with 'forbidden-' are refused by lamina-test-beta" in message
    assert httpx.get(f"{alpha_server.url}/v1/models/forbidden-x").status_code == 404
    allowed = httpx.post(
        f"{alpha_server.url}/v1/models", json={"model_id": "allowed-x", "provider_id": "alpha"}
    )
    assert allowed.status_code == 200, allowed.text


def test_plugin_safety_provider_is_started(alpha_server: ServerProcess) -> None:
    providers = {p["provider_id"]: p for p in httpx.get(f"{alpha_server.url}/v1/providers").json()["data"]}
    assert providers["beta"]["api"] == "safety"
    assert providers["beta"]["provider_type"] == "inline::test-beta"
    assert providers["alpha"]["health"] == {"status": "OK"}


# -- commands and distributions ------------------------------------------------------------------


def test_plugin_cli_command_is_available(dists) -> None:
    hello = dists.lamina("alpha-hello", "--name", "tester", dists=["alpha"])
    assert hello.returncode == 0 and hello.stdout == "alpha says hello to tester\n", hello.explain()
    help_text = dists.lamina("--help", dists=["alpha"]).stdout
    assert "alpha-hello" in help_text and "Say hello (a command added by lamina-test-alpha)." in help_text
    missing = dists.lamina("alpha-hello", dists=["beta"])
    assert missing.returncode == 2 and "No such command 'alpha-hello'" in missing.stderr


def test_plugin_distribution_is_listed_and_runnable(dists, tmp_path: Path) -> None:
    listed = dists.lamina("distributions", dists=["alpha"])
    assert listed.returncode == 0, listed.explain()
    assert "alpha-demo: One test-alpha provider.\n  inference: remote::test-alpha\n" in listed.stdout
    shown = dists.lamina("distributions", "show", "alpha-demo", dists=["alpha"])
    assert "provider_type: remote::test-alpha" in shown.stdout
    assert "alpha-demo" not in dists.lamina("distributions", dists=["beta"]).stdout

    with dists.server(
        "alpha-demo", tmp_path, dists=["alpha"], extra_args=["--env", "ALPHA_GREETING=howdy"]
    ) as srv:
        models = [m["identifier"] for m in httpx.get(f"{srv.url}/v1/models").json()["data"]]
        assert models == ["alpha-default"]
        resp = httpx.post(
            f"{srv.url}/v1/openai/v1/chat/completions",
            json={"model": "alpha-default", "messages": [{"role": "user", "content": "hi"}]},
        )
        assert resp.json()["choices"][0]["message"]["content"] == "howdy from alpha-upstream-1", resp.text
