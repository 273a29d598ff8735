"""Lamina's inline::huggingface post-training provider: SFT (full or LoRA) and DPO (transformers, trl)."""
