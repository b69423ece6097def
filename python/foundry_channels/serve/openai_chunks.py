"""The response bodies and stream chunks of the OpenAI API, for one request.

Completions: `object` "text_completion", `choices[0].text`; chat: "chat.completion" (whole) or
"chat.completion.chunk" (streamed) with `choices[0].message` / `delta` (the first chunk carries
the role, the last an empty delta with the finish_reason). With
`stream_options.include_usage` every chunk has `"usage": null` and one more chunk with empty
`choices` and the usage follows the last one (then `data: [DONE]`), as the OpenAI API does."""

from __future__ import annotations

import codecs
import functools
import json
import secrets
import time
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

TEXT = "text"
CHAT = "chat"
COMPACT = (",", ":")  # JSON separators: no spaces, as the OpenAI API sends


def _mark(name: str) -> str:
    return f"\ufdd0{name}\ufdd0"  # a placeholder no text holds (noncharacters)


_ID, _CREATED, _VALUE = _mark("id"), _mark("created"), _mark("value")


def usage_of(request: Any) -> Dict[str, int]:
    prompt, completion = int(request.prompt_tokens), int(request.completion_tokens)
    return {"prompt_tokens": prompt, "completion_tokens": completion,
            "total_tokens": prompt + completion}


class _Template:
    """A chunk's JSON encoded once with placeholders for the id, the created time and one
    value, split around them: filling it in is a few string joins, not a dict and a
    json.dumps per chunk. The parts are cached per (kind, model, include_usage)."""

    def __init__(self, sample: Dict[str, Any]) -> None:
        encoded = json.dumps(sample, separators=COMPACT)
        head, rest = encoded.split(json.dumps(_ID))
        middle, rest = rest.split(json.dumps(_CREATED))
        self.parts = (head, middle) + tuple(rest.split(json.dumps(_VALUE)))
        assert len(self.parts) == 4, "one id, one created time and one value"

    def filled(self, id_json: str, created: str) -> Tuple[str, str]:
        """(the JSON up to the value, the JSON after it) for one response."""
        head, middle, before, after = self.parts
        return head + id_json + middle + created + before, after


@functools.lru_cache(maxsize=64)
def _templates(kind: str, model: str, include_usage: bool) -> Dict[str, _Template]:
    shape = ResponseShape.__new__(ResponseShape)
    shape.kind, shape.model, shape.include_usage = kind, model, include_usage
    shape.id, shape.created = _ID, _CREATED
    return {"text": _Template(shape.chunk(_VALUE)),
            "finish": _Template(shape.chunk("" if kind == TEXT else None, None, _VALUE)),
            "usage": _Template(shape.usage_chunk(_VALUE))}


class ResponseShape:
    """id, created and model of one response, and the dicts it is sent as (the stream's text,
    last and usage chunks as JSON from templates: text_chunk_json, finish_chunk_json,
    usage_chunk_json)."""

    def __init__(self, kind: str, model: str, include_usage: bool = False) -> None:
        self.kind, self.model, self.include_usage = kind, model, include_usage
        self.id = ("cmpl-" if kind == TEXT else "chatcmpl-") + secrets.token_hex(12)
        self.created = int(time.time())
        self._templates = _templates(kind, model, include_usage)
        self._text_json = self._filled("text")

    def _filled(self, name: str) -> Tuple[str, str]:
        return self._templates[name].filled(json.dumps(self.id), str(self.created))

    def _head(self, object_name: str) -> Dict[str, Any]:
        return {"id": self.id, "object": object_name, "created": self.created,
                "model": self.model, "system_fingerprint": None}

    def chunk(self, text: Optional[str], logprobs: Any = None,
              finish_reason: Optional[str] = None) -> Dict[str, Any]:
        """A streamed chunk; for chat, text None is an empty delta (the last chunk's)."""
        if self.kind == TEXT:
            choice = {"index": 0, "text": text or "", "logprobs": logprobs,
                      "finish_reason": finish_reason}
            out = self._head("text_completion")
        else:
            delta = {} if text is None else {"content": text}
            choice = {"index": 0, "delta": delta, "logprobs": logprobs,
                      "finish_reason": finish_reason}
            out = self._head("chat.completion.chunk")
        out["choices"] = [choice]
        if self.include_usage:
            out["usage"] = None
        return out

    def text_chunk_json(self, text: str) -> str:
        """json.dumps(self.chunk(text), separators=COMPACT), faster."""
        head, tail = self._text_json
        return head + json.dumps(text) + tail

    def finish_chunk_json(self, finish_reason: str) -> str:
        """json.dumps(self.chunk(<no text>, None, finish_reason), separators=COMPACT), faster:
        the stream's last chunk."""
        head, tail = self._filled("finish")
        return head + json.dumps(finish_reason) + tail

    def usage_chunk_json(self, usage: Dict[str, int]) -> str:
        """json.dumps(self.usage_chunk(usage), separators=COMPACT), faster."""
        head, tail = self._filled("usage")
        return head + json.dumps(usage, separators=COMPACT) + tail

    def role_chunk(self) -> Dict[str, Any]:
        """Chat's first chunk: the role, before any text."""
        out = self.chunk("")
        out["choices"][0]["delta"] = {"role": "assistant", "content": ""}
        return out

    def usage_chunk(self, usage: Dict[str, int]) -> Dict[str, Any]:
        out = self._head("text_completion" if self.kind == TEXT else "chat.completion.chunk")
        out["choices"] = []
        out["usage"] = usage
        return out

    def body(self, text: str, logprobs: Any, finish_reason: str,
             usage: Dict[str, int]) -> Dict[str, Any]:
        """The whole response (stream false)."""
        if self.kind == TEXT:
            out = self._head("text_completion")
            choice = {"index": 0, "text": text, "logprobs": logprobs,
                      "finish_reason": finish_reason}
        else:
            out = self._head("chat.completion")
            choice = {"index": 0, "message": {"role": "assistant", "content": text},
                      "logprobs": logprobs, "finish_reason": finish_reason}
        out["choices"] = [choice]
        out["usage"] = usage
        return out


def token_string(data: bytes) -> str:
    """A token's text; a token that is not whole UTF-8 on its own (a byte of a multi-byte
    character) is written "bytes:\\xe2\\x80" as the OpenAI API writes such tokens."""
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return "bytes:" + "".join(f"\\x{b:02x}" for b in data)


class TokenLogprobs:
    """The `logprobs` of each piece of one response: completions' {tokens, token_logprobs,
    top_logprobs, text_offset} or chat's {content: [{token, logprob, bytes, top_logprobs}]}.
    Only the sampled token's log-probability exists, so there are no alternatives
    (completions' top_logprobs null, chat's top_logprobs []). text_offset is the character
    offset in the completion text where each token starts."""

    def __init__(self, kind: str, token_bytes: Callable[[int], bytes]) -> None:
        self.kind, self._token_bytes = kind, token_bytes
        self._chars = 0
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")

    def of(self, tokens: Sequence[int], logprobs: Sequence[float]) -> Dict[str, Any]:
        data = [self._token_bytes(int(t)) for t in tokens]
        values = [float(v) for v in logprobs]
        if self.kind == CHAT:
            return {"content": [{"token": token_string(b), "logprob": v, "bytes": list(b),
                                 "top_logprobs": []} for b, v in zip(data, values)]}
        offsets = []
        for b in data:
            offsets.append(self._chars)
            self._chars += len(self._decoder.decode(b))
        return {"tokens": [token_string(b) for b in data], "token_logprobs": values,
                "top_logprobs": None, "text_offset": offsets}

    @staticmethod
    def merged(parts: List[Dict[str, Any]]) -> Optional[Dict[str, Any]]:
        """The logprobs of a whole response from those of its pieces."""
        if not parts:
            return None
        out: Dict[str, Any] = {key: ([] if value is not None else None)
                               for key, value in parts[0].items()}
        for part in parts:
            for key, value in part.items():
                if value is not None:
                    out[key].extend(value)
        return out
