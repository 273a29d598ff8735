"""How Brave's answer is read: its ranking across result types, and answers without one."""

from __future__ import annotations

from lamina_websearch.brave import _results

WEB = {
    "results": [
        {"title": f"w{i}", "url": f"u{i}", "description": f"d{i}", "family_friendly": True} for i in range(3)
    ]
}


def test_without_mixed_the_web_results_in_order() -> None:
    assert [r["title"] for r in _results({"web": WEB})] == ["w0", "w1", "w2"]
    assert next(_results({"web": WEB})) == {
        "type": "web",
        "title": "w0",
        "url": "u0",
        "description": "d0",
        "content": "d0",
    }


def test_mixed_ranking_skips_unknown_types_bad_indexes_and_missing_lists() -> None:
    answer = {
        "web": WEB,
        "faq": {"results": [{"question": "q?", "answer": "a.", "url": "f"}]},
        "mixed": {
            "main": [
                {"type": "web", "index": 2},
                {"type": "summarizer", "all": True},  # not a result list this tool reads
                {"type": "web", "index": 9},  # out of range
                {"type": "news", "all": True},  # no news block in the answer
                {"type": "faq", "all": True},
                {"type": "web", "index": 0},
            ]
        },
    }
    out = list(_results(answer))
    assert [(r["type"], r.get("title") or r.get("question")) for r in out] == [
        ("web", "w2"),
        ("faq", "q?"),
        ("web", "w0"),
    ]
    assert out[1]["content"] == "a."


def test_an_empty_answer_has_no_results() -> None:
    assert list(_results({})) == [] and list(_results({"mixed": {"main": []}, "web": WEB})) == []
