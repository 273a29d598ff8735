"""lamina-test-jobs: job kinds, a route that submits them and a counting job executor, for tests."""
