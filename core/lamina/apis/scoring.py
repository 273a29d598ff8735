"""Scoring and ScoringFunctions: the ScoringFn resource, score, score-batch, and what providers implement.

A scoring function is a registered resource served by one ``scoring`` provider (``inline::basic``'s
exact-match and regex functions, an LLM judge, braintrust's autoevals scorers). ``POST
/v1/scoring/score`` scores rows sent inline; ``POST /v1/scoring/score-batch`` scores a registered
dataset, read page by page through DatasetIO, and can save the scored rows as a new dataset. The core
routes each function to its provider, which scores rows; the core aggregates (``lamina.scoring_aggregation``),
so a provider writes ``score_rows`` once and serves both routes and every aggregation.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal, Protocol

from pydantic import BaseModel, ConfigDict, Field

from lamina.access.declarations import creates, lists, reads, uses
from lamina.apis.common import Empty, Resource
from lamina.apis.webmethod import webmethod

# -- parameters ------------------------------------------------------------------------------------

AggregationFunctionType = Literal["average", "weighted_average", "median", "categorical_count", "accuracy"]
AGGREGATION_FUNCTIONS: tuple[str, ...] = (
    "average",
    "weighted_average",
    "median",
    "categorical_count",
    "accuracy",
)

_AGGREGATIONS = Field(
    default_factory=list, description="Aggregation functions to apply to the scores of every row."
)


class LLMAsJudgeScoringFnParams(BaseModel):
    type: Literal["llm_as_judge"] = "llm_as_judge"
    judge_model: str = Field(description="The registered model that judges (a model id of the Models API).")
    prompt_template: str | None = Field(
        default=None,
        description="The judge prompt; {input_query}, {expected_answer} and {generated_answer} are filled "
        "from each row.",
    )
    judge_score_regexes: list[str] = Field(
        default_factory=list,
        description="Regexes whose first group is the score in the judge's answer; the first that "
        "matches wins.",
    )
    aggregation_functions: list[AggregationFunctionType] = _AGGREGATIONS


class RegexParserScoringFnParams(BaseModel):
    type: Literal["regex_parser"] = "regex_parser"
    parsing_regexes: list[str] = Field(
        default_factory=list, description="Regexes whose first group is the answer in the generated text."
    )
    aggregation_functions: list[AggregationFunctionType] = _AGGREGATIONS


class BasicScoringFnParams(BaseModel):
    type: Literal["basic"] = "basic"
    aggregation_functions: list[AggregationFunctionType] = _AGGREGATIONS


ScoringFnParams = Annotated[
    LLMAsJudgeScoringFnParams | RegexParserScoringFnParams | BasicScoringFnParams,
    Field(discriminator="type"),
]

# Llama Stack's ParamType names (apis/common/type_system.py): what a scoring function returns.
ParamTypeName = Literal[
    "string",
    "number",
    "boolean",
    "array",
    "object",
    "json",
    "union",
    "chat_completion_input",
    "completion_input",
    "agent_turn_input",
]


class ParamType(BaseModel):
    """A value type, as Llama Stack spells it: ``{"type": "number"}``."""

    model_config = ConfigDict(extra="allow")

    type: ParamTypeName


# -- the ScoringFn resource ------------------------------------------------------------------------


class ScoringFn(Resource):
    type: Literal["scoring_function"] = "scoring_function"
    description: str | None = None
    metadata: dict[str, Any] = Field(default_factory=dict)
    return_type: ParamType
    params: ScoringFnParams | None = Field(
        default=None, description="The function's parameters; a score call may send its own instead."
    )

    @property
    def scoring_fn_id(self) -> str:
        return self.identifier

    @property
    def provider_scoring_fn_id(self) -> str:
        return self.provider_resource_id or self.identifier


class ListScoringFunctionsResponse(BaseModel):
    data: list[ScoringFn]


class GetScoringFunctionRequest(BaseModel):
    scoring_fn_id: str = Field(min_length=1)


class RegisterScoringFunctionRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    scoring_fn_id: str = Field(min_length=1, description="The identifier clients will use.")
    description: str | None = None
    return_type: ParamType = Field(description='What the function returns, e.g. {"type": "number"}.')
    provider_scoring_fn_id: str | None = Field(
        default=None,
        description="What the provider knows it as (a built-in function to derive from); omitted: the "
        "scoring_fn_id.",
    )
    provider_id: str | None = Field(
        default=None, description="Required when several providers are configured."
    )
    params: ScoringFnParams | None = None
    metadata: dict[str, Any] = Field(default_factory=dict)


# -- scoring ---------------------------------------------------------------------------------------

# Each row's result: ``score`` and whatever the function adds (``judge_feedback``, ``weight``, ...).
ScoringResultRow = dict[str, Any]


class ScoringResult(BaseModel):
    score_rows: list[ScoringResultRow] = Field(description="One result per input row, in order.")
    aggregated_results: dict[str, Any] = Field(
        description="Aggregation function -> its result, e.g. {'accuracy': {'accuracy': 0.5, ...}}."
    )


ScoringFunctionsParam = Field(
    min_length=1,
    description="Scoring function id -> params for this call (null: the function's registered params).",
)


class ScoreRequest(BaseModel):
    input_rows: list[dict[str, Any]] = Field(description="The rows to score (columns as the functions need).")
    scoring_functions: dict[str, ScoringFnParams | None] = ScoringFunctionsParam


class ScoreResponse(BaseModel):
    results: dict[str, ScoringResult] = Field(description="Scoring function id -> its result.")


class ScoreBatchRequest(BaseModel):
    dataset_id: str = Field(min_length=1, description="The registered dataset whose rows are scored.")
    scoring_functions: dict[str, ScoringFnParams | None] = ScoringFunctionsParam
    save_results_dataset: bool = Field(
        default=False,
        description="Also register a dataset holding every row with its scores; its id is the answer's "
        "dataset_id.",
    )


class ScoreBatchResponse(BaseModel):
    dataset_id: str | None = Field(default=None, description="The saved results dataset, when asked for.")
    results: dict[str, ScoringResult]


# -- the API ---------------------------------------------------------------------------------------


class ScoringFunctions(Protocol):
    @webmethod(
        "GET",
        "/v1/scoring-functions",
        request=Empty,
        response=ListScoringFunctionsResponse,
        access=lists("scoring_function", "identifier"),
    )
    async def list_scoring_functions(self, request: Empty) -> ListScoringFunctionsResponse:
        """List registered scoring functions."""
        ...

    @webmethod(
        "GET",
        "/v1/scoring-functions/{scoring_fn_id:.+}",
        request=GetScoringFunctionRequest,
        response=ScoringFn,
        access=reads("scoring_function", "scoring_fn_id"),
    )
    async def get_scoring_function(self, request: GetScoringFunctionRequest) -> ScoringFn:
        """Get a scoring function by its identifier."""
        ...

    @webmethod(
        "POST",
        "/v1/scoring-functions",
        request=RegisterScoringFunctionRequest,
        response=None,
        access=creates("scoring_function", created_from="scoring_fn_id", requested="scoring_fn_id"),
    )
    async def register_scoring_function(self, request: RegisterScoringFunctionRequest) -> None:
        """Register a scoring function with a scoring provider (the provider checks it can serve it)."""
        ...


class Scoring(Protocol):
    @webmethod(
        "POST",
        "/v1/scoring/score",
        request=ScoreRequest,
        response=ScoreResponse,
        cancel_on_disconnect=True,
        access=uses(("scoring_function", "scoring_functions")),
    )
    async def score(self, request: ScoreRequest) -> ScoreResponse:
        """Score rows with scoring functions; each function's rows and aggregated results."""
        ...

    @webmethod(
        "POST",
        "/v1/scoring/score-batch",
        request=ScoreBatchRequest,
        response=ScoreBatchResponse,
        access=reads("dataset", "dataset_id", uses=(("scoring_function", "scoring_functions"),)),
    )
    async def score_batch(self, request: ScoreBatchRequest) -> ScoreBatchResponse:
        """Score every row of a dataset (read in pages), optionally saving the scored rows as a dataset."""
        ...


# -- what a provider implements ----------------------------------------------------------------------


class ScoringRowError(Exception):
    """A row a scoring function cannot score (a missing or malformed column): ``row`` is its index in
    the ``rows`` the provider was given; the core turns it into a 400 naming the row where the client
    sees it (``input_rows[12]``, or the dataset's row 1012)."""

    def __init__(self, row: int, message: str) -> None:
        super().__init__(message)
        self.row = row
        self.message = message


class ScoringProvider(Protocol):
    """A Scoring provider: scores rows with the scoring functions registered with it.

    Contract:

    * ``register_scoring_function`` checks the provider can serve ``fn`` (its
      ``provider_scoring_fn_id`` names a function it has, its ``params`` are the kind it takes) and
      raises ``BadRequestError`` naming the field and the fix when not. It keeps no state the call
      does not get again: every ``score_rows`` call carries the registered ``ScoringFn``.
    * ``score_rows`` scores ``rows`` (plain dicts, one page of a dataset or a request's rows) with
      ``fn`` and ``params`` (the call's params, else the function's registered ones; None when
      neither has any) and returns one result dict per row, in order, each with a ``score``
      (a number, or what the function returns) and optionally ``weight`` (``weighted_average``) and
      details (``judge_feedback``). The core aggregates; a provider never sees a whole dataset.
      Result dicts may be shared between rows (inline::basic answers the same ``{"score": 1.0}`` for
      every match, so score-batch keeps a pointer a row): whoever reads them treats them as read-only.
    * A row missing a column the function needs raises ``ScoringRowError`` with the row's index in
      ``rows`` and a message naming the column (the core adds where the page starts); bad ``params``
      raise ``BadRequestError`` naming the field. An upstream that fails (a judge
      model) raises ``UpstreamError`` naming the provider: a 502, never a made-up score.
    * CPU-heavy functions run off the event loop or yield to it between rows; cheap ones (equality)
      run inline on plain dicts: no per-row pydantic models.
    """

    async def register_scoring_function(self, fn: ScoringFn) -> None:
        """Check the provider can serve ``fn``; ``BadRequestError`` naming the field otherwise."""
        ...

    async def score_rows(
        self, fn: ScoringFn, rows: list[dict[str, Any]], params: BaseModel | None
    ) -> list[ScoringResultRow]:
        """One result dict per row (``score`` and details), in order."""
        ...
