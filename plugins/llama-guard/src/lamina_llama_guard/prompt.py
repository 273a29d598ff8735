"""The guard prompt: which messages are judged, how they are written, and how the answer is read.

Pure functions, no I/O: ``conversation`` picks the messages (Llama Stack's rules), ``shield_input``
writes the one user message sent to the guard model, ``parse_plain`` and ``parse_json`` read its
answer into a ``Verdict`` or raise ``UnusableAnswer``.

Prompt texts: Llama Guard 3 and 4 use Llama Stack's template verbatim (``PROMPT_TASK``,
``SAFETY_CATEGORIES``, ``PROMPT_CONVERSATION``, ``PROMPT_INSTRUCTIONS``; categories as ``S1: Violent
Crimes.``; roles as Llama Stack writes them: ``User``, ``Assistant``, ``Tool``). Llama Guard 2 and 1
use the wording of their Hugging Face chat templates (llama-recipes' ``prompt_format_utils.py``),
without the ``[INST]`` markers, which the serving engine's chat template adds: Llama Guard 2 lists
``S1: Violent Crimes. `` and calls the assistant ``Agent``; Llama Guard 1 lists each category with
its policy text and ends with its own instructions (``Provide your safety assessment for Agent in
the above conversation:``).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from string import Template
from typing import Any

from lamina.apis.common import ImageContentItem, TextContentItem, content_to_text
from lamina.apis.inference import SystemMessage, UserMessage
from lamina.errors import BadRequestError
from lamina_llama_guard.taxonomy import Taxonomy

PROMPT_TASK = (
    "Task: Check if there is unsafe content in '$agent_type' messages in conversations according our "
    "safety policy with the below categories."
)

SAFETY_CATEGORIES = """

<BEGIN UNSAFE CONTENT CATEGORIES>
$categories
<END UNSAFE CONTENT CATEGORIES>
"""

PROMPT_CONVERSATION = """
<BEGIN CONVERSATION>

$conversations

<END CONVERSATION>
"""

PROMPT_INSTRUCTIONS = """
Provide your safety assessment for ONLY THE LAST $agent_type message in the above conversation:
 - First line must read 'safe' or 'unsafe'.
 - If unsafe, a second line must include a comma-separated list of violated categories."""

# Llama Guard 1 (LlamaGuard-7b) was trained on these instructions.
PROMPT_INSTRUCTIONS_1 = """
Provide your safety assessment for $agent_type in the above conversation:
- First line must read 'safe' or 'unsafe'.
- If unsafe, a second line must include a comma-separated list of violated categories."""

# constrained_output: the same question, answered as JSON (the request's response_format holds the schema).
PROMPT_INSTRUCTIONS_JSON = """
Provide your safety assessment for ONLY THE LAST $agent_type message in the above conversation.
Answer with a JSON object and nothing else:
 - "verdict": "safe" or "unsafe".
 - "categories": the codes of the violated categories (for example ["$example"]); [] when safe."""

PROMPT_TEMPLATE = Template(f"{PROMPT_TASK}{SAFETY_CATEGORIES}{PROMPT_CONVERSATION}{PROMPT_INSTRUCTIONS}")
PROMPT_TEMPLATE_1 = Template(f"{PROMPT_TASK}{SAFETY_CATEGORIES}{PROMPT_CONVERSATION}{PROMPT_INSTRUCTIONS_1}")
PROMPT_TEMPLATE_JSON = Template(
    f"{PROMPT_TASK}{SAFETY_CATEGORIES}{PROMPT_CONVERSATION}{PROMPT_INSTRUCTIONS_JSON}"
)

# -- which messages are judged -----------------------------------------------------------------------


def has_image(content: Any) -> bool:
    if isinstance(content, ImageContentItem):
        return True
    return isinstance(content, list) and any(isinstance(c, ImageContentItem) for c in content)


def check_text_only(messages: list[Any], shield_id: str, guard_model: str) -> None:
    """A guard that cannot see images refuses messages that carry them (400 naming the message)."""
    for i, message in enumerate(messages):
        if has_image(message.content):
            raise BadRequestError(
                f"messages[{i}].content holds an image, and images cannot be judged by shield "
                f"'{shield_id}': its guard model '{guard_model}' is not a vision guard. Register a "
                f"vision guard model (such as meta-llama/Llama-Guard-3-11B-Vision, or set the shield's "
                f"param vision: true for a guard that reads images) or send text only.",
                param=f"messages[{i}].content",
            )


def conversation(messages: list[Any]) -> list[Any]:
    """The messages the guard judges, as Llama Stack prepares them.

    Leading system messages (the operator's system prompt) are left out; a system message later in
    the conversation is judged like the others (``System: ...``), so text cannot slip past the guard
    in one. The first message must be a user message: a leading assistant or tool message becomes a
    user message with the same content. When the first two are both user messages, the first is
    dropped. Raises ``BadRequestError`` when nothing is left to judge.
    """
    start = 0
    while start < len(messages) and isinstance(messages[start], SystemMessage):
        start += 1
    judged = list(messages[start:])
    if not judged:
        raise BadRequestError(
            "messages holds only system messages, which the guard does not judge; send the user or "
            "assistant messages to check",
            param="messages",
        )
    if judged[0].role != "user":
        judged[0] = UserMessage(content=judged[0].content)
    if len(judged) >= 2 and judged[0].role == "user" and judged[1].role == "user":
        judged = judged[1:]
    return judged


def content_as_str(content: Any) -> str:
    """Llama Stack's ``interleaved_content_as_str``: list items joined by a space, images as ``<image>``."""
    return content_to_text(content, separator=" ", image="<image>")


def keep_latest_user_image(messages: list[Any]) -> tuple[list[Any], ImageContentItem | None]:
    """Llama Stack's ``build_vision_shield_input``: only the most recent user image is kept.

    Returns the messages with every other image removed (a message that was only an image is
    dropped) and that image, or None.
    """
    kept: list[Any] = []
    image: ImageContentItem | None = None
    for message in reversed(messages):
        content = message.content
        if isinstance(content, ImageContentItem):
            if image is None and message.role == "user":
                image = content
                kept.append(message)
        elif isinstance(content, list):
            items = []
            for item in content:
                if isinstance(item, ImageContentItem):
                    if image is None and message.role == "user":
                        image = item
                        items.append(item)
                else:
                    items.append(item)
            kept.append(message.model_copy(update={"content": items}))
        else:
            kept.append(message)
    return kept[::-1], image


# -- the prompt --------------------------------------------------------------------------------------


def role_label(role: str, taxonomy: Taxonomy) -> str:
    return taxonomy.assistant_role if role == "assistant" else role.capitalize()


def categories_text(taxonomy: Taxonomy, excluded: frozenset[str]) -> str:
    lines = []
    for category in taxonomy.categories:
        if category.code in excluded:
            continue
        if category.policy:  # Llama Guard 1: name and policy
            lines.append(f"{category.code}: {category.name}.\n{category.policy}")
        elif taxonomy.name == "llama-guard-2":
            lines.append(f"{category.code}: {category.name}. ")
        else:
            lines.append(f"{category.code}: {category.name}.")
    return "\n".join(lines)


def build_prompt(
    messages: list[Any], taxonomy: Taxonomy, excluded: frozenset[str], *, json_answer: bool
) -> str:
    """The guard prompt over ``messages`` (already prepared by ``conversation``)."""
    conversations = "\n\n".join(
        f"{role_label(m.role, taxonomy)}: {content_as_str(m.content)}" for m in messages
    )
    if json_answer:
        template = PROMPT_TEMPLATE_JSON
    elif taxonomy.name == "llama-guard-1":
        template = PROMPT_TEMPLATE_1
    else:
        template = PROMPT_TEMPLATE
    allowed = [c for c in taxonomy.codes if c not in excluded]
    return template.substitute(
        agent_type=role_label(messages[-1].role, taxonomy),
        categories=categories_text(taxonomy, excluded),
        conversations=conversations,
        example=allowed[0] if allowed else "S1",
    )


def shield_input(
    messages: list[Any], taxonomy: Taxonomy, excluded: frozenset[str], *, vision: bool, json_answer: bool
) -> UserMessage:
    """The one user message sent to the guard model: the prompt, after the latest user image if any."""
    if not vision:
        return UserMessage(content=build_prompt(messages, taxonomy, excluded, json_answer=json_answer))
    kept, image = keep_latest_user_image(messages)
    prompt = build_prompt(kept, taxonomy, excluded, json_answer=json_answer)
    if image is None:
        return UserMessage(content=prompt)
    return UserMessage(content=[image, TextContentItem(text=prompt)])


def verdict_schema(codes: list[str]) -> dict[str, Any]:
    """The JSON schema of a constrained answer: ``{"verdict": "safe"|"unsafe", "categories": [codes]}``.

    Two branches, so a grammar-constrained model cannot contradict itself: ``safe`` with no
    categories, or ``unsafe`` with one to ``len(codes)`` codes from ``codes`` (the taxonomy's codes
    that are not excluded). The bounded list also bounds the answer's length (a small model left
    free lists every code until ``max_tokens`` cuts it).
    """

    def branch(verdict: str, categories: dict[str, Any]) -> dict[str, Any]:
        return {
            "type": "object",
            "properties": {"verdict": {"const": verdict}, "categories": {"type": "array", **categories}},
            "required": ["verdict", "categories"],
            "additionalProperties": False,
        }

    return {
        "title": "guard_verdict",
        "type": "object",
        "anyOf": [
            branch("safe", {"maxItems": 0}),
            branch(
                "unsafe",
                {"items": {"type": "string", "enum": codes}, "minItems": 1, "maxItems": len(codes)},
            ),
        ],
    }


# -- reading the answer ------------------------------------------------------------------------------

_CODE = re.compile(r"^[SO]\d{1,3}$", re.IGNORECASE)
_SPLIT = re.compile(r"[\s,;]+")
_WORD_EDGES = ".:!?*\"'`()[]"


class UnusableAnswer(ValueError):
    """The guard's answer is no verdict; ``expected`` says what would have been."""

    def __init__(self, why: str, expected: str) -> None:
        super().__init__(why)
        self.why = why
        self.expected = expected


@dataclass(frozen=True)
class Verdict:
    unsafe: bool
    codes: tuple[str, ...] = ()  # as the guard named them (upper-cased, de-duplicated, in order)


PLAIN_EXPECTED = (
    "'safe', or 'unsafe' followed by the violated category codes (e.g. 'unsafe' then 'S1,S10' on the "
    "next line)"
)
JSON_EXPECTED = 'a JSON object like {"verdict": "unsafe", "categories": ["S1"]} (verdict "safe" or "unsafe")'


def _leading_codes(tokens: list[str]) -> list[str]:
    codes: list[str] = []
    for token in tokens:
        word = token.strip(_WORD_EDGES)
        if not word:
            continue
        if not _CODE.match(word):
            break  # trailing text after the codes
        code = word.upper()
        if code not in codes:
            codes.append(code)
    return codes


def parse_plain(answer: str) -> Verdict:
    """Read a Llama Guard answer: ``safe``, or ``unsafe`` and category codes.

    Whitespace around it and the case of the words do not matter. Codes may follow ``unsafe`` on
    its line or on the next ones, separated by commas and/or spaces; reading stops at the first word
    that is not a code (trailing text is ignored). ``unsafe`` without codes is a violation with no
    category. A ``safe`` first line followed by category codes contradicts itself and is read as
    unsafe with those codes (a verdict is never read as safer than it is). Anything else raises
    ``UnusableAnswer``.
    """
    text = answer.strip()
    if not text:
        raise UnusableAnswer("the answer is empty", PLAIN_EXPECTED)
    first, _, rest = text.partition("\n")
    words = [w for w in _SPLIT.split(first.strip()) if w.strip(_WORD_EDGES)]
    head = words[0].strip(_WORD_EDGES).lower() if words else ""
    following = words[1:] + _SPLIT.split(rest.strip())
    if head == "unsafe":
        return Verdict(True, tuple(_leading_codes(following)))
    if head == "safe" and len(words) == 1:
        later = [w.strip(_WORD_EDGES).lower() for w in _SPLIT.split(rest.strip())]
        if "unsafe" in later:  # "safe" then "unsafe": contradicts itself, read as unsafe
            return Verdict(
                True, tuple(_leading_codes(_SPLIT.split(rest.strip())[later.index("unsafe") + 1 :]))
            )
        codes = _leading_codes(_SPLIT.split(rest.strip()))
        return Verdict(bool(codes), tuple(codes))
    raise UnusableAnswer("the answer is not a Llama Guard verdict", PLAIN_EXPECTED)


def _json_object(text: str) -> Any:
    body = text.strip()
    fenced = re.fullmatch(r"```(?:json)?\s*(.*?)\s*```", body, re.DOTALL | re.IGNORECASE)
    if fenced:
        body = fenced.group(1)
    start = body.find("{")
    if start < 0:
        raise UnusableAnswer("the answer holds no JSON object", JSON_EXPECTED)
    try:
        doc, _ = json.JSONDecoder().raw_decode(body[start:])
    except ValueError:
        raise UnusableAnswer("the answer is not valid JSON (cut short, or not JSON)", JSON_EXPECTED) from None
    return doc


def parse_json(answer: str) -> Verdict:
    """Read a constrained answer: ``{"verdict": "safe"|"unsafe", "categories": [codes]}``.

    Tolerates a Markdown code fence and text around the object. ``categories`` may be missing (no
    codes) or a comma-separated string. Names that are not codes are kept (upper-cased, at most 40
    characters) and reported as unknown categories. Verdict ``safe`` with categories is read as
    unsafe. Anything else raises ``UnusableAnswer``.
    """
    if not answer.strip():
        raise UnusableAnswer("the answer is empty", JSON_EXPECTED)
    doc = _json_object(answer)
    if not isinstance(doc, dict):
        raise UnusableAnswer("the JSON answer is not an object", JSON_EXPECTED)
    verdict = doc.get("verdict")
    verdict = verdict.strip().lower() if isinstance(verdict, str) else None
    if verdict not in ("safe", "unsafe"):
        raise UnusableAnswer('the JSON answer has no "verdict" of "safe" or "unsafe"', JSON_EXPECTED)
    raw = doc.get("categories") or []
    if isinstance(raw, str):
        raw = _SPLIT.split(raw)
    if not isinstance(raw, list) or not all(isinstance(c, str) for c in raw):
        raise UnusableAnswer('the JSON answer\'s "categories" is not a list of codes', JSON_EXPECTED)
    codes: list[str] = []
    for item in raw:
        word = item.strip(_WORD_EDGES + " ")
        if word and word.upper()[:40] not in codes:
            codes.append(word.upper()[:40])
    return Verdict(verdict == "unsafe" or bool(codes), tuple(codes))
