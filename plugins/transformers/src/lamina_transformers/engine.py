"""Loading a checkpoint directory and generating from it: synchronous, run in a thread by the provider.

torch, transformers and peft are imported here only. A directory with ``adapter_config.json`` is a PEFT
adapter: its base model (named in that file, a local directory) is loaded and the adapter put on it; a
directory with ``config.json`` is a full model. The tokenizer comes from the directory itself, else from
the adapter's base.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any


class CheckpointError(ValueError):
    pass


def describe_checkpoint(path: str) -> dict[str, Any]:
    """What the directory holds ({kind: full|adapter, base}); CheckpointError saying what is wrong."""
    directory = Path(path).expanduser()
    if not directory.is_dir():
        raise CheckpointError(f"{path} is not a directory; name a local Hugging Face checkpoint directory")
    adapter = directory / "adapter_config.json"
    if adapter.is_file():
        base = json.loads(adapter.read_text()).get("base_model_name_or_path")
        if not base or not (Path(base) / "config.json").is_file():
            raise CheckpointError(
                f"{path} is a LoRA adapter whose base model '{base}' is not a local checkpoint directory; "
                "nothing is downloaded: put the base model there"
            )
        return {"kind": "adapter", "base": str(base)}
    if (directory / "config.json").is_file():
        return {"kind": "full", "base": None}
    raise CheckpointError(f"{path} holds neither config.json nor adapter_config.json; it is no checkpoint")


@dataclass
class Generated:
    text: str
    prompt_tokens: int
    completion_tokens: int
    finish_reason: str  # "stop" or "length"


class Engine:
    """One loaded checkpoint; ``generate`` runs one request at a time (a lock: one model, one forward)."""

    def __init__(self, path: str, device: str, trust_remote_code: bool) -> None:
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        info = describe_checkpoint(path)
        tokenizer_dir = path if (Path(path) / "tokenizer_config.json").is_file() else (info["base"] or path)
        self.tokenizer = AutoTokenizer.from_pretrained(
            tokenizer_dir, local_files_only=True, trust_remote_code=trust_remote_code
        )
        if info["kind"] == "adapter":
            from peft import PeftModel

            base = AutoModelForCausalLM.from_pretrained(
                info["base"], local_files_only=True, dtype=torch.float32, trust_remote_code=trust_remote_code
            )
            self.model = PeftModel.from_pretrained(base, path, local_files_only=True)
        else:
            self.model = AutoModelForCausalLM.from_pretrained(
                path, local_files_only=True, dtype=torch.float32, trust_remote_code=trust_remote_code
            )
        self.model.to(device)
        self.model.eval()
        self.device = device
        self.lock = threading.Lock()

    def chat_prompt(self, messages: list[dict[str, str]]) -> str:
        if not getattr(self.tokenizer, "chat_template", None):
            raise CheckpointError("this checkpoint's tokenizer has no chat template; use completion instead")
        return self.tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)

    def generate(
        self,
        prompt: str,
        *,
        max_tokens: int,
        temperature: float | None,
        top_p: float | None,
        stop: list[str] | None,
        seed: int | None,
        on_text: Callable[[str], None] | None = None,
        cancelled: threading.Event | None = None,
    ) -> Generated:
        import torch
        from transformers import StoppingCriteria, StoppingCriteriaList, TextStreamer

        ids = self.tokenizer(prompt, return_tensors="pt", add_special_tokens=False).to(self.device)
        prompt_tokens = int(ids["input_ids"].shape[1])
        kwargs: dict[str, Any] = {"max_new_tokens": max_tokens, "pad_token_id": self.tokenizer.pad_token_id}
        if temperature:
            kwargs.update(do_sample=True, temperature=temperature, top_p=top_p or 1.0)
        else:
            kwargs.update(do_sample=False, temperature=None, top_p=None, top_k=None)
        if stop:
            kwargs.update(stop_strings=stop, tokenizer=self.tokenizer)

        class Cancel(StoppingCriteria):
            def __call__(self, input_ids: Any, scores: Any, **kw: Any) -> Any:
                stopped = cancelled is not None and cancelled.is_set()
                return torch.full((input_ids.shape[0],), stopped, dtype=torch.bool)

        kwargs["stopping_criteria"] = StoppingCriteriaList([Cancel()])
        if on_text is not None:

            class Pieces(TextStreamer):
                def on_finalized_text(self, text: str, stream_end: bool = False) -> None:
                    if text:
                        on_text(text)

            kwargs["streamer"] = Pieces(self.tokenizer, skip_prompt=True, skip_special_tokens=True)
        with self.lock, torch.no_grad():
            if seed is not None:
                torch.manual_seed(seed)
            out = self.model.generate(**ids, **kwargs)
        new = out[0][prompt_tokens:]
        text = self.tokenizer.decode(new, skip_special_tokens=True)
        eos = self.tokenizer.eos_token_id
        ended = len(new) > 0 and int(new[-1]) == eos
        finish = "stop" if ended or len(new) < max_tokens else "length"
        if stop:
            cut = min((text.find(s) for s in stop if s in text), default=-1)
            if cut >= 0:
                text, finish = text[:cut], "stop"
        return Generated(text, prompt_tokens, len(new), finish)


def checkpoint_width(path: str) -> int | None:
    """The hidden size a full checkpoint's config names (its embeddings' dimension), if it names one."""
    config = json.loads((Path(path).expanduser() / "config.json").read_text())
    width = config.get("hidden_size") or config.get("d_model") or config.get("n_embd")
    return int(width) if isinstance(width, int) else None


class EmbeddingEngine:
    """A full checkpoint's base model (no head: ``AutoModel``), whose last hidden states, mean-pooled over
    each text's tokens and scaled to unit length, are its embeddings (the sentence-transformers recipe for
    encoders such as BERT or MiniLM). ``embed`` runs one batch at a time."""

    def __init__(self, path: str, device: str, trust_remote_code: bool) -> None:
        import torch  # noqa: F401
        from transformers import AutoModel, AutoTokenizer

        if describe_checkpoint(path)["kind"] != "full":
            raise CheckpointError(f"{path} is a LoRA adapter; embeddings come from a full checkpoint")
        self.tokenizer = AutoTokenizer.from_pretrained(
            path, local_files_only=True, trust_remote_code=trust_remote_code
        )
        if self.tokenizer.pad_token is None:  # decoder tokenizers often have none: padding is masked out
            self.tokenizer.pad_token = self.tokenizer.eos_token or self.tokenizer.unk_token
        self.model = AutoModel.from_pretrained(
            path, local_files_only=True, trust_remote_code=trust_remote_code
        )
        self.model.to(device)
        self.model.eval()
        self.device = device
        self.dimension = int(self.model.config.hidden_size)
        limit = getattr(self.model.config, "max_position_embeddings", None) or 512
        self.max_tokens = min(int(limit), int(self.tokenizer.model_max_length or limit))
        self.lock = threading.Lock()

    def embed(self, texts: list[str]) -> tuple[list[list[float]], int]:
        """Unit vectors of ``texts`` (each cut to the model's longest input) and the tokens read."""
        import torch

        batch = self.tokenizer(
            texts, padding=True, truncation=True, max_length=self.max_tokens, return_tensors="pt"
        ).to(self.device)
        with self.lock, torch.no_grad():
            hidden = self.model(**batch).last_hidden_state
        mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
        pooled = (hidden * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1.0)
        vectors = torch.nn.functional.normalize(pooled, p=2, dim=1)
        return vectors.tolist(), int(batch["attention_mask"].sum())
