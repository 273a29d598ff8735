"""A provider seen through a proxy that wraps some of its methods: the core's provider wrappers
(lamina.telemetry.provider_proxy's spans, lamina.limits.proxy's limits) are subclasses.

The proxy passes every attribute through to the provider, but a method the subclass's ``_lamina_wrap``
returns a wrapper for; that wrapper is cached on the proxy, so the next lookup finds it without
``__getattr__``. ``isinstance(proxy, TheProvidersClass)`` stays true (``__class__`` is the provider's), and
setting or deleting an attribute reaches the provider (and drops a cached wrapper). Proxies nest: the
provider of one may be another.
"""

from __future__ import annotations

from typing import Any


class MethodProxy:
    def __init__(self, impl: Any) -> None:
        object.__setattr__(self, "_lamina_impl", impl)

    def _lamina_wrap(self, name: str, value: Any) -> Any | None:
        """The wrapper of the provider's attribute ``name`` (``value``), or None to pass it through (here:
        everything; subclasses choose the methods they wrap)."""
        return None

    @property  # isinstance(proxy, TheProvidersClass) stays true
    def __class__(self) -> type:  # type: ignore[override]
        return object.__getattribute__(self, "_lamina_impl").__class__

    def __getattr__(self, name: str) -> Any:
        impl = object.__getattribute__(self, "_lamina_impl")
        value = getattr(impl, name)  # AttributeError as the provider's own
        wrapped = self._lamina_wrap(name, value)
        if wrapped is None:
            return value
        self.__dict__[name] = wrapped  # the next lookup finds it without __getattr__
        return wrapped

    def __setattr__(self, name: str, value: Any) -> None:
        setattr(object.__getattribute__(self, "_lamina_impl"), name, value)
        self.__dict__.pop(name, None)

    def __delattr__(self, name: str) -> None:
        delattr(object.__getattribute__(self, "_lamina_impl"), name)
        self.__dict__.pop(name, None)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({object.__getattribute__(self, '_lamina_impl')!r})"
