"""The plugin manager's checks on plugin modules it is given (in process, with registered modules)."""

from __future__ import annotations

import types
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from lamina.errors import PluginError
from lamina.hookspecs import hookimpl
from lamina.plugins import PluginManager
from lamina.specs import Api, ProviderSpec

SPEC = ProviderSpec(api=Api.inference, provider_type="remote::ok", config_class="m:C", factory="m:f")


def module(name: str, **hooks: Callable[..., Any]) -> types.ModuleType:
    mod = types.ModuleType(name)
    for hook_name, function in hooks.items():
        setattr(mod, hook_name, hookimpl(function))
    return mod


def manager(strict: bool = False) -> PluginManager:
    return PluginManager(strict=strict, allow=(), deny=(), trace=False)


def test_a_hook_that_raises_drops_its_whole_plugin(capsys: pytest.CaptureFixture[str]) -> None:
    def boom() -> list:
        raise KeyError("no such thing")

    pm = manager()
    pm.register(module("bad", lamina_models=boom, lamina_inference_providers=lambda: [SPEC]), name="bad")
    pm.register(module("good", lamina_inference_providers=lambda: []), name="good")
    assert pm.default_resources("model") == []
    info = pm.plugins["bad"]
    assert (info.status, info.error) == ("failed", "hook lamina_models raised KeyError: 'no such thing'")
    assert pm.provider_specs(Api.inference) == {}, "its other hooks are unregistered too"
    assert pm.plugins["good"].status == "loaded"
    assert (
        "plugin 'bad' from distribution 'bad' was skipped: hook lamina_models raised"
        in capsys.readouterr().err
    )


def test_invalid_records_are_reported_with_the_field() -> None:
    pm = manager()
    bad = {"api": "inference", "provider_type": "vllm", "config_class": "m:C", "factory": "m:f"}
    pm.register(module("bad", lamina_inference_providers=lambda: [bad]), name="bad")
    assert pm.provider_specs(Api.inference) == {}
    assert pm.plugins["bad"].error == (
        "hook lamina_inference_providers returned an invalid value: provider_type: "
        "provider_type 'vllm' must be 'inline::<name>' or 'remote::<name>' (got 'vllm')"
    )
    pm.register(module("single", lamina_inference_providers=lambda: SPEC), name="single")
    assert pm.provider_specs(Api.inference) == {}
    assert "expected a list of ProviderSpec, got ProviderSpec" in pm.plugins["single"].error


def test_wrappers_and_unknown_hook_arguments_are_refused() -> None:
    pm = manager()

    def wrapper():
        return (yield)

    wrapped = types.ModuleType("wrapped")
    wrapped.lamina_models = hookimpl(wrapper=True)(wrapper)
    pm.register(wrapped, name="wrapped")
    assert pm.plugins["wrapped"].error == (
        "implements lamina_models as a hook wrapper, which Lamina does not support"
    )
    pm.register(module("args", lamina_validate_resource=lambda resource, resorce: None), name="args")
    assert pm.plugins["args"].status == "failed"
    assert "registration failed" in pm.plugins["args"].error and "resorce" in pm.plugins["args"].error
    assert pm.pm.get_plugin("args") is None, "nothing is left half registered"
    assert pm.resource_vetoes("model", {"identifier": "x"}) == []


def test_misspelled_hook_names_the_closest_hook_and_strict_mode_raises() -> None:
    strict = manager(strict=True)
    with pytest.raises(
        PluginError, match=r"lamina_inference_provider \(did you mean lamina_inference_providers\?\)"
    ):
        strict.register(module("typo", lamina_inference_provider=lambda: [SPEC]), name="typo")
    renamed = types.ModuleType("renamed")
    renamed.offer = hookimpl(specname="lamina_shield")(lambda: [])
    lax = manager()
    lax.register(renamed, name="renamed")
    assert (
        lax.plugins["renamed"].error
        == "implements unknown hooks: lamina_shield (did you mean lamina_shields?)"
    )


def test_a_second_plugin_of_the_same_name_is_refused() -> None:
    pm = manager()
    pm.register(
        module("one", lamina_inference_providers=lambda: [SPEC]), name="same", distribution="dist-one"
    )
    pm.register(module("two", lamina_inference_providers=lambda: []), name="same", distribution="dist-two")
    assert pm.plugins["same"].distribution == "dist-one" and pm.plugins["same"].status == "loaded"
    second = pm.plugins["same (dist-two)"]
    assert second.status == "failed" and "already used by dist-one" in second.error
    assert list(pm.provider_specs(Api.inference)) == ["remote::ok"]


def test_pip_packages_is_not_a_spec_field_and_no_plugin_sets_it() -> None:
    """Dependencies are a package's own (pyproject): Llama Stack's ``pip_packages``, set but never read,
    is gone; a third-party spec that still passes it validates, without it."""
    assert "pip_packages" not in ProviderSpec.model_fields
    spec = ProviderSpec.model_validate({**SPEC.model_dump(), "pip_packages": ["lamina-ok"]})
    assert spec == SPEC
    root = Path(__file__).resolve().parents[2]
    setting = [
        p.relative_to(root) for p in root.glob("plugins/*/src/**/*.py") if "pip_packages" in p.read_text()
    ]
    assert setting == []
