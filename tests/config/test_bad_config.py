"""Bad run configs fail ``lamina run`` before anything starts, with file, key path and expectation.

Each case runs the real CLI (``python -m lamina.cli run FILE``) and checks the exit status, that the
message names the file and the key path and says what is expected, and that no traceback shows.
"""

from __future__ import annotations

import json
import urllib.request
from pathlib import Path

import pytest
import yaml

from lamina.testing.processes import ServerProcess, lamina_server

VLLM = "  inference:\n  - provider_id: vllm\n    provider_type: remote::vllm\n    config:\n      url: http://127.0.0.1:9/v1\n"

# name -> (run.yaml text, key path the message must name, what it must say is expected)
CASES: dict[str, tuple[str, str, list[str]]] = {
    "yaml-syntax": (
        "version: 2\nproviders:\n  inference:\n  - provider_id: vllm\n    provider_type: remote::vllm\n"
        "     config: {}\n",
        "providers.inference[0]",
        ["line 6", "invalid YAML", "mapping values are not allowed here"],
    ),
    "yaml-unclosed-bracket": (
        "version: 2\nproviders:\n  inference: [\n",
        "",
        ["invalid YAML", "line 4"],
    ),
    "empty-file": ("", "", ["empty", "providers"]),
    "top-level-list": ("- version: 2\n", "<top level>", ["expected a mapping"]),
    "missing-providers": (
        "version: 2\nimage_name: x\n",
        "providers",
        ["required, but missing", "provider_type"],
    ),
    "providers-not-a-mapping": ("version: 2\nproviders: [vllm]\n", "providers", ["valid dictionary"]),
    "provider-list-not-a-list": (
        "version: 2\nproviders:\n  inference:\n    provider_id: vllm\n",
        "providers.inference",
        ["valid list"],
    ),
    "provider-type-missing": (
        "version: 2\nproviders:\n  inference:\n  - provider_id: vllm\n    config: {}\n",
        "providers.inference[0].provider_type",
        ["required, but missing"],
    ),
    "wrong-type-nested": (
        f"version: 2\nproviders:\n{VLLM}server:\n  port: eighty\n",
        "server.port",
        ["valid integer", "'eighty'"],
    ),
    "vector-stores-negative-wait": (
        f"version: 2\nproviders:\n{VLLM}vector_stores:\n  ingestion_wait_seconds: -1\n",
        "vector_stores.ingestion_wait_seconds",
        ["greater than or equal to 0", "-1"],
    ),
    "wrong-enum-in-a-list": (
        f"version: 2\nproviders:\n{VLLM}models:\n- model_id: m\n  provider_id: vllm\n  model_type: chat\n",
        "models[0].model_type",
        ["'llm' or 'embedding'", "'chat'"],
    ),
    "unknown-api": (
        "version: 2\nproviders:\n  memory:\n  - provider_id: faiss\n"
        "    provider_type: inline::faiss\n    config: {}\n",
        "providers.memory",
        ["unknown API", "inference"],
    ),
    "unknown-provider-type": (
        f"version: 2\nproviders:\n{VLLM}  - provider_id: x\n    provider_type: remote::no-such-provider\n"
        "    config: {}\n",
        "providers.inference[1].provider_type",
        ["'remote::no-such-provider'", "Installed inference provider types:", "remote::vllm", "remote::tgi"],
    ),
    "unknown-provider-type-other-api": (
        f"version: 2\nproviders:\n{VLLM}  safety:\n  - provider_id: guard\n"
        "    provider_type: inline::no-such-guard\n"
        "    config: {}\n",
        "providers.safety[0].provider_type",
        ["'inline::no-such-guard'", "Installed safety provider types:"],
    ),
    "bad-provider-config-field": (
        "version: 2\nproviders:\n  inference:\n  - provider_id: vllm\n    provider_type: remote::vllm\n"
        "    config:\n      url: localhost:8000\n",
        "providers.inference[0].config.url",
        ["http://", "'localhost:8000'"],
    ),
    "bad-provider-config-type": (
        f"version: 2\nproviders:\n{VLLM}      max_tokens: lots\n",
        "providers.inference[0].config.max_tokens",
        ["valid integer", "'lots'"],
    ),
    "missing-ca-file": (
        f"version: 2\nproviders:\n{VLLM}      tls_verify: /nonexistent/ca.pem\n",
        "providers.inference[0].config.tls_verify",
        ["does not exist", "true, false or a CA file"],
    ),
    "required-provider-config-missing": (
        "version: 2\nproviders:\n  inference:\n  - provider_id: tgi\n"
        "    provider_type: remote::tgi\n    config: {}\n",
        "providers.inference[0].config.url",
        ["required, but missing"],
    ),
    "required-env-var-unset": (
        "version: 2\nproviders:\n  inference:\n  - provider_id: tgi\n    provider_type: remote::tgi\n"
        "    config:\n      url: ${env.LAMINA_TEST_UNSET_TGI_URL}\n",
        "providers.inference[0].config.url",
        [
            "environment variable LAMINA_TEST_UNSET_TGI_URL is not set",
            "${env.LAMINA_TEST_UNSET_TGI_URL:=default}",
        ],
    ),
    "duplicate-provider-id": (
        f"version: 2\nproviders:\n{VLLM}  - provider_id: vllm\n    provider_type: remote::vllm\n"
        "    config: {url: 'http://127.0.0.1:9/v1'}\n",
        "providers.inference[1].provider_id",
        ["already used by providers.inference[0]", "unique"],
    ),
    "unsupported-version": (f"version: 3\nproviders:\n{VLLM}", "version", ["version 2"]),
    # Parsed but not acted on: a security setting that is silently ignored must stop start-up.
    "server-auth-access-policy-bad-rule": (
        f"version: 2\nproviders:\n{VLLM}server:\n  auth:\n    provider_type: oauth2_token\n"
        "    config: {jwks: {uri: 'http://127.0.0.1:9/jwks'}}\n"
        "    access_policy: [{permit: {actions: [read], resource: model}}]\n",
        "server.auth.access_policy[0]",
        ["must read <type>::<id>", "model::llama3"],
    ),
    "server-auth-bad-algorithm": (
        f"version: 2\nproviders:\n{VLLM}server:\n  auth:\n    provider_type: oauth2_token\n"
        "    config: {jwks: {uri: 'http://127.0.0.1:9/jwks'}, algorithms: [HS256]}\n",
        "server.auth",
        ["only asymmetric", "RS256"],
    ),
    "server-quota-unknown-period": (
        f"version: 2\nproviders:\n{VLLM}server:\n  quota:\n    kvstore: {{type: sqlite, db_path: q.db}}\n"
        "    anonymous_max_requests: 1\n    period: week\n",
        "server.quota.period",
        ["minute", "hour", "day"],
    ),
    "tls-cert-without-key": (
        f"version: 2\nproviders:\n{VLLM}server:\n  tls_certfile: /tmp/cert.pem\n",
        "server.tls_keyfile",
        ["required with server.tls_certfile", "plain HTTP"],
    ),
    "tls-cafile-without-tls": (
        f"version: 2\nproviders:\n{VLLM}server:\n  tls_cafile: /tmp/ca.pem\n",
        "server.tls_cafile",
        ["server.tls_certfile and server.tls_keyfile"],
    ),
    "external-providers-dir": (
        f"version: 2\nproviders:\n{VLLM}external_providers_dir: /tmp/providers.d\n",
        "external_providers_dir",
        ["plugin packages"],
    ),
    "logging-categories": (
        f"version: 2\nproviders:\n{VLLM}logging:\n  category_levels: {{core: debug}}\n",
        "logging",
        ["LAMINA_LOG_LEVEL"],
    ),
    "datasets-without-a-datasetio-provider": (
        f"version: 2\nproviders:\n{VLLM}datasets:\n- dataset_id: d\n  purpose: eval/messages-answer\n"
        "  source: {type: uri, uri: 'data:,x'}\n",
        "datasets",
        ["1 entries", "no datasetio provider", "providers.datasetio", "inline::localfs"],
    ),
    "provider-field-not-acted-on": (
        f"version: 2\nproviders:\n{VLLM}      refresh_models: true\n",
        "providers.inference[0].config.refresh_models",
        ["does not list or refresh", "models:"],
    ),
    "ipv6-host-with-ipv6-disabled": (
        f"version: 2\nproviders:\n{VLLM}server:\n  host: '::'\n  disable_ipv6: true\n",
        "server.host",
        ["IPv6", "disable_ipv6"],
    ),
    "scoring-fns-without-a-scoring-provider": (
        f"version: 2\nproviders:\n{VLLM}scoring_fns:\n- scoring_fn_id: my-judge\n"
        "  return_type: {type: number}\n",
        "scoring_fns",
        ["1 entries", "no scoring provider", "providers.scoring", "inline::basic"],
    ),
    "limits-typo": (
        f"version: 2\nproviders:\n{VLLM}    limits:\n      max_concurent: 4\n",
        "providers.inference[0].limits",
        ["unknown setting 'max_concurent'", "did you mean 'max_concurrent'", "requests_per_minute"],
    ),
    "limits-model-typo": (
        f"version: 2\nproviders:\n{VLLM}    limits:\n      models:\n        m: {{requests_per_minut: 5}}\n",
        "providers.inference[0].limits.models.m",
        ["unknown setting 'requests_per_minut'", "did you mean 'requests_per_minute'"],
    ),
    "limits-zero": (
        f"version: 2\nproviders:\n{VLLM}    limits:\n      max_concurrent: 0\n",
        "providers.inference[0].limits.max_concurrent",
        ["greater than or equal to 1", "(got 0)"],
    ),
    "limits-tokens-on-a-files-provider": (
        f"version: 2\nproviders:\n{VLLM}  files:\n  - provider_id: localfs\n"
        "    provider_type: inline::localfs\n"
        "    config: {}\n    limits:\n      tokens_per_minute: 1000\n",
        "providers.files[0].limits.tokens_per_minute",
        ["inference providers only", "requests_per_minute"],
    ),
    "benchmarks-without-an-eval-provider": (
        f"version: 2\nproviders:\n{VLLM}benchmarks:\n- benchmark_id: b\n  dataset_id: d\n"
        "  scoring_functions: [basic::equality]\n",
        "benchmarks",
        ["no eval provider", "providers.eval", "inline::meta-reference"],
    ),
}


@pytest.mark.parametrize("name", list(CASES))
def test_bad_config_fails_start_up_with_file_key_and_expectation(
    name: str, tmp_path: Path, lamina_cli
) -> None:
    text, key_path, expected = CASES[name]
    path = tmp_path / f"{name}.yaml"
    path.write_text(text)
    result = lamina_cli("run", str(path), "--port", "0", timeout=30)
    output = result.stdout + result.stderr
    assert result.returncode == 1, output
    assert "Traceback" not in output
    error = result.stderr[result.stderr.index("Error: ") :]
    assert error.startswith(f"Error: {path}: {key_path}"), error
    for text_part in expected:
        assert text_part in error, (text_part, error)


def test_a_missing_file_is_named(tmp_path: Path, lamina_cli) -> None:
    path = tmp_path / "nope.yaml"
    result = lamina_cli("run", str(path))
    assert result.returncode == 1
    assert f"{path}: cannot read the run config" in result.stderr
    assert "Traceback" not in result.stdout + result.stderr


def test_unknown_fields_are_ignored_with_a_warning_as_in_llama_stack(
    tmp_path: Path, fake_upstream: ServerProcess
) -> None:
    # Llama Stack's StackRunConfig ignores unknown keys (old templates carry docker_image, conda_env,
    # memory_banks, eval_tasks); Lamina starts too, and says which keys it ignored.
    config = {
        "version": "2",
        "image_name": "extra-keys",
        "conda_env": "extra-keys",
        "memory_banks": [],
        "providers": {
            "inference": [
                {
                    "provider_id": "vllm",
                    "provider_type": "remote::vllm",
                    "config": {"url": f"{fake_upstream.url}/v1", "not_a_vllm_field": 1},
                }
            ]
        },
        "models": [{"model_id": "ok", "provider_id": "vllm"}],
    }
    with lamina_server(config, tmp_path, name="extra") as server:
        log = [json.loads(line) for line in server.log_path.read_text().splitlines() if line.startswith("{")]
    ignored = {entry.get("key") for entry in log if entry.get("event") == "config_key_ignored"}
    assert {"conda_env", "memory_banks", "providers.inference[0].config.not_a_vllm_field"} <= ignored


def test_not_set_means_null_or_empty_and_starts(tmp_path: Path, fake_upstream: ServerProcess) -> None:
    # What Llama Stack's own templates carry (empty lists, nulls) stays accepted.
    config = {
        "version": "2",
        "image_name": "empty-sections",
        "container_image": None,
        "apis": ["inference"],
        "providers": {
            "inference": [
                {
                    "provider_id": "vllm",
                    "provider_type": "remote::vllm",
                    "config": {"url": f"{fake_upstream.url}/v1"},
                }
            ]
        },
        "models": [{"model_id": "ok", "provider_id": "vllm"}],
        "datasets": [],
        "scoring_fns": [],
        "benchmarks": [],
        "logging": None,
        "external_providers_dir": None,
        "server": {"port": 8321, "auth": None, "quota": {}, "tls_certfile": None},
    }
    with lamina_server(config, tmp_path, name="empty") as server:
        with urllib.request.urlopen(server.url + "/v1/models", timeout=10) as resp:
            assert "ok" in [m["identifier"] for m in json.loads(resp.read())["data"]]


def test_the_errors_are_not_yaml_dumps(tmp_path: Path, lamina_cli) -> None:
    # A whole provider list in the message would hide the point; long inputs are cut short.
    entries = [{"provider_id": f"p{i}", "provider_type": "remote::vllm", "config": {}} for i in range(20)]
    path = tmp_path / "run.yaml"
    path.write_text(yaml.safe_dump({"version": 2, "providers": {"inference": {"x": entries}}}))
    result = lamina_cli("run", str(path))
    assert result.returncode == 1
    error_line = result.stderr[result.stderr.index("Error: ") :].splitlines()[0]
    assert error_line.startswith(f"Error: {path}: providers.inference: ") and len(error_line) < 400


def test_harmless_settings_are_logged_not_refused() -> None:
    from structlog.testing import capture_logs

    from lamina.config import check_settings_are_enforced, parse_run_config
    from lamina_onnx_embeddings.config import SentenceTransformersInferenceConfig

    doc = yaml.safe_load(f"version: 2\ncontainer_image: lamina:latest\napis: [safety]\nproviders:\n{VLLM}")
    doc["server"] = {"port": 8321, "cors": True}
    with capture_logs() as logs:
        config = parse_run_config(doc, source="run.yaml", env={})
    assert [e["key"] for e in logs if e["event"] == "config_key_ignored"] == ["server.cors"]
    onnx = SentenceTransformersInferenceConfig(trust_remote_code=True)
    with capture_logs() as logs:
        check_settings_are_enforced(config, {"inference"}, [("providers.inference[1]", onnx)])
    ignored = {entry.get("key"): entry for entry in logs if entry["event"] == "config_key_ignored"}
    assert set(ignored) == {"container_image", "providers.inference[1].config.trust_remote_code"}
    assert all(entry["log_level"] == "warning" and entry["reason"] for entry in ignored.values())
    unlisted = next(entry for entry in logs if entry["event"] == "config_apis_not_listed")
    assert unlisted["apis"] == ["inference"]
    quiet = config.model_copy(update={"container_image": None, "apis": []})
    with capture_logs() as logs:  # the default (false) is "not set"
        check_settings_are_enforced(quiet, {"inference"}, [("p", SentenceTransformersInferenceConfig())])
    assert logs == []
