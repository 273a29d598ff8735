"""Every hook a Lamina plugin can implement.

A plugin is a module registered under the ``lamina`` entry-point group; it implements any of the
hooks below with ``@hookimpl`` (from this module). Hooks are synchronous and cheap: they return
records (pydantic models from ``lamina.specs``, or dicts of the same fields) and never do I/O.
A hook's argument names are its contract: an implementation may accept any subset of them.
Adding an argument to a hook is free; removing one needs a deprecation cycle. Every docstring here
is the hook's documentation: ``docs/hooks.md`` is generated from this module by
``hatch run docs``.

Lifecycle of ``lamina run``: plugins load (entry points, in distribution-name order) -> API hooks
name provider types -> the run config picks providers and ``Stack.build`` validates their configs
(importing each configured provider's ``config_class``) -> the server app is created (route and
middleware hooks, their import paths resolved) -> providers start (``factory`` imported and
awaited, then the provider's own async ``initialize``) -> default resources are registered.
CLI and distribution hooks run when the ``lamina`` command starts.

Common rules for every hook:

- No I/O (no network, no files, no subprocesses) and no imports of heavy libraries at hook time;
  name classes and functions by import path (``"package.module:attr"``) and the core imports them
  only when it needs them.
- Deterministic: return the same records on every call, whatever the order plugins load in. The
  plugin manager caches most answers, but may call a hook again (``lamina plugins`` does).
- A hook that raises, or returns a value that does not validate, gets its whole plugin reported by
  name and skipped (every hook of it unregistered); ``LAMINA_STRICT_PLUGINS=1`` makes that fatal.
- Returning ``None`` or ``[]`` means "nothing from this plugin".
"""

from __future__ import annotations

import pluggy

from lamina.specs import (
    DefaultResource,
    DistributionSpec,
    JobExecutorSpec,
    MiddlewareSpec,
    ProviderSpec,
    ResourceVeto,
    RouteSpec,
)

hookspec = pluggy.HookspecMarker("lamina")
hookimpl = pluggy.HookimplMarker("lamina")

# The contract every API hook shares; docs/hooks.md shows it once, above the API hooks.
API_HOOK_CONTRACT = """Every API hook below answers one question: which provider types of its API does this
plugin offer? They differ only in the API (``api=Api.<name>`` on every record) and share this contract.

Called: at start-up, by ``Stack.build`` when the run config lists providers of the hook's API, so the
provider types can be checked (cached by the plugin manager: once per process), and again by listing
commands such as ``lamina plugins``, so it must return the same records every time.

Returns: a list of ``ProviderSpec``, one per provider type, with the hook's ``api``, a ``provider_type``
(``"remote::<name>"`` or ``"inline::<name>"``), the import paths of its ``config_class`` (a pydantic model of
the run config's ``config:``) and ``factory`` (``async def factory(config, deps, context)``), the
``api_dependencies`` whose routers the factory receives in ``deps``, and optionally a
``provider_data_validator`` (per-request settings from the ``X-LlamaStack-Provider-Data`` header). Dicts with
the same fields are accepted. Return ``[]`` or ``None`` to offer nothing.

Rules:

- No I/O and no heavy imports here: ``config_class``, ``factory`` and ``provider_data_validator`` are strings
  the core imports lazily, ``config_class`` when a run config configures this provider type and ``factory``
  when that provider starts.
- A record whose ``api`` is not the hook's is invalid: return it from the hook of its own API.
- A ``provider_type`` offered by two distributions fails start-up with an error naming both; uninstall
  one, or disable one with ``LAMINA_DISABLE_PLUGINS=<distribution>``.
- Every API has a hook, but the server serves only the APIs of ``lamina.api_table`` (inference, files,
  vector_io, tool_runtime, safety today). Providers of the other APIs are listed by ``lamina plugins``; a run
  config that configures one fails start-up naming the API, rather than building a provider nothing reaches.
"""

# The contract every resource hook but ``lamina_validate_resource`` shares; shown once in docs/hooks.md.
RESOURCE_HOOK_CONTRACT = """Every resource hook below contributes default resources of one type
(``DefaultResource`` records, ``type=ResourceType.<name>``) and shares this contract.

Called: by ``lamina plugins``, and at start-up (once per process; the plugin manager caches the answer,
sorted by ``(provider_type, identifier)``) after every configured provider has started, when the stack
registers default resources. The stack registers the defaults of models, shields and tool groups (the
resources of served APIs whose registrations it drives); defaults of the other types are collected and
listed, and get registered the same way once the API owning them is served.

Returns: ``DefaultResource`` records: the hook's ``type``, the ``provider_type`` that serves the resource,
the ``identifier`` clients use, optionally ``provider_resource_id`` (the resource's id at the provider;
defaults to ``identifier``) and ``params``, the resource's own fields (each hook says which). Dicts with the
same fields are accepted. Return ``[]`` or ``None`` for none.

Rules:

- A default is registered only if the run config configures a provider of its ``provider_type``, and then
  once (identifiers are unique), with the first such provider in run-config order.
- Registrations win over defaults: an identifier already registered (through the API, or persisted from an
  earlier run) is left as it is, and the run config's entries of that type are registered after the
  defaults and replace them.
- A default goes through ``lamina_validate_resource`` and the provider's registration like any
  registration; one that is refused (a veto, or its provider's error) is logged and skipped: a plugin's
  default never stops start-up.
- A record of another type is invalid. No I/O: do not ask a server what it has here (a provider can do
  that in its own ``initialize``).
"""

# ---------------------------------------------------------------------------------------------
# APIs: which provider types does this plugin offer?
# ---------------------------------------------------------------------------------------------


@hookspec
def lamina_inference_providers() -> list[ProviderSpec]:
    """Offer this plugin's Inference provider types (chat completion, text completion and embeddings).

    Called, Returns and Rules: those of every API hook (``API_HOOK_CONTRACT``, shown once above
    the API hooks), with ``api=Api.inference`` on every ``ProviderSpec``.

    Example::

        @hookimpl
        def lamina_inference_providers():
            return [ProviderSpec(api=Api.inference, provider_type="remote::acme",
                                 config_class="lamina_acme.config:AcmeConfig",
                                 factory="lamina_acme.provider:create_provider",
                                 description="Acme's hosted models.")]
    """


@hookspec
def lamina_safety_providers() -> list[ProviderSpec]:
    """Offer this plugin's Safety provider types (shields and moderations).

    Called, Returns and Rules: those of every API hook (``API_HOOK_CONTRACT``, shown once above
    the API hooks), with ``api=Api.safety`` on every ``ProviderSpec``.

    Example::

        @hookimpl
        def lamina_safety_providers():
            return [ProviderSpec(api=Api.safety, provider_type="inline::acme-guard",
                                 config_class="lamina_acme.safety:Config",
                                 factory="lamina_acme.safety:create_provider",
                                 api_dependencies=[Api.inference])]
    """


@hookspec
def lamina_agents_providers() -> list[ProviderSpec]:
    """Offer this plugin's Agents provider types (agent turns and OpenAI Responses).

    Called, Returns and Rules: those of every API hook (``API_HOOK_CONTRACT``, shown once above
    the API hooks), with ``api=Api.agents`` on every ``ProviderSpec``.

    Example::

        @hookimpl
        def lamina_agents_providers():
            return [ProviderSpec(api=Api.agents, provider_type="inline::acme-agents",
                                 config_class="lamina_acme.agents:Config",
                                 factory="lamina_acme.agents:create_provider",
                                 api_dependencies=[Api.inference, Api.tool_runtime])]
    """


@hookspec
def lamina_tool_runtime_providers() -> list[ProviderSpec]:
    """Offer this plugin's ToolRuntime provider types (RAG search, web search, MCP and code tools).

    Called, Returns and Rules: those of every API hook (``API_HOOK_CONTRACT``, shown once above
    the API hooks), with ``api=Api.tool_runtime`` on every ``ProviderSpec``.

    Example::

        @hookimpl
        def lamina_tool_runtime_providers():
            return [ProviderSpec(api=Api.tool_runtime, provider_type="remote::acme-search",
                                 config_class="lamina_acme.tool_runtime:Config",
                                 factory="lamina_acme.tool_runtime:create_provider")]
    """


@hookspec
def lamina_vector_io_providers() -> list[ProviderSpec]:
    """Offer this plugin's VectorIO provider types (vector databases and vector stores).

    Called, Returns and Rules: those of every API hook (``API_HOOK_CONTRACT``, shown once above
    the API hooks), with ``api=Api.vector_io`` on every ``ProviderSpec``.

    Example::

        @hookimpl
        def lamina_vector_io_providers():
            return [ProviderSpec(api=Api.vector_io, provider_type="remote::acme-vectors",
                                 config_class="lamina_acme.vector_io:Config",
                                 factory="lamina_acme.vector_io:create_provider",
                                 api_dependencies=[Api.inference])]
    """


@hookspec
def lamina_files_providers() -> list[ProviderSpec]:
    """Offer this plugin's Files provider types (OpenAI files storage).

    Called, Returns and Rules: those of every API hook (``API_HOOK_CONTRACT``, shown once above
    the API hooks), with ``api=Api.files`` on every ``ProviderSpec``.

    Example::

        @hookimpl
        def lamina_files_providers():
            return [ProviderSpec(api=Api.files, provider_type="inline::acme-files",
                                 config_class="lamina_acme.files:Config",
                                 factory="lamina_acme.files:create_provider")]
    """


@hookspec
def lamina_datasetio_providers() -> list[ProviderSpec]:
    """Offer this plugin's DatasetIO provider types (reading and appending dataset rows).

    Called, Returns and Rules: those of every API hook (``API_HOOK_CONTRACT``, shown once above
    the API hooks), with ``api=Api.datasetio`` on every ``ProviderSpec``.

    Example::

        @hookimpl
        def lamina_datasetio_providers():
            return [ProviderSpec(api=Api.datasetio, provider_type="remote::acme-datasets",
                                 config_class="lamina_acme.datasetio:Config",
                                 factory="lamina_acme.datasetio:create_provider")]
    """


@hookspec
def lamina_scoring_providers() -> list[ProviderSpec]:
    """Offer this plugin's Scoring provider types (scoring functions over rows).

    Called, Returns and Rules: those of every API hook (``API_HOOK_CONTRACT``, shown once above
    the API hooks), with ``api=Api.scoring`` on every ``ProviderSpec``.

    Example::

        @hookimpl
        def lamina_scoring_providers():
            return [ProviderSpec(api=Api.scoring, provider_type="inline::acme-scoring",
                                 config_class="lamina_acme.scoring:Config",
                                 factory="lamina_acme.scoring:create_provider",
                                 api_dependencies=[Api.datasetio])]
    """


@hookspec
def lamina_eval_providers() -> list[ProviderSpec]:
    """Offer this plugin's Eval provider types (benchmark evaluation jobs).

    Called, Returns and Rules: those of every API hook (``API_HOOK_CONTRACT``, shown once above
    the API hooks), with ``api=Api.eval`` on every ``ProviderSpec``.

    Example::

        @hookimpl
        def lamina_eval_providers():
            return [ProviderSpec(api=Api.eval, provider_type="inline::acme-eval",
                                 config_class="lamina_acme.eval:Config",
                                 factory="lamina_acme.eval:create_provider",
                                 api_dependencies=[Api.datasetio, Api.scoring, Api.inference])]
    """


@hookspec
def lamina_telemetry_providers() -> list[ProviderSpec]:
    """Offer this plugin's Telemetry provider types (trace, span and metric sinks).

    Called, Returns and Rules: those of every API hook (``API_HOOK_CONTRACT``, shown once above
    the API hooks), with ``api=Api.telemetry`` on every ``ProviderSpec``.

    Example::

        @hookimpl
        def lamina_telemetry_providers():
            return [ProviderSpec(api=Api.telemetry, provider_type="inline::acme-telemetry",
                                 config_class="lamina_acme.telemetry:Config",
                                 factory="lamina_acme.telemetry:create_provider")]
    """


@hookspec
def lamina_batch_inference_providers() -> list[ProviderSpec]:
    """Offer this plugin's BatchInference provider types (inference and agents over datasets, as jobs).

    Called, Returns and Rules: those of every API hook (``API_HOOK_CONTRACT``, shown once above
    the API hooks), with ``api=Api.batch_inference`` on every ``ProviderSpec``.

    Example::

        @hookimpl
        def lamina_batch_inference_providers():
            return [ProviderSpec(api=Api.batch_inference, provider_type="inline::acme-batch",
                                 config_class="lamina_acme.batch_inference:Config",
                                 factory="lamina_acme.batch_inference:create_provider",
                                 api_dependencies=[Api.inference])]
    """


@hookspec
def lamina_batches_providers() -> list[ProviderSpec]:
    """Offer this plugin's Batches provider types (OpenAI's Batches API: JSONL files of requests as jobs).

    Called, Returns and Rules: those of every API hook (``API_HOOK_CONTRACT``, shown once above
    the API hooks), with ``api=Api.batches`` on every ``ProviderSpec``.

    Example::

        @hookimpl
        def lamina_batches_providers():
            return [ProviderSpec(api=Api.batches, provider_type="inline::acme-batches",
                                 config_class="lamina_acme.batches:Config",
                                 factory="lamina_acme.batches:create_provider",
                                 api_dependencies=[Api.inference, Api.files])]
    """


@hookspec
def lamina_post_training_providers() -> list[ProviderSpec]:
    """Offer this plugin's PostTraining provider types (fine-tuning and preference-optimisation jobs).

    Called, Returns and Rules: those of every API hook (``API_HOOK_CONTRACT``, shown once above
    the API hooks), with ``api=Api.post_training`` on every ``ProviderSpec``.

    Example::

        @hookimpl
        def lamina_post_training_providers():
            return [ProviderSpec(api=Api.post_training, provider_type="inline::acme-tune",
                                 config_class="lamina_acme.post_training:Config",
                                 factory="lamina_acme.post_training:create_provider",
                                 api_dependencies=[Api.datasetio])]
    """


@hookspec
def lamina_synthetic_data_generation_providers() -> list[ProviderSpec]:
    """Offer this plugin's SyntheticDataGeneration provider types (generating synthetic data).

    Called, Returns and Rules: those of every API hook (``API_HOOK_CONTRACT``, shown once above
    the API hooks), with ``api=Api.synthetic_data_generation`` on every ``ProviderSpec``.

    Example::

        @hookimpl
        def lamina_synthetic_data_generation_providers():
            return [ProviderSpec(api=Api.synthetic_data_generation, provider_type="inline::acme-sdg",
                                 config_class="lamina_acme.synthetic_data_generation:Config",
                                 factory="lamina_acme.synthetic_data_generation:create_provider",
                                 api_dependencies=[Api.inference])]
    """


# ---------------------------------------------------------------------------------------------
# Resources: default resources a plugin brings, and vetoes on registrations.
# A default resource names a provider_type; the stack registers it, after the providers have
# started, with the first configured provider of that type. Registrations by users and by the
# run config win over defaults.
# ---------------------------------------------------------------------------------------------


@hookspec
def lamina_models() -> list[DefaultResource]:
    """Contribute Model resources to register by default (for example a bundled local model).

    Called, Returns and Rules: those of every resource hook (``RESOURCE_HOOK_CONTRACT``, shown once above the
    resource hooks), with ``type=ResourceType.model``; ``params`` holds the model's own fields:
    ``model_type``, ``"llm"`` or ``"embedding"``, and ``metadata``, which for an embedding model must hold
    ``embedding_dimension``. Use this hook for models a plugin always offers; a provider whose backend
    knows which models it serves implements ``list_models()`` instead (``ProviderBase``).

    Example::

        @hookimpl
        def lamina_models():
            return [DefaultResource(type=ResourceType.model, provider_type="remote::acme",
                                    identifier="acme/small", provider_resource_id="small-2025",
                                    params={"model_type": "llm"})]
    """


@hookspec
def lamina_shields() -> list[DefaultResource]:
    """Contribute Shield resources to register by default.

    Called, Returns and Rules: those of every resource hook (``RESOURCE_HOOK_CONTRACT``, shown once above the
    resource hooks), with ``type=ResourceType.shield``; ``params`` holds ``params``, the shield's own
    settings, as in the run config's ``shields:``.

    Example::

        @hookimpl
        def lamina_shields():
            params = {"params": {"threshold": 0.8}}
            return [DefaultResource(type=ResourceType.shield, provider_type="inline::acme-guard",
                                    identifier="acme-guard", params=params)]
    """


@hookspec
def lamina_vector_dbs() -> list[DefaultResource]:
    """Contribute VectorDB resources to register by default.

    Called, Returns and Rules: those of every resource hook (``RESOURCE_HOOK_CONTRACT``, shown once above the
    resource hooks), with ``type=ResourceType.vector_db``; ``params`` holds ``embedding_model`` and
    ``embedding_dimension``, as in the run config's ``vector_dbs:``.

    Example::

        @hookimpl
        def lamina_vector_dbs():
            params = {"embedding_model": "acme/embed", "embedding_dimension": 384}
            return [DefaultResource(type=ResourceType.vector_db, provider_type="remote::acme-vectors",
                                    identifier="acme-docs", params=params)]
    """


@hookspec
def lamina_datasets() -> list[DefaultResource]:
    """Contribute Dataset resources to register by default.

    Called, Returns and Rules: those of every resource hook (``RESOURCE_HOOK_CONTRACT``, shown once above the
    resource hooks), with ``type=ResourceType.dataset``; ``params`` holds ``purpose``, ``source`` and
    ``metadata``, as in the run config's ``datasets:``.

    Example::

        @hookimpl
        def lamina_datasets():
            params = {"purpose": "eval/question-answer", "source": {"uri": "hf://acme/qa"}}
            return [DefaultResource(type=ResourceType.dataset, provider_type="remote::acme-datasets",
                                    identifier="acme-qa", params=params)]
    """


@hookspec
def lamina_scoring_functions() -> list[DefaultResource]:
    """Contribute ScoringFunction resources to register by default (for example ``basic::equality``).

    Called, Returns and Rules: those of every resource hook (``RESOURCE_HOOK_CONTRACT``, shown once above the
    resource hooks), with ``type=ResourceType.scoring_function``; ``params`` holds ``description``,
    ``return_type`` and ``params``, as in the run config's ``scoring_fns:``.

    Example::

        @hookimpl
        def lamina_scoring_functions():
            params = {"description": "1 if the answer equals the expected answer"}
            return [DefaultResource(type=ResourceType.scoring_function, provider_type="inline::acme-scoring",
                                    identifier="basic::equality", params=params)]
    """


@hookspec
def lamina_benchmarks() -> list[DefaultResource]:
    """Contribute Benchmark resources to register by default.

    Called, Returns and Rules: those of every resource hook (``RESOURCE_HOOK_CONTRACT``, shown once above the
    resource hooks), with ``type=ResourceType.benchmark``; ``params`` holds ``dataset_id``,
    ``scoring_functions`` and ``metadata``, as in the run config's ``benchmarks:``.

    Example::

        @hookimpl
        def lamina_benchmarks():
            params = {"dataset_id": "acme-qa", "scoring_functions": ["basic::equality"]}
            return [DefaultResource(type=ResourceType.benchmark, provider_type="inline::acme-eval",
                                    identifier="acme-bench", params=params)]
    """


@hookspec
def lamina_tool_groups() -> list[DefaultResource]:
    """Contribute ToolGroup resources to register by default (for example ``builtin::rag``).

    Called, Returns and Rules: those of every resource hook (``RESOURCE_HOOK_CONTRACT``, shown once above the
    resource hooks), with ``type=ResourceType.tool_group``; ``params`` holds ``args`` and ``mcp_endpoint``, as
    in the run config's ``tool_groups:``. Tool groups are registered after the models and vector DBs.

    Example::

        @hookimpl
        def lamina_tool_groups():
            params = {"args": {"max_results": 5}}
            return [DefaultResource(type=ResourceType.tool_group, provider_type="remote::acme-search",
                                    identifier="builtin::websearch", params=params)]
    """


@hookspec
def lamina_validate_resource(resource_type: str, resource: dict) -> ResourceVeto | None:
    """Veto a resource registration: return a ``ResourceVeto`` to refuse it, or ``None`` to allow it.

    Called: on every registration, before the owning provider sees it: ``POST /v1/models``, the run config's
    ``models:`` at start-up, and plugin defaults. Not cached: it runs once per registration.

    Arguments: ``resource_type`` is the resource kind, a ``ResourceType`` value such as ``"model"``;
    ``resource`` is the resource's JSON fields as they would be stored (``identifier``, ``provider_id``,
    ``provider_resource_id``, ``type``, ``created`` and the kind's own fields, such as ``model_type`` and
    ``metadata`` for a model). Treat it as read-only. An implementation may accept only the arguments it
    needs.

    Returns: ``None`` to allow, or a ``ResourceVeto`` whose ``reason`` is shown to the user (``plugin``
    defaults to your distribution's name). Any veto refuses the registration with a 400 error listing every
    vetoing plugin and its reason; at start-up that fails start-up.

    Rules:

    - Decide from the fields alone: no I/O, no lookups elsewhere.
    - Deterministic: the same resource gets the same answer.

    Example::

        @hookimpl
        def lamina_validate_resource(resource_type, resource):
            if resource_type == "model" and resource["identifier"].startswith("internal/"):
                return ResourceVeto(reason="internal/ models are not served here")
            return None
    """


# ---------------------------------------------------------------------------------------------
# Server, CLI and distributions.
# ---------------------------------------------------------------------------------------------


@hookspec
def lamina_routes() -> list[RouteSpec]:
    """Add plain aiohttp routes beside the declared API routes (for example a webhook or a status page).

    Called: at start-up, once per process, when ``lamina run`` creates the server app; the plugin manager
    caches the answer, sorted by ``(path, method)``.

    Returns: a list of ``RouteSpec``: ``method`` (``GET``, ``POST``, ``PUT``, ``PATCH`` or ``DELETE``),
    ``path`` in aiohttp syntax (``/v1/acme/{name}``), ``handler`` (the import path of ``async def
    handler(request) -> web.StreamResponse``) and a ``description``. Dicts with the same fields are accepted.
    Return ``[]`` or ``None`` for none.

    Rules:

    - No I/O here; ``handler`` is a string the core imports when it creates the app, so keep heavy imports
      inside the handler's body.
    - The core's middlewares (request ids, provider data, error rendering) wrap these routes too, but the
      request is not validated against a model, and the route is not part of ``/openapi.json``, ``GET
      /v1/inspect/routes`` or ``docs/api.md``.
    - Do not reuse a method and path the core or another plugin serves; use a path of your own
      (``/v1/<plugin>/...``).
    - With ``server.auth``, ``access`` says who may call the route: ``caller`` (the default: any
      authenticated caller), ``admin`` (the role ``server.auth.admin_role``) or ``open`` (no token). A handler
      acting on resources checks them with ``lamina.access.checks`` (``authorize``, ``record_owner``,
      ``visible``), so the server's ``access_policy`` decides for it as for the API routes.

    Example::

        @hookimpl
        def lamina_routes():
            return [RouteSpec(method="GET", path="/v1/acme/status",
                              handler="lamina_acme.http:status", description="Acme quota left")]
    """


@hookspec
def lamina_middlewares() -> list[MiddlewareSpec]:
    """Wrap every request in an aiohttp middleware (for example authentication or rate limiting).

    Called: at start-up, once per process, when ``lamina run`` creates the server app; the plugin manager
    caches the answer, sorted by ``(order, name)``.

    Returns: a list of ``MiddlewareSpec``: a ``name``, ``middleware`` (the import path of a new-style aiohttp
    middleware, ``@web.middleware async def mw(request, handler)``) and ``order`` (default 100). Dicts with
    the same fields are accepted. Return ``[]`` or ``None`` for none.

    Rules:

    - No I/O here; ``middleware`` is a string the core imports when it creates the app.
    - Plugin middlewares run inside the core's own middleware (so a request id is set and errors you raise as
      ``lamina.errors`` exceptions are rendered like the core's), lower ``order`` first, outermost first.
    - A middleware runs on every request, streaming ones included: keep it fast and never block the event
      loop.

    Example::

        @hookimpl
        def lamina_middlewares():
            return [MiddlewareSpec(name="acme-auth", middleware="lamina_acme.auth:middleware", order=10)]
    """


@hookspec
def lamina_job_executors() -> list[JobExecutorSpec]:
    """Offer job executors: places other than the server's event loop where job handlers run.

    Called: at start-up, once per process, when the run config's ``jobs.executor`` names an executor other
    than the built-in ``inline`` (the plugin manager caches the answer, sorted by name), and by ``lamina
    plugins``.

    Returns: a list of ``JobExecutorSpec``: a ``name`` (what ``jobs.executor`` says), ``factory`` (the import
    path of ``def factory(config: dict) -> JobExecutor``, called once at start-up with
    ``jobs.executor_config``; raise ``ValueError`` naming a bad setting) and a ``description``. Dicts with
    the same fields are accepted. Return ``[]`` or ``None`` for none.

    Rules:

    - No I/O here; ``factory`` is a string the core imports at start-up. Connect to a cluster in the
      executor's ``start``.
    - The executor implements ``lamina.jobs.JobExecutor``: ``async start()`` (before any job runs),
      ``async run(handler, context) -> result`` and ``async shutdown()`` (after every job here stopped).
      ``run`` runs one job's ``handler(context)`` to its end and returns its result (small JSON) or raises
      its exception. Cancelling the task that awaits ``run`` must stop the work and raise
      ``CancelledError``: that is how cancel and shutdown reach the handler. Calls the handler makes to
      ``context.progress`` must reach the ``context`` given (relay them when the handler runs elsewhere),
      since they persist progress and checkpoints and renew the job's lease.
    - The manager, not the executor, owns each job's state, lease, concurrency limits and order; an
      executor may run parts of a job in parallel elsewhere (fanning a batch out to a cluster) as long as
      ``run`` returns only when the job's work is done.
    - Optionally ``async prepare(work)``: called once after ``start`` with the server's
      ``lamina.jobs.WorkEnvironment``, before any job runs; return soon (start slow things, such as a pool of
      remote workers, in a task of your own, and log rather than raise when they fail: a job then finds out).
    - Optionally ``async map(function, items, *, work, concurrency, on_result, yield_to_clients)``: run the
      work function (an import path, ``async def f(apis, item) -> JSON``) on every item, at most
      ``concurrency`` at once, awaiting ``on_result(index, result)`` in the server as each finishes, and
      raise the first exception a function raised; ``work`` (``lamina.jobs.WorkEnvironment``) holds this
      server's routers and its run config, from which a worker elsewhere builds a stack of its own. Job
      handlers reach it as ``context.map``; an executor without it runs items in the server's event loop.
      ``lamina.jobs.work`` has the rules.
    - An executor name offered by two distributions, or one no installed plugin offers, fails start-up
      with an error naming them; ``inline`` is the core's own and cannot be replaced.

    Example::

        @hookimpl
        def lamina_job_executors():
            return [JobExecutorSpec(name="ray", factory="lamina_ray.executor:create_executor",
                                    description="Runs job work as Ray tasks on a cluster")]
    """


@hookspec
def lamina_cli_commands() -> list:
    """Add click commands to the ``lamina`` command line.

    Called: every time the ``lamina`` command starts, before it parses its arguments. Not cached.

    Returns: a list of ``click.Command`` objects (commands or groups), which ``lamina`` adds under their
    names, sorted by name. Return ``[]`` or ``None`` for none.

    Rules:

    - Build the commands only: no I/O, and keep heavy imports inside the command's callback, since this hook
      runs on every ``lamina`` invocation, ``lamina --help`` included.
    - A command named like a built-in command (``run``, ``plugins``, ``routes``, ``distributions``) or like an
      earlier plugin's command (by distribution name) is ignored.

    Example::

        @hookimpl
        def lamina_cli_commands():
            @click.command("acme-login", help="Store an Acme API key.")
            def login():
                from lamina_acme.auth import login_interactively

                login_interactively()

            return [login]
    """


@hookspec
def lamina_distributions() -> list[DistributionSpec]:
    """Ship distributions: named, ready-made run configs that ``lamina run NAME`` serves.

    Called: when ``lamina run`` picks its run config (a distribution name, or no argument for the default
    distribution) and by ``lamina distributions``; the plugin manager caches the answer, sorted by name.

    Returns: a list of ``DistributionSpec``: a ``name``, a ``description``, ``run_config`` (the run.yaml text,
    which may use ``${env.X:=default}``) and ``default`` (served by ``lamina run`` with no argument; when
    several distributions are default, the first by name wins). Dicts with the same fields are accepted.
    Return ``[]`` or ``None`` for none.

    Rules:

    - No I/O: keep the run config as a string in the plugin module rather than reading a file.
    - A distribution name shipped by two distributions fails start-up with an error naming both.
    - The run config should name provider types your plugin (or its declared dependencies) offers, so the
      distribution works wherever the plugin is installed.

    Example::

        RUN_YAML = '''
        version: 2
        image_name: acme
        providers:
          inference:
          - provider_id: acme
            provider_type: remote::acme
            config:
              api_key: ${env.ACME_API_KEY:=}
        '''

        @hookimpl
        def lamina_distributions():
            return [DistributionSpec(name="acme", description="Acme's hosted models", run_config=RUN_YAML)]
    """


API_HOOKS: dict[str, str] = {
    "inference": "lamina_inference_providers",
    "safety": "lamina_safety_providers",
    "agents": "lamina_agents_providers",
    "tool_runtime": "lamina_tool_runtime_providers",
    "vector_io": "lamina_vector_io_providers",
    "files": "lamina_files_providers",
    "datasetio": "lamina_datasetio_providers",
    "scoring": "lamina_scoring_providers",
    "eval": "lamina_eval_providers",
    "telemetry": "lamina_telemetry_providers",
    "batch_inference": "lamina_batch_inference_providers",
    "batches": "lamina_batches_providers",
    "post_training": "lamina_post_training_providers",
    "synthetic_data_generation": "lamina_synthetic_data_generation_providers",
}

RESOURCE_HOOKS: dict[str, str] = {
    "model": "lamina_models",
    "shield": "lamina_shields",
    "vector_db": "lamina_vector_dbs",
    "dataset": "lamina_datasets",
    "scoring_function": "lamina_scoring_functions",
    "benchmark": "lamina_benchmarks",
    "tool_group": "lamina_tool_groups",
}
