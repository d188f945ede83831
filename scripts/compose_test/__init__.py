"""`make compose-test` (see __main__.py)."""
