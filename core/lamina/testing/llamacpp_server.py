"""Run llama.cpp's OpenAI-compatible HTTP server (xllamacpp) on a GGUF, for end-to-end tests.

``python -m lamina.testing.llamacpp_server --port N [--model PATH] [--embedding]``; with no
``--model`` it serves the SmolLM2-135M-Instruct GGUF bundled in the ``lamina-model-smollm2`` package.
docs/conformance.md starts its upstreams with this, capped (``--n-predict``) and greedy (``--temp 0``).
"""

from __future__ import annotations

import argparse
import signal
import threading
from pathlib import Path

from lamina.providers.package_files import package_file

BUNDLED_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"


def bundled_model_path() -> Path:
    """The SmolLM2 GGUF inside lamina-model-smollm2 (the llama-cpp plugin's `bundled-model` extra)."""
    install = "'lamina-llama-cpp[bundled-model]'"
    return package_file("lamina_model_smollm2", BUNDLED_GGUF, install, no_deps=False)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--model", default=None)
    parser.add_argument("--alias", default="smollm2")
    parser.add_argument("--embedding", action="store_true")
    parser.add_argument("--ctx", type=int, default=4096)
    parser.add_argument("--parallel", type=int, default=2)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument(
        "--n-predict",
        type=int,
        default=-1,
        help="tokens generated when a request sets no max_tokens (-1: to the context's end)",
    )
    parser.add_argument(
        "--temp", type=float, default=None, help="sampling temperature when a request sets none"
    )
    parser.add_argument(
        "--ubatch", type=int, default=None, help="physical batch: the longest input it can embed"
    )
    args = parser.parse_args()

    import xllamacpp

    params = xllamacpp.CommonParams()
    params.model.path = str(args.model or bundled_model_path())
    params.model_alias = {args.alias} if isinstance(params.model_alias, set) else args.alias
    params.use_jinja = True  # chat template + llama.cpp's tool-call handling
    params.n_ctx = args.ctx
    params.n_parallel = args.parallel
    params.port = args.port
    params.cpuparams.n_threads = args.threads
    params.cpuparams_batch.n_threads = args.threads
    params.n_predict = args.n_predict
    if args.temp is not None:
        params.sampling.temp = args.temp
    if args.ubatch is not None:
        params.n_batch = max(params.n_batch, args.ubatch)
        params.n_ubatch = args.ubatch
    if args.embedding:
        params.embedding = True
        params.pooling_type = xllamacpp.llama_pooling_type.LLAMA_POOLING_TYPE_MEAN
    server = xllamacpp.Server(params)  # noqa: F841 - keeps the HTTP server alive
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    stop.wait()


if __name__ == "__main__":
    main()
