"""The Datasets and DatasetIO models against llama-stack-client 0.2.12's own types and routes.

What the server sends must validate in the client's generated models with the fields it reads
intact; what the client (and Llama Stack's own integration tests) sends must validate here.
"""

from __future__ import annotations

import re
from pathlib import Path

import llama_stack_client
import pytest
from llama_stack_client.types import DatasetIterrowsResponse as ClientRows
from llama_stack_client.types import DatasetRegisterResponse as ClientRegistered
from llama_stack_client.types import DatasetRetrieveResponse as ClientDataset
from llama_stack_client.types.dataset_list_response import DatasetListResponseItem as ClientListed
from pydantic import ValidationError

from lamina.apis.datasets import (
    DATASET_PURPOSES,
    Dataset,
    DatasetIO,
    Datasets,
    IterRowsRequest,
    IterRowsResponse,
    RegisterDatasetRequest,
)
from lamina.apis.webmethod import routes_of

ROWS = [{"messages": [{"role": "user", "content": "Hello, world!"}], "answer": "Hello, world!"}]


def _datasets() -> list[Dataset]:
    return [
        Dataset(
            identifier="qa",
            provider_resource_id="qa",
            provider_id="localfs",
            purpose="eval/question-answer",
            source={"type": "uri", "uri": "data:text/csv;base64,YQox"},
            metadata={"description": "tiny", "n": 1},
        ),
        Dataset(
            identifier="chat",
            provider_id="localfs",
            purpose="eval/messages-answer",
            source={"type": "rows", "rows": ROWS},
        ),
    ]


@pytest.mark.parametrize("client_type", [ClientDataset, ClientRegistered, ClientListed])
def test_a_dataset_reads_in_the_client(client_type) -> None:
    for dataset in _datasets():
        parsed = client_type.model_validate(dataset.model_dump(mode="json"))
        assert parsed.identifier == dataset.identifier
        assert parsed.provider_id == "localfs"
        assert parsed.purpose == dataset.purpose
        assert parsed.source.type == dataset.source.type
        assert parsed.metadata == dataset.metadata
        assert parsed.type == "dataset"


def test_a_page_of_rows_reads_in_the_client() -> None:
    page = IterRowsResponse(data=[{"a": 1, "b": None, "c": [1, 2], "d": {"x": "y"}}], has_more=True)
    parsed = ClientRows.model_validate(page.model_dump(mode="json"))
    assert parsed.data == page.data
    assert parsed.has_more is True
    assert parsed.url is None


def test_the_purposes_are_the_clients() -> None:
    from typing import get_args

    client_purposes = get_args(ClientDataset.model_fields["purpose"].annotation)
    assert set(client_purposes) == set(DATASET_PURPOSES)


@pytest.mark.parametrize(
    "body",
    [
        # The three sources of Llama Stack 0.2.12's tests/integration/datasets/test_datasets.py.
        {
            "purpose": "eval/messages-answer",
            "source": {"type": "uri", "uri": "huggingface://datasets/llamastack/simpleqa?split=train"},
        },
        {"purpose": "eval/messages-answer", "source": {"type": "rows", "rows": ROWS}},
        {
            "purpose": "eval/messages-answer",
            "source": {"type": "uri", "uri": "data:text/csv;base64,YSxiCjEsMgo="},
        },
        {
            "purpose": "eval/question-answer",
            "source": {"type": "uri", "uri": "x.csv"},
            "dataset_id": "d",
            "metadata": {},
        },
    ],
)
def test_what_the_client_sends_validates(body) -> None:
    request = RegisterDatasetRequest.model_validate(body)
    assert request.source.type == body["source"]["type"]


@pytest.mark.parametrize(
    "body, field",
    [
        ({"purpose": "eval/everything", "source": {"type": "rows", "rows": []}}, "purpose"),
        ({"purpose": "eval/question-answer", "source": {"type": "ftp", "uri": "x"}}, "source"),
        ({"purpose": "eval/question-answer", "source": {"type": "uri"}}, "source"),
        ({"purpose": "eval/question-answer"}, "source"),
    ],
)
def test_a_bad_registration_names_its_field(body, field) -> None:
    with pytest.raises(ValidationError) as info:
        RegisterDatasetRequest.model_validate(body)
    assert {err["loc"][0] for err in info.value.errors()} == {field}


def test_paging_parameters_are_checked() -> None:
    assert IterRowsRequest.model_validate({"dataset_id": "d", "limit": "-1"}).limit == -1
    assert IterRowsRequest.model_validate({"dataset_id": "d", "start_index": "5"}).start_index == 5
    for bad in ({"start_index": -1}, {"limit": -2}):
        with pytest.raises(ValidationError):
            IterRowsRequest.model_validate({"dataset_id": "d", **bad})


def test_routes_are_the_clients() -> None:
    """Every path the client's datasets resource calls is declared here with the same method."""
    source = Path(llama_stack_client.__file__).parent.joinpath("resources", "datasets.py").read_text()
    client_paths = set(re.findall(r'f?"(/v1/(?:datasets|datasetio)[^"]*)"', source))
    assert client_paths  # the client was read
    ours = {d.openapi_path() for p in (Datasets, DatasetIO) for d in routes_of(p)}
    assert client_paths <= ours, client_paths - ours
    assert "/v1/datasetio/append-rows/{dataset_id}" in ours
