"""API declarations: pydantic shapes and Protocols whose methods carry their HTTP routes. No I/O here."""
