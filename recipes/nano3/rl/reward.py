"""The verifiable reward: is the answer right (common/answers.py), is it well formed.

    score("3 + 4 = 7<|im_end|>", "7", format_weight=0.1)  -> Score(reward=1.1, correct=True, formatted=True)
    score("3 + 4 = 7\n3 + 5", "7", format_weight=0.1)     -> Score(reward=1.0, correct=True, formatted=False)
    score("8<|im_end|>", "7", format_weight=0.1)           -> Score(reward=0.1, correct=False, formatted=True)

Well formed = what SFT taught: a non-empty one-line answer (the bare answer or the fact
restated, common/answers.py) followed by <|im_end|>, so the turn ends; for an integer
reference the line holds an integer. A response is the decoded completion with its
special tokens kept.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from recipes.nano3.common.answers import answer_check

IM_END = "<|im_end|>"
_INT = re.compile(r"-?\d+")


@dataclass(frozen=True)
class Score:
    reward: float
    correct: bool
    formatted: bool


def well_formed(response: str, reference: str) -> bool:
    head, sep, _ = response.partition(IM_END)
    answer = head.strip()
    if not sep or not answer or "\n" in answer or "<|" in answer:
        return False
    return bool(_INT.search(answer)) if _INT.fullmatch(str(reference).strip()) else True


def score(response: str, reference: str, format_weight: float) -> Score:
    correct, formatted = answer_check(response, reference), well_formed(response, reference)
    return Score(float(correct) + format_weight * float(formatted), correct, formatted)


def summarize(scores: list[Score], lengths: list[int]) -> dict:
    """Mean reward, accuracy (correct answers), format rate and response length (tokens)."""
    n = max(1, len(scores))
    return {"reward": sum(s.reward for s in scores) / n, "accuracy": sum(s.correct for s in scores) / n,
            "format": sum(s.formatted for s in scores) / n, "response_length": sum(lengths) / max(1, len(lengths))}
