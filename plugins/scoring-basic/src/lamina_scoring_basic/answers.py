"""Answer normalisation: math final answers (MATH-style benchmarks) and DocVQA short answers.

Both compare a model's free text with a reference after stripping what should not count: LaTeX
wrapping, units, thousands separators and equivalent number spellings for math; case, punctuation,
articles, number words and missing apostrophes for DocVQA. Pure functions on strings, no model.
"""

from __future__ import annotations

import re
from fractions import Fraction

# -- math final answers ----------------------------------------------------------------------------

# Words and units that decorate an answer without changing it ("12 inches" is "12").
_UNITS = (
    "square",
    "ways",
    "integers",
    "dollars",
    "mph",
    "inches",
    "hours",
    "minutes",
    "points",
    "feet",
    "digits",
    "cents",
    "degrees",
    "pounds",
    "meters",
    "units",
    "students",
    "edges",
    "cm",
    "km",
    "ft",
)
_UNIT_RE = re.compile(r"\b(?:" + "|".join(_UNITS) + r")\b")
_TEXT_WRAPPERS = re.compile(r"\\(?:text|textbf|mathrm|mbox|overline)\{([^{}]*)\}")
_FRAC = re.compile(r"\\[dtc]?frac\{([^{}]+)\}\{([^{}]+)\}")
_FRAC_SHORT = re.compile(r"\\[dtc]?frac(\d)(\d)")
_SQRT_SHORT = re.compile(r"\\sqrt(\w)")
_CHOICE = re.compile(r"^\(([a-zA-Z])\)$")


def boxed_content(text: str) -> str:
    """The content of the last ``\\boxed{...}`` (braces balanced), or "" when there is none."""
    start = text.rfind("\\boxed")
    if start < 0:
        return ""
    rest = text[start + len("\\boxed") :].lstrip()
    if not rest.startswith("{"):
        return rest.split("$")[0].strip()  # \boxed 5$
    depth = 0
    for i, ch in enumerate(rest):
        depth += (ch == "{") - (ch == "}")
        if depth == 0:
            return rest[1:i].strip()
    return ""


def before_next_question(text: str) -> str:
    """A few-shot answer runs on into the next "Q:"/"A:" turn: keep what comes before it."""
    for marker in ("Q:", "A:"):
        text = text.split(marker)[0]
    return text


def normalize_math(answer: str) -> str:
    """A final answer in a canonical spelling: "\\$1,000" and "1000" and "1000 dollars" all read "1000";
    fractions and decimals read as a reduced fraction when they are numbers ("0.5" and "\\frac{1}{2}"
    and "1/2" are "1/2")."""
    text = answer.strip().split("=")[-1]
    text = _TEXT_WRAPPERS.sub(r"\1", text)
    for old, new in (("\\left", ""), ("\\right", ""), ("\\!", ""), ("\\,", ""), ("\\;", ""), ("\\$", "")):
        text = text.replace(old, new)
    text = text.replace("$", "").replace("\\%", "").replace("%", "")
    text = text.replace("^\\circ", "").replace("^{\\circ}", "")
    text = _UNIT_RE.sub("", text)
    text = _FRAC_SHORT.sub(r"\\frac{\1}{\2}", text)
    text = _SQRT_SHORT.sub(r"\\sqrt{\1}", text)
    text = re.sub(r"\s+", "", text).rstrip(".")
    if re.fullmatch(r"-?\d{1,3}(,\d{3})+(\.\d+)?", text):
        text = text.replace(",", "")
    choice = _CHOICE.match(text)
    if choice:
        return choice.group(1)
    value = _as_number(text)
    return text if value is None else _show(value)


def _as_number(text: str) -> Fraction | None:
    frac = _FRAC.fullmatch(text)
    if frac:
        top, bottom = _as_number(frac.group(1)), _as_number(frac.group(2))
        return top / bottom if top is not None and bottom else None
    sign = -1 if text.startswith("-") and _FRAC.fullmatch(text[1:]) else 1
    if sign < 0:
        inner = _as_number(text[1:])
        return -inner if inner is not None else None
    if re.fullmatch(r"-?\d+/\d+", text) and not text.endswith("/0"):
        return Fraction(text)
    if re.fullmatch(r"-?(\d+\.?\d*|\.\d+)", text):
        return Fraction(text)
    return None


def _show(value: Fraction) -> str:
    return str(value.numerator) if value.denominator == 1 else f"{value.numerator}/{value.denominator}"


def math_final_answer(generated: str, regex: re.Pattern[str]) -> str:
    """The normalised answer a response states: the regex's first match (its group ``X`` or first
    group), else its last ``\\boxed{}``, else the whole text (before any next "Q:")."""
    text = before_next_question(generated)
    match = regex.search(text)
    if match:
        extracted = match.group("X") if "X" in regex.groupindex else match.group(1 if regex.groups else 0)
    else:
        extracted = boxed_content(text)
    return normalize_math(extracted or text)


def normalize_math_expected(expected: str) -> str:
    """A reference answer, which may itself be a boxed solution."""
    return normalize_math(boxed_content(expected) or expected)


# -- DocVQA short answers --------------------------------------------------------------------------

_NUMBER_WORDS = {
    "none": "0",
    "zero": "0",
    "one": "1",
    "two": "2",
    "three": "3",
    "four": "4",
    "five": "5",
    "six": "6",
    "seven": "7",
    "eight": "8",
    "nine": "9",
    "ten": "10",
}
# Words that carry no answer (the VQA evaluation drops these few prepositions too).
_DROPPED = frozenset({"a", "an", "the", "to", "in", "from", "by"})
# Contractions written without their apostrophe, the spelling models most often produce.
_APOSTROPHES = {
    word.replace("'", ""): word
    for word in (
        "ain't aren't can't couldn't didn't doesn't don't hadn't hasn't haven't he'd he's i'd i'm i've "
        "isn't it'd it'll let's might've must've mustn't o'clock shouldn't should've that's there's "
        "they'd they'll they're they've wasn't we've weren't what's where's who's won't wouldn't "
        "would've y'all you'd you'll you're you've"
    ).split()
}
_ORDINALS = {"1st": "first", "2nd": "second", "3rd": "third"}
_PUNCTUATION = re.compile(r"[;/\[\]\"{}()=+\\_\-><@`,?!]")
_THOUSANDS = re.compile(r"(\d),(\d)")
_PERIOD = re.compile(r"(?<!\d)\.(?!\d)")


def normalize_docvqa(answer: str) -> str:
    """Lower-cased words without punctuation, articles or spelled-out small numbers."""
    text = _THOUSANDS.sub(r"\1\2", answer)
    text = _PUNCTUATION.sub(" ", text)
    text = _PERIOD.sub("", text)
    words = []
    for word in text.lower().split():
        word = _NUMBER_WORDS.get(word, word)
        if word in _DROPPED:
            continue
        words.append(_APOSTROPHES.get(word) or _ORDINALS.get(word, word))
    return " ".join(words)
