"""The ids a request names deep inside it (lamina.access.guard._ids_at), on the real request models."""

from __future__ import annotations

from lamina.access.guard import _ids_at
from lamina.apis.agents import CreateAgentRequest
from lamina.apis.tools import InvokeToolRequest, ListRuntimeToolsRequest


def agent(**config: object) -> CreateAgentRequest:
    return CreateAgentRequest.model_validate({"agent_config": {"model": "m", "instructions": "x", **config}})


def test_an_agents_tool_groups_and_the_vector_dbs_bound_to_them() -> None:
    request = agent(
        toolgroups=[
            "builtin::websearch",
            "builtin::rag/knowledge_search",
            {"name": "team/rag", "args": {"vector_db_ids": ["vs_a", "vs_b"]}},
            {"name": "mcp::files", "args": {}},
        ],
        input_shields=["guard"],
    )
    groups = _ids_at(request, "agent_config.toolgroups[]", "tool_group")
    named = _ids_at(request, "agent_config.toolgroups[].name", "tool_group")
    # a name with a "/" is checked whole and as its group: "team/rag" may be a group's own id
    assert groups == ["builtin::websearch", "builtin::rag/knowledge_search", "builtin::rag"]
    assert named == ["team/rag", "mcp::files", "team"]
    assert _ids_at(request, "agent_config.toolgroups[].args.vector_db_ids", "vector_db") == ["vs_a", "vs_b"]
    assert _ids_at(request, "agent_config.input_shields", "shield") == ["guard"]
    assert _ids_at(request, "agent_config.output_shields", "shield") == []
    assert _ids_at(request, "agent_config.model", "model") == ["m"]
    assert _ids_at(agent(), "agent_config.toolgroups[].args.vector_db_ids", "vector_db") == []


def test_a_top_level_field_is_taken_as_it_is_and_kwargs_are_read() -> None:
    listing = ListRuntimeToolsRequest.model_validate({"tool_group_id": "team/rag"})
    assert _ids_at(listing, "tool_group_id", "tool_group") == ["team/rag"]  # an id: never split
    call = InvokeToolRequest.model_validate(
        {"tool_name": "knowledge_search", "kwargs": {"query": "q", "vector_db_ids": ["vs_a"]}}
    )
    assert _ids_at(call, "kwargs.vector_db_ids", "vector_db") == ["vs_a"]
    no_ids = InvokeToolRequest.model_validate({"tool_name": "t", "kwargs": {"vector_db_ids": "vs_a"}})
    assert _ids_at(no_ids, "kwargs.vector_db_ids", "vector_db") == ["vs_a"]
