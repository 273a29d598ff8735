"""The jailguard worker process: ``python -m lamina_prompt_guard.worker --model-dir DIR [--batch]``.

jailguard's native ``detect`` holds the GIL for the whole call (measured: a thread sleeping 1 ms
got 32 turns in 3.5 s while another thread ran 20 detections), so a thread pool would still stall
the server's event loop for every text scored. The classifier therefore runs in this separate
process, which imports nothing but jailguard and speaks JSON lines:

* on start it loads the model (``JAILGUARD_MODEL_DIR`` is set to ``--model-dir`` first: it is read
  once per process), scores one text to warm it, and writes
  ``{"ready": true, "jailguard": VERSION, "model_dir": DIR, "seconds": S}`` or
  ``{"ready": false, "error": MESSAGE}`` (and exits 1);
* then for each request line ``{"id": N, "texts": [...]}`` it writes
  ``{"id": N, "scores": [...], "risks": [...]}`` or ``{"id": N, "error": MESSAGE}``.

The protocol uses a duplicate of the original stdout; file descriptor 1 is pointed at stderr so
that anything the native library prints cannot corrupt it. The process ends when stdin closes.

It ignores SIGINT: Ctrl-C in a terminal reaches every process of the group, and the server stops
its workers itself (by closing their stdin) as part of its own orderly shutdown.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import time
from pathlib import Path

MODEL_FILE = "all-MiniLM-L6-v2.onnx"


def _describe(exc: BaseException) -> str:
    # A Rust panic arrives as pyo3_runtime.PanicException (a BaseException): name it plainly.
    return f"{type(exc).__name__}: {exc}".strip()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="lamina_prompt_guard.worker")
    parser.add_argument("--model-dir", required=True)
    parser.add_argument("--batch", action="store_true", help="score a request with one detect_batch call")
    args = parser.parse_args(argv)
    signal.signal(signal.SIGINT, signal.SIG_IGN)

    out = os.fdopen(os.dup(1), "w", encoding="utf-8", buffering=1)
    os.dup2(2, 1)
    sys.stdout = sys.stderr

    def send(obj: dict) -> None:
        out.write(json.dumps(obj) + "\n")
        out.flush()

    started = time.perf_counter()
    model_dir = Path(args.model_dir)
    if not (model_dir / MODEL_FILE).is_file():
        # Never let jailguard fall back to downloading the model.
        send({"ready": False, "error": f"{model_dir / MODEL_FILE} does not exist"})
        return 1
    os.environ["JAILGUARD_MODEL_DIR"] = str(model_dir)
    try:
        import jailguard

        jailguard.detect("Warm-up: load the embedder and the classifier.")
    except BaseException as exc:  # a Rust panic is a BaseException
        send({"ready": False, "error": _describe(exc)})
        return 1
    send(
        {
            "ready": True,
            "jailguard": jailguard.__version__,
            "model_dir": jailguard.model_cache_dir(),
            "seconds": round(time.perf_counter() - started, 3),
        }
    )

    for line in sys.stdin:
        if not line.strip():
            continue
        request = json.loads(line)
        texts = request["texts"]
        try:
            results = jailguard.detect_batch(texts) if args.batch else [jailguard.detect(t) for t in texts]
            send(
                {
                    "id": request["id"],
                    "scores": [float(r.score) for r in results],
                    "risks": [str(r.risk).lower() for r in results],
                }
            )
        except BaseException as exc:
            if isinstance(exc, KeyboardInterrupt | SystemExit):
                raise
            send({"id": request["id"], "error": _describe(exc)})
    return 0


if __name__ == "__main__":
    sys.exit(main())
