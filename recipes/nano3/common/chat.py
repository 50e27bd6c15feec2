"""The chat format, chat tokenization with an assistant-only loss mask, and packing.

Format (identical to the tokenizer's `chat_template`, which save_pretrained writes):

    <|im_start|>user\\nWhat is 3 + 4?<|im_end|>\\n<|im_start|>assistant\\n7<|im_end|>\\n

Loss mask: 1 on the tokens of each assistant message's content and its closing
<|im_end|> (so the model learns to stop), 0 everywhere else (roles, user/system text,
the newline after <|im_end|>, padding). `loss_mask[t] = 1` means "predict input_ids[t]
from the tokens before it".
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

EOS, PAD, IM_START, IM_END = "<|endoftext|>", "<|pad|>", "<|im_start|>", "<|im_end|>"
SPECIAL_TOKENS = (EOS, PAD, IM_START, IM_END)  # ids 0, 1, 2, 3 in a trained tokenizer
ROLES = ("system", "user", "assistant")

CHAT_TEMPLATE = (
    "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


def render(messages: list[dict], add_generation_prompt: bool = False) -> tuple[str, list[tuple[int, int]]]:
    """(text, [(start, end) char spans of assistant content + its <|im_end|>])."""
    parts, spans, pos = [], [], 0
    for m in messages:
        head = f"{IM_START}{m['role']}\n"
        body = f"{m['content']}{IM_END}"
        if m["role"] == "assistant":
            spans.append((pos + len(head), pos + len(head) + len(body)))
        chunk = head + body + "\n"
        parts.append(chunk)
        pos += len(chunk)
    if add_generation_prompt:
        parts.append(f"{IM_START}assistant\n")
    return "".join(parts), spans


def check_messages(messages) -> str | None:
    """Why a record's messages are unusable, or None when they are fine."""
    if not isinstance(messages, list) or not messages:
        return "messages must be a non-empty list of {role, content}"
    for i, m in enumerate(messages):
        if not isinstance(m, dict) or m.get("role") not in ROLES or not isinstance(m.get("content"), str):
            return f"messages[{i}] must be {{role: {'|'.join(ROLES)}, content: string}}"
    if not any(m["role"] == "assistant" for m in messages):
        return "no assistant message (nothing to learn from)"
    return None


def encode_chats(tokenizer, conversations: list[list[dict]]) -> list[tuple[list[int], list[int]]]:
    """[(input_ids, loss_mask)] per conversation, via one batched encode with offsets."""
    rendered = [render(c) for c in conversations]
    encodings = tokenizer.encode_batch([text for text, _ in rendered], add_special_tokens=False)
    out = []
    for (_, spans), enc in zip(rendered, encodings):
        mask = [0] * len(enc.ids)
        for t, (start, _) in enumerate(enc.offsets):
            for s, e in spans:
                if s <= start < e:
                    mask[t] = 1
                    break
        out.append((enc.ids, mask))
    return out


@dataclass
class Packer:
    """Greedy in-order packing of sequences into rows of exactly seq_length tokens.

    A row holds whole sequences back to back, then PAD (loss 0). `boundaries` are the
    cumulative offsets [0, len1, len1+len2, ..., n_real] of the sequences in the row
    (cu_seqlens style). A sequence longer than seq_length is dropped and counted.
    """

    seq_length: int
    pad_id: int
    rows: list[dict] = field(default_factory=list)
    dropped: int = 0
    sequences: int = 0
    _ids: list[int] = field(default_factory=list)
    _mask: list[int] = field(default_factory=list)
    _bounds: list[int] = field(default_factory=lambda: [0])

    def add(self, ids: list[int], mask: list[int]) -> None:
        if len(ids) > self.seq_length:
            self.dropped += 1
            return
        if len(self._ids) + len(ids) > self.seq_length:
            self.flush()
        self._ids += ids
        self._mask += mask
        self._bounds.append(len(self._ids))
        self.sequences += 1

    def flush(self) -> None:
        if not self._ids:
            return
        n = len(self._ids)
        pad = self.seq_length - n
        self.rows.append({
            "input_ids": np.asarray(self._ids + [self.pad_id] * pad, dtype=np.int32),
            "loss_mask": np.asarray(self._mask + [0] * pad, dtype=np.int8),
            "boundaries": np.asarray(self._bounds, dtype=np.int32),
            "num_tokens": n,
        })
        self._ids, self._mask, self._bounds = [], [], [0]
