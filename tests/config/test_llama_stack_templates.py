"""Real Llama Stack run.yaml templates, unchanged, against Lamina's config loader and plugins.

The files in ``llama_stack_runyaml/`` are Llama Stack's own templates, byte for byte below a header
naming where each came from. Every provider whose type an installed plugin offers must validate
with that plugin's config class and come out with the values Llama Stack would give it; a provider
type no plugin offers must stop start-up with a message naming it and the installed types.
"""

from __future__ import annotations

import json
import re
import urllib.request
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import SecretStr

from lamina.config import RunConfig, load_run_config
from lamina.errors import ConfigError
from lamina.plugins import PluginManager
from lamina.specs import Api, import_object
from lamina.stack import Stack
from lamina.testing.processes import ServerProcess, lamina_server

HERE = Path(__file__).parent / "llama_stack_runyaml"
TEMPLATES = sorted(HERE.glob("*.yaml"))

# What the templates need set (their ${env.X} without a default), as a user would set it.
ENV = {
    "INFERENCE_MODEL": "meta-llama/Llama-3.2-3B-Instruct",
    "TGI_URL": "http://127.0.0.1:8080",
    "FIREWORKS_API_KEY": "fw-key",
    "GROQ_API_KEY": "groq-key",
    "OPENAI_API_KEY": "openai-key",
    "TOGETHER_API_KEY": "together-key",
    "NVIDIA_API_KEY": "nvapi-key",
}

# (template file, provider_id) -> field values after substitution and validation, as Llama Stack has them.
EXPECTED: dict[tuple[str, str], dict[str, Any]] = {
    ("remote-vllm.yaml", "vllm-inference"): {
        "url": "http://localhost:8000/v1",
        "max_tokens": 4096,
        "api_token": "fake",
        "tls_verify": True,
    },
    ("together.yaml", "together"): {"url": "https://api.together.xyz/v1", "api_key": "together-key"},
    ("fireworks.yaml", "fireworks"): {"url": "https://api.fireworks.ai/inference/v1", "api_key": "fw-key"},
    ("groq.yaml", "groq"): {"url": "https://api.groq.com", "api_key": "groq-key"},
    ("groq-007294d.yaml", "groq"): {"url": "https://api.groq.com", "api_key": "groq-key"},
    ("nvidia.yaml", "nvidia"): {
        "url": "https://integrate.api.nvidia.com",
        "api_key": "nvapi-key",
        "append_api_version": True,
    },
    ("tgi.yaml", "tgi-inference"): {"url": "http://127.0.0.1:8080"},
    ("tgi-001badc.yaml", "tgi-inference"): {"url": "http://127.0.0.1:8080"},
    ("open-benchmark.yaml", "openai"): {"api_key": "openai-key"},
    ("open-benchmark.yaml", "groq"): {"url": "https://api.groq.com", "api_key": "groq-key"},
    ("open-benchmark.yaml", "together"): {"url": "https://api.together.xyz/v1", "api_key": "together-key"},
    ("starter.yaml", "openai"): {"api_key": "openai-key"},
    ("starter.yaml", "fireworks"): {"url": "https://api.fireworks.ai/inference/v1", "api_key": "fw-key"},
    ("starter.yaml", "together"): {"url": "https://api.together.xyz/v1", "api_key": "together-key"},
    ("starter.yaml", "groq"): {"url": "https://api.groq.com", "api_key": "groq-key"},
    ("starter.yaml", "vllm"): {
        "url": "http://localhost:8000/v1",
        "max_tokens": 4096,
        "api_token": "fake",
        "tls_verify": True,
    },
    # Files (plugins/localfs): Llama Stack's fields, the ~ of the default expanded as Llama Stack does.
    ("starter.yaml", "meta-reference-files"): {
        "storage_dir": str(Path("~/.llama/distributions/starter/files").expanduser()),
        "ttl_secs": 365 * 24 * 3600,
    },
    ("fireworks.yaml", "meta-reference-files"): {
        "storage_dir": str(Path("~/.llama/distributions/fireworks/files").expanduser())
    },
}

# Upstream base URLs Lamina's OpenAI-compatible client uses for those providers.
EXPECTED_BASE_URL = {
    ("remote-vllm.yaml", "vllm-inference"): "http://localhost:8000/v1",
    ("groq.yaml", "groq"): "https://api.groq.com/openai/v1",
    ("nvidia.yaml", "nvidia"): "https://integrate.api.nvidia.com/v1",
    ("tgi.yaml", "tgi-inference"): "http://127.0.0.1:8080/v1",
    ("open-benchmark.yaml", "openai"): "https://api.openai.com/v1",
}


def _env(tmp_path: Path, **extra: str) -> dict[str, str]:
    return {**ENV, "SQLITE_STORE_DIR": str(tmp_path / "store"), **extra}


def _load(path: Path, tmp_path: Path, **extra: str) -> RunConfig:
    return load_run_config(path, env=_env(tmp_path, **extra))


def _offered(pm: PluginManager, api_name: str) -> dict[str, Any]:
    try:
        return pm.provider_specs(Api(api_name))
    except ValueError:  # an API Lamina does not have (e.g. `memory` in pre-0.2 templates)
        return {}


def _plain(value: Any) -> Any:
    return value.get_secret_value() if isinstance(value, SecretStr) else value


def test_every_template_names_its_source() -> None:
    assert len(TEMPLATES) >= 7
    for path in TEMPLATES:
        header = path.read_text().split("\nversion:", 1)[0]
        assert "# repo: meta-llama/llama-stack" in header, path.name
        assert re.search(r"# path: llama_stack/templates/[\w-]+/run\.yaml", header), path.name
        assert re.search(r"# (commit: [0-9a-f]{40}|version: release 0\.2\.12)", header), path.name


def test_the_openai_compatible_provider_types_are_offered(plugin_manager: PluginManager) -> None:
    offered = set(plugin_manager.provider_specs(Api.inference))
    expected = {f"remote::{n}" for n in ("vllm", "openai", "together", "fireworks", "groq", "nvidia", "tgi")}
    assert expected <= offered


@pytest.mark.parametrize("path", TEMPLATES, ids=lambda p: p.stem)
def test_offered_providers_validate_with_llama_stack_values(
    path: Path, tmp_path: Path, plugin_manager: PluginManager
) -> None:
    config = _load(path, tmp_path)
    assert str(config.version) == "2"
    checked = 0
    for api_name, entries in config.providers.items():
        specs = _offered(plugin_manager, api_name)
        for entry in entries:
            spec = specs.get(entry.provider_type)
            if spec is None or not entry.provider_id:
                continue
            provider_config = import_object(spec.config_class).model_validate(entry.config)
            checked += 1
            for field, value in EXPECTED.get((path.name, entry.provider_id), {}).items():
                assert _plain(getattr(provider_config, field)) == value, (entry.provider_id, field)
            base = EXPECTED_BASE_URL.get((path.name, entry.provider_id))
            if base is not None:
                assert provider_config.base_url() == base
    assert checked, f"{path.name} has no provider Lamina offers"
    expected_ids = {pid for (name, pid) in EXPECTED if name == path.name}
    present = {e.provider_id for entries in config.providers.values() for e in entries}
    assert expected_ids <= present


@pytest.mark.parametrize("path", TEMPLATES, ids=lambda p: p.stem)
def test_templates_store_state_where_sqlite_store_dir_says(path: Path, tmp_path: Path) -> None:
    config = _load(path, tmp_path)
    assert config.metadata_store is not None
    assert config.metadata_store["db_path"] == f"{tmp_path / 'store'}/registry.db"


def test_store_dir_default_expands_home_like_llama_stack(tmp_path: Path) -> None:
    env = {k: v for k, v in _env(tmp_path).items() if k != "SQLITE_STORE_DIR"}
    config = load_run_config(HERE / "remote-vllm.yaml", env=env)
    assert config.metadata_store["db_path"] == str(
        Path("~/.llama/distributions/remote-vllm/registry.db").expanduser()
    )


def test_tls_verify_false_and_a_ca_file_from_the_environment(
    tmp_path: Path, plugin_manager: PluginManager
) -> None:
    spec = plugin_manager.provider_specs(Api.inference)["remote::vllm"]
    config_class = import_object(spec.config_class)
    for value, expected in (("false", False), ("FALSE", False), ("True", True)):
        entry = _load(HERE / "remote-vllm.yaml", tmp_path, VLLM_TLS_VERIFY=value).providers["inference"][0]
        assert config_class.model_validate(entry.config).tls_verify is expected
    ca = tmp_path / "ca.pem"
    ca.write_text("-----BEGIN CERTIFICATE-----\n")
    entry = _load(HERE / "remote-vllm.yaml", tmp_path, VLLM_TLS_VERIFY=str(ca)).providers["inference"][0]
    assert config_class.model_validate(entry.config).tls_verify == str(ca)


def test_starter_switches_providers_off_from_the_environment(tmp_path: Path) -> None:
    # `provider_id: ${env.ENABLE_CHROMADB+chromadb}`: listed but disabled unless the variable is set.
    vector_io = _load(HERE / "starter.yaml", tmp_path).providers["vector_io"]
    chroma = next(e for e in vector_io if e.provider_type == "remote::chromadb")
    assert chroma.provider_id is None
    vector_io = _load(HERE / "starter.yaml", tmp_path, ENABLE_CHROMADB="1").providers["vector_io"]
    chroma = next(e for e in vector_io if e.provider_type == "remote::chromadb")
    assert chroma.provider_id == "chromadb"


@pytest.mark.parametrize("path", TEMPLATES, ids=lambda p: p.stem)
def test_unoffered_provider_types_stop_start_up_naming_them(
    path: Path, tmp_path: Path, plugin_manager: PluginManager
) -> None:
    config = _load(path, tmp_path)
    first_missing = None
    for api_name, entries in config.providers.items():
        try:
            Api(api_name)
        except ValueError:
            first_missing = first_missing or (api_name, None, None)
            continue
        specs = _offered(plugin_manager, api_name)
        for i, entry in enumerate(entries):
            if entry.provider_id and entry.provider_type not in specs:
                first_missing = first_missing or (api_name, i, entry.provider_type)
    if first_missing is None:
        Stack.build(config, plugin_manager)
        return
    with pytest.raises(ConfigError) as info:
        Stack.build(config, plugin_manager)
    message = str(info.value)
    api_name, index, provider_type = first_missing
    assert message.startswith(f"{path}: providers.{api_name}")
    if provider_type is None:
        assert "unknown API" in message
        return
    assert f"providers.{api_name}[{index}].provider_type" in message
    assert repr(provider_type) in message
    installed = sorted(_offered(plugin_manager, api_name))
    assert f"Installed {api_name} provider types: {', '.join(installed) or 'none'}" in message


def test_lamina_run_on_a_full_template_names_the_missing_provider_type(
    tmp_path: Path, lamina_cli, plugin_manager: PluginManager
) -> None:
    path = HERE / "remote-vllm.yaml"
    config = _load(path, tmp_path)
    missing = [
        (api, i, e.provider_type)
        for api, entries in config.providers.items()
        for i, e in enumerate(entries)
        if e.provider_type not in _offered(plugin_manager, api)
    ]
    assert missing, "remote-vllm.yaml has providers (agents, safety, ...) that no Lamina plugin offers yet"
    api, index, provider_type = missing[0]
    result = lamina_cli("run", str(path), "--port", "0", env=_env(tmp_path), timeout=30)
    output = result.stdout + result.stderr
    assert result.returncode == 1, output
    assert "Traceback" not in output
    assert f"{path}: providers.{api}[{index}].provider_type" in result.stderr
    assert repr(provider_type) in result.stderr
    installed = ", ".join(sorted(_offered(plugin_manager, api))) or "none"
    assert f"Installed {api} provider types: {installed}" in result.stderr


def _offered_subset(path: Path, pm: PluginManager) -> dict[str, Any]:
    """The template with only the providers Lamina offers (and the models on them); values untouched."""
    doc = yaml.safe_load(path.read_text())
    providers = {}
    for api_name, entries in doc["providers"].items():
        specs = _offered(pm, api_name)
        kept = [e for e in entries if e["provider_type"] in specs]
        if kept:
            providers[api_name] = kept
    ids = {e["provider_id"] for entries in providers.values() for e in entries}
    doc["providers"] = providers
    doc["models"] = [m for m in doc.get("models", []) if m.get("provider_id") in ids]
    doc["tool_groups"] = [g for g in doc.get("tool_groups") or [] if g.get("provider_id") in ids]
    for kind in ("shields", "vector_dbs", "tool_groups"):  # resources of providers left out go too
        if doc.get(kind):
            doc[kind] = [r for r in doc[kind] if r.get("provider_id") in ids]
    doc["apis"] = sorted(providers)
    return doc


def _get(url: str) -> tuple[int, Any]:
    with urllib.request.urlopen(url, timeout=10) as resp:
        return resp.status, json.loads(resp.read())


@pytest.mark.parametrize(
    ("template", "url_var", "suffix"), [("remote-vllm.yaml", "VLLM_URL", "/v1"), ("tgi.yaml", "TGI_URL", "")]
)
def test_lamina_run_serves_the_offered_part_of_a_template(
    template: str,
    url_var: str,
    suffix: str,
    tmp_path: Path,
    plugin_manager: PluginManager,
    fake_upstream: ServerProcess,
) -> None:
    subset = _offered_subset(HERE / template, plugin_manager)
    assert "inference" in subset["providers"]  # and whatever else Lamina offers (vector_io: faiss, ...)
    path = tmp_path / template
    path.write_text(yaml.safe_dump(subset, sort_keys=False))
    env = _env(tmp_path, INFERENCE_MODEL="ok", **{url_var: fake_upstream.url + suffix})
    with lamina_server(path, tmp_path / "work", env=env) as server:
        status, health = _get(server.url + "/v1/health")
        assert status == 200 and health["status"] == "OK"
        status, models = _get(server.url + "/v1/models")
        assert status == 200
        assert "ok" in [m["identifier"] for m in models["data"]]
