"""Inline inference on llama.cpp: any GGUF served in-process (provider type ``inline::llama-cpp``)."""
