"""The request bodies of `POST /v1/completions` and `POST /v1/chat/completions`, checked
with pydantic against the OpenAI API's field names and types, turned into one
GenerationParams for the engine.

What the sample model cannot do is refused with a 400 naming the field, never ignored: sampling
knobs other than their neutral value (temperature and top_p 1, penalties 0, n 1, ...), more
than one prompt, top alternatives in logprobs, tools. Unknown fields are refused as the OpenAI
API refuses them ("Unrecognized request argument supplied: ...")."""

from __future__ import annotations

import json
import secrets
from dataclasses import dataclass
from typing import Annotated, Any, List, Literal, Optional, Sequence, Tuple, Union

from pydantic import (AfterValidator, BaseModel, ConfigDict, Field, StrictBool, StrictInt,
                      StrictStr, ValidationError, field_validator)

from .chat_template import END_OF_TURN, render_chat
from .openai_errors import OpenAIError

MAX_STOP_STRINGS = 4  # the OpenAI API's limit
COMPLETION_MAX_TOKENS = 16  # the OpenAI API's default for /v1/completions
CHAT_MAX_TOKENS = 80  # a reply of the multi-turn sample at most, by default


@dataclass(frozen=True)
class GenerationParams:
    """One engine request and how to answer it."""

    model: str
    prompt: Union[str, Tuple[int, ...]]
    max_tokens: int
    seed: int
    stop: Tuple[str, ...]
    logprobs: bool
    stream: bool
    include_usage: bool


def _only(value: Any, why: str):
    """A field the model supports at one value only (None, the default, means that value)."""
    def check(v: Any) -> Any:
        if v is not None and (isinstance(v, bool) != isinstance(value, bool) or v != value):
            raise ValueError(f"only {json.dumps(value)} is supported: {why}")
        return v
    return Annotated[Optional[Any], AfterValidator(check)]


_AS_IS = "the model samples its n-gram distribution as it is"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class StreamOptions(_Strict):
    include_usage: Optional[StrictBool] = None


class _Common(_Strict):
    model: StrictStr
    stream: Optional[StrictBool] = None
    stream_options: Optional[StreamOptions] = None
    max_tokens: Optional[StrictInt] = None
    stop: Any = None
    seed: Optional[StrictInt] = None
    user: Optional[StrictStr] = None
    n: _only(1, "one choice per request") = None
    temperature: _only(1, _AS_IS) = None
    top_p: _only(1, _AS_IS) = None
    presence_penalty: _only(0, _AS_IS) = None
    frequency_penalty: _only(0, _AS_IS) = None
    logit_bias: _only({}, _AS_IS) = None

    @field_validator("stop")
    @classmethod
    def _stop(cls, v: Any) -> Any:
        if v is None or isinstance(v, str):
            return v
        if not isinstance(v, list) or not all(isinstance(s, str) for s in v):
            raise ValueError("must be a string or a list of strings")
        if len(v) > MAX_STOP_STRINGS:
            raise ValueError(f"at most {MAX_STOP_STRINGS} stop strings, got {len(v)}")
        return v


class CompletionBody(_Common):
    prompt: Any
    logprobs: Optional[StrictInt] = None
    echo: _only(False, "the prompt is not sent back") = None
    best_of: _only(1, "one choice per request") = None
    suffix: _only(None, "the model only continues the prompt") = None

    @field_validator("prompt")
    @classmethod
    def _prompt(cls, v: Any) -> Any:
        # A string, or a list of token ids; the API's batch forms with exactly one prompt.
        if isinstance(v, list) and len(v) == 1 and isinstance(v[0], (str, list)):
            v = v[0]
        if isinstance(v, str):
            return v
        if isinstance(v, list) and v and all(isinstance(t, int) and not isinstance(t, bool) for t in v):
            return tuple(v)
        if isinstance(v, list) and len(v) > 1 and all(isinstance(p, (str, list)) for p in v):
            raise ValueError("one prompt per request: send one request for each")
        raise ValueError("must be a string or a non-empty list of token ids")

    @field_validator("logprobs")
    @classmethod
    def _logprobs(cls, v: Optional[int]) -> Optional[int]:
        if v is not None and v != 0:
            raise ValueError("only 0 is supported (each sampled token's log-probability, "
                             "no alternatives)")
        return v


class ChatMessage(_Strict):
    role: Literal["system", "developer", "user", "assistant"]
    content: Any
    name: Optional[StrictStr] = None

    @field_validator("content")
    @classmethod
    def _content(cls, v: Any) -> str:
        """A string, or a list of text parts ({"type": "text", "text": ...}), joined."""
        if isinstance(v, str):
            return v
        if isinstance(v, list) and all(isinstance(p, dict) and p.get("type") == "text"
                                       and isinstance(p.get("text"), str) and len(p) == 2
                                       for p in v):
            return "".join(p["text"] for p in v)
        raise ValueError('must be a string or a list of text parts {"type": "text", "text": ...} '
                         "(the model reads text only)")


class ChatBody(_Common):
    messages: Annotated[List[ChatMessage], Field(min_length=1)]
    max_completion_tokens: Optional[StrictInt] = None
    logprobs: Optional[StrictBool] = None
    top_logprobs: _only(0, "each sampled token's log-probability, no alternatives") = None


def parse_completion(body: Any) -> GenerationParams:
    request = _validated(CompletionBody, body)
    return _params(request, request.prompt, request.max_tokens, COMPLETION_MAX_TOKENS,
                   request.logprobs is not None, ())


def parse_chat(body: Any) -> GenerationParams:
    request = _validated(ChatBody, body)
    if request.max_tokens is not None and request.max_completion_tokens is not None:
        raise OpenAIError("give max_completion_tokens or max_tokens (its older name), not both",
                          "max_tokens")
    max_tokens = request.max_completion_tokens if request.max_completion_tokens is not None \
        else request.max_tokens
    prompt = render_chat((m.role, m.content) for m in request.messages)
    return _params(request, prompt, max_tokens, CHAT_MAX_TOKENS, bool(request.logprobs),
                   (END_OF_TURN,))


def _params(request: _Common, prompt: Any, max_tokens: Optional[int], default_max: int,
            logprobs: bool, extra_stop: Sequence[str]) -> GenerationParams:
    if request.stream_options is not None and not request.stream:
        raise OpenAIError("stream_options is only allowed when stream is true", "stream_options")
    stop = [request.stop] if isinstance(request.stop, str) else list(request.stop or ())
    stop += [s for s in extra_stop if s not in stop]
    seed = request.seed if request.seed is not None else secrets.randbits(32)
    include_usage = bool(request.stream_options and request.stream_options.include_usage)
    return GenerationParams(model=request.model, prompt=prompt,
                            max_tokens=default_max if max_tokens is None else max_tokens,
                            seed=seed, stop=tuple(stop), logprobs=logprobs,
                            stream=bool(request.stream), include_usage=include_usage)


def _validated(model: type, body: Any) -> Any:
    if not isinstance(body, dict):
        raise OpenAIError("the request body must be a JSON object")
    try:
        return model.model_validate(body)
    except ValidationError as e:
        raise _first_error(e) from None


def _first_error(error: ValidationError) -> OpenAIError:
    first = error.errors(include_url=False)[0]
    param = _param_path(first["loc"])
    if first["type"] == "extra_forbidden":
        return OpenAIError(f"Unrecognized request argument supplied: {param}", param)
    if first["type"] == "missing":
        return OpenAIError(f"Missing required parameter: '{param}'", param)
    message = first["msg"].removeprefix("Value error, ")
    given = json.dumps(first.get("input"), default=str)
    if len(given) > 60:
        given = given[:57] + "..."
    return OpenAIError(f"Invalid value for '{param}': {message} (got {given})", param)


def _param_path(loc: Sequence[Any]) -> str:
    """("messages", 0, "content") -> "messages[0].content"; pydantic's union member tags
    (e.g. "list[TextPart]") are not part of the request and are left out."""
    path = ""
    for part in loc:
        if isinstance(part, int):
            path += f"[{part}]"
        elif str(part).isidentifier():
            path += ("." if path else "") + str(part)
    return path
