"""The read-only HTTP API over the warehouse (`create_app` in api.app, docs/api.md)."""
