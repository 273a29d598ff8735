"""``${env.X}`` substitution: both Llama Stack syntaxes, errors naming file/key/variable, conversion."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from lamina.config import load_run_config, load_run_config_text
from lamina.envsubst import convert_scalar, substitute_env
from lamina.errors import ConfigError

SRC = "run.yaml"


def sub(value: Any, **env: str) -> Any:
    return substitute_env(value, env, SRC)


# -- the five syntaxes, with the variable set, set to empty, and unset ----------------------------

SET, EMPTY, UNSET = {"X": "val"}, {"X": ""}, {}


@pytest.mark.parametrize(
    ("template", "env", "expected"),
    [
        # 0.2.12: ${env.X}
        ("${env.X}", SET, "val"),
        # 0.2.12: ${env.X:default} -- the default when unset or empty
        ("${env.X:dflt}", SET, "val"),
        ("${env.X:dflt}", EMPTY, "dflt"),
        ("${env.X:dflt}", UNSET, "dflt"),
        ("${env.X:}", UNSET, None),
        # 0.2.12: ${env.X+value} -- the value when set and non-empty
        ("${env.X+on}", SET, "on"),
        ("${env.X+on}", EMPTY, None),
        ("${env.X+on}", UNSET, None),
        # newer: ${env.X:=default}
        ("${env.X:=dflt}", SET, "val"),
        ("${env.X:=dflt}", EMPTY, "dflt"),
        ("${env.X:=dflt}", UNSET, "dflt"),
        ("${env.X:=}", UNSET, None),
        ("${env.X:=}", SET, "val"),
        # newer: ${env.X:+value}
        ("${env.X:+on}", SET, "on"),
        ("${env.X:+on}", EMPTY, None),
        ("${env.X:+on}", UNSET, None),
        ("${env.X:+}", SET, None),
    ],
)
def test_syntaxes(template: str, env: dict[str, str], expected: Any) -> None:
    assert sub(template, **env) == expected


@pytest.mark.parametrize("env", [EMPTY, UNSET], ids=["empty", "unset"])
def test_required_variable_unset_or_empty_is_an_error(env: dict[str, str]) -> None:
    with pytest.raises(ConfigError) as info:
        sub({"providers": {"inference": [{"config": {"url": "${env.X}"}}]}}, **env)
    message = str(info.value)
    assert message.startswith("run.yaml: providers.inference[0].config.url: environment variable X ")
    assert ("is empty" if env else "is not set") in message
    assert "${env.X:=default}" in message and "--env X=" in message


def test_defaults_may_hold_colons_urls_and_plus_signs() -> None:
    assert sub("${env.URL:http://localhost:8000/v1}") == "http://localhost:8000/v1"
    assert sub("${env.URL:=http://user:pw@host:8000/v1?a=b}") == "http://user:pw@host:8000/v1?a=b"
    assert sub("${env.URL:=a:=b}") == "a:=b"
    assert sub("${env.URL:=a+b}") == "a+b"
    assert sub("${env.SINKS:console,sqlite}") == "console,sqlite"
    assert sub("${env.X:+http://on:1/}", X="1") == "http://on:1/"


def test_several_in_one_string_and_surrounding_text() -> None:
    value = "${env.SCHEME:=http}://${env.HOST}:${env.PORT:8000}/v1"
    assert sub(value, HOST="h") == "http://h:8000/v1"
    assert sub(value, HOST="h", SCHEME="https", PORT="9") == "https://h:9/v1"
    assert sub("${env.DIR:=/data}/registry.db") == "/data/registry.db"
    assert sub("pre-${env.X+on}-post") == "pre--post"


def test_nested_in_lists_and_dicts() -> None:
    tree = {"a": [{"b": "${env.X}"}, ["${env.Y:=2}", 3]], "c": {"d": {"e": "${env.X:+yes}"}}, "n": None}
    assert sub(tree, X="x") == {"a": [{"b": "x"}, [2, 3]], "c": {"d": {"e": "yes"}}, "n": None}


def test_the_error_names_the_key_path_deep_in_lists() -> None:
    tree = {"models": [{"model_id": "m"}, {"metadata": {"tags": ["ok", "${env.TAG}"]}}]}
    with pytest.raises(
        ConfigError, match=r"^run\.yaml: models\[1\]\.metadata\.tags\[1\]: environment variable TAG"
    ):
        sub(tree)


def test_text_without_a_substitution_is_left_alone() -> None:
    for value in ("true", "4096", "${HOME}", "${env.}", "$env.X", "{env.X}", "", "~/.llama"):
        assert sub(value, X="1") == value
    assert sub(True) is True and sub(3) == 3 and sub(None) is None


def test_a_substituted_home_is_expanded_like_llama_stack() -> None:
    assert (
        sub("${env.D:~/.llama/distributions/x}/registry.db")
        == str(Path.home()) + "/.llama/distributions/x/registry.db"
    )
    assert sub("${env.D}", D="~/store") == str(Path.home() / "store")
    assert sub("/data/${env.D:=~x}") == "/data/~x"  # only a leading ~ of the whole value expands


# -- type conversion (newer Llama Stack): "true"/"false", numbers, empty ------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("true", True),
        ("True", True),
        ("FALSE", False),
        ("4096", 4096),
        ("-3", -3),
        ("0.5", 0.5),
        ("1e3", 1000.0),
        ("", None),
        ("fake", "fake"),
        ("http://h:1", "http://h:1"),
        ("1.2.3", "1.2.3"),
        ("yes", "yes"),
        ("nan", "nan"),
    ],
)
def test_convert_scalar(value: str, expected: Any) -> None:
    result = convert_scalar(value)
    assert result == expected and type(result) is type(expected)


def test_substituted_values_are_converted_and_literals_are_not() -> None:
    tree = {
        "tls_verify": "${env.VLLM_TLS_VERIFY:=true}",
        "max_tokens": "${env.VLLM_MAX_TOKENS:4096}",
        "temperature": "${env.T:=0.7}",
        "flag": "${env.F}",
        "literal_true": "true",
        "literal_number": "4096",
        "api_key": "${env.KEY:=}",
    }
    assert sub(tree, F="False") == {
        "tls_verify": True,
        "max_tokens": 4096,
        "temperature": 0.7,
        "flag": False,
        "literal_true": "true",
        "literal_number": "4096",
        "api_key": None,
    }


def test_converted_numbers_still_fill_string_fields(tmp_path: Path) -> None:
    text = (
        "version: 2\nimage_name: ${env.NAME}\nproviders:\n  inference:\n"
        "  - provider_id: ${env.PID}\n    provider_type: remote::vllm\n    config: {}\n"
        "models:\n- model_id: ${env.MODEL}\n  provider_id: ${env.PID}\n"
    )
    config = load_run_config_text(text, source=SRC, env={"NAME": "2024", "PID": "7", "MODEL": "42"})
    assert config.image_name == "2024"
    assert config.providers["inference"][0].provider_id == "7"
    assert config.models[0].model_id == "42"


# -- disabled providers and resources (Llama Stack's "__disabled__" and empty ids) ----------------

RUN = """\
version: 2
providers:
  inference:
  - provider_id: ${env.ENABLE_A:+a}
    provider_type: remote::vllm
    config:
      url: ${env.A_URL}
  - provider_id: ${env.B_ID:=__disabled__}
    provider_type: remote::nonesuch
    config:
      key: ${env.B_KEY}
  - provider_id: c
    provider_type: remote::vllm
    config:
      url: http://c:1/v1
models:
- model_id: on-a
  provider_id: ${env.ENABLE_A:+a}
- model_id: on-b
  provider_id: ${env.B_ID:=__disabled__}
- model_id: on-c
  provider_id: c
"""


def test_disabled_providers_keep_their_config_unsubstituted_and_their_models_are_dropped() -> None:
    config = load_run_config_text(RUN, source=SRC, env={})
    a, b, c = config.providers["inference"]
    assert a.provider_id is None and a.config == {"url": "${env.A_URL}"}
    assert b.provider_id is None and b.config == {"key": "${env.B_KEY}"}
    assert c.provider_id == "c"
    assert [m.model_id for m in config.models] == ["on-c"]


def test_enabled_providers_need_their_variables() -> None:
    with pytest.raises(
        ConfigError, match=r"providers\.inference\[0\]\.config\.url: environment variable A_URL"
    ):
        load_run_config_text(RUN, source=SRC, env={"ENABLE_A": "1"})
    config = load_run_config_text(RUN, source=SRC, env={"ENABLE_A": "1", "A_URL": "http://a:1/v1"})
    assert config.providers["inference"][0].provider_id == "a"
    assert [m.model_id for m in config.models] == ["on-a", "on-c"]


# -- through a file: errors name the file -------------------------------------------------------


def test_missing_variable_in_a_file_names_file_key_and_variable(tmp_path: Path) -> None:
    path = tmp_path / "run.yaml"
    path.write_text(
        "version: 2\nproviders:\n  inference:\n  - provider_id: v\n    provider_type: remote::vllm\n"
        "    config:\n      url: ${env.VLLM_URL}\nmodels:\n- model_id: ${env.INFERENCE_MODEL}\n"
    )
    with pytest.raises(ConfigError) as info:
        load_run_config(path, env={"INFERENCE_MODEL": "m"})
    assert str(info.value).startswith(
        f"{path}: providers.inference[0].config.url: environment variable VLLM_URL"
    )
    with pytest.raises(ConfigError) as info:
        load_run_config(path, env={"VLLM_URL": "http://h/v1"})
    assert str(info.value).startswith(f"{path}: models[0].model_id: environment variable INFERENCE_MODEL")
    config = load_run_config(path, env={"VLLM_URL": "http://h/v1", "INFERENCE_MODEL": "m"})
    assert config.providers["inference"][0].config == {"url": "http://h/v1"}
