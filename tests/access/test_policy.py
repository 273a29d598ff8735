"""Access rules as Llama Stack 0.2.12 reads them: every condition form, rule order, the default policy,
unowned resources, and bad rules refused with the rule's index and the fix."""

from __future__ import annotations

import pytest

from lamina.access.policy import (
    Action,
    Owner,
    PolicyError,
    Resource,
    is_allowed,
    parse_condition,
    parse_policy,
)
from lamina.auth.principal import Principal

ALICE = Principal("alice", {"roles": ["user"], "teams": ["red"]})
BOB = Principal("bob", {"roles": ["user"], "teams": ["blue"]})
ADMIN = Principal("root", {"roles": ["admin"]})
ALICE_FILE = Resource("file", "file-1", Owner("alice", {"roles": ["user"], "teams": ["red"]}))
UNOWNED_MODEL = Resource("model", "llama3")


@pytest.mark.parametrize(
    ("condition", "user", "resource", "holds"),
    [
        ("user is owner", ALICE, ALICE_FILE, True),
        ("user is owner", BOB, ALICE_FILE, False),
        ("user is owner", ALICE, UNOWNED_MODEL, False),
        ("user is not owner", BOB, ALICE_FILE, True),
        ("user is not owner", ALICE, ALICE_FILE, False),
        ("user is not owner", ALICE, UNOWNED_MODEL, True),
        ("user in owners teams", ALICE, ALICE_FILE, True),
        ("user in owners teams", BOB, ALICE_FILE, False),
        ("user in owners roles", BOB, ALICE_FILE, True),  # both have role "user"
        ("user in owners projects", BOB, ALICE_FILE, True),  # the owner has no projects: matches
        ("user in owners teams", BOB, UNOWNED_MODEL, True),
        ("user not in owners teams", BOB, ALICE_FILE, True),
        ("user not in owners teams", ALICE, ALICE_FILE, False),
        ("user with admin in roles", ADMIN, ALICE_FILE, True),
        ("user with admin in roles", ALICE, ALICE_FILE, False),
        ("user with admin not in roles", ALICE, ALICE_FILE, True),
        ("user with admin not in roles", ADMIN, ALICE_FILE, False),
        ("resource is unowned", ALICE, UNOWNED_MODEL, True),
        ("resource is unowned", ALICE, ALICE_FILE, False),
        ("resource is not unowned", ALICE, ALICE_FILE, True),
    ],
)
def test_each_condition_form(condition: str, user: Principal, resource: Resource, holds: bool) -> None:
    assert parse_condition(condition).matches(resource, user) is holds


def test_the_first_matching_rule_decides_and_no_match_denies() -> None:
    policy = parse_policy(
        [
            {"forbid": {"actions": ["delete"], "resource": "file::*"}, "unless": "user with admin in roles"},
            {"permit": {"actions": ["read", "update", "delete"]}, "when": ["user is owner"]},
            {"permit": {"actions": ["read"], "resource": "model::*"}},
            {"permit": {"principal": "bob", "actions": "create"}},
        ]
    )
    assert is_allowed(policy, Action.read, ALICE_FILE, ALICE)
    assert not is_allowed(policy, Action.delete, ALICE_FILE, ALICE)  # the forbid comes first
    assert not is_allowed(policy, Action.read, ALICE_FILE, BOB)  # no rule matches: denied
    assert is_allowed(policy, Action.read, UNOWNED_MODEL, BOB)
    assert not is_allowed(policy, Action.update, UNOWNED_MODEL, BOB)
    assert is_allowed(policy, Action.create, Resource("file", "*"), BOB)
    assert not is_allowed(policy, Action.create, Resource("file", "*"), ALICE)
    # an admin's delete passes the forbid (its `unless` holds) but no later rule permits it
    assert not is_allowed(policy, Action.delete, ALICE_FILE, ADMIN)


def test_a_forbid_whose_condition_fails_falls_through_to_later_rules() -> None:
    policy = parse_policy(
        [
            {"forbid": {"actions": ["read"]}, "when": "user not in owners teams"},
            {"permit": {"actions": ["read"]}},
        ]
    )
    assert is_allowed(policy, Action.read, ALICE_FILE, ALICE)
    assert not is_allowed(policy, Action.read, ALICE_FILE, BOB)


def test_resource_patterns() -> None:
    policy = parse_policy([{"permit": {"actions": ["read"], "resource": "model::llama3"}}])
    assert is_allowed(policy, Action.read, UNOWNED_MODEL, BOB)
    assert not is_allowed(policy, Action.read, Resource("model", "llama3-70b"), BOB)
    wildcard = parse_policy([{"permit": {"actions": ["read"], "resource": "vector_db::*"}}])
    assert is_allowed(wildcard, Action.read, Resource("vector_db", "vs_1"), BOB)
    assert not is_allowed(wildcard, Action.read, Resource("model", "vs_1"), BOB)


def test_without_a_principal_everything_is_allowed() -> None:
    """Auth off: today's behaviour, whatever the policy says."""
    deny_all = parse_policy([{"forbid": {"actions": ["create", "read", "update", "delete"]}}])
    assert is_allowed(deny_all, Action.delete, ALICE_FILE, None)
    assert is_allowed(None, Action.read, ALICE_FILE, None)


def test_default_policy() -> None:
    """Llama Stack's default (the caller shares each attribute the owner has), an owner without
    attributes keeps its resources to itself, and unowned resources are read-only."""
    red_colleague = Principal("carol", {"roles": ["user"], "teams": ["red", "green"]})
    assert is_allowed(None, Action.delete, ALICE_FILE, ALICE)
    assert is_allowed(None, Action.read, ALICE_FILE, red_colleague)
    assert not is_allowed(None, Action.read, ALICE_FILE, BOB)
    assert is_allowed(None, Action.read, UNOWNED_MODEL, BOB)  # the run config's models: everyone's to use
    assert not is_allowed(None, Action.update, UNOWNED_MODEL, BOB)  # ... and nobody's to change
    assert not is_allowed(None, Action.delete, UNOWNED_MODEL, ALICE)
    assert is_allowed(None, Action.create, Resource("file", "*", None), BOB)  # a create names no owner yet
    bare = Resource("file", "f", Owner("dave", {}))
    assert is_allowed(None, Action.read, bare, Principal("dave"))
    assert not is_allowed(None, Action.read, bare, Principal("erin"))
    assert not is_allowed(None, Action.read, bare, BOB)


@pytest.mark.parametrize(
    ("rules", "says"),
    [
        (
            [{"permit": {"actions": ["read"]}, "when": "user is boss"}],
            ["[0]", "unknown condition 'user is boss'", "user is owner"],
        ),
        (
            [{"permit": {"actions": ["read"]}}, {"allow": {"actions": ["read"]}}],
            ["[1]", "allow", "permit|forbid"],
        ),
        (
            [{"permit": {"actions": ["read"]}, "forbid": {"actions": ["read"]}}],
            ["[0]", "exactly one of permit or forbid"],
        ),
        (
            [{"permit": {"actions": ["read"]}, "when": "user is owner", "unless": "user is owner"}],
            ["when or unless"],
        ),
        ([{"permit": {"actions": ["write"]}}], ["[0]", "permit.actions", "create"]),
        ([{"permit": {"actions": ["read"], "resource": "model"}}], ["<type>::<id>", "model::llama3"]),
    ],
)
def test_bad_rules_are_refused_naming_the_rule_and_the_fix(rules: list, says: list[str]) -> None:
    with pytest.raises(PolicyError) as caught:
        parse_policy(rules)
    message = str(caught.value)
    assert message.startswith("server.auth.access_policy[")
    for part in says:
        assert part in message, (part, message)
