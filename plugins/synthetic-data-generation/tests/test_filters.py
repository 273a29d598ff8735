"""The filtering functions on one prompt's judged candidates (pure functions: no server needed)."""

from __future__ import annotations

import pytest

from lamina_synthetic_data_generation.filters import Candidate, FilterSettings, keep, sigmoid

SETTINGS = FilterSettings(top_k=2, top_p=0.5, random_keep=0.5, sigmoid_center=3.5, sigmoid_scale=0.05, seed=7)


def candidates(*scores: float, prompt: int = 0) -> list[Candidate]:
    return [Candidate(prompt, k, f"answer {k}", score) for k, score in enumerate(scores)]


def kept(function: str, found: list[Candidate], settings: FilterSettings = SETTINGS) -> list[int]:
    return [c.candidate for c in keep(function, found, settings)]


def test_none_keeps_every_candidate_best_first_ties_by_candidate_number() -> None:
    assert kept("none", candidates(1, 4, 4, 5)) == [3, 1, 2, 0]


def test_top_k_keeps_the_k_best() -> None:
    assert kept("top_k", candidates(5, 2, 3)) == [0, 2]
    assert kept("top_k", candidates(5)) == [0]


def test_top_p_keeps_the_best_whose_score_share_reaches_p() -> None:
    # shares 5/10, 3/10, 2/10: the first alone reaches 0.5
    assert kept("top_p", candidates(5, 2, 3)) == [0]
    # shares 4/9, 4/9, 1/9: two are needed
    assert kept("top_p", candidates(1, 4, 4)) == [1, 2]
    # p = 1 keeps everything; all scores 0 count equally
    assert len(kept("top_p", candidates(3, 2, 1), FilterSettings(**{**SETTINGS.__dict__, "top_p": 1.0}))) == 3
    assert kept("top_p", candidates(0, 0, 0, 0)) == [0, 1]
    # negative scores shift so the lowest counts 0: shares 2/3, 1/3, 0
    assert kept("top_p", candidates(-1, 1, 0)) == [1]


def test_top_k_top_p_takes_the_nucleus_of_the_top_k() -> None:
    # top 2 of (5, 2, 3) are 5 and 3: 5/8 reaches 0.5
    assert kept("top_k_top_p", candidates(5, 2, 3)) == [0]
    # top 2 of (1, 4, 4): 4/8 reaches 0.5 exactly
    assert kept("top_k_top_p", candidates(1, 4, 4)) == [1]


def test_sigmoid_keeps_by_a_steep_sigmoid_around_its_center() -> None:
    assert kept("sigmoid", candidates(5, 2, 3, 4, 1)) == [0, 3]
    assert sigmoid(0) == 0.5 and sigmoid(-800) == 0.0 and sigmoid(800) == 1.0


def test_random_and_sigmoid_draws_depend_on_seed_prompt_and_candidate_not_on_order() -> None:
    many = candidates(*[3.0] * 200)
    first = kept("random", many)
    assert first == kept("random", list(reversed(many)))  # the order answers arrived in does not matter
    assert 60 < len(first) < 140  # about half of 200 (a fixed seed: this is one fixed draw)
    other_seed = FilterSettings(**{**SETTINGS.__dict__, "seed": 8})
    assert kept("random", many, other_seed) != first
    assert kept("random", candidates(*[3.0] * 200, prompt=1)) != first
    none_kept = FilterSettings(**{**SETTINGS.__dict__, "random_keep": 0.0})
    assert kept("random", many, none_kept) == []
    gentle = FilterSettings(**{**SETTINGS.__dict__, "sigmoid_scale": 1.0, "sigmoid_center": 3.0})
    assert 60 < len(kept("sigmoid", many, gentle)) < 140  # score at the center: kept half the time


def test_an_unknown_function_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown filtering function 'best'"):
        keep("best", candidates(1), SETTINGS)
