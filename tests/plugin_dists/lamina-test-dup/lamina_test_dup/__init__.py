"""lamina-test-dup: a test plugin offering remote::vllm, which lamina-openai-compat already offers."""
