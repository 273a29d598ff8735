"""IFEval's instruction checkers one by one: for each id, kwargs as IFEval's dataset writes them, an
answer that follows the instruction and one that does not."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from typing import Any

import pytest
from pydantic import ValidationError

from lamina_scoring_basic import ifeval_text
from lamina_scoring_basic.ifeval_checks import INSTRUCTIONS, Response

HINDI = "यह एक छोटा वाक्य है। भारत एक बहुत बड़ा देश है और यहाँ कई भाषाएँ बोली जाती हैं।"
JAPANESE = "今日はとても良い天気です。公園に散歩に行きましょう。楽しいですね！"
POEM = "Roses are red. Violets are blue. Sugar is sweet. And so are you."

# id -> (kwargs, an answer that follows, an answer that does not)
CASES: dict[str, tuple[dict[str, Any], str, str]] = {
    "keywords:existence": (
        {"keywords": ["remainder", "batteries"]},
        "The REMAINDER of the Batteries were charged.",
        "The remainder were charged.",
    ),
    "keywords:frequency": (
        {"keyword": "dog", "frequency": 2, "relation": "at least"},
        "A dog met another DOG.",
        "A dog met a cat.",
    ),
    "keywords:forbidden_words": (
        {"forbidden_words": ["reschedule", "free"]},
        "We can move the meeting; freedom matters.",  # "freedom" is not the word "free"
        "Are you Free on Monday?",
    ),
    "keywords:letter_frequency": (
        {"letter": "q", "let_frequency": 2, "let_relation": "less than"},
        "A quiet afternoon.",
        "Quick quiz.",
    ),
    "language:response_language": (
        {"language": "hi"},
        HINDI,
        "This answer is written in plain English, not in Hindi at all.",
    ),
    "length_constraints:number_sentences": (
        {"num_sentences": 3, "relation": "less than"},
        "It rained 3.5 inches. We stayed in.",
        "It rained. We stayed in. We read. It stopped.",
    ),
    "length_constraints:number_paragraphs": (
        {"num_paragraphs": 3},
        "First part.\n***\nSecond part.\n***\nThird part.",
        "First part.\n***\n***\nSecond part.\n***\nThird part.",  # an empty paragraph between rules
    ),
    "length_constraints:number_words": (
        {"num_words": 5, "relation": "at least"},
        "One two three four five.",
        "One two three four.",
    ),
    "length_constraints:nth_paragraph_first_word": (
        {"num_paragraphs": 3, "nth_paragraph": 2, "first_word": "bonding"},
        'Intro here.\n\n"Bonding, they say, matters.\n\nThe end.',
        "Intro here.\n\nThe bonding matters.\n\nThe end.",
    ),
    "detectable_content:number_placeholders": (
        {"num_placeholders": 2},
        "Dear [name], we will meet at [address].",
        "Dear [name], see you soon.",
    ),
    "detectable_content:postscript": (
        {"postscript_marker": "P.S."},
        "See you soon.\n\np.s. Bring snacks.",
        "See you soon. Bring snacks.",
    ),
    "detectable_format:number_bullet_lists": (
        {"num_bullets": 3},
        "Items:\n* apples\n* pears\n- plums",
        "Items:\n* apples\n* pears\n**bold**",  # a bold line is not a bullet
    ),
    "detectable_format:constrained_response": (
        {},
        "Having thought about it, My answer is maybe.",
        "My answer is perhaps.",
    ),
    "detectable_format:number_highlighted_sections": (
        {"num_highlights": 2},
        "Here is *one section* and **another one**.",
        "Here is *one section* and * * nothing.",
    ),
    "detectable_format:multiple_sections": (
        {"section_spliter": "Section", "num_sections": 2},
        "Section 1\nIntro\nSection 2\nBody",
        "Section 1\nIntro and body",
    ),
    "detectable_format:json_format": (
        {},
        '```json\n{"city": "Paris", "population": 2100000}\n```',
        'Here it is: {"city": "Paris"}',
    ),
    "detectable_format:title": ({}, "<<A Poem of Joy>>\nLine one.", "<< >>\nLine one."),
    "combination:two_responses": (
        {},
        "Paris is lovely.\n******\nRome is lovelier.",
        "Paris.\n******\nParis.",
    ),
    "combination:repeat_prompt": (
        {"prompt_to_repeat": "Write a story about a man who is trying to get his life together."},
        "write a story about a man who is trying to get his life together. Once upon a time...",
        "Once upon a time, a man tried to get his life together.",
    ),
    "startend:end_checker": (
        {"end_phrase": "Is there anything else I can help with?"},
        'Done. "Is there anything else I can help with?"',
        "Is there anything else I can help with? Bye.",
    ),
    "startend:quotation": ({}, '"Wrapped in quotes."', '"Only an opening quote.'),
    "change_case:capital_word_frequency": (
        {"capital_frequency": 3, "capital_relation": "at least"},
        "The NASA and ESA teams met the UN delegates.",
        "The NASA and ESA teams met the delegates.",
    ),
    "change_case:english_capital": (
        {},
        "THIS WHOLE ANSWER IS WRITTEN IN CAPITAL LETTERS AND IN ENGLISH.",
        "THIS ANSWER IS Mostly CAPITALS.",
    ),
    "change_case:english_lowercase": (
        {},
        "this whole answer is written in lowercase letters and in english.",
        "this answer has One capital letter.",
    ),
    "punctuation:no_comma": ({}, "No commas here at all.", "Well, there is one."),
}

# Llama Stack 0.2.12's INSTRUCTION_DICT, the ids it scores.
LLAMA_STACK_IDS = {
    "keywords:existence",
    "keywords:frequency",
    "keywords:forbidden_words",
    "keywords:letter_frequency",
    "language:response_language",
    "length_constraints:number_sentences",
    "length_constraints:number_paragraphs",
    "length_constraints:number_words",
    "length_constraints:nth_paragraph_first_word",
    "detectable_content:number_placeholders",
    "detectable_content:postscript",
    "detectable_format:number_bullet_lists",
    "detectable_format:constrained_response",
    "detectable_format:number_highlighted_sections",
    "detectable_format:multiple_sections",
    "detectable_format:json_format",
    "detectable_format:title",
    "combination:two_responses",
    "combination:repeat_prompt",
    "startend:end_checker",
    "startend:quotation",
    "change_case:capital_word_frequency",
    "change_case:english_capital",
    "change_case:english_lowercase",
    "punctuation:no_comma",
}


def follows(instruction_id: str, kwargs: dict[str, Any], answer: str) -> bool:
    return INSTRUCTIONS[instruction_id](**kwargs).follows(Response(answer.strip()))


def test_the_instructions_are_llama_stacks_and_each_has_a_case() -> None:
    assert set(INSTRUCTIONS) == LLAMA_STACK_IDS
    assert set(CASES) == LLAMA_STACK_IDS


@pytest.mark.parametrize("instruction_id", sorted(CASES))
def test_a_following_and_a_failing_answer(instruction_id: str) -> None:
    kwargs, good, bad = CASES[instruction_id]
    assert follows(instruction_id, kwargs, good), f"{instruction_id} should accept {good!r}"
    assert not follows(instruction_id, kwargs, bad), f"{instruction_id} should reject {bad!r}"


@pytest.mark.parametrize(
    ("instruction_id", "count_kwargs", "relation_key", "answer", "count"),
    [
        ("keywords:frequency", "frequency", "relation", "cat Cat CAT", 3),
        ("keywords:letter_frequency", "let_frequency", "let_relation", "Banana", 3),
        ("length_constraints:number_words", "num_words", "relation", "one two three", 3),
        ("length_constraints:number_sentences", "num_sentences", "relation", "One. Two. Three.", 3),
        ("change_case:capital_word_frequency", "capital_frequency", "capital_relation", "AB CD EF gh", 3),
    ],
)
def test_less_than_is_strict_and_at_least_inclusive(
    instruction_id: str, count_kwargs: str, relation_key: str, answer: str, count: int
) -> None:
    extra = {"keyword": "cat"} if instruction_id == "keywords:frequency" else {}
    extra |= {"letter": "a"} if instruction_id == "keywords:letter_frequency" else {}

    def check(relation: str, threshold: int) -> bool:
        return follows(instruction_id, {**extra, count_kwargs: threshold, relation_key: relation}, answer)

    assert check("at least", count) and not check("at least", count + 1)
    assert check("less than", count + 1) and not check("less than", count)


def test_postscript_markers() -> None:
    pps = {"postscript_marker": "P.P.S"}
    assert follows("detectable_content:postscript", pps, "Bye.\nP. P. S. one more thing")
    assert not follows("detectable_content:postscript", pps, "Bye.\nP.S. one more thing")
    other = {"postscript_marker": "Note:"}  # a marker of the row's own is matched literally
    assert follows("detectable_content:postscript", other, "Bye.\nnote: later")
    assert not follows("detectable_content:postscript", other, "Bye.\nNote later")


def test_words_and_sentences_in_other_scripts() -> None:
    # Hindi: a letter's combining marks stay in its word: 18 words, as nltk's regex tokenizer counts
    # (the re module's \w counts 28).
    words = {"num_words": 18, "relation": "at least"}
    assert follows("length_constraints:number_words", words, HINDI)
    assert not follows("length_constraints:number_words", {**words, "num_words": 19}, HINDI)
    # Japanese: one word a character, sentences end at its full stop and exclamation mark.
    assert ifeval_text.cjk_word_count("今日は良い") == 5
    sentences = {"num_sentences": 3, "relation": "at least"}
    assert follows("length_constraints:number_sentences", sentences, JAPANESE)
    assert not follows("length_constraints:number_sentences", {**sentences, "num_sentences": 4}, JAPANESE)
    # Japanese quotes wrap a Japanese answer; Russian guillemets a Russian one.
    assert follows("startend:quotation", {}, "「" + JAPANESE + "」")
    assert follows("startend:quotation", {}, "«Сегодня очень хорошая погода, пойдём гулять.»")
    assert not follows("startend:quotation", {}, "«This is English in guillemets.»")


def test_sentences_split_as_punkt_does() -> None:
    """Decimals, quotes and line breaks as the trained model splits them; the untrained model also ends
    a sentence after a title it has not learnt (ifeval_text's docstring)."""
    assert len(ifeval_text.sentences("It costs $12.40, about 3.5 percent more. Fine.")) == 2
    assert len(ifeval_text.sentences("Is it? Yes! It is.")) == 3
    assert len(ifeval_text.sentences('She said, "Go home." Then she left.')) == 2
    assert len(ifeval_text.sentences("A list\nwith lines\nand no stops")) == 1
    assert len(ifeval_text.sentences("Dr. Smith arrived.")) == 2  # trained punkt: 1


def test_capital_words_are_nltk_word_tokens() -> None:
    # The untrained model ends a sentence after "U.S.A." (trained punkt does not), so its stop is a token
    # of its own; the word is still in capitals, and the capital-word count the same.
    assert ifeval_text.word_tokens("THIS is GREAT, isn't it? U.S.A. rocks.") == [
        "THIS", "is", "GREAT", ",", "is", "n't", "it", "?", "U.S.A", ".", "rocks", ".",
    ]  # fmt: skip


def test_nothing_to_detect_counts_as_followed() -> None:
    # IFEval: langdetect finding no letters is no evidence against the instruction.
    assert follows("language:response_language", {"language": "fr"}, "12345 !!!")


def test_language_detection_is_deterministic() -> None:
    ambiguous = "Ok si no"  # langdetect's default factory answers differently from call to call
    assert len({ifeval_text.detect_language(ambiguous) for _ in range(20)}) == 1


@pytest.mark.parametrize(
    ("instruction_id", "kwargs", "names"),
    [
        ("keywords:frequency", {"keyword": "dog", "frequency": 2, "relation": "more than"}, "relation"),
        ("keywords:frequency", {"keyword": "dog", "relation": "at least"}, "frequency"),
        (
            "keywords:letter_frequency",
            {"letter": "ab", "let_frequency": 1, "let_relation": "at least"},
            "letter",
        ),
        ("length_constraints:number_words", {"num_words": "many", "relation": "at least"}, "num_words"),
        ("language:response_language", {"language": "english"}, "langdetect"),
        (
            "length_constraints:nth_paragraph_first_word",
            {"num_paragraphs": 2, "nth_paragraph": 3, "first_word": "x"},
            "past num_paragraphs",
        ),
        ("punctuation:no_comma", {"letter": "a"}, "letter"),
    ],
)
def test_bad_kwargs_are_named(instruction_id: str, kwargs: dict[str, Any], names: str) -> None:
    with pytest.raises(ValidationError) as err:
        INSTRUCTIONS[instruction_id](**kwargs)
    assert names in str(err.value)


def test_nothing_is_downloaded(tmp_path) -> None:
    """A fresh interpreter with nltk.download and every non-loopback connection made to fail, no nltk
    data anywhere it looks (NLTK_DATA and HOME empty), HF_HUB_OFFLINE=1: every instruction scores."""
    rows = [
        {"instruction_id_list": [iid], "kwargs": [kwargs], "generated_answer": good}
        for iid, (kwargs, good, _) in CASES.items()
    ]
    (tmp_path / "rows.json").write_text(json.dumps(rows))
    script = f"""
import json, socket, nltk

def refuse(*args, **kwargs):
    raise AssertionError(f"nltk.download{{args}} was called")

nltk.download = refuse
real_connect = socket.socket.connect

def connect(self, address):
    if isinstance(address, tuple) and address[0] not in ("127.0.0.1", "::1", "localhost"):
        raise AssertionError(f"a connection to {{address}} was attempted")
    return real_connect(self, address)

socket.socket.connect = connect
from lamina.apis.scoring import ScoringFn
from lamina_scoring_basic.ifeval import ifeval
rows = json.load(open({str(tmp_path / "rows.json")!r}))
fn = ScoringFn(identifier="basic::ifeval", provider_resource_id="ifeval", provider_id="basic",
               return_type={{"type": "number"}})
print(json.dumps(ifeval(rows, fn, None)))
"""
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "NLTK_DATA": str(tmp_path), "HOME": str(tmp_path)}
    done = subprocess.run(
        [sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == [{"score": 1.0, "weight": 1.0}] * len(rows)
