"""Errors the HTTP API reports, in Toxiproxy's ``{"error": ..., "status": ...}`` shape.

Messages and status codes follow Toxiproxy's ``api.go`` so that clients
written against the real server (which match on status, sometimes on text)
behave the same against this one.
"""

from __future__ import annotations

import json

from minietcd.errors import LabError


class ApiError(LabError):
    """An error with the HTTP status the API answers it with."""

    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.message = message
        self.status = status

    def to_json(self) -> dict[str, object]:
        return {"error": self.message, "status": self.status}

    def body(self) -> str:
        # Go's http.Error appends a newline to the JSON text; keep the bytes alike.
        return json.dumps(self.to_json()) + "\n"

    def joined(self, detail: str) -> ApiError:
        """Toxiproxy's ``joinError``: the generic message, a colon, the detail."""
        return ApiError(f"{self.message}: {detail}", self.status)


BAD_REQUEST_BODY = ApiError("bad request body", 400)
MISSING_FIELD = ApiError("missing required field", 400)
PROXY_NOT_FOUND = ApiError("proxy not found", 404)
PROXY_ALREADY_EXISTS = ApiError("proxy already exists", 409)
INVALID_STREAM = ApiError("stream was invalid, can be either upstream or downstream", 400)
INVALID_TOXIC_TYPE = ApiError("invalid toxic type", 400)
TOXIC_ALREADY_EXISTS = ApiError("toxic already exists", 409)
TOXIC_NOT_FOUND = ApiError("toxic not found", 404)
