"""IFEval-shaped rows for the scoring bench: answers of a few hundred words each, and instructions of every
kind, one to three a row as in IFEval's data (541 prompts, 834 instructions)."""

from __future__ import annotations

from typing import Any

PARAGRAPHS = [
    "The old harbour town wakes slowly. Fishing boats return before dawn, and the market fills with crates "
    "of mackerel, crab and squid while gulls circle overhead. By nine the cafes are open, the tourists "
    "arrive on the first ferry, and the narrow streets smell of coffee, diesel and salt. Most visitors "
    "stay a single afternoon, climb to the lighthouse, buy a postcard and leave on the evening boat.",
    "Learning to bake bread takes patience rather than talent. Flour, water, salt and yeast are all you "
    "need, but the dough has to rest long enough for the gluten to develop and the flavour to deepen. "
    "Beginners often add too much flour because the dough feels sticky; a wetter dough gives a lighter "
    "crumb. Bake it hot, let it cool completely, and only then cut the first slice.",
    "Our quarterly report shows steady growth in every region. Revenue rose eleven percent over the "
    "previous quarter, driven mostly by the new subscription plans, while support costs fell after the "
    "help centre was rewritten. Hiring slowed as planned. The board asked for a clearer forecast of "
    "server spending, which the infrastructure team will present at the next meeting.",
    "A good hiking plan starts with the weather. Check the forecast the night before and again in the "
    "morning, tell someone where you are going, and carry more water than you think you will drink. "
    "Mountain paths that look short on a map can take twice as long on the ground, especially on loose "
    "rock, so turn back early rather than late when the light begins to fade.",
]

# (instruction ids, their kwargs, how the answer is shaped)
TEMPLATES: list[tuple[list[str], list[dict[str, Any]], str]] = [
    (
        ["punctuation:no_comma", "length_constraints:number_words"],
        [{}, {"num_words": 60, "relation": "at least"}],
        "plain",
    ),
    (["change_case:english_lowercase"], [{}], "lower"),
    (
        ["change_case:english_capital", "startend:end_checker"],
        [{}, {"end_phrase": "Any other questions?"}],
        "upper",
    ),
    (["language:response_language"], [{"language": "en"}], "plain"),
    (
        ["length_constraints:number_sentences", "keywords:existence"],
        [{"num_sentences": 5, "relation": "less than"}, {"keywords": ["bread", "harbour"]}],
        "plain",
    ),
    (["detectable_format:number_bullet_lists"], [{"num_bullets": 4}], "bullets"),
    (
        ["detectable_format:title", "detectable_content:postscript"],
        [{}, {"postscript_marker": "P.S."}],
        "titled",
    ),
    (
        ["length_constraints:number_paragraphs", "keywords:frequency"],
        [{"num_paragraphs": 3}, {"keyword": "the", "frequency": 5, "relation": "at least"}],
        "rules",
    ),
    (
        ["startend:quotation", "change_case:capital_word_frequency"],
        [{}, {"capital_frequency": 2, "capital_relation": "less than"}],
        "quoted",
    ),
    (["detectable_format:json_format"], [{}], "json"),
    (
        [
            "detectable_format:number_highlighted_sections",
            "keywords:letter_frequency",
            "keywords:forbidden_words",
        ],
        [
            {"num_highlights": 2},
            {"letter": "z", "let_frequency": 3, "let_relation": "less than"},
            {"forbidden_words": ["cheap", "free"]},
        ],
        "highlighted",
    ),
    (
        ["length_constraints:nth_paragraph_first_word", "detectable_format:multiple_sections"],
        [
            {"num_paragraphs": 3, "nth_paragraph": 2, "first_word": "learning"},
            {"section_spliter": "Section", "num_sections": 3},
        ],
        "paragraphs",
    ),
]


def answer(shape: str, i: int) -> str:
    texts = [PARAGRAPHS[(i + k) % len(PARAGRAPHS)] for k in range(3)]
    body = " ".join(texts)
    return {
        "plain": body,
        "lower": body.lower(),
        "upper": body.upper() + " Any other questions?",
        "bullets": "\n".join("* " + t for t in texts),
        "titled": "<<Three short notes>>\n\n" + body + "\n\nP.S. Thank you for reading.",
        "rules": "\n***\n".join(texts),
        "quoted": '"' + body + '"',
        "json": '```json\n{"notes": ["' + '", "'.join(texts) + '"]}\n```',
        "highlighted": "*" + texts[0] + "* and *" + texts[1] + "*",
        "paragraphs": "\n\n".join(f"Section {k + 1}\n{t}" for k, t in enumerate(texts)),
    }[shape]


def rows(n: int) -> list[dict[str, Any]]:
    out = []
    for i in range(n):
        ids, kwargs, shape = TEMPLATES[i % len(TEMPLATES)]
        out.append(
            {
                "prompt": f"prompt {i}",
                "instruction_id_list": ids,
                "kwargs": kwargs,
                "generated_answer": answer(shape, i),
            }
        )
    return out
