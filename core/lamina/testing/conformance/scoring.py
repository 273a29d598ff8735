"""The Scoring conformance kit.

Subclass ``ScoringConformance`` in a test module (its name must start with ``Test``), name one of your
provider's built-in functions and rows it scores, and provide ``run_config`` (a run config whose
``scoring`` providers include yours, with whatever it depends on) or a class-scoped
``conformance_lamina`` fixture (``lamina.testing.conformance.base``). Every test must pass::

    from lamina.testing.conformance import ScoringConformance

    class TestAcmeScoring(ScoringConformance):
        provider_id = "acme"
        function = "acme::exact"                     # a built-in function of the provider
        rows = [{"generated_answer": "a", "expected_answer": "a"}]
        needed_column = "expected_answer"            # a column its rows must have
        run_config = {"version": 2, "providers": {"scoring": [
            {"provider_id": "acme", "provider_type": "inline::acme-scoring", "config": {}}]}}

The kit checks the contract of ``lamina.apis.scoring.ScoringProvider`` through llama-stack-client: the
built-in function is listed and got, a function derived from it registers (idempotently) and scores,
every row gets one result with a ``score``, the call's aggregations are answered, a row missing a
column is a 400 naming the row, params of another kind are a 400, an unknown function is a 404, and
registered functions survive a restart.
"""

from __future__ import annotations

import uuid
from typing import Any, ClassVar

import pytest
from llama_stack_client import BadRequestError, LlamaStackClient, NotFoundError

from lamina.testing.conformance.base import ConformanceKit
from lamina.testing.processes import ServerProcess


@pytest.mark.e2e
class ScoringConformance(ConformanceKit):
    provider_id: ClassVar[str] = ""
    function: ClassVar[str] = ""  # a built-in function of the provider
    rows: ClassVar[list[dict[str, Any]]] = []  # rows the function scores
    needed_column: ClassVar[str] = ""  # a column every row must have
    params: ClassVar[dict[str, Any] | None] = None  # the params a call sends (None: the function's own)
    wrong_params: ClassVar[dict[str, Any]] = {"type": "llm_as_judge", "judge_model": "conformance/none"}

    def call_params(self, aggregations: list[str]) -> dict[str, Any]:
        """The call's params with ``aggregations`` as its aggregation functions."""
        return {**(self.params or {"type": "basic"}), "aggregation_functions": aggregations}

    def register(self, ls: LlamaStackClient, name: str) -> str:
        fn = ls.scoring_functions.retrieve(self.function)
        fn_id = f"conformance/{name}-{uuid.uuid4().hex[:8]}"
        ls.scoring_functions.register(
            scoring_fn_id=fn_id,
            provider_id=self.provider_id,
            provider_scoring_fn_id=fn.provider_resource_id,
            description="registered by the scoring conformance kit",
            return_type={"type": "number"},
            params=self.params,
        )
        return fn_id

    def score(self, ls: LlamaStackClient, fn_id: str, rows: list[dict[str, Any]], params: Any = None) -> Any:
        return ls.scoring.score(input_rows=rows, scoring_functions={fn_id: params}).results[fn_id]

    # -- the ScoringFunctions API ----------------------------------------------------------------

    def test_the_builtin_function_is_listed_and_got(self, ls: LlamaStackClient) -> None:
        listed = {f.identifier: f for f in ls.scoring_functions.list()}
        assert self.function in listed, sorted(listed)
        assert listed[self.function].provider_id == self.provider_id
        got = ls.scoring_functions.retrieve(self.function)
        assert got.identifier == self.function and got.return_type.type

    def test_a_derived_function_registers_idempotently_and_scores(self, ls: LlamaStackClient) -> None:
        fn_id = self.register(ls, "derived")
        fn = ls.scoring_functions.retrieve(fn_id)
        ls.scoring_functions.register(  # the same definition again
            scoring_fn_id=fn_id,
            provider_id=self.provider_id,
            provider_scoring_fn_id=fn.provider_resource_id,
            description="registered by the scoring conformance kit",
            return_type={"type": "number"},
            params=self.params,
        )
        assert len(self.score(ls, fn_id, self.rows).score_rows) == len(self.rows)

    # -- scoring ---------------------------------------------------------------------------------

    def test_every_row_gets_a_result_with_a_score(self, ls: LlamaStackClient) -> None:
        result = self.score(ls, self.function, self.rows, self.params)
        assert len(result.score_rows) == len(self.rows)
        assert all("score" in row for row in result.score_rows), result.score_rows

    def test_the_calls_aggregations_are_answered(self, ls: LlamaStackClient) -> None:
        result = self.score(ls, self.function, self.rows, self.call_params(["categorical_count"]))
        counts = result.aggregated_results["categorical_count"]["categorical_count"]
        assert sum(counts.values()) == len(self.rows)

    def test_a_row_missing_a_column_is_a_400_naming_it(self, ls: LlamaStackClient) -> None:
        broken = {k: v for k, v in self.rows[0].items() if k != self.needed_column}
        with pytest.raises(BadRequestError) as err:
            self.score(ls, self.function, [self.rows[0], broken], self.params)
        assert "input_rows[1]" in str(err.value) and self.needed_column in str(err.value)

    def test_params_of_another_kind_are_a_400(self, ls: LlamaStackClient) -> None:
        with pytest.raises(BadRequestError):
            self.score(ls, self.function, self.rows, self.wrong_params)

    def test_an_unknown_function_is_a_404_naming_the_registered_ones(self, ls: LlamaStackClient) -> None:
        with pytest.raises(NotFoundError) as err:
            self.score(ls, "conformance/nope", self.rows)
        assert "conformance/nope" in str(err.value) and self.function in str(err.value)

    # -- persistence -----------------------------------------------------------------------------

    def test_restart_keeps_registered_functions(
        self, ls: LlamaStackClient, conformance_lamina: ServerProcess
    ) -> None:
        fn_id = self.register(ls, "kept")
        self.restart_lamina(conformance_lamina)
        assert fn_id in [f.identifier for f in ls.scoring_functions.list()]
        assert len(self.score(ls, fn_id, self.rows).score_rows) == len(self.rows)
