"""The verdict for the label of interest (e.g. "hotdog"): is it present, under which decision rule.

Rules (model.json label_of_interest.rule, changeable at run time):
- "top1": present if the class is the best prediction (classification: top-1 class; detection: the
  best-scoring detection is of that class);
- "threshold": present if the class's score is greater than `threshold` (classification: its
  probability; detection: its best detection's score).
"""

from __future__ import annotations

from typing import Any

RULES = ("top1", "threshold")


def check_rule(rule: Any) -> str:
    if rule not in RULES:
        raise ValueError(f"rule is {rule!r}; expected one of {', '.join(RULES)}")
    return str(rule)


def check_threshold(threshold: Any) -> float:
    if isinstance(threshold, bool) or not isinstance(threshold, int | float) or not 0.0 <= threshold <= 1.0:
        raise ValueError(f"threshold is {threshold!r}; expected a number from 0 to 1")
    return float(threshold)


def decide(label: str, score: float, is_top: bool, rule: str, threshold: float) -> dict[str, Any]:
    """{"label", "present", "score"}: `score` is the class's score, `is_top` whether it ranks first."""
    present = is_top if rule == "top1" else score > threshold
    return {"label": label, "present": bool(present), "score": float(score)}
