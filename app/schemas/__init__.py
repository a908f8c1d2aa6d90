"""Pydantic request/response models: the public API contract."""
