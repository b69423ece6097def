"""How a chat conversation becomes the model's prompt.

The sample model is a byte-level n-gram model with no role tokens. The multi-turn sample
(workflows/multi_turn_chat_u32.json) keeps one history: each user turn's text, then the model's
reply, which ends where the model samples its end-of-turn token, a newline, that is not part of
the history. A conversation is rendered the same way: the text of every message in order, as it
is (system, developer, user and assistant alike; put separators such as a leading space in the
text itself, as the sample's prompts do). The new reply continues from there and ends at the
next END_OF_TURN, a stop string of every chat request (not sent, finish_reason "stop"), so a
reply is one line.

Stateless like the OpenAI API: a client sends the whole conversation each turn, and with the
same seed the replies are those of the multi-turn sample run turn after turn (the sampler is
keyed by position, and the history so far is exactly this prompt)."""

from __future__ import annotations

from typing import Iterable, Tuple

END_OF_TURN = "\n"


def render_chat(messages: Iterable[Tuple[str, str]]) -> str:
    """(role, text) pairs -> the prompt (the roles leave no trace: the model has no role
    tokens)."""
    return "".join(text for _role, text in messages)
