"""lamina-test-alpha: a well-behaved test plugin (inference provider, default model, route, command)."""
