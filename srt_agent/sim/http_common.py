"""Request plumbing shared by the simulated server's endpoints: errors in SGLang's JSON shape,
integer fields, one-element batches."""

from __future__ import annotations

from aiohttp import web

SSE_HEADERS = {"Content-Type": "text/event-stream", "Cache-Control": "no-cache"}


class RequestError(Exception):
    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


def error_response(status: int, message: str) -> web.Response:
    kind = "BadRequestError" if status < 500 else "InternalServerError"
    return web.json_response({"object": "error", "message": message, "type": kind, "param": None,
                              "code": status}, status=status)


def int_field(value: object, name: str, default: int | None) -> int | None:
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, (int, float)) or int(value) != value:
        raise RequestError(f"{name} must be an integer, got {value!r}")
    return int(value)


def single(value: object, name: str) -> object:
    """Unwrap a one-element batch; reject real batches (the simulator serves n=1 requests)."""
    if isinstance(value, list) and value and isinstance(value[0], (str, list)):
        if len(value) != 1:
            raise RequestError(f"batched {name} is not supported by the simulated engine")
        return value[0]
    return value
