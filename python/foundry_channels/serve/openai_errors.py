"""OpenAI-style errors: `{"error": {"message", "type", "param", "code"}}` with an HTTP status,
as the OpenAI API answers a bad request (400, `param` naming the field), an unknown model
(404, code `model_not_found`) or an overloaded server (503)."""

from __future__ import annotations

from typing import Any, Dict, Optional

# The engine's ValueErrors name their argument in the message; these are its arguments, in the
# order they are looked for, and the request field each one came from.
ENGINE_ARGUMENTS = ("max_tokens", "stop", "seed", "logprobs", "prompt")


class OpenAIError(Exception):
    def __init__(self, message: str, param: Optional[str] = None, *, status: int = 400,
                 type: str = "invalid_request_error", code: Optional[str] = None) -> None:
        super().__init__(message)
        self.message, self.param, self.status, self.type, self.code = message, param, status, type, code

    def body(self) -> Dict[str, Any]:
        return {"error": {"message": self.message, "type": self.type, "param": self.param,
                          "code": self.code}}

    def response(self):
        from starlette.responses import JSONResponse

        return JSONResponse(self.body(), status_code=self.status)


def engine_refusal(error: ValueError, prompt_field: str) -> OpenAIError:
    """The engine's ValueError for submit() as a 400 naming the request field it concerns
    (the prompt of a chat request is its `messages`)."""
    message = str(error)
    positions = [(message.find(name), name) for name in ENGINE_ARGUMENTS if name in message]
    param = min(positions)[1] if positions else None
    if param == "prompt":
        param = prompt_field
    return OpenAIError(message, param)
