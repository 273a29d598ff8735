"""``llm-as-judge::405b-simpleqa``: a SimpleQA grader, registered as Llama Stack 0.2.12 registers it.

The function's id, description, return type, judge model default, score regex and aggregation are
Llama Stack's, so its benchmarks and notebooks run unchanged and a score means the same: the judge
answers one letter, ``A`` (CORRECT), ``B`` (INCORRECT) or ``C`` (NOT_ATTEMPTED), and the regex
``(A|B|C)`` takes the first such capital in its answer (as Llama Stack's does: a judge that writes
"CORRECT" instead of a letter is read as ``C``). ``categorical_count`` counts the letters.

The grader prompt is Lamina's own, written for this function in the same shape: it fills
``{input_query}``, ``{expected_answer}`` and ``{generated_answer}`` from each row and asks for the
letter alone.

The judge model default, ``meta-llama/Llama-3.1-405B-Instruct``, is rarely served: a score call that
reaches a server without it is a 400 naming ``judge_model`` and how to choose one (a call's params
naming only ``judge_model`` keep this prompt and regex; see the provider).
"""

from __future__ import annotations

from typing import Any

IDENTIFIER = "llm-as-judge::405b-simpleqa"
PROVIDER_RESOURCE_ID = "llm-as-judge-405b-simpleqa"
DESCRIPTION = (
    "Llm As Judge Scoring Function for SimpleQA Benchmark "
    "(https://github.com/openai/simple-evals/blob/main/simpleqa_eval.py)"
)
DEFAULT_JUDGE_MODEL = "meta-llama/Llama-3.1-405B-Instruct"
SCORE_REGEXES = [r"(A|B|C)"]
GRADES = {"A": "CORRECT", "B": "INCORRECT", "C": "NOT_ATTEMPTED"}

GRADER_PROMPT = """
You grade answers to short factual questions. You get a question, the reference answer known to be
right, and an answer to grade. Decide which of three grades the answer deserves:

CORRECT: the answer states what the reference states, fully and without contradicting it.
- Wording, word order, capitalization and spelling slips in names do not matter as long as the same
  thing is meant ("new delhi" for "New Delhi"; "Tchaikovsky" for "Tchaikovskiy").
- A number is correct when it agrees with the reference to the precision the reference gives
  (reference "about 8,800 m": "8,849 metres" is correct, "9,500 m" is not).
- Details the question already implies may be left out (for "In which city is the Louvre?", with
  reference "Paris, France", the answer "Paris" is correct).
- Hedging is allowed as long as the answer commits to the reference ("I believe it was 1969").

INCORRECT: the answer commits to something that contradicts the reference.
- Naming a different person, place, date or number is incorrect, even when hedged ("probably 1972"
  for 1969).
- Listing several candidates of which only one matches is incorrect: the answer did not choose.

NOT_ATTEMPTED: the answer neither gives the reference nor contradicts it.
- Declining, saying it does not know, asking for more context, or talking around the question
  without ever committing to an answer.
- An answer too vague to check ("sometime in the twentieth century" for 1969) when nothing in it is
  wrong.

Grade only what the answer says about the question; do not grade its style, its length or any
explanation around it. Do not answer the question yourself.

Question: {input_query}
Reference answer: {expected_answer}
Answer to grade: {generated_answer}

Reply with a single letter:
A: CORRECT
B: INCORRECT
C: NOT_ATTEMPTED
Write only that letter, A, B or C, and nothing else.
""".strip()


def scoring_function_params() -> dict[str, Any]:
    """The function's fields, as ``lamina_scoring_functions`` registers them."""
    return {
        "description": DESCRIPTION,
        "return_type": {"type": "number"},
        "params": {
            "type": "llm_as_judge",
            "judge_model": DEFAULT_JUDGE_MODEL,
            "prompt_template": GRADER_PROMPT,
            "judge_score_regexes": SCORE_REGEXES,
            "aggregation_functions": ["categorical_count"],
        },
    }
