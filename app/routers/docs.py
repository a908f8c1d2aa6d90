"""Shared OpenAPI fragments for the routers."""

from typing import Any

from app.errors import PROBLEM_MEDIA_TYPE


def problem(description: str) -> dict[str, Any]:
    return {
        "description": description,
        "content": {PROBLEM_MEDIA_TYPE: {"schema": {"$ref": "#/components/schemas/Problem"}}},
    }


def json_body(schema_name: str, example: Any | None = None) -> dict[str, Any]:
    """``openapi_extra`` for endpoints that read the raw body themselves (for speed, or
    to validate batch items one by one) yet must document it."""
    content: dict[str, Any] = {"schema": {"$ref": f"#/components/schemas/{schema_name}"}}
    if example is not None:
        content["example"] = example
    return {"requestBody": {"required": True, "content": {"application/json": content}}}


NOT_FOUND: dict[int | str, dict[str, Any]] = {
    404: problem("Not found, or outside the API key's locations.")
}
TOO_LARGE: dict[int | str, dict[str, Any]] = {413: problem("The body exceeds the size limit.")}
CONFLICT: dict[int | str, dict[str, Any]] = {
    409: problem("An event with this event_id but different content is stored.")
}
