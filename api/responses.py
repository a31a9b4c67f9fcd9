"""Serialize a response model once, in pydantic-core, and hand FastAPI finished bytes.

Why: returning a model makes FastAPI validate it against `response_model` again and then
serialize it; building the model already validated it. Routes keep `response_model=` in
their decorator (OpenAPI is unchanged) and return `json_response(model)`.
"""

from pydantic import BaseModel
from starlette.responses import Response

JSON = "application/json"


def json_response(model: BaseModel) -> Response:
    return Response(model.__pydantic_serializer__.to_json(model), media_type=JSON)


def json_bytes_response(body: bytes) -> Response:
    """For answers cached as bytes (analytics)."""
    return Response(body, media_type=JSON)
