"""inline::transformers embeddings through a real ``lamina run``: a tiny random BERT built here (a
WordPiece tokenizer trained in-process, ``save_pretrained``; nothing downloaded) registered as an
embedding model, driven by llama-stack-client 0.2.12 and the openai SDK. Random weights embed without
meaning, so the checks are the contract: unit vectors of the checkpoint's width, the same text the
same vector on both APIs and in any batch, base64 as OpenAI encodes it, and clear refusals.
"""

from __future__ import annotations

import base64
import math
import struct
from collections.abc import Callable
from pathlib import Path

import llama_stack_client
import openai
import pytest
from llama_stack_client import LlamaStackClient

from lamina.testing.processes import ServerProcess

pytestmark = pytest.mark.e2e

TEXTS = ["the sky is blue", "a tiger is a big cat", "paris is the capital of france"]


def build_tiny_bert(directory: Path) -> Path:
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors, trainers
    from transformers import BertConfig, BertModel, BertTokenizerFast

    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    tok = Tokenizer(models.WordPiece(unk_token="[UNK]"))
    tok.normalizer = normalizers.BertNormalizer(lowercase=True)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tok.train_from_iterator(TEXTS * 10, trainers.WordPieceTrainer(vocab_size=120, special_tokens=specials))
    cls, sep = tok.token_to_id("[CLS]"), tok.token_to_id("[SEP]")
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]",
        pair="[CLS] $A [SEP] $B [SEP]",
        special_tokens=[("[CLS]", cls), ("[SEP]", sep)],
    )
    fast = BertTokenizerFast(
        tokenizer_object=tok,
        unk_token="[UNK]",
        pad_token="[PAD]",
        cls_token="[CLS]",
        sep_token="[SEP]",
        mask_token="[MASK]",
        model_max_length=64,
    )
    config = BertConfig(
        vocab_size=fast.vocab_size,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=64,
    )
    directory.mkdir(parents=True)
    BertModel(config).save_pretrained(directory)
    fast.save_pretrained(directory)
    return directory


def test_an_encoder_checkpoint_embeds_through_both_apis(
    start_lamina: Callable[..., ServerProcess], tmp_path: Path
) -> None:
    bert = build_tiny_bert(tmp_path / "bert")
    server = start_lamina(
        {
            "version": 2,
            "image_name": "transformers-embeddings-e2e",
            "providers": {
                "inference": [
                    {"provider_id": "transformers", "provider_type": "inline::transformers", "config": {}}
                ]
            },
            "metadata_store": {"type": "sqlite", "db_path": str(tmp_path / "registry.db")},
            "models": [
                {
                    "model_id": "bert",
                    "provider_id": "transformers",
                    "provider_model_id": str(bert),
                    "model_type": "embedding",
                    "metadata": {"embedding_dimension": 32},
                }
            ],
        }
    )
    c = LlamaStackClient(base_url=server.url, max_retries=0, timeout=60)
    oai = openai.OpenAI(base_url=f"{server.url}/v1/openai/v1", api_key="none", max_retries=0)

    native = c.inference.embeddings(model_id="bert", contents=TEXTS).embeddings
    assert len(native) == 3 and all(len(v) == 32 for v in native)
    assert all(abs(math.sqrt(sum(x * x for x in v)) - 1) < 1e-5 for v in native)
    assert native[0] != native[1]

    answer = oai.embeddings.create(model="bert", input=TEXTS[1])
    assert answer.usage.prompt_tokens > 0 and answer.model == "bert"
    # the same text, alone or in a padded batch, on either API: the same vector
    assert max(abs(a - b) for a, b in zip(answer.data[0].embedding, native[1], strict=True)) < 1e-5
    encoded = oai.embeddings.create(model="bert", input=TEXTS, encoding_format="base64")
    raw = encoded.data[2].embedding
    decoded = struct.unpack("<32f", base64.b64decode(raw)) if isinstance(raw, str) else raw
    assert max(abs(a - b) for a, b in zip(decoded, native[2], strict=True)) < 1e-5

    with pytest.raises(openai.BadRequestError, match="32-dimensional vectors only"):
        oai.embeddings.create(model="bert", input="x", dimensions=16)
    with pytest.raises(llama_stack_client.BadRequestError, match=r"metadata\.embedding_dimension"):
        c.models.register(
            model_id="bert-wrong",
            provider_id="transformers",
            provider_model_id=str(bert),
            model_type="embedding",
            metadata={"embedding_dimension": 384},
        )
    with pytest.raises(openai.BadRequestError, match="this call needs an llm model"):
        oai.chat.completions.create(model="bert", messages=[{"role": "user", "content": "hi"}])
