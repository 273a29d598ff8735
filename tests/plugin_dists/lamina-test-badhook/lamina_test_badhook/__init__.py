"""lamina-test-badhook: a test plugin implementing a misspelled hook."""
