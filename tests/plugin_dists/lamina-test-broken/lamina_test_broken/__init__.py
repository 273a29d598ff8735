"""lamina-test-broken: a test plugin whose hook module fails to import."""
