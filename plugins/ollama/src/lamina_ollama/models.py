"""Which Ollama models are which: Llama Stack's aliases and the embedding models it knows.

As in Llama Stack 0.2.x (``remote/inference/ollama/models.py``), a model registered under a
Hugging Face repo name (``meta-llama/Llama-3.2-3B-Instruct``) is served by the matching Ollama tag.
Lamina tries the tags in order and uses the first one the server has (Llama Stack insisted on the
fp16 tag), so a server with only ``llama3.2:3b`` serves the alias too.
"""

from __future__ import annotations

from typing import Any

# Hugging Face repo (and Llama Stack descriptor) -> Ollama tags, most exact first.
ALIASES: dict[str, list[str]] = {
    "meta-llama/Llama-3.1-8B-Instruct": ["llama3.1:8b-instruct-fp16", "llama3.1:8b", "llama3.1:latest"],
    "meta-llama/Llama-3.1-70B-Instruct": ["llama3.1:70b-instruct-fp16", "llama3.1:70b"],
    "meta-llama/Llama-3.1-405B-Instruct-FP8": ["llama3.1:405b-instruct-fp16", "llama3.1:405b"],
    "meta-llama/Llama-3.2-1B-Instruct": ["llama3.2:1b-instruct-fp16", "llama3.2:1b"],
    "meta-llama/Llama-3.2-3B-Instruct": ["llama3.2:3b-instruct-fp16", "llama3.2:3b", "llama3.2:latest"],
    "meta-llama/Llama-3.2-11B-Vision-Instruct": [
        "llama3.2-vision:11b-instruct-fp16",
        "llama3.2-vision:latest",
    ],
    "meta-llama/Llama-3.2-90B-Vision-Instruct": ["llama3.2-vision:90b-instruct-fp16", "llama3.2-vision:90b"],
    "meta-llama/Llama-3.3-70B-Instruct": ["llama3.3:70b", "llama3.3:latest"],
    "meta-llama/Llama-Guard-3-8B": ["llama-guard3:8b", "llama-guard3:latest"],
    "meta-llama/Llama-Guard-3-1B": ["llama-guard3:1b"],
}
_DESCRIPTORS = {repo.split("/", 1)[1].replace("Llama-", "Llama"): repo for repo in ALIASES}

# Embedding models by base name (the part before ':'): dimension and context length.
EMBEDDING_MODELS: dict[str, dict[str, int]] = {
    "all-minilm": {"embedding_dimension": 384, "context_length": 512},
    "nomic-embed-text": {"embedding_dimension": 768, "context_length": 8192},
    "mxbai-embed-large": {"embedding_dimension": 1024, "context_length": 512},
    "snowflake-arctic-embed": {"embedding_dimension": 1024, "context_length": 512},
    "bge-m3": {"embedding_dimension": 1024, "context_length": 8192},
    "bge-large": {"embedding_dimension": 1024, "context_length": 512},
}


def alias_candidates(name: str) -> list[str]:
    """The Ollama tags an alias stands for (empty when ``name`` is not an alias)."""
    repo = _DESCRIPTORS.get(name, name)
    return list(ALIASES.get(repo, []))


def base_name(tag: str) -> str:
    return tag.rsplit(":", 1)[0] if ":" in tag.rsplit("/", 1)[-1] else tag


def same_model(a: str, b: str) -> bool:
    """Ollama treats ``name`` and ``name:latest`` as one model."""
    return _with_tag(a) == _with_tag(b)


def _with_tag(name: str) -> str:
    return name if ":" in name.rsplit("/", 1)[-1] else f"{name}:latest"


def find_served(name: str, served: list[str]) -> str | None:
    """The served tag ``name`` refers to (itself, itself with :latest, or an alias's tag)."""
    for candidate in [name, *alias_candidates(name)]:
        for tag in served:
            if same_model(candidate, tag):
                return candidate
    return None


def embedding_metadata(tag: dict[str, Any]) -> dict[str, int] | None:
    """Known embedding metadata for an /api/tags entry, or None when it is not a known embedder."""
    name = base_name(str(tag.get("model") or tag.get("name") or ""))
    return EMBEDDING_MODELS.get(name.rsplit("/", 1)[-1])


def looks_like_embedder(tag: dict[str, Any]) -> bool:
    """BERT-family models are embedders (Llama Stack skips them: their dimension is unknown)."""
    details = tag.get("details") or {}
    families = [details.get("family") or "", *(details.get("families") or [])]
    return any("bert" in str(f).lower() for f in families)
