"""Access control on every route, from the route's declaration (``lamina.access.declarations``).

``AccessGuard.wrap`` puts the check around a route's router method: the same place for every route, so
no router or provider needs to know about owners. Without a principal (auth off, or an open path) the
method is called as it is.

A denied read, update or delete answers exactly as the same request naming a missing resource: the
route is called once more with an id that cannot exist, and its 404 comes back with the caller's id
put back in (a generic 404 when the route does not answer one). A denied create is a 403.
"""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import structlog
from pydantic import BaseModel

from lamina.access.declarations import KINDS, Access
from lamina.access.owners import OwnerStore
from lamina.access.policy import AccessRule, Action, Owner, Resource, is_allowed
from lamina.auth.principal import Principal
from lamina.errors import ForbiddenError, LaminaError, NotFoundError
from lamina.request_context import PRINCIPAL, TRACES_OF

log = structlog.get_logger("lamina.access")
Method = Callable[..., Awaitable[Any]]

# Resources that belong to the server itself: the trace store holds every caller's requests, so reading
# all of it needs a rule that permits it (nobody holds the owner's role); other callers read their own.
SERVER_OWNER = Owner("lamina:server", {"roles": ["lamina:server"]})
_SERVER_OWNED = {("telemetry", "traces")}


class AccessGuard:
    """The policy (None: the default policy) and the owner records (attached when the store opens)."""

    def __init__(self, policy: list[AccessRule] | None) -> None:
        self.policy = policy or None
        self.owners: OwnerStore | None = None
        # Where a kind's resources record their owner themselves, for those without an owner record: a
        # job (lamina.jobs) keeps its submitter, so an eval's or a batch's job in /v1/jobs is its owner's.
        self.own_records: dict[str, Callable[[str], Awaitable[Owner | None]]] = {}
        # The kinds among those whose resources keep their owner from the moment they are made (in the
        # same write: a stored chat completion's row): their creates write no owner record, and their
        # own record is read first.
        self.owned_in_row: set[str] = set()
        # Whether a registered resource (model, shield, ...) exists: a registration naming an existing id
        # is an update of it, so it never takes over another's (or the run config's) resource.
        self.registered: Callable[[str, str], Awaitable[bool]] | None = None
        # The tool group of a tool named in a request (None: no such tool); set with the stack's tables.
        self.tool_group_of: Callable[[str], Awaitable[str | None]] | None = None

    def allowed(self, action: Action, resource: Resource, user: Principal) -> bool:
        return is_allowed(self.policy, action, resource, user)

    async def caller_may_read(self, kind: str, resource_id: str) -> bool:
        """Whether the current caller (``PRINCIPAL``) may read ``kind::resource_id``; True without one."""
        user = PRINCIPAL.get()
        return user is None or self.allowed(Action.read, await self.resource(kind, resource_id), user)

    async def resource(self, kind: str, resource_id: str, item: Any = None) -> Resource:
        assert self.owners is not None, "the stack (and its metadata store) starts before requests are served"
        if (kind, resource_id) in _SERVER_OWNED:
            return Resource(kind, resource_id, SERVER_OWNER)
        owner = await self.own_records[kind](resource_id) if kind in self.owned_in_row else None
        if owner is None:  # (for owned_in_row kinds: one made before they kept their owner in the row)
            owner = await self.owners.get(kind, resource_id)
        if owner is None and item is not None and kind in self.own_records:
            owner = owner_in(_dig(item, "owner"))
        if owner is None and item is None and kind in self.own_records:
            owner = await self.own_records[kind](resource_id)
        return Resource(kind, resource_id, owner)

    def wrap(self, access: Access, method: Method, takes_request: bool) -> Method:
        if not takes_request:  # no request: nothing names a resource
            return method

        async def guarded(request: BaseModel) -> Any:
            user = PRINCIPAL.get()
            if user is None:
                return await method(request)
            for kind, field in access.uses:
                for value in _ids_at(request, field, kind):
                    if not self.allowed(Action.read, await self.resource(kind, value), user):
                        log.info("access_denied", action="read", resource=f"{kind}::{value}")
                        # a create or an update is never run again to see how it answers a miss: with
                        # an invented id it might do its work (a vector store made with a failed file);
                        # nor is a request whose id lies deeper than a top-level field
                        probe = access.action in (None, Action.read) and field.isidentifier()
                        raise await self._as_missing(
                            method, request, field if probe else None, value, kind, field
                        )
            if access.tool_field is not None and self.tool_group_of is not None:
                name = getattr(request, access.tool_field, None)
                group = await self.tool_group_of(name) if isinstance(name, str) else None
                if group is not None and not self.allowed(
                    Action.read, await self.resource("tool_group", group), user
                ):
                    log.info("access_denied", action="read", resource=f"tool_group::{group}")
                    # an unknown tool fails before any work: the probe answers as for a missing tool
                    raise await self._as_missing(method, request, access.tool_field, name, "tool_group")
            if access.kind is None:
                return await method(request)
            if access.listing:
                return await self._list(access, method, request, user)
            if access.action is Action.create:
                return await self._create(access, method, request, user)
            if access.result_id is not None:
                return await self._read_result(access, method, request, user)
            resource_id = _resource_id(access.id_field, request) if access.id_field else access.fixed_id
            if resource_id is None:  # an optional id left out: the route acts on no one resource
                return await method(request)
            assert access.action is not None
            if not self.allowed(access.action, await self.resource(access.kind, resource_id), user):
                if access.own_traces:  # the traces of the caller's own requests only
                    token = TRACES_OF.set(user.id)
                    try:
                        return await method(request)
                    finally:
                        TRACES_OF.reset(token)
                log.info(
                    "access_denied", action=access.action.value, resource=f"{access.kind}::{resource_id}"
                )
                field = access.id_field.split("/")[-1] if access.id_field else None
                shown = str(getattr(request, field)) if field else resource_id
                raise await self._as_missing(method, request, field, shown, access.kind)
            result = await method(request)
            if access.forget:
                assert self.owners is not None
                await self.owners.forget(access.kind, resource_id)
            return result

        return guarded

    async def _create(self, access: Access, method: Method, request: BaseModel, user: Principal) -> Any:
        assert access.kind is not None
        if not self.allowed(Action.create, Resource(access.kind, "*"), user):
            raise ForbiddenError(
                f"principal {user.id!r} may not create a {KINDS[access.kind]} (server.auth.access_policy "
                f"has no rule permitting create on {access.kind}::*); ask an administrator for access",
            )
        requested = getattr(request, access.id_field, None) if access.id_field else None
        if (
            requested is not None
            and self.registered is not None
            and await self.registered(access.kind, requested)
        ):
            existing = await self.resource(access.kind, str(requested))
            if not self.allowed(Action.update, existing, user):
                raise ForbiddenError(
                    f"{KINDS[access.kind]} {requested!r} is registered already and principal {user.id!r} may "
                    f"not change it; register it under another id",
                    param=access.id_field,
                )
            return await method(request)  # the same resource again: its owner stays
        result = await method(request)
        if access.kind in self.owned_in_row:
            return result  # the resource's row has its owner (the router wrote it from PRINCIPAL)
        owner = Owner.of(user)
        if hasattr(result, "__anext__"):
            return self._record_from_stream(access, result, owner)
        new_id = _first(result, access.created_id)
        if new_id is None and access.created_from is not None:
            new_id = getattr(request, access.created_from, None)
        if new_id is not None:
            prefix = f"{_resource_id(access.created_under, request)}/" if access.created_under else ""
            await self._record(access.kind, f"{prefix}{new_id}", owner)
        return result

    async def _record_from_stream(
        self, access: Access, stream: AsyncIterator[Any], owner: Owner
    ) -> AsyncIterator[Any]:
        assert access.kind is not None
        recorded = False
        async for item in stream:
            if not recorded:
                new_id = _first(item, access.created_id)
                if new_id is not None:
                    await self._record(access.kind, str(new_id), owner)
                    recorded = True
            yield item

    async def _read_result(self, access: Access, method: Method, request: BaseModel, user: Principal) -> Any:
        assert access.kind is not None and access.result_id is not None
        result = await method(request)
        value = _dig(result, access.result_id)
        if value is not None and not self.allowed(
            Action.read, await self.resource(access.kind, str(value)), user
        ):
            field = access.id_field or next(iter(type(request).model_fields), None)
            raise await self._as_missing(
                method, request, field, str(getattr(request, field or "", value)), access.kind
            )
        return result

    async def _record(self, kind: str, resource_id: str, owner: Owner) -> None:
        assert self.owners is not None
        if self.owners.cached(kind, resource_id) == owner:
            return  # recorded in the store already, by the router the route called (record_for_caller)
        await self.owners.record(kind, resource_id, owner)

    async def _visible(self, kind: str, items: list[Any], item_id: str, user: Principal) -> list[Any]:
        kept = []
        for item in items:
            value = _dig(item, item_id)
            if value is None or self.allowed(Action.read, await self.resource(kind, str(value), item), user):
                kept.append(item)
        return kept

    async def _list(self, access: Access, method: Method, request: BaseModel, user: Principal) -> Any:
        assert access.kind is not None
        fields = type(request).model_fields
        if "after" in fields and "limit" in fields:
            return await self._list_cursor(access, method, request, user)
        if "start_index" in fields:  # a start/limit page: filter the whole list, then cut the page
            result = await method(request.model_copy(update={"start_index": None, "limit": None}))
            kept = await self._visible(access.kind, _items(result), access.item_id, user)
            start = getattr(request, "start_index", None) or 0
            limit = getattr(request, "limit", None)
            page = kept[start : start + limit] if limit is not None else kept[start:]
            return _with_items(result, page, has_more=limit is not None and start + limit < len(kept))
        result = await method(request)
        return _with_items(result, await self._visible(access.kind, _items(result), access.item_id, user))

    async def _list_cursor(self, access: Access, method: Method, request: BaseModel, user: Principal) -> Any:
        """Pages over what the caller may read: hidden items are skipped and the page refilled from the
        next ones, so ``limit``, ``has_more`` and ``last_id`` stay right for the caller."""
        assert access.kind is not None
        limit = request.limit  # type: ignore[attr-defined]
        result = await method(request)
        raw = _items(result)
        kept = await self._visible(access.kind, raw, access.item_id, user)
        more = bool(_dig(result, "has_more"))
        while (limit is None or len(kept) < limit) and more and raw:
            cursor = _dig(raw[-1], access.item_id)
            result = await method(request.model_copy(update={"after": cursor}))
            raw = _items(result)
            kept += await self._visible(access.kind, raw, access.item_id, user)
            more = bool(_dig(result, "has_more"))
        if limit is not None and len(kept) > limit:
            kept, more = kept[:limit], True
        return _with_items(result, kept, has_more=more, item_id=access.item_id)

    async def _as_missing(
        self,
        method: Method,
        request: BaseModel,
        field: str | None,
        value: str,
        kind: str,
        param: str | None = None,
    ) -> LaminaError:
        """The error the route answers for a missing ``value`` in ``field``."""
        absent = _absent_like(value)
        if field is not None:
            current = getattr(request, field, None)
            if isinstance(current, dict):
                replaced: Any = {absent if k == value else k: v for k, v in current.items()}
            elif isinstance(current, list):
                replaced = [absent if v == value else v for v in current]
            else:
                replaced = absent
            try:
                outcome = await method(request.model_copy(update={field: replaced}))
            except LaminaError as exc:  # a miss answers 404, or whatever the route checks first
                exc.message = exc.message.replace(absent, value)
                if isinstance(exc.param, str):
                    exc.param = exc.param.replace(absent, value)
                return exc
            except Exception as exc:  # a route that cannot take an invented id: the generic 404 below
                log.debug("access_probe_failed", error=f"{type(exc).__name__}: {exc}")
            else:
                if hasattr(outcome, "aclose"):
                    await outcome.aclose()
        return NotFoundError(f"{KINDS[kind].split(' (')[0]} {value!r} not found", param=field or param)


def owner_in(record: Any) -> Owner | None:
    """The owner a resource's own record keeps (a job's ``owner``: ``principal`` and ``attributes``)."""
    if isinstance(record, dict) and isinstance(record.get("principal"), str):
        return Owner(record["principal"], record.get("attributes") or {})
    return None


def _absent_like(value: str) -> str:
    """An id shaped like ``value`` (its prefix, digits for digits) that names nothing, so the route
    answers it as it answers any unknown id of that form."""
    if value.isdigit():
        return str(10**15 + secrets.randbelow(10**15))
    cut = max(value.rfind("-"), value.rfind("_")) + 1
    return value[:cut] + secrets.token_hex(max(8, (len(value) - cut + 1) // 2))


def _resource_id(fields: str, request: BaseModel) -> str | None:
    """The id in ``fields`` of the request; ``a/b`` joins two (an eval job: its benchmark and number)."""
    parts = [getattr(request, f, None) for f in fields.split("/")]
    return None if any(p is None for p in parts) else "/".join(str(p) for p in parts)


def _ids(value: Any) -> list[str]:
    if value is None:
        return []
    if isinstance(value, dict):  # scoring functions: id -> params
        return [str(k) for k in value]
    if isinstance(value, list | tuple):
        return [str(v) for v in value if v is not None]
    return [str(value)]


def _ids_at(request: BaseModel, path: str, kind: str) -> list[str]:
    """The ids of ``kind`` a request names at ``path``: a field, or a dotted path into the request where
    ``name[]`` steps into each item of a list (``agent_config.toolgroups[].args.vector_db_ids``); strings
    (or lists of them) found there are ids, anything else is skipped. An agent's tool group may be named
    with one of its tools (``builtin::rag/knowledge_search``): both the whole name and the part before
    its last ``/`` are checked, so neither a group whose id has a ``/`` nor one named with a tool slips
    through."""
    if path.isidentifier():
        return _ids(getattr(request, path, None))
    values: list[Any] = [request]
    for part in path.split("."):
        many = part.endswith("[]")
        name = part[:-2] if many else part
        stepped = [_dig(v, name) for v in values]
        values = [x for v in stepped if isinstance(v, list | tuple) for x in v] if many else stepped
    found: list[str] = []
    for value in values:
        if isinstance(value, str):
            found.append(value)
        elif isinstance(value, list | tuple):
            found.extend(x for x in value if isinstance(x, str))
    if kind == "tool_group":
        found += [v.rpartition("/")[0] for v in found if "/" in v]
    return found


def _first(obj: Any, paths: str) -> Any:
    for path in paths.split("|"):
        value = _dig(obj, path)
        if value is not None:
            return value
    return None


def _dig(obj: Any, path: str) -> Any:
    for part in path.split("."):
        if obj is None:
            return None
        obj = obj.get(part) if isinstance(obj, dict) else getattr(obj, part, None)
    return obj


def _items(result: Any) -> list[Any]:
    if isinstance(result, list):
        return result
    data = _dig(result, "data")
    return list(data) if data is not None else []


def _with_items(result: Any, items: list[Any], *, has_more: bool | None = None, item_id: str = "id") -> Any:
    if isinstance(result, list):
        return items
    update: dict[str, Any] = {"data": items}
    if has_more is not None:
        update["has_more"] = has_more
    if "first_id" in _fields(result):
        # An emptied page keeps the type the route answers an empty one with ('' where ids are strings).
        empty = "" if isinstance(_dig(result, "first_id"), str) else None
        update["first_id"] = _dig(items[0], item_id) if items else empty
        update["last_id"] = _dig(items[-1], item_id) if items else empty
    if isinstance(result, dict):
        return {**result, **{k: v for k, v in update.items() if k in result or k == "data"}}
    return result.model_copy(update={k: v for k, v in update.items() if k in _fields(result)})


def _fields(result: Any) -> set[str]:
    if isinstance(result, dict):
        return set(result)
    return set(type(result).model_fields) if isinstance(result, BaseModel) else set()
