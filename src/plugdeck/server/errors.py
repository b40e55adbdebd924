"""Errors in OpenAI's shape, `{"error": {"message", "type", "param", "code"}}`, for every route.

OpenAI clients read this shape on any status; the page reads the same one. Which status a plugdeck
error gets follows plugdeck.errors: an ApiError carries its own; any other UserError that reaches a
route is the caller's to fix (400), a ServiceError is a service behind us failing (502); anything else
is a bug of ours (500, details only in the log).
"""

from __future__ import annotations

from typing import Any

from fastapi.responses import JSONResponse

from ..errors import ServiceError, UserError

TYPES = {400: "invalid_request_error", 401: "authentication_error", 403: "permission_error",
         404: "invalid_request_error", 409: "invalid_request_error", 413: "invalid_request_error",
         422: "invalid_request_error", 429: "rate_limit_error"}


class ApiError(UserError):
    """An HTTP error whose message is written for the caller."""

    def __init__(self, status: int, message: str, *, code: str | None = None, param: str | None = None,
                 headers: dict[str, str] | None = None):
        super().__init__(message)
        self.status, self.message, self.code, self.param = status, message, code, param
        self.headers = headers or {}

    def body(self) -> dict[str, Any]:
        return error_body(self.status, self.message, self.code, self.param)

    def response(self) -> JSONResponse:
        return JSONResponse(self.body(), status_code=self.status, headers=self.headers)


def error_body(status: int, message: str, code: str | None = None, param: str | None = None) -> dict[str, Any]:
    kind = TYPES.get(status, "server_error" if status >= 500 else "invalid_request_error")
    return {"error": {"message": message, "type": kind, "param": param, "code": code}}


def from_user_error(exc: UserError) -> ApiError:
    """The HTTP error for a plugdeck error whose message is meant to be read; secrets are redacted."""
    if isinstance(exc, ApiError):
        return exc
    from ..redaction import redact

    if isinstance(exc, ServiceError):
        return ApiError(502, redact(str(exc)), code="service_error")
    return ApiError(400, redact(str(exc)), code="invalid_request")
