"""The one table of the APIs the server serves: for each, its Protocols, its router, its resource.

Everything that depends on which APIs exist reads this table: the stack builds each API's routing
table and router from it (``Stack.__post_init__``) and serves its Protocols (``Stack.api_impls``),
so the server's routes, ``/openapi.json``, ``GET /v1/inspect/routes``, ``lamina routes`` and
``docs/api.md`` list exactly what it holds; ``Stack.build`` refuses a provider configured for an API
that is not in it; ``provider_protocols()`` hands the provider Protocols to the generated provider
contract (docs/provider-contract.md).

Adding an API (agents, say) is one ``ApiEntry`` below plus the API's own modules:

- ``lamina/apis/agents.py``: its request and response models, the client-facing Protocol
  (``Agents``, each method with its ``@webmethod`` route) and the provider Protocol
  (``AgentsProvider``) with the contract in its docstrings;
- ``lamina/routers/agents.py``: the router that implements ``Agents`` by calling the provider;
- if the API owns a resource: a ``ResourceType``, its routing table in ``lamina/resources/`` (built
  here, beside the router) and its run-config and default registrations in the stack;
- ``lamina_agents_providers`` and ``Api.agents`` exist already (hookspecs, specs) for every API.

Entries are built in table order, so an entry can use the routers and tables built before it (Vector
IO embeds through Inference and reads files through Files); the order is also the order of the API
reference.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from lamina.apis.agents import Agents, AgentsProvider, BatchAgents
from lamina.apis.batches import Batches, BatchesProvider
from lamina.apis.datasets import DatasetIO, DatasetIOProvider, Datasets
from lamina.apis.eval import Benchmarks, Eval, EvalProvider
from lamina.apis.files import Files, FilesProvider
from lamina.apis.inference import Inference, InferenceProvider
from lamina.apis.inspect import Inspect, Providers
from lamina.apis.jobs import Jobs
from lamina.apis.models import Models
from lamina.apis.post_training import PostTraining, PostTrainingProvider
from lamina.apis.responses import Responses
from lamina.apis.safety import Safety, SafetyProvider, Shields
from lamina.apis.scoring import Scoring, ScoringFunctions, ScoringProvider
from lamina.apis.synthetic_data_generation import SyntheticDataGeneration, SyntheticDataGenerationProvider
from lamina.apis.telemetry import Telemetry, TelemetryProvider
from lamina.apis.tools import RAGToolRuntime, ToolGroups, ToolRuntime, ToolRuntimeProvider
from lamina.apis.vector_io import VectorDBs, VectorIO, VectorIOProvider
from lamina.apis.vector_store_file_batches import VectorStoreFileBatches
from lamina.apis.vector_stores import VectorStores
from lamina.resources.benchmarks import BenchmarksRoutingTable
from lamina.resources.datasets import DatasetsRoutingTable
from lamina.resources.models import ModelsRoutingTable
from lamina.resources.scoring_functions import ScoringFunctionsRoutingTable
from lamina.resources.shields import ShieldsRoutingTable
from lamina.resources.tool_groups import ToolGroupsRoutingTable
from lamina.resources.vector_dbs import VectorDBsRoutingTable
from lamina.routers.agents import AgentsRouter
from lamina.routers.batches import BatchesRouter
from lamina.routers.datasetio import DatasetIORouter
from lamina.routers.eval import EvalRouter
from lamina.routers.files import FilesRouter
from lamina.routers.inference import InferenceRouter
from lamina.routers.post_training import PostTrainingRouter
from lamina.routers.safety import SafetyRouter
from lamina.routers.scoring import ScoringRouter
from lamina.routers.scoring_datasets import DatasetAccess
from lamina.routers.synthetic_data_generation import SyntheticDataGenerationRouter
from lamina.routers.telemetry import TelemetryRouter
from lamina.routers.tool_runtime import ToolRuntimeRouter
from lamina.routers.vector_io import VectorIORouter
from lamina.routers.vector_stores import VectorStoresRouter
from lamina.specs import Api, ResourceType

if TYPE_CHECKING:
    from lamina.stack import Stack


@dataclass
class Built:
    """What building one API produced: its router, its resource's routing table, and the objects that
    implement the Protocols the router itself does not."""

    router: Any
    table: Any = None
    impls: dict[type, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class ApiEntry:
    """How one API is served."""

    api: Api
    protocols: tuple[type, ...]  # client-facing Protocols, served while a provider of the API is configured
    provider_protocol: type  # what a provider of this API implements (lamina.apis.*)
    resource_type: ResourceType | None  # the resource its routing table owns, if any
    build: Callable[[Stack], Built]  # makes the routing table and router (no I/O: providers start later)
    always_served: tuple[type, ...] = ()  # served even with no provider configured (GET /v1/models)


def _inference(stack: Stack) -> Built:
    models = ModelsRoutingTable(stack.registry, stack.impls[Api.inference], stack.pm)
    models.health = stack.health
    return Built(InferenceRouter(models), models, {Models: models})


def _files(stack: Stack) -> Built:
    # The first provider under providers.files serves every route (lamina.routers.files).
    return Built(FilesRouter(stack.impls[Api.files], list(stack.providers.get(Api.files, {}))))


def _vector_io(stack: Stack) -> Built:
    vector_dbs = VectorDBsRoutingTable(
        stack.registry, stack.impls[Api.vector_io], stack.pm, stack.tables[ResourceType.model]
    )
    router = VectorIORouter(vector_dbs, stack.routers[Api.inference])
    # OpenAI vector stores: above the Vector IO router, files read through the Files router.
    stores = VectorStoresRouter(
        vector_dbs,
        router,
        stack.routers[Api.files],
        ingestion_wait=stack.config.vector_stores.ingestion_wait_seconds,
    )
    router.vector_stores = stores  # for dependents that search vector stores (Responses file_search)
    impls = {VectorDBs: vector_dbs, VectorStores: stores, VectorStoreFileBatches: stores.file_batches}
    return Built(router, vector_dbs, impls)


def _tool_runtime(stack: Stack) -> Built:
    tool_groups = ToolGroupsRoutingTable(stack.registry, stack.impls[Api.tool_runtime], stack.pm)
    router = ToolRuntimeRouter(tool_groups)
    return Built(router, tool_groups, {ToolGroups: tool_groups, RAGToolRuntime: router.rag_tool})


def _safety(stack: Stack) -> Built:
    shields = ShieldsRoutingTable(stack.registry, stack.impls[Api.safety], stack.pm)
    router = SafetyRouter(shields, default_shield_id=stack.config.default_moderation_shield())
    return Built(router, shields, {Shields: shields})


def _datasetio(stack: Stack) -> Built:
    records = stack.providers.get(Api.datasetio, {})
    types = {provider_id: record.spec.provider_type for provider_id, record in records.items()}
    datasets = DatasetsRoutingTable(stack.registry, stack.impls[Api.datasetio], stack.pm, types)
    return Built(DatasetIORouter(datasets), datasets, {Datasets: datasets})


def _scoring(stack: Stack) -> Built:
    functions = ScoringFunctionsRoutingTable(stack.registry, stack.impls[Api.scoring], stack.pm)
    # score-batch reads and saves datasets through the DatasetIO router, when one is configured.
    datasets = DatasetAccess(stack) if Api.datasetio in stack.providers else None
    return Built(ScoringRouter(functions, datasets), functions, {ScoringFunctions: functions})


def _agents(stack: Stack) -> Built:
    # The first provider under providers.agents serves every route (lamina.routers.agents).
    return Built(AgentsRouter(stack.impls[Api.agents], list(stack.providers.get(Api.agents, {}))))


def _synthetic_data_generation(stack: Stack) -> Built:
    # The first provider under providers.synthetic_data_generation serves every route.
    api = Api.synthetic_data_generation
    return Built(SyntheticDataGenerationRouter(stack.impls[api], list(stack.providers.get(api, {}))))


def _batches(stack: Stack) -> Built:
    # The first provider under providers.batches serves every route (lamina.routers.batches).
    return Built(BatchesRouter(stack.impls[Api.batches], list(stack.providers.get(Api.batches, {}))))


def _telemetry(stack: Stack) -> Built:
    # The first provider under providers.telemetry serves every route (lamina.routers.telemetry).
    return Built(TelemetryRouter(stack.impls[Api.telemetry], list(stack.providers.get(Api.telemetry, {}))))


def _post_training(stack: Stack) -> Built:
    # The first provider under providers.post_training serves every route (lamina.routers.post_training).
    records = list(stack.providers.get(Api.post_training, {}))
    return Built(PostTrainingRouter(stack.impls[Api.post_training], records))


def _eval(stack: Stack) -> Built:
    # Registering a benchmark checks its dataset (through the served Datasets API, looked up at call
    # time) and its scoring functions (the scoring table, built before this entry).
    datasets = DatasetAccess(stack) if Api.datasetio in stack.providers else None
    benchmarks = BenchmarksRoutingTable(
        stack.registry,
        stack.impls[Api.eval],
        stack.pm,
        get_dataset=datasets.get if datasets is not None else None,
        scoring_functions=stack.tables.get(ResourceType.scoring_function),
    )
    return Built(EvalRouter(benchmarks), benchmarks, {Benchmarks: benchmarks})


API_TABLE: tuple[ApiEntry, ...] = (
    ApiEntry(
        Api.inference,
        (Inference,),
        InferenceProvider,
        ResourceType.model,
        _inference,
        always_served=(Models,),
    ),
    ApiEntry(Api.files, (Files,), FilesProvider, None, _files),
    ApiEntry(
        Api.vector_io,
        (VectorDBs, VectorIO, VectorStores, VectorStoreFileBatches),
        VectorIOProvider,
        ResourceType.vector_db,
        _vector_io,
    ),
    ApiEntry(
        Api.tool_runtime,
        (ToolGroups, ToolRuntime, RAGToolRuntime),
        ToolRuntimeProvider,
        ResourceType.tool_group,
        _tool_runtime,
    ),
    ApiEntry(Api.safety, (Shields, Safety), SafetyProvider, ResourceType.shield, _safety),
    # Datasets read local files and data: URIs, and the Files API's files (files://<file_id>).
    ApiEntry(Api.datasetio, (Datasets, DatasetIO), DatasetIOProvider, ResourceType.dataset, _datasetio),
    ApiEntry(
        Api.scoring,
        (ScoringFunctions, Scoring),
        ScoringProvider,
        ResourceType.scoring_function,
        _scoring,
    ),
    # Last: an agent runs on every API above (its provider gets their routers as deps).
    ApiEntry(Api.agents, (Agents, Responses, BatchAgents), AgentsProvider, None, _agents),
    # After agents: an eval runs model candidates through Inference, agent candidates through Agents,
    # reads rows through DatasetIO and scores through Scoring.
    ApiEntry(Api.eval, (Benchmarks, Eval), EvalProvider, ResourceType.benchmark, _eval),
    # After agents: a batch's lines call Inference (and Responses), and read and write Files.
    ApiEntry(Api.batches, (Batches,), BatchesProvider, None, _batches),
    # After datasetio: a training job reads its rows through DatasetIO and finds models in Inference's table.
    ApiEntry(Api.post_training, (PostTraining,), PostTrainingProvider, None, _post_training),
    # After scoring: candidates come from Inference, their scores from Scoring's llm-as-judge; kept rows
    # become a dataset through DatasetIO.
    ApiEntry(
        Api.synthetic_data_generation,
        (SyntheticDataGeneration,),
        SyntheticDataGenerationProvider,
        None,
        _synthetic_data_generation,
    ),
    # Telemetry records every API above; its own routes read the trace store (and write a dataset
    # through DatasetIO for save_spans_to_dataset).
    ApiEntry(Api.telemetry, (Telemetry,), TelemetryProvider, None, _telemetry),
)

# Protocols the server answers itself, with no provider behind them (no upstream errors).
SERVER_PROTOCOLS: tuple[type, ...] = (Inspect, Providers, Jobs)


def served_apis() -> list[Api]:
    """The APIs a run config may configure providers for, in table order."""
    return [entry.api for entry in API_TABLE]


def entry_for(api: Api) -> ApiEntry | None:
    return next((entry for entry in API_TABLE if entry.api == api), None)


def provider_protocols() -> list[tuple[Api, type]]:
    """(API, the Protocol its providers implement) for every served API, in table order."""
    return [(entry.api, entry.provider_protocol) for entry in API_TABLE]
