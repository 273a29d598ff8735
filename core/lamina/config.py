"""The run config: Llama Stack's run.yaml (version 2), read unchanged.

Loading does all validation up front, before any provider starts: YAML syntax, env substitution,
the shape of every section, and (in ``lamina.stack``) each provider's own config. Every error names
the file, the key path and what is expected.
"""

from __future__ import annotations

import os
from collections.abc import Collection, Iterable, Mapping
from pathlib import Path
from typing import Any, Literal

import structlog
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from lamina.access.policy import PolicyError, parse_policy
from lamina.auth.config import AuthConfig
from lamina.envsubst import substitute_env
from lamina.errors import ConfigError, field_problems, format_path
from lamina.limits.settings import ProviderLimits
from lamina.quotas.bounds import RequestBounds
from lamina.quotas.config import QuotaConfig
from lamina.server.gc_tuning import GcConfig

log = structlog.get_logger(__name__)

DEFAULT_PORT = 8321
# Loopback only unless the config or `--host` says otherwise: without server.auth every route is open.
DEFAULT_HOST = "127.0.0.1"


def lamina_home() -> Path:
    """Where state lives by default: ``$LAMINA_HOME`` or ``~/.lamina``."""
    return Path(os.environ.get("LAMINA_HOME", "~/.lamina")).expanduser()


class _Section(BaseModel):
    # Substitution turns "123" into 123 (as newer Llama Stack does); string fields take it back.
    model_config = ConfigDict(extra="allow", populate_by_name=True, coerce_numbers_to_str=True)


class ProviderEntry(_Section):
    provider_id: str | None
    provider_type: str
    config: dict[str, Any] = Field(default_factory=dict)
    module: str | None = None
    # Lamina's, beside Llama Stack's keys (which ignores it): concurrency and rate limits (docs/limits.md).
    limits: ProviderLimits | None = None

    @field_validator("config", mode="before")
    @classmethod
    def _empty_config(cls, value: Any) -> Any:
        return {} if value is None else value  # `config:` with nothing under it


class ModelInput(_Section):
    model_id: str | None
    provider_id: str | None = None
    provider_model_id: str | None = None
    model_type: Literal["llm", "embedding"] = "llm"
    metadata: dict[str, Any] = Field(default_factory=dict)


class ShieldInput(_Section):
    shield_id: str | None
    provider_id: str | None = None
    provider_shield_id: str | None = None
    params: dict[str, Any] | None = None


class VectorDBInput(_Section):
    vector_db_id: str | None
    embedding_model: str
    embedding_dimension: int | None = None
    provider_id: str | None = None
    provider_vector_db_id: str | None = None


class DatasetInput(_Section):
    dataset_id: str | None
    purpose: str | None = None
    source: dict[str, Any] | None = None
    provider_id: str | None = None
    metadata: dict[str, Any] = Field(default_factory=dict)


class ScoringFnInput(_Section):
    scoring_fn_id: str | None
    provider_id: str | None = None
    provider_scoring_fn_id: str | None = None
    description: str | None = None
    return_type: dict[str, Any] | None = None
    params: dict[str, Any] | None = None


class BenchmarkInput(_Section):
    benchmark_id: str | None
    dataset_id: str
    scoring_functions: list[str]
    provider_id: str | None = None
    provider_benchmark_id: str | None = None
    metadata: dict[str, Any] = Field(default_factory=dict)


class ToolGroupInput(_Section):
    toolgroup_id: str | None
    provider_id: str | None = None
    args: dict[str, Any] | None = None
    mcp_endpoint: dict[str, Any] | None = None


class SafetyConfig(_Section):
    """The run config's ``safety:`` section (newer Llama Stack releases' ``StackRunConfig.safety``)."""

    default_shield_id: str | None = Field(
        default=None,
        description=(
            "The shield OpenAI moderations run when a request names no model; unset: the first "
            "shield under `shields:`."
        ),
    )


class ServerConfig(_Section):
    port: int = Field(default=DEFAULT_PORT, ge=0, le=65535)
    host: str | None = Field(
        default=None,
        description=f"Bind address; default {DEFAULT_HOST} (loopback only); 0.0.0.0 exposes the server.",
    )
    tls_certfile: str | None = None
    tls_keyfile: str | None = None
    tls_cafile: str | None = None
    disable_ipv6: bool = False
    auth: AuthConfig | None = Field(
        default=None,
        description="Authentication (docs/security.md): provider_type oauth2_token, custom or api_keys, with "
        "its config; without it every route is open (keep the server on loopback).",
    )
    quota: QuotaConfig | None = Field(
        default=None,
        description="Per-client quotas (docs/security.md): Llama Stack's kvstore, anonymous_max_requests, "
        "authenticated_max_requests and period, with Lamina's max_concurrent_requests and token_budgets.",
    )
    max_request_body_bytes: int = Field(default=32 * 1024 * 1024, gt=0)
    request_bounds: RequestBounds = Field(
        default_factory=RequestBounds,
        description="Bounds on the request fields that multiply work (n, max_tokens, batch items, dataset "
        "rows): a request over one is a 400 naming it (docs/security.md).",
    )

    @field_validator("quota", mode="before")
    @classmethod
    def _empty_quota(cls, value: Any) -> Any:
        return None if value == {} else value  # `quota: {}` is "not set", as in Llama Stack's templates

    shutdown_timeout: float = Field(default=5.0, ge=0)
    gc: GcConfig = Field(
        default_factory=GcConfig,
        description="Garbage collector settings of `lamina run` (lamina.server.gc_tuning): the start-up heap "
        "frozen, fewer generation-0 passes.",
    )


class VectorStoresConfig(_Section):
    """OpenAI vector stores (``lamina.routers.vector_stores``)."""

    # 10 s: three small files on llama.cpp embeddings took 8 s on a 2-core machine at load 8.
    ingestion_wait_seconds: float = Field(
        default=10.0,
        ge=0,
        le=600,
        description="How long attaching a file (or creating a store with file_ids) waits for its "
        "ingestion before answering; a file done by then answers completed (or failed), a bigger one "
        "in_progress and goes on in the background. 0 answers at once.",
    )


class JobsConfig(_Section):
    """Long-running jobs (``lamina.jobs``, docs/jobs.md): where they are kept and how they run."""

    store: dict[str, Any] | None = Field(
        default=None,
        description="A SQL store config (type: sqlite with db_path, or type: postgres with host, port, db, "
        "user, password; table_name default lamina_jobs); default SQLite at <state dir>/jobs.db. Replicas "
        "of one deployment share one PostgreSQL store.",
    )
    max_concurrent: int = Field(default=4, ge=1, description="Jobs running at once in this server process.")
    executor: str = Field(
        default="inline",
        description="Where handlers run: inline (this process's event loop) or an executor a plugin adds "
        "(lamina_job_executors).",
    )
    executor_config: dict[str, Any] = Field(default_factory=dict, description="Settings for that executor.")
    lease_seconds: float = Field(
        default=15.0,
        gt=0,
        le=3600,
        description="How long a running job stays this process's without a heartbeat; a killed server's "
        "jobs are resumed (or failed) this long after it stopped.",
    )
    progress_interval: float = Field(
        default=1.0, ge=0, le=60, description="At most one progress write per job per this many seconds."
    )
    poll_seconds: float = Field(
        default=2.0,
        gt=0,
        le=60,
        description="How often the scheduler looks for jobs submitted by other replicas and for expired "
        "leases.",
    )


class RunConfig(_Section):
    version: int | str = 2
    image_name: str = "lamina"
    container_image: str | None = None
    apis: list[str] = Field(default_factory=list)
    providers: dict[str, list[ProviderEntry]]
    metadata_store: dict[str, Any] | None = None
    inference_store: dict[str, Any] | None = None
    models: list[ModelInput] = Field(default_factory=list)
    shields: list[ShieldInput] = Field(default_factory=list)
    vector_dbs: list[VectorDBInput] = Field(default_factory=list)
    datasets: list[DatasetInput] = Field(default_factory=list)
    scoring_fns: list[ScoringFnInput] = Field(default_factory=list)
    benchmarks: list[BenchmarkInput] = Field(default_factory=list)
    tool_groups: list[ToolGroupInput] = Field(default_factory=list)
    safety: SafetyConfig = Field(default_factory=SafetyConfig)
    server: ServerConfig = Field(default_factory=ServerConfig)
    vector_stores: VectorStoresConfig = Field(default_factory=VectorStoresConfig)
    jobs: JobsConfig = Field(default_factory=JobsConfig)
    logging: dict[str, Any] | None = None
    external_providers_dir: str | None = None

    source: str = Field(default="<run config>", exclude=True, description="Where this config came from.")

    @field_validator("safety", "jobs", mode="before")
    @classmethod
    def _empty_safety(cls, value: Any) -> Any:
        return {} if value is None else value  # `safety:` (or `jobs:`) with nothing under it

    def state_dir(self) -> Path:
        return lamina_home() / self.image_name

    def default_moderation_shield(self) -> str | None:
        """The shield a moderation request without ``model`` runs: ``safety.default_shield_id``,
        else the first shield listed under ``shields:``, else None."""
        if self.safety.default_shield_id:
            return self.safety.default_shield_id
        return next((s.shield_id for s in self.shields if s.shield_id), None)


KNOWN_TOP_LEVEL = set(RunConfig.model_fields) - {"source"}


def validation_message(source: str, exc: ValidationError, prefix: tuple[Any, ...] = ()) -> str:
    """One line per problem: ``file: key.path: what is wrong (got X)`` (``lamina.errors.field_problems``)."""
    return "\n".join(f"{source}: {problem}" for problem in field_problems(exc, prefix))


def _show(value: Any) -> str:
    text = f"{type(value).__name__} {value!r}" if isinstance(value, (dict, list)) else repr(value)
    return text if len(text) <= 100 else text[:97] + "..."


def parse_run_config(doc: Any, *, source: str, env: Mapping[str, str] | None = None) -> RunConfig:
    """Validate a parsed run.yaml tree (after env substitution) into a RunConfig."""
    if doc is None:
        raise ConfigError(
            f"{source}: the run config is empty; expected a mapping with at least "
            "'version: 2' and 'providers'"
        )
    if not isinstance(doc, dict):
        raise ConfigError(
            f"{source}: <top level>: expected a mapping (keys like 'version' and "
            f"'providers'), got {_show(doc)}"
        )
    if "providers" not in doc:
        raise ConfigError(
            f"{source}: providers: required, but missing; expected a mapping from API name to a list "
            "of providers, e.g. providers: {inference: [{provider_id: vllm, provider_type: "
            "remote::vllm, config: {url: 'http://localhost:8000/v1'}}]}"
        )
    doc = substitute_env(doc, os.environ if env is None else env, source)
    try:
        config = RunConfig.model_validate({**doc, "source": source})
    except ValidationError as exc:
        raise ConfigError(validation_message(source, exc)) from None
    if str(config.version) not in ("2",):
        raise ConfigError(f"{source}: version: Lamina reads run configs of version 2, got {config.version!r}")
    for key in sorted(set(doc) - KNOWN_TOP_LEVEL):
        log.warning("config_key_ignored", source=source, key=key)
    for key in sorted(config.server.model_extra or {}):
        log.warning("config_key_ignored", source=source, key=f"server.{key}", reason="not a server setting")
    for key in sorted(config.vector_stores.model_extra or {}):
        log.warning("config_key_ignored", source=source, key=f"vector_stores.{key}", reason="not understood")
    for api, entries in config.providers.items():
        for i, entry in enumerate(entries):
            if entry.module:
                log.warning(
                    "config_key_ignored",
                    source=source,
                    key=f"providers.{api}[{i}].module",
                    reason="external provider modules are installed as plugins in Lamina",
                )
    for key in sorted(config.jobs.model_extra or {}):
        log.warning("config_key_ignored", source=source, key=f"jobs.{key}", reason="not a jobs setting")
    for key in sorted(config.safety.model_extra or {}):
        log.warning("config_key_ignored", source=source, key=f"safety.{key}", reason="not a safety setting")
    return config


# A provider config field Lamina accepts because Llama Stack has it, but does not act on, carries
# ``json_schema_extra=not_acted_on(...)``: when set (not null, false or empty), start-up fails
# (``refuse=True``: the setting would change behaviour or security) or logs config_key_ignored.
NOT_ACTED_ON = "lamina_not_acted_on"


def not_acted_on(reason: str, *, refuse: bool = False) -> dict[str, Any]:
    """``json_schema_extra`` for a field parsed but not acted on; ``reason`` says why and what to do."""
    return {NOT_ACTED_ON: {"reason": reason, "refuse": refuse}}


def _provider_problems(source: str, where: str, config: BaseModel) -> list[str]:
    problems = []
    for name, field in type(config).model_fields.items():
        extra = field.json_schema_extra
        mark = extra.get(NOT_ACTED_ON) if isinstance(extra, dict) else None
        value = getattr(config, name, None)
        if not isinstance(mark, dict) or value is None or value is False or value in ("", [], {}):
            continue
        key = f"{where}.config.{name}"
        if mark.get("refuse"):
            problems.append(f"{key}: {mark['reason']}")
        else:
            log.warning("config_key_ignored", source=source, key=key, reason=mark["reason"])
    return problems


# Resource sections whose API Lamina does not serve yet, and that API.
_RESOURCE_APIS = {"datasets": "datasetio", "scoring_fns": "scoring", "benchmarks": "eval"}


def check_settings_are_enforced(
    config: RunConfig,
    served_apis: Collection[str],
    provider_configs: Iterable[tuple[str, BaseModel]] = (),
) -> None:
    """Stop start-up on a setting Lamina parses but does not act on (null and empty mean "not set").

    A section that is accepted and then ignored promises what the server does not do (an
    ``access_policy`` nothing enforces), so each one fails, naming the key and what to do instead. Keys
    that only matter to Llama Stack's tooling (``container_image``) or that shipped templates carry
    harmlessly (``apis``) are logged instead. ``provider_configs`` are (key path, validated config)
    pairs, checked for fields marked with ``not_acted_on``.
    """
    server = config.server
    problems = []
    if server.auth and server.auth.access_policy:
        try:
            parse_policy(server.auth.access_policy)
        except PolicyError as exc:
            problems.append(str(exc))
    if bool(server.tls_certfile) != bool(server.tls_keyfile):
        have, missing = (
            ("tls_certfile", "tls_keyfile") if server.tls_certfile else ("tls_keyfile", "tls_certfile")
        )
        problems.append(
            f"server.{missing}: required with server.{have}; with only one of them the server would "
            "serve plain HTTP; set both, or neither"
        )
    if server.tls_cafile and not (server.tls_certfile and server.tls_keyfile):
        problems.append(
            "server.tls_cafile: client certificates are checked only over TLS; set server.tls_certfile "
            "and server.tls_keyfile too, or remove server.tls_cafile"
        )
    if server.disable_ipv6 and server.host and ":" in server.host:
        problems.append(
            f"server.host: {_show(server.host)} is an IPv6 address but server.disable_ipv6 is true; "
            "bind an IPv4 address or set disable_ipv6: false"
        )
    if config.external_providers_dir:
        problems.append(
            "external_providers_dir: Lamina does not load provider specs from a directory; install "
            "external providers as plugin packages (PLUGIN_GUIDE.md) and remove this key"
        )
    if config.logging:
        problems.append(
            "logging: Lamina does not apply Llama Stack's logging categories; remove the section and "
            "set LAMINA_LOG_LEVEL (debug|info|warning) instead"
        )
    for key, api in _RESOURCE_APIS.items():
        entries = getattr(config, key)
        if entries and api not in served_apis:
            problems.append(
                f"{key}: Lamina does not serve the {api} API yet, so these {len(entries)} entries would "
                f"not be registered; remove them (an empty list is fine)"
            )
    for where, provider_config in provider_configs:
        problems += _provider_problems(config.source, where, provider_config)
    if problems:
        raise ConfigError("\n".join(f"{config.source}: {p}" for p in problems))
    if config.container_image:
        log.warning(
            "config_key_ignored",
            source=config.source,
            key="container_image",
            reason="Lamina runs in the current Python environment, not in a container image",
        )
    unlisted = sorted(set(config.providers) - set(config.apis)) if config.apis else []
    if unlisted:
        log.warning(
            "config_apis_not_listed",
            source=config.source,
            apis=unlisted,
            reason="Lamina serves every API that has providers; Llama Stack would not serve these",
        )


def load_run_config(path: str | Path, *, env: Mapping[str, str] | None = None) -> RunConfig:
    """Read, substitute and validate a run.yaml file."""
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the run config: {exc.strerror}") from None
    return load_run_config_text(text, source=str(path), env=env)


def load_run_config_text(text: str, *, source: str, env: Mapping[str, str] | None = None) -> RunConfig:
    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else "somewhere"
        if mark is not None and (path := _yaml_key_path(text, mark.line)):
            where = f"{format_path(path)} ({where})"
        problem = getattr(exc, "problem", None) or str(exc)
        context = getattr(exc, "context", None)
        context = f" {context}" if context else ""
        raise ConfigError(
            f"{source}: {where}: invalid YAML: {problem}{context}; expected valid YAML "
            "(check indentation, quoting and brackets there)"
        ) from None
    return parse_run_config(doc, source=source, env=env)


def _yaml_key_path(text: str, line_index: int) -> tuple[Any, ...]:
    """Best-effort key path of a line in block-style YAML, for messages about unparsable files."""
    stack: list[tuple[int, Any]] = []  # (indent, key or list index)
    for raw in text.splitlines()[: line_index + 1]:
        content = raw.lstrip(" ")
        if not content or content.startswith("#"):
            continue
        indent = len(raw) - len(content)
        while content.startswith("- ") or content == "-":
            while stack and stack[-1][0] > indent:
                stack.pop()
            index = 0
            if stack and stack[-1][0] == indent and isinstance(stack[-1][1], int):
                index = stack.pop()[1] + 1
            stack.append((indent, index))
            content = content[2:].lstrip(" ")
            indent = len(raw) - len(content)
        key, sep, _ = content.partition(":")
        if sep and key and not key.startswith(("{", "[", "'", '"')):
            while stack and stack[-1][0] >= indent:
                stack.pop()
            stack.append((indent, key.strip()))
    return tuple(part for _, part in stack)
