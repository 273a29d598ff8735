"""Text measures the IFEval checkers use: sentences, words, the language of a response; all offline.

IFEval (and Llama Stack's port of it) counts sentences with nltk's *trained* English punkt model and
tokenizes words with ``nltk.word_tokenize``; both load punkt data that ``nltk.download`` fetches at
run time. Nothing may be downloaded here, so this module uses nltk's ``PunktSentenceTokenizer()``
without trained parameters (the same algorithm, no data needed) and ``NLTKWordTokenizer`` (the
tokenizer ``word_tokenize`` runs on each sentence). Measured against the trained English model
(NLTK's punkt_tab parameters, loaded into the same class) on 1,118 English paragraphs (the Markdown
docs of Lamina and Llama Stack, 2,886 sentences) plus 20 texts full of abbreviations and numbers:

=============================  ================================  ===========================
splitter                       same sentence count, docs          abbreviation-heavy texts
=============================  ================================  ===========================
nltk Punkt, untrained (used)   1,100 / 1,118 (98.4 %)             11 / 20
nupunkt 0.8                    996 / 1,118 (89.1 %)               12 / 20
pysbd 0.3.4                    297 / 1,118 (26.6 %)               12 / 20
=============================  ================================  ===========================

The untrained model differs from the trained one at abbreviations it has not learnt: it ends a
sentence after "Dr.", "Mr.", "Prof.", "Inc.", "a.m." when a capitalised word follows, so such a
response may count a sentence or two more (and one fewer after an ellipsis before a capital).
Decimals, initials, quotes, URLs and line breaks split as the trained model splits them. pysbd
breaks at every line break, where punkt does not; nupunkt ships a model of its own. The
capital-word count (``change_case:capital_word_frequency``) does not depend on where sentences
end: a word keeps its case whichever sentence it lands in. Over 37,500 checks (1,500 answers, each
of the 25 instructions with random kwargs) these checkers and Llama Stack 0.2.12's (with the
trained model) agreed on 37,489; the 11 others were sentence counts of texts with such titles.

Language: ``langdetect`` (its 55 language profiles ship in the wheel), from a factory of our own
with a fixed seed, so one text always gets one answer (its default factory is random per call).

Left out: Llama Stack counts Thai sentences and words with ``pythainlp`` (67 MB installed, its
sentence model a CRF); here Thai is counted as any other script. Chinese, Japanese and Korean words
are counted per character as Llama Stack does, with ``emoji`` counting emoji as words.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterator
from functools import cache
from typing import Any

import regex

# langdetect's codes for the scripts counted per character (words) or split on their own full stops.
CJK_WORDS = frozenset({"zh", "zh-cn", "zh-tw", "ja", "ko"})
CJK_SENTENCES = frozenset({"zh", "zh-cn", "zh-tw", "ja", "hi"})
QUOTES = {"ja": "「」", "ru": "«»", "th": "“”", "zh": "“”", "zh-cn": "“”", "zh-tw": "“”"}
OWN_CONVENTIONS = CJK_WORDS | CJK_SENTENCES | QUOTES.keys()
# Han, kana, Hangul, Devanagari, Cyrillic and Thai: the scripts of the languages above.
_OWN_SCRIPT = re.compile(
    r"[\u0400-\u04FF\u0900-\u097F\u0E00-\u0E7F\u3040-\u30FF\u3400-\u4DBF\u4E00-\u9FFF\uAC00-\uD7AF]"
)
_CJK_CHAR = re.compile(r"[\u4E00-\u9FFF\u3400-\u4DBF\u3040-\u309F\u30A0-\u30FF\uAC00-\uD7AF]")
# Punctuation of Latin and East Asian text, dropped before counting CJK words.
_CJK_PUNCTUATION = re.compile(
    r"[\\.!?．/_,{}<>:;$%^&*(+\"'——！，。？、`~@#￥…（）：；《》“”()\[\]«»〔〕\-「」]+"
)
# A sentence in Chinese, Japanese or Hindi: text up to a full stop of that script (or a line end).
_CJK_SENTENCE = re.compile(r"[^!?。.！？．।\n]+[!?。.！？．।]?")
# The ``regex`` engine's \w, as nltk's RegexpTokenizer (3.10) uses: it keeps a letter's combining marks
# in its word (Hindi "वाक्य" is one word; the ``re`` module's \w breaks it into three).
_WORD = regex.compile(r"\w+")
_DETECT_SEED = 0


@cache
def _sentence_tokenizer() -> Any:
    from nltk.tokenize.punkt import PunktSentenceTokenizer

    return PunktSentenceTokenizer()


@cache
def _word_tokenizer() -> Any:
    from nltk.tokenize.destructive import NLTKWordTokenizer

    return NLTKWordTokenizer()


@cache
def _language_factory() -> Any:
    from langdetect.detector_factory import PROFILES_DIRECTORY, DetectorFactory

    factory = DetectorFactory()
    factory.load_profile(PROFILES_DIRECTORY)
    factory.set_seed(_DETECT_SEED)
    return factory


# Named in the error for an unknown code: IFEval's own languages are among langdetect's 55.
LANGUAGE_HINT = "ISO 639-1 codes such as en, fr, de, hi, ja, ko, zh-cn (langdetect's 55 profiles)"


def language_codes() -> frozenset[str]:
    return frozenset(_language_factory().get_lang_list())


def sentences(text: str) -> list[str]:
    return _sentence_tokenizer().tokenize(text)


def word_tokens(text: str) -> list[str]:
    """``nltk.word_tokenize``'s tokens: sentences first, then the Treebank-style word tokenizer."""
    tokenize = _word_tokenizer().tokenize
    return [token for sentence in sentences(text) for token in tokenize(sentence)]


def word_count(text: str) -> int:
    """Runs of word characters (letters, digits, underscore): "don't" is two, "3.5" is two."""
    return len(_WORD.findall(text))


def cjk_word_count(text: str) -> int:
    """Chinese, Japanese and Korean characters count one each; emoji one each; the rest by spaces."""
    import emoji

    text = _CJK_PUNCTUATION.sub("", text)
    emojis = emoji.emoji_count(text)
    text = emoji.replace_emoji(text, "")
    characters = len(_CJK_CHAR.findall(text))
    return characters + len(_CJK_CHAR.sub(" ", text).split()) + emojis


def cjk_sentences(text: str) -> Iterator[str]:
    for line in text.splitlines():
        yield from _CJK_SENTENCE.findall(line.strip())


def detect_language(text: str) -> str | None:
    """langdetect's code for ``text`` (``en``, ``zh-cn``, ...), None when it finds no letters to go on."""
    from langdetect.lang_detect_exception import LangDetectException

    detector = _language_factory().create()
    detector.append(text)
    try:
        return detector.detect()
    except LangDetectException:
        return None


def dominant_language(text: str) -> str:
    """The language most lines of ``text`` are in (lines of four characters or more); English when no
    line says: a list of numbers or a short answer is taken as English, as Llama Stack takes it."""
    found = [detect_language(line) for line in (raw.strip() for raw in text.split("\n")) if len(line) >= 4]
    counts = Counter(code for code in found if code is not None)
    return counts.most_common(1)[0][0] if counts else "en"


def counting_language(text: str) -> str | None:
    """``text``'s dominant language when it is one whose words, sentences or quotes are counted its
    own way (``OWN_CONVENTIONS``), else None.

    Detection costs milliseconds a line, so a text with no character of those languages' scripts is
    not run through it: langdetect gives one of them only for their own script (of 4,000 lines of
    English docs and code without one, none was detected as any of them).
    """
    if not _OWN_SCRIPT.search(text):
        return None
    language = dominant_language(text)
    return language if language in OWN_CONVENTIONS else None
