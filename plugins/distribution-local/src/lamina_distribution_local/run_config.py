"""The run config of the ``local`` distribution (``lamina distributions show local`` prints it)."""

RUN_CONFIG = """\
# Lamina's local distribution: every provider runs in-process, offline, on models shipped in packages.
# Copy it (`lamina distributions show local > run.yaml`), edit, and serve it with `lamina run run.yaml`.
# State lives under $LAMINA_HOME/local (default ~/.lamina/local).
version: 2
image_name: local
apis:
- inference
- vector_io
- files
- tool_runtime
- safety
- scoring
- agents
- datasetio
- eval
- batches
- telemetry
providers:
  inference:
  - provider_id: llama-cpp
    provider_type: inline::llama-cpp
    config:
      context_length: ${env.LAMINA_CONTEXT_LENGTH:=4096}
      parallel: ${env.LAMINA_PARALLEL:=2}
      max_queue: ${env.LAMINA_MAX_QUEUE:=16}
      # Tokens generated for a request that sets no max_tokens: about 3 s of SmolLM2 on 2 quiet cores
      # (the provider's own default, 1024, took 15 s there, and over a minute on a busy machine).
      default_max_tokens: ${env.LAMINA_DEFAULT_MAX_TOKENS:=256}
  - provider_id: sentence-transformers
    provider_type: inline::sentence-transformers
    config: {}
  vector_io:
  - provider_id: faiss
    provider_type: inline::faiss
    config:
      index: ${env.LAMINA_FAISS_INDEX:=hnsw}
  files:
  - provider_id: localfs
    provider_type: inline::localfs
    config: {}
  tool_runtime:
  - provider_id: rag-runtime
    provider_type: inline::rag-runtime
    config:
      # Documents named by URL are not fetched: a server that fetches any URL is a proxy into its
      # own network. When on, only public addresses are fetched (allowed_hosts and
      # allowed_private_networks narrow or widen that; see the lamina-rag-runtime README).
      allow_remote_urls: false
  - provider_id: code-interpreter
    provider_type: inline::code-interpreter
    config:
      # builtin::code_interpreter: Python in a bubblewrap sandbox (no network, no server files; limits
      # in the lamina-code-interpreter README). Without a working bwrap the server still starts and
      # code_interpreter calls answer 503 naming the fix (apt-get install bubblewrap).
      require_sandbox: false
  - provider_id: model-context-protocol
    provider_type: remote::model-context-protocol
    # MCP servers' tools (streamable HTTP or SSE). It contacts nothing at start-up and no group is
    # registered: add yours with POST /v1/toolgroups {"toolgroup_id": "mcp::x", "provider_id":
    # "model-context-protocol", "mcp_endpoint": {"uri": "http://127.0.0.1:8000/mcp"}}, or use a
    # Responses `mcp` tool.
    config: {}
  safety:
  - provider_id: rules
    provider_type: inline::rules
    config: {}                   # the built-in `pii` rule set: emails, phones, cards, secrets, ...
  - provider_id: prompt-guard
    provider_type: inline::prompt-guard
    config:
      guard_type: injection
  - provider_id: llama-guard
    provider_type: inline::llama-guard
    config:
      # SmolLM2 is no Llama Guard: constrain its verdict to JSON so it always parses. It is a
      # placeholder guard (see docs/benchmarks.md); point the shield at a real Llama Guard model.
      constrained_output: true
  scoring:
  # basic::equality, subset_of, regex answer parsers, docvqa, ifeval, bfcl; llm-as-judge::base and
  # 405b-simpleqa (send judge params with each call, or register judge functions; SmolLM2 is a weak
  # judge). inline::braintrust (autoevals) is not here: its LLM scorers need a judge that makes tool
  # calls, which SmolLM2 does not (see the lamina-braintrust README to add it with a better judge_model).
  - provider_id: basic
    provider_type: inline::basic
    config: {}
  - provider_id: llm-as-judge
    provider_type: inline::llm-as-judge
    config: {}
  agents:
  - provider_id: meta-reference
    provider_type: inline::meta-reference
    # Agents, sessions, turns and steps persist (persistence_store; absent: SQLite in the state
    # directory) and survive a restart; a turn a crash interrupted reads as failed after it.
    config: {}
  datasetio:
  # Not `localfs` (Llama Stack's id here): provider ids are unique across APIs, and the files provider
  # above has it. Datasets pick this provider by its type, so Llama Stack's requests need no id.
  - provider_id: localfs-datasetio
    provider_type: inline::localfs
    # Datasets from CSV/TSV/JSONL/Parquet/XLSX paths, file:// and data: URIs, and Files API files
    # (files://<file_id>), read a page at a time; appended rows persist (kvstore; absent: SQLite in
    # the state directory).
    config: {}
  eval:
  # Benchmarks (POST /v1/eval/benchmarks) run by a model or an agent: run_eval is a job that survives a
  # restart (generations kept in kvstore; absent: SQLite in the state directory), evaluate_rows answers
  # inline. Rows come from datasetio; send small max_tokens in sampling_params for SmolLM2.
  - provider_id: meta-reference-eval   # Llama Stack's is meta-reference, the agents provider's id too
    provider_type: inline::meta-reference
    config: {}
  batches:
  # OpenAI batches (POST /v1/batches on a JSONL file uploaded with purpose batch): each batch is a job that
  # survives a restart (finished lines kept in kvstore; absent: SQLite in the state directory); its lines
  # run in-process as batch work, after interactive requests. SmolLM2 answers one or two at a time.
  - provider_id: reference
    provider_type: inline::reference
    config:
      max_concurrent_requests_per_batch: 2
  telemetry:
  # Traces and metrics of every request, kept in a SQLite trace store in the state directory for 7 days
  # and served by the telemetry API (POST /v1/telemetry/traces, ...). TELEMETRY_SINKS=sqlite,otel_trace,
  # otel_metric also exports them over OTLP/HTTP (otel_trace_endpoint, otel_metric_endpoint).
  - provider_id: meta-reference-telemetry   # Llama Stack's is meta-reference, the agents provider's id too
    provider_type: inline::meta-reference
    config:
      sinks: ${env.TELEMETRY_SINKS:=sqlite}
# Vector DBs and OpenAI vector stores embed with all-MiniLM-L6-v2 by default; the builtin::rag
# tool group (knowledge_search) is registered by the rag-runtime plugin, builtin::code_interpreter by the
# code-interpreter plugin.
# Models: the bundled SmolLM2-135M-Instruct (llama-cpp) and all-MiniLM-L6-v2 (sentence-transformers)
# are registered by their plugins. Add your own GGUF (in ~/.lamina/models, or a directory listed in
# the llama-cpp provider's model_dirs) like this:
# - model_id: my-model
#   provider_id: llama-cpp
#   provider_model_id: model.gguf
models: []
# Shields (POST /v1/safety/run-shield; moderations: model = the shield id, or none for the default below).
shields:
- shield_id: pii
  provider_id: rules
- shield_id: prompt-guard
  provider_id: prompt-guard
  provider_shield_id: Prompt-Guard-86M    # the jailguard classifier
- shield_id: llama-guard
  provider_id: llama-guard
  provider_shield_id: SmolLM2-135M-Instruct
# OpenAI moderations without `model` run this shield. pii: deterministic, about 2 ms, and precise on
# what it catches (docs/benchmarks.md); llama-guard on SmolLM2 flags nothing, prompt-guard judges
# injections, not content.
safety:
  default_shield_id: ${env.LAMINA_DEFAULT_SHIELD_ID:=pii}
server:
  port: ${env.LAMINA_PORT:=8321}
"""
