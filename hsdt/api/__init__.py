"""The REST API: its sign-in rules and (elsewhere) its FastAPI routes."""
