"""lamina-test-beta: a second well-behaved test plugin (safety provider, shield, veto, middleware)."""
