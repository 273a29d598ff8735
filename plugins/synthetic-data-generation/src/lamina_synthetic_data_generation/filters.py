"""The filtering functions: which judged candidates a generation keeps.

Pure functions over one prompt's candidates (every function decides per prompt, so a job may filter
each prompt as it finishes). ``random`` and ``sigmoid`` draw from a generator seeded by (seed, prompt,
candidate): the same request keeps the same candidates, whatever order the answers arrived in.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass

_EPSILON = 1e-9


@dataclass(frozen=True)
class Candidate:
    prompt_index: int
    candidate: int  # its number among the prompt's candidates (its generation seed's offset)
    text: str
    score: float
    judge_feedback: str | None = None


@dataclass(frozen=True)
class FilterSettings:
    top_k: int
    top_p: float
    random_keep: float
    sigmoid_center: float
    sigmoid_scale: float
    seed: int


def _draw(settings: FilterSettings, c: Candidate) -> float:
    return random.Random(f"{settings.seed}:{c.prompt_index}:{c.candidate}").random()


def _best_first(candidates: list[Candidate]) -> list[Candidate]:
    return sorted(candidates, key=lambda c: (-c.score, c.candidate))


def _nucleus(ranked: list[Candidate], p: float) -> list[Candidate]:
    """The shortest prefix of ``ranked`` (best first) whose share of the total score reaches ``p``.

    Shares are scores over their sum, after shifting so the lowest score counts 0 when any is negative;
    when every score is 0 each candidate has an equal share.
    """
    if not ranked:
        return []
    low = min(c.score for c in ranked)
    weights = [c.score - low if low < 0 else c.score for c in ranked]
    total = sum(weights)
    if total <= 0:
        weights, total = [1.0] * len(ranked), float(len(ranked))
    kept, mass = [], 0.0
    for c, w in zip(ranked, weights, strict=True):
        kept.append(c)
        mass += w / total
        if mass >= p - _EPSILON:
            break
    return kept


def keep(function: str, candidates: list[Candidate], settings: FilterSettings) -> list[Candidate]:
    """The candidates of ONE prompt that ``function`` keeps, best first."""
    ranked = _best_first(candidates)
    if function == "none":
        return ranked
    if function == "random":
        return [c for c in ranked if _draw(settings, c) < settings.random_keep]
    if function == "top_k":
        return ranked[: settings.top_k]
    if function == "top_p":
        return _nucleus(ranked, settings.top_p)
    if function == "top_k_top_p":
        return _nucleus(ranked[: settings.top_k], settings.top_p)
    if function == "sigmoid":
        center, scale = settings.sigmoid_center, settings.sigmoid_scale
        return [c for c in ranked if _draw(settings, c) < sigmoid((c.score - center) / scale)]
    raise ValueError(f"unknown filtering function {function!r}")


def sigmoid(x: float) -> float:
    if x >= 0:
        return 1.0 / (1.0 + math.exp(-x))
    z = math.exp(x)
    return z / (1.0 + z)
