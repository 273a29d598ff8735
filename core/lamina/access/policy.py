"""Access rules (Llama Stack 0.2.12's ``server.auth.access_policy``) and the decision they make.

A rule permits or forbids ``actions`` (create, read, update, delete) on ``resource`` (``model::llama3``,
``vector_db::*``; every resource when absent) for ``principal`` (everyone when absent), optionally only
``when`` all its conditions hold or ``unless`` they all hold. Rules are tried in order; the first whose
scope and conditions match decides; when none does, the action is denied. Conditions:

- ``user is owner`` / ``user is not owner``
- ``user in owners <attr>`` / ``user not in owners <attr>``: the caller shares a value of the owner's
  attribute (an owner without that attribute matches, as in Llama Stack)
- ``user with <value> in <attr>`` / ``user with <value> not in <attr>``
- ``resource is unowned`` / ``resource is not unowned`` (Lamina's, as later Llama Stacks have): no
  owner was recorded (created from the run config, before access control, or without auth)

Without a policy, ``DEFAULT_POLICY`` decides (docs/security.md "Access control").
"""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, PrivateAttr, ValidationError, field_validator, model_validator

from lamina.auth.principal import ATTRIBUTE_NAMES, Principal
from lamina.errors import field_problems


class Action(StrEnum):
    create = "create"
    read = "read"
    update = "update"
    delete = "delete"


@dataclass(frozen=True)
class Owner:
    """Who created a resource, with their attributes at that time."""

    principal: str
    attributes: dict[str, list[str]]

    def to_json(self) -> dict[str, Any]:
        return {"principal": self.principal, "attributes": self.attributes}

    @classmethod
    def of(cls, user: Principal) -> Owner:
        """The owner a resource created by ``user`` records (its attributes are the principal's own
        lists: a principal is never changed once authenticated)."""
        return cls(user.id, user.attributes)


@dataclass(frozen=True)
class Resource:
    """What a decision is about: ``kind::id`` and its owner (None: unowned)."""

    kind: str
    id: str
    owner: Owner | None = None


# --- conditions -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Condition:
    text: str
    test: str  # is_owner | in_owners | with_value | unowned
    negate: bool = False
    name: str = ""
    value: str = ""

    def matches(self, resource: Resource, user: Principal) -> bool:
        return self._positive(resource, user) != self.negate

    def _positive(self, resource: Resource, user: Principal) -> bool:
        owner = resource.owner
        if self.test == "is_owner":
            return owner is not None and owner.principal == user.id
        if self.test == "unowned":
            return owner is None
        if self.test == "with_value":
            return self.value in user.attributes.get(self.name, ())
        # in_owners: an owner without the attribute (or no owner) matches, as Llama Stack's does
        required = owner.attributes.get(self.name) if owner is not None else None
        if not required:
            return True
        mine = user.attributes.get(self.name) or ()
        return any(value in mine for value in required)


CONDITION_FORMS = (
    "user is owner",
    "user is not owner",
    "user in owners <attribute>",
    "user not in owners <attribute>",
    "user with <value> in <attribute>",
    "user with <value> not in <attribute>",
    "resource is unowned",
    "resource is not unowned",
)


def parse_condition(text: str) -> Condition:
    """One condition from its text; a ValueError listing the accepted forms otherwise."""
    match text.split():
        case ["user", "is", "owner"]:
            return Condition(text, "is_owner")
        case ["user", "is", "not", "owner"]:
            return Condition(text, "is_owner", negate=True)
        case ["user", "in", "owners", name]:
            return Condition(text, "in_owners", name=name)
        case ["user", "not", "in", "owners", name]:
            return Condition(text, "in_owners", negate=True, name=name)
        case ["user", "with", value, "in", name]:
            return Condition(text, "with_value", name=name, value=value)
        case ["user", "with", value, "not", "in", name]:
            return Condition(text, "with_value", negate=True, name=name, value=value)
        case ["resource", "is", "unowned"]:
            return Condition(text, "unowned")
        case ["resource", "is", "not", "unowned"]:
            return Condition(text, "unowned", negate=True)
    raise ValueError(f"unknown condition {text!r}; a condition reads one of: {', '.join(CONDITION_FORMS)}")


# --- rules ----------------------------------------------------------------------------------------


class Scope(BaseModel):
    model_config = ConfigDict(extra="forbid")

    principal: str | None = None
    actions: list[Action]
    resource: str | None = None

    @field_validator("actions", mode="before")
    @classmethod
    def _one_or_many(cls, value: Any) -> Any:
        return [value] if isinstance(value, str) else value

    @field_validator("resource")
    @classmethod
    def _qualified(cls, value: str | None) -> str | None:
        if value is not None and "::" not in value:
            raise ValueError(
                f"resource {value!r} must read <type>::<id> (model::llama3) or <type>::* (vector_db::*)"
            )
        return value

    def covers(self, action: Action, qualified: str, principal: str) -> bool:
        if action not in self.actions:
            return False
        if self.principal is not None and self.principal != principal:
            return False
        if self.resource is None or self.resource == qualified:
            return True
        # Llama Stack's wildcard is "<type>::*"; a glob elsewhere in the id (model::llama*) is Lamina's
        return "*" in self.resource and fnmatch.fnmatchcase(qualified, self.resource)


class AccessRule(BaseModel):
    """One rule of ``server.auth.access_policy``."""

    model_config = ConfigDict(extra="forbid")

    permit: Scope | None = None
    forbid: Scope | None = None
    when: list[str] | None = None
    unless: list[str] | None = None
    description: str | None = None
    _conditions: tuple[Condition, ...] = PrivateAttr(default=())

    @field_validator("when", "unless", mode="before")
    @classmethod
    def _one_or_many(cls, value: Any) -> Any:
        return [value] if isinstance(value, str) else value

    @model_validator(mode="after")
    def _shape(self) -> AccessRule:
        if (self.permit is None) == (self.forbid is None):
            raise ValueError("a rule has exactly one of permit or forbid")
        if self.when and self.unless:
            raise ValueError("a rule has when or unless, not both")
        self._conditions = tuple(parse_condition(c) for c in (self.when or self.unless or ()))
        return self

    def applies(self, action: Action, resource: Resource, user: Principal) -> bool:
        scope = self.permit or self.forbid
        assert scope is not None
        if not scope.covers(action, f"{resource.kind}::{resource.id}", user.id):
            return False
        if not self._conditions:
            return True
        holds = all(c.matches(resource, user) for c in self._conditions)
        return holds if self.when else not holds


class PolicyError(ValueError):
    """A bad ``access_policy``: the message names the rule and the fix."""


def parse_policy(rules: list[dict[str, Any]], where: str = "server.auth.access_policy") -> list[AccessRule]:
    parsed = []
    for index, raw in enumerate(rules):
        try:
            parsed.append(AccessRule.model_validate(raw))
        except ValidationError as exc:
            problems = "; ".join(
                f"{p.path}: {p.message.removeprefix('Value error, ')}"
                for p in field_problems(exc, top="rule")
            )
            raise PolicyError(
                f"{where}[{index}]: {problems}. A rule reads "
                "{permit|forbid: {actions: [create, read, update, delete], resource: <type>::<id>, "
                'principal: <id>}, when|unless: <condition>} (docs/security.md "Access control")'
            ) from None
    return parsed


def default_allows(action: Action, resource: Resource, user: Principal) -> bool:
    """Lamina's default policy: Llama Stack's (every action when the caller shares each attribute the
    owner has) tightened twice: a resource whose owner has none of the attributes is its owner's alone
    (in Llama Stack everyone may use it: a principal without roles would share everything it makes), and
    an unowned resource (the run config's models, shields, ...) is everyone's to read and use but
    nobody's to update or delete (in Llama Stack any caller may unregister the server's models)."""
    owner = resource.owner
    if owner is None:
        return action not in (Action.update, Action.delete)
    if owner.principal == user.id:
        return True
    if not any(owner.attributes.get(name) for name in ATTRIBUTE_NAMES):
        return False
    return all(Condition("", "in_owners", name=name).matches(resource, user) for name in ATTRIBUTE_NAMES)


def is_allowed(
    policy: list[AccessRule] | None, action: Action, resource: Resource, user: Principal | None
) -> bool:
    """Whether ``user`` may do ``action`` on ``resource``: always without a user (auth is off); by the
    first rule that applies (denied when none does); by ``default_allows`` without a policy."""
    if user is None:
        return True
    if not policy:
        return default_allows(action, resource, user)
    for rule in policy:
        if rule.applies(action, resource, user):
            return rule.permit is not None
    return False
