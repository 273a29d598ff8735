"""Lamina's inline::transformers inference provider: local Hugging Face checkpoints, LoRA adapters too."""
