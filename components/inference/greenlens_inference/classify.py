"""Classification post-processing: probabilities from the output tensor, and the top-k classes."""

from __future__ import annotations

import numpy as np


def probabilities(output: np.ndarray, activation: str) -> np.ndarray:
    """A 1-D float array of class probabilities from a (1, C) output (softmax of logits, or as given)."""
    values = np.asarray(output, dtype=np.float64).reshape(-1)
    if activation == "softmax":
        shifted = np.exp(values - values.max())
        return shifted / shifted.sum()
    return values


def top_k(probs: np.ndarray, labels: list[str], k: int) -> list[dict[str, object]]:
    """The k most probable classes, best first, as {"index", "label", "score"}."""
    k = max(0, min(k, probs.size))
    if k == 0:
        return []
    idx = np.argpartition(-probs, k - 1)[:k]
    idx = idx[np.argsort(-probs[idx], kind="stable")]
    return [{"index": int(i), "label": labels[i], "score": float(probs[i])} for i in idx]
