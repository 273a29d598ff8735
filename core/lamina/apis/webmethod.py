"""Route declarations: one per API method, the single source of handler, validation and OpenAPI.

An API is a Protocol whose methods carry ``@webmethod(...)``. The method takes one argument, the
request model (path, query and body fields merged), and returns the response model, or, when the
request asks to stream, an async iterator of stream items. ``multipart=True`` routes take a
multipart/form-data body whose file parts stream to the method, and ``binary=True`` routes return
raw bytes (``lamina.apis.binary``).
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal, TypeVar

from pydantic import BaseModel

if TYPE_CHECKING:
    from lamina.access.declarations import Access

F = TypeVar("F", bound=Callable[..., Any])

HttpMethod = Literal["GET", "POST", "DELETE", "PUT", "PATCH"]


@dataclass(frozen=True)
class RouteDecl:
    """Everything the server needs to serve one API method."""

    method: HttpMethod
    path: str
    request: type[BaseModel] | None
    response: type[BaseModel] | None
    stream_item: type[BaseModel] | None = None
    openai: bool = False  # OpenAI stream framing: ends with `data: [DONE]`
    aliases: tuple[str, ...] = ()
    summary: str = ""
    status: int = 200
    name: str = ""
    tags: tuple[str, ...] = field(default_factory=tuple)
    multipart: bool = False  # multipart/form-data body; UploadFile fields stream (see lamina.apis.binary)
    binary: bool = False  # the method returns a BinaryResponse, written as bytes
    # Whether a client that goes away cancels the call (see ``cancellable``); None: by method.
    cancel_on_disconnect: bool | None = None
    # What the route does to which owned resource (lamina.access.declarations); every route has one.
    access: Access | None = None

    @property
    def cancellable(self) -> bool:
        """A read or a pure computation (a generation, a search) stops when its client goes away;
        a write the client started (register, upload, insert, delete) is finished all the same, so
        a dropped connection never leaves half of it done."""
        if self.cancel_on_disconnect is not None:
            return self.cancel_on_disconnect
        return self.method == "GET"

    @property
    def paths(self) -> tuple[str, ...]:
        return (self.path, *self.aliases)

    def path_params(self) -> list[str]:
        import re

        return re.findall(r"\{([A-Za-z_][A-Za-z0-9_]*)(?::[^}]*)?\}", self.path)

    def openapi_path(self, path: str | None = None) -> str:
        import re

        return re.sub(r"\{([A-Za-z_][A-Za-z0-9_]*):[^}]*\}", r"{\1}", path or self.path)


def webmethod(
    method: HttpMethod,
    path: str,
    *,
    request: type[BaseModel] | None = None,
    response: type[BaseModel] | None = None,
    stream_item: type[BaseModel] | None = None,
    openai: bool = False,
    aliases: tuple[str, ...] = (),
    status: int = 200,
    multipart: bool = False,
    binary: bool = False,
    cancel_on_disconnect: bool | None = None,
    access: Access | None = None,
) -> Callable[[F], F]:
    """Declare the HTTP route of an API method."""

    def deco(fn: F) -> F:
        doc = inspect.getdoc(fn) or ""
        fn.__lamina_route__ = RouteDecl(  # type: ignore[attr-defined]
            method=method,
            path=path,
            request=request,
            response=response,
            stream_item=stream_item,
            openai=openai,
            aliases=aliases,
            summary=doc.split("\n")[0],
            status=status,
            name=fn.__name__,
            multipart=multipart,
            binary=binary,
            cancel_on_disconnect=cancel_on_disconnect,
            access=access,
        )
        return fn

    return deco


def routes_of(protocol: type) -> list[RouteDecl]:
    """The route declarations of an API Protocol, in declaration order."""
    out = []
    for name, member in vars(protocol).items():
        decl = getattr(member, "__lamina_route__", None)
        if decl is not None:
            out.append(decl if decl.name else RouteDecl(**{**decl.__dict__, "name": name}))
    return out
