"""Checking a model's answer against a reference string (RL reward, eval exact match).

    answer_check("Kelmo<|im_end|>", "Kelmo")                        -> True
    answer_check("The capital of Zoria is Kelmo.<|im_end|>", "Kelmo") -> True   (a restated fact)
    answer_check("3 + 4 = 7", "7")                                   -> True
    answer_check(" -4\n5 + 1 = 6", "-4")                            -> True   (only the first line counts)
    answer_check("41", "14")                                         -> False

Rules: the response is cut at the first end marker (<|im_end|>, <|endoftext|>) or
newline after any leading whitespace: that line is the answer. Its end is what counts,
so an answer may restate the fact before it (SFT teaches "The capital of Zoria is
Kelmo.", the sentence pretraining stated it in): for an integer reference, the last
integer in the line must equal it; otherwise the line, ignoring case, surrounding
whitespace/punctuation and repeated spaces, must be the reference or end with it as
whole words. One answer per line: "Kelmo or Brask" answers Brask.
"""

from __future__ import annotations

import re

STOP_MARKERS = ("<|im_end|>", "<|endoftext|>", "<|im_start|>", "\n")
_INT = re.compile(r"-?\d+")
_STRIP = " \t\r\n.,;:!?\"'`"


def extract_answer(response: str) -> str:
    """The answer part of a generated response: its first line, stripped."""
    text = response.lstrip()
    cut = min((i for i in (text.find(m) for m in STOP_MARKERS) if i >= 0), default=len(text))
    return text[:cut].strip(_STRIP)


def _norm(text: str) -> str:
    return " ".join(text.strip(_STRIP).split()).casefold()


def answer_check(response: str, reference: str) -> bool:
    """True when the response's answer matches the reference (see module doc)."""
    answer, ref = extract_answer(response), _norm(str(reference))
    if _INT.fullmatch(ref):
        found = _INT.findall(answer)
        return bool(found) and int(found[-1]) == int(ref)
    text = _norm(answer)
    return bool(ref) and (text == ref or text.endswith(" " + ref))


def reward(response: str, reference: str) -> float:
    """1.0 for a correct answer, else 0.0 (the RL reward)."""
    return 1.0 if answer_check(response, reference) else 0.0
