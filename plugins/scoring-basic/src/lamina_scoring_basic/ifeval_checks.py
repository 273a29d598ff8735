"""IFEval's verifiable instructions, one checker each, by the instruction id its dataset uses.

A checker is a pydantic model of the kwargs its instruction takes (IFEval's names; a row's kwargs
validate against it, so a missing or mistyped one is named) with ``follows(response)``: True when
the response follows the instruction, in IFEval's strict mode (the response as given, stripped).
The semantics are IFEval's as Llama Stack 0.2.12 applies them (its multilingual variant: the
language of a response picks how its sentences and words are counted and which quotes wrap it);
``ifeval_text`` says where the offline tokenizers differ. Keyword matches ignore case; "less than"
is strict and "at least" inclusive.
"""

from __future__ import annotations

import json
import re
from abc import abstractmethod
from collections import Counter
from functools import cached_property
from typing import Annotated, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, field_validator, model_validator

from lamina_scoring_basic import ifeval_text as text

Relation = Literal["less than", "at least"]
Count = Annotated[int, Field(ge=0)]
Phrase = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1)]


def compare(actual: int, relation: Relation, threshold: int) -> bool:
    return actual < threshold if relation == "less than" else actual >= threshold


class Response:
    """The response under check, with what several checkers measure computed once."""

    def __init__(self, value: str) -> None:
        self.value = value

    @cached_property
    def language(self) -> str | None:
        """Its language when that counts words, sentences or quotes its own way (Chinese, ...)."""
        return text.counting_language(self.value)


class Checker(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    @abstractmethod
    def follows(self, response: Response) -> bool: ...


# -- keywords -----------------------------------------------------------------------------------


class KeywordsExist(Checker):
    keywords: list[Phrase] = Field(min_length=1)

    def follows(self, response: Response) -> bool:
        return all(re.search(re.escape(k), response.value, re.IGNORECASE) for k in self.keywords)


class KeywordFrequency(Checker):
    keyword: Phrase
    frequency: Count
    relation: Relation

    def follows(self, response: Response) -> bool:
        found = len(re.findall(re.escape(self.keyword), response.value, re.IGNORECASE))
        return compare(found, self.relation, self.frequency)


class ForbiddenWords(Checker):
    forbidden_words: list[Phrase] = Field(min_length=1)

    def follows(self, response: Response) -> bool:
        return not any(
            re.search(rf"\b{re.escape(w)}\b", response.value, re.IGNORECASE) for w in self.forbidden_words
        )


class LetterFrequency(Checker):
    letter: Annotated[str, StringConstraints(strip_whitespace=True, pattern=r"^[A-Za-z]$")]
    let_frequency: Count
    let_relation: Relation

    def follows(self, response: Response) -> bool:
        found = Counter(response.value.lower())[self.letter.lower()]
        return compare(found, self.let_relation, self.let_frequency)


# -- language and case ---------------------------------------------------------------------------


class ResponseLanguage(Checker):
    language: Annotated[str, StringConstraints(strip_whitespace=True, min_length=2)]

    @field_validator("language")
    @classmethod
    def _known(cls, code: str) -> str:
        if code not in text.language_codes():
            raise ValueError(
                f"'{code}' is not a language code langdetect knows; use one of {text.LANGUAGE_HINT}"
            )
        return code

    def follows(self, response: Response) -> bool:
        found = text.detect_language(response.value)
        return found is None or found == self.language  # nothing to detect: IFEval counts it followed


class EnglishCapital(Checker):
    def follows(self, response: Response) -> bool:
        return response.value.isupper() and text.detect_language(response.value) in ("en", None)


class EnglishLowercase(Checker):
    def follows(self, response: Response) -> bool:
        return response.value.islower() and text.detect_language(response.value) in ("en", None)


class CapitalWordFrequency(Checker):
    capital_frequency: Count
    capital_relation: Relation

    def follows(self, response: Response) -> bool:
        found = sum(1 for word in text.word_tokens(response.value) if word.isupper())
        return compare(found, self.capital_relation, self.capital_frequency)


# -- length ---------------------------------------------------------------------------------------


class NumberOfSentences(Checker):
    num_sentences: Count
    relation: Relation

    def follows(self, response: Response) -> bool:
        if response.language in text.CJK_SENTENCES:
            found = sum(1 for _ in text.cjk_sentences(response.value))
        else:
            found = len(text.sentences(response.value))
        return compare(found, self.relation, self.num_sentences)


class NumberOfWords(Checker):
    num_words: Count
    relation: Relation

    def follows(self, response: Response) -> bool:
        if response.language in text.CJK_WORDS:
            found = text.cjk_word_count(response.value)
        else:
            found = text.word_count(response.value)
        return compare(found, self.relation, self.num_words)


class NumberOfParagraphs(Checker):
    """Paragraphs divided by a Markdown rule, ``***``."""

    num_paragraphs: Count

    def follows(self, response: Response) -> bool:
        parts = re.split(r"\s?\*\*\*\s?", response.value)
        count = len(parts)
        for i, part in enumerate(parts):
            if not part.strip():
                if 0 < i < len(parts) - 1:
                    return False  # two rules in a row: an empty paragraph
                count -= 1  # a rule before the first or after the last paragraph
        return count == self.num_paragraphs


class NthParagraphFirstWord(Checker):
    """Paragraphs divided by a blank line; paragraph ``nth_paragraph`` (from 1) starts with
    ``first_word`` (case and trailing punctuation aside)."""

    num_paragraphs: Count
    nth_paragraph: Annotated[int, Field(ge=1)]
    first_word: Phrase

    @model_validator(mode="after")
    def _nth_within(self) -> NthParagraphFirstWord:
        if self.nth_paragraph > self.num_paragraphs:
            raise ValueError(
                f"nth_paragraph {self.nth_paragraph} is past num_paragraphs {self.num_paragraphs}; "
                "it counts from 1 up to num_paragraphs"
            )
        return self

    def follows(self, response: Response) -> bool:
        parts = response.value.split("\n\n")
        count = sum(1 for part in parts if part.strip())
        if self.nth_paragraph > count:
            return False
        # IFEval indexes the split as is: an empty chunk (three line breaks) before it shifts it.
        paragraph = parts[self.nth_paragraph - 1].strip()
        if not paragraph:
            return False
        word = re.split(r"[.,?!'\"]", paragraph.split()[0].lstrip("'").lstrip('"'), maxsplit=1)[0]
        return count == self.num_paragraphs and word.lower() == self.first_word.lower()


# -- content and format ---------------------------------------------------------------------------


class Placeholders(Checker):
    num_placeholders: Count

    def follows(self, response: Response) -> bool:
        return len(re.findall(r"\[.*?\]", response.value)) >= self.num_placeholders


class Postscript(Checker):
    postscript_marker: Phrase

    def follows(self, response: Response) -> bool:
        if self.postscript_marker == "P.P.S":
            pattern = r"\s*p\.\s?p\.\s?s.*$"
        elif self.postscript_marker == "P.S.":
            pattern = r"\s*p\.\s?s\..*$"
        else:
            pattern = r"\s*" + re.escape(self.postscript_marker.lower()) + r".*$"
        return re.search(pattern, response.value.lower(), re.MULTILINE) is not None


class BulletList(Checker):
    """Exactly ``num_bullets`` Markdown bullets (lines starting ``*`` or ``-``)."""

    num_bullets: Count

    def follows(self, response: Response) -> bool:
        stars = re.findall(r"^\s*\*[^*].*$", response.value, re.MULTILINE)
        dashes = re.findall(r"^\s*-.*$", response.value, re.MULTILINE)
        return len(stars) + len(dashes) == self.num_bullets


class ConstrainedResponse(Checker):
    OPTIONS: ClassVar[tuple[str, ...]] = ("My answer is yes.", "My answer is no.", "My answer is maybe.")

    def follows(self, response: Response) -> bool:
        return any(option in response.value for option in self.OPTIONS)


class HighlightedSections(Checker):
    """At least ``num_highlights`` non-empty ``*highlighted*`` (or ``**bold**``) spans."""

    num_highlights: Count

    def follows(self, response: Response) -> bool:
        single = [h for h in re.findall(r"\*[^\n*]*\*", response.value) if h.strip("*").strip()]
        double = [h for h in re.findall(r"\*\*[^\n*]*\*\*", response.value) if h[2:-2].strip()]
        return len(single) + len(double) >= self.num_highlights


class Sections(Checker):
    """At least ``num_sections`` sections, each opened by ``<section_spliter> <number>``."""

    section_spliter: Phrase
    num_sections: Count

    def follows(self, response: Response) -> bool:
        splitter = r"\s?" + re.escape(self.section_spliter) + r"\s?\d+\s?"
        return len(re.split(splitter, response.value)) - 1 >= self.num_sections


class JsonFormat(Checker):
    def follows(self, response: Response) -> bool:
        value = response.value.strip()
        for fence in ("```json", "```Json", "```JSON", "```"):
            value = value.removeprefix(fence)
        value = value.removesuffix("```").strip()
        try:
            json.loads(value)
        except ValueError:
            return False
        return True


class Title(Checker):
    def follows(self, response: Response) -> bool:
        titles = re.findall(r"<<[^\n]+>>", response.value)
        return any(title.lstrip("<").rstrip(">").strip() for title in titles)


# -- combination, start and end, punctuation --------------------------------------------------------


class TwoResponses(Checker):
    """Two different responses divided by ``******``."""

    def follows(self, response: Response) -> bool:
        parts = response.value.split("******")
        answers = []
        for i, part in enumerate(parts):
            if part.strip():
                answers.append(part.strip())
            elif 0 < i < len(parts) - 1:
                return False
        return len(answers) == 2 and answers[0] != answers[1]


class RepeatPrompt(Checker):
    prompt_to_repeat: Phrase

    def follows(self, response: Response) -> bool:
        return response.value.strip().lower().startswith(self.prompt_to_repeat.lower())


class EndPhrase(Checker):
    end_phrase: Phrase

    def follows(self, response: Response) -> bool:
        return response.value.strip().strip('"').lower().endswith(self.end_phrase.lower())


class Quotation(Checker):
    """Wrapped in double quotes: ASCII ones, or the response language's own (「」, «», “”)."""

    def follows(self, response: Response) -> bool:
        value = response.value.strip()
        opening, closing = text.QUOTES.get(response.language or "", '""')
        return len(value) > 1 and value[0] in (opening, '"') and value[-1] in (closing, '"')


class NoComma(Checker):
    def follows(self, response: Response) -> bool:
        return "," not in response.value


# Instruction id (as IFEval's data names it) -> its checker: the 25 ids Llama Stack 0.2.12 scores.
INSTRUCTIONS: dict[str, type[Checker]] = {
    "keywords:existence": KeywordsExist,
    "keywords:frequency": KeywordFrequency,
    "keywords:forbidden_words": ForbiddenWords,
    "keywords:letter_frequency": LetterFrequency,
    "language:response_language": ResponseLanguage,
    "length_constraints:number_sentences": NumberOfSentences,
    "length_constraints:number_paragraphs": NumberOfParagraphs,
    "length_constraints:number_words": NumberOfWords,
    "length_constraints:nth_paragraph_first_word": NthParagraphFirstWord,
    "detectable_content:number_placeholders": Placeholders,
    "detectable_content:postscript": Postscript,
    "detectable_format:number_bullet_lists": BulletList,
    "detectable_format:constrained_response": ConstrainedResponse,
    "detectable_format:number_highlighted_sections": HighlightedSections,
    "detectable_format:multiple_sections": Sections,
    "detectable_format:json_format": JsonFormat,
    "detectable_format:title": Title,
    "combination:two_responses": TwoResponses,
    "combination:repeat_prompt": RepeatPrompt,
    "startend:end_checker": EndPhrase,
    "startend:quotation": Quotation,
    "change_case:capital_word_frequency": CapitalWordFrequency,
    "change_case:english_capital": EnglishCapital,
    "change_case:english_lowercase": EnglishLowercase,
    "punctuation:no_comma": NoComma,
}
