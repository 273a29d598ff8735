"""resolve_gguf: GGUF files only from the bundled models and the configured model directories.

Registering a model must not tell a client whether a path exists on the server: every path outside
the model directories gets the same 400, whether it is missing, a directory, a text file or a GGUF.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from lamina.errors import BadRequestError
from lamina_llama_cpp.config import LlamaCppConfig
from lamina_llama_cpp.runtime import BUNDLED, resolve_gguf


def _gguf(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"GGUF" + b"\0" * 60)
    return path


def _refusal(provider_model_id: str, model_dirs: list[str] | None) -> str:
    with pytest.raises(BadRequestError) as info:
        resolve_gguf(provider_model_id, model_dirs)
    assert info.value.param == "provider_model_id"
    return info.value.message.replace(repr(provider_model_id), "<id>")


def test_paths_outside_the_model_dirs_get_one_answer_whether_they_exist_or_not(tmp_path: Path) -> None:
    models = tmp_path / "models"
    models.mkdir()
    outside_gguf = _gguf(tmp_path / "elsewhere" / "real.gguf")
    outside_text = tmp_path / "elsewhere" / "notes.txt"
    outside_text.write_text("hello")
    probes = (outside_gguf, outside_text, tmp_path / "elsewhere", tmp_path / "missing.gguf", "/etc/passwd")
    answers = {_refusal(str(p), [str(models)]) for p in probes}
    assert len(answers) == 1, answers
    (answer,) = answers
    assert "neither a bundled model" in answer and "config.model_dirs" in answer
    assert "GGUF magic" not in answer and str(tmp_path) not in answer


def test_files_in_a_model_dir_resolve_by_absolute_or_relative_path(tmp_path: Path) -> None:
    models = tmp_path / "models"
    model = _gguf(models / "sub" / "m.gguf")
    assert resolve_gguf(str(model), [str(models)]) == model.resolve()
    assert resolve_gguf("sub/m.gguf", [str(tmp_path / "other"), str(models)]) == model.resolve()
    (models / "bad.gguf").write_text("not gguf")
    assert "no GGUF magic" in _refusal(str(models / "bad.gguf"), [str(models)])


def test_escapes_from_a_model_dir_are_outside(tmp_path: Path) -> None:
    models = tmp_path / "models"
    models.mkdir()
    secret = _gguf(tmp_path / "secret.gguf")
    (models / "link.gguf").symlink_to(secret)
    expected = _refusal(str(tmp_path / "missing.gguf"), [str(models)])
    assert _refusal("../secret.gguf", [str(models)]) == expected
    assert _refusal(str(models / ".." / "secret.gguf"), [str(models)]) == expected
    assert _refusal("link.gguf", [str(models)]) == expected


def test_default_model_dir_is_under_lamina_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LAMINA_HOME", str(tmp_path))
    model = _gguf(tmp_path / "models" / "m.gguf")
    assert LlamaCppConfig().model_dirs is None
    assert resolve_gguf("m.gguf") == model.resolve()
    assert "neither a bundled model" in _refusal(str(_gguf(tmp_path / "m2.gguf")), None)
    assert "neither a bundled model" in _refusal("m.gguf", [])  # an empty list: bundled models only


def test_bundled_models_need_no_model_dir() -> None:
    name = next(iter(BUNDLED))
    assert resolve_gguf(name, []).name.endswith(".gguf")
