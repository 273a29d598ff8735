"""Llama Guard's harm taxonomies, which one a guard model speaks, and their moderation categories.

Four taxonomies, picked from the guard model's id (``pick_taxonomy``) unless the config or the
shield's params name one (``taxonomy``):

- ``llama-guard-3`` (Llama Guard 3, S1-S14): the 13 MLCommons hazards plus S14 Code Interpreter
  Abuse, which only Llama-Guard-3-8B was trained on: as in Llama Stack, S14 is offered for
  Llama-Guard-3-8B and for models that are no known Llama Guard, not for Llama-Guard-3-1B and
  Llama-Guard-3-11B-Vision.
- ``llama-guard-4`` (Llama Guard 4, S1-S13): Llama Guard 3's categories (PurpleLlama's Llama Guard 4
  model card), without S14.
- ``llama-guard-2`` (Meta-Llama-Guard-2-8B, S1-S11): the MLCommons v0.5 taxonomy without Defamation
  and Elections.
- ``llama-guard-1`` (LlamaGuard-7b, O1-O6): Meta's first taxonomy; its prompt carries each
  category's policy text, as the model's chat template does.

Category names and policy texts are those of PurpleLlama / llama-recipes'
``prompt_format_utils.py`` and the models' Hugging Face chat templates.

Moderation categories: each code maps to names from ``lamina.apis.safety.OPENAI_MODERATION_CATEGORIES``
where OpenAI has an equivalent (a subcategory also sets its parent, as in OpenAI's results:
``illicit/violent`` comes with ``illicit``, ``sexual/minors`` with ``sexual``), and to Lamina's own
extra names otherwise (``defamation``, ``specialized_advice``, ``privacy``,
``intellectual_property``, ``elections``, ``code_interpreter_abuse``). A code the taxonomy does not
have maps to ``unknown``. The README shows the full table.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from lamina.apis.safety import OPENAI_MODERATION_CATEGORIES

UNKNOWN_CATEGORY = "unknown"
EXTRA_MODERATION_CATEGORIES = (
    "defamation",
    "specialized_advice",
    "privacy",
    "intellectual_property",
    "elections",
    "code_interpreter_abuse",
    UNKNOWN_CATEGORY,
)


@dataclass(frozen=True)
class Category:
    code: str
    name: str
    moderation: tuple[str, ...]  # OpenAI moderation categories (or Lamina's extra names)
    policy: str = ""  # the policy text, for taxonomies whose prompt carries it (Llama Guard 1)


@dataclass(frozen=True)
class Taxonomy:
    name: str  # "llama-guard-3", ...
    title: str  # "Llama Guard 3"
    categories: tuple[Category, ...]
    # How the prompt names an assistant message: Llama Guard 1 and 2 were trained on "Agent";
    # Llama Guard 3 and 4 prompts follow Llama Stack (the role, capitalised: "Assistant").
    assistant_role: str = "Assistant"
    by_code: dict[str, Category] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "by_code", {c.code: c for c in self.categories})

    @property
    def codes(self) -> list[str]:
        return [c.code for c in self.categories]

    def without(self, code: str) -> Taxonomy:
        return Taxonomy(
            self.name, self.title, tuple(c for c in self.categories if c.code != code), self.assistant_role
        )


# -- Llama Guard 3 and 4 (Llama Stack's names and codes) -------------------------------------------

_VIOLENT = ("violence", "illicit", "illicit/violent")
_LG3 = (
    Category("S1", "Violent Crimes", _VIOLENT),
    Category("S2", "Non-Violent Crimes", ("illicit",)),
    Category("S3", "Sex Crimes", ("sexual", "illicit")),
    Category("S4", "Child Exploitation", ("sexual", "sexual/minors")),
    Category("S5", "Defamation", ("defamation",)),
    Category("S6", "Specialized Advice", ("specialized_advice",)),
    Category("S7", "Privacy", ("privacy",)),
    Category("S8", "Intellectual Property", ("intellectual_property",)),
    Category("S9", "Indiscriminate Weapons", ("illicit", "illicit/violent")),
    Category("S10", "Hate", ("hate",)),
    Category("S11", "Self-Harm", ("self-harm",)),
    Category("S12", "Sexual Content", ("sexual",)),
    Category("S13", "Elections", ("elections",)),
    Category("S14", "Code Interpreter Abuse", ("code_interpreter_abuse",)),
)
LLAMA_GUARD_3 = Taxonomy("llama-guard-3", "Llama Guard 3", _LG3)
LLAMA_GUARD_3_NO_S14 = LLAMA_GUARD_3.without("S14")
LLAMA_GUARD_4 = Taxonomy("llama-guard-4", "Llama Guard 4", _LG3[:13])

# -- Llama Guard 2 (MLCommons v0.5 hazards, as named in Meta-Llama-Guard-2-8B's chat template) -----

LLAMA_GUARD_2 = Taxonomy(
    "llama-guard-2",
    "Llama Guard 2",
    (
        Category("S1", "Violent Crimes", _VIOLENT),
        Category("S2", "Non-Violent Crimes", ("illicit",)),
        Category("S3", "Sex Crimes", ("sexual", "illicit")),
        Category("S4", "Child Exploitation", ("sexual", "sexual/minors")),
        Category("S5", "Specialized Advice", ("specialized_advice",)),
        Category("S6", "Privacy", ("privacy",)),
        Category("S7", "Intellectual Property", ("intellectual_property",)),
        Category("S8", "Indiscriminate Weapons", ("illicit", "illicit/violent")),
        Category("S9", "Hate", ("hate",)),
        Category("S10", "Self-Harm", ("self-harm",)),
        Category("S11", "Sexual Content", ("sexual",)),
    ),
    assistant_role="Agent",
)

# -- Llama Guard 1 (LlamaGuard-7b; its prompt carries the policy of each category) -----------------

_LG1_POLICIES = {
    "O1": """Should not
- Help people plan or engage in violence.
- Encourage people to engage in violence.
- Express hateful, derogatory, or demeaning sentiments against people based on sensitive personal \
characteristics like their race, color, religion, national origin, sexual orientation, gender, gender \
identity, or disability.
- Encourage discrimination against people based on those characteristics and should not use slurs or \
create insults based on those characteristics.
Can
- Provide information on violence and discrimination.
- Discuss the topics of hate and violence, and can discuss historical events involving violence.""",
    "O2": """Should not
- Engage in sexually explicit (i.e., erotic) conversations and should not encourage people to engage in \
sexual activities.
Can
- Discuss topics related to sexuality and sexual education.
- Provide general information regarding sexual activities.
- Provide guidance on topics related to sexual health.""",
    "O3": """Should not
- Help people plan or engage in criminal activities like theft, kidnapping, or financial crimes, \
especially when the person indicates that they may act on the information provided to them.
- Encourage people to engage in criminal activities or condone criminal behavior.
Can
- Help people understand how crimes are committed, provided that the response is not so detailed that it \
could be used to provide a roadmap for future crimes.
- Help people understand how systems work that are used to prevent crimes, provided those descriptions do \
not provide detailed information on how to defeat those systems.""",
    "O4": """Should not
- Assist in the planning or execution of firearm or illegal weapons crimes, especially when the person \
indicates that they may act on the information provided to them.
- Encourage people to engage in firearm or illegal weapons crimes or condone such behavior.
Can
- Discuss firearms and the arguments for and against firearm ownership.""",
    "O5": """Should not
- Encourage or assist people in the trafficking, consumption, or use of regulated or controlled \
substances, including but not limited to illegal drugs, tobacco, alcohol, and cannabis.
- Assist or encourage people to create such substances when it is illegal to do so.
Can
- Discuss the use of regulated or controlled substances, and can provide general information on those \
substances (ex: what their chemical composition is and what their effects are).
- Provide information on how those substances are manufactured, provided that the information is not so \
detailed as to provide step-by-step instructions for their creation.""",
    "O6": """Should not
- Encourage people to harm themselves.
- Romanticize or condone self-harm or suicide.
- Provide information regarding the methods of suicide or self-harm.
- Provide any information or advice, other than information regarding appropriate health resources, to \
people who express or imply that they wish to harm themselves.
Can
- Provide general information regarding self-harm and suicide (ex: statistics, the mental health \
challenges faced by those who take these actions).
Should
- Provide information regarding appropriate health resources to people who imply or express the desire \
to harm themselves.""",
}

LLAMA_GUARD_1 = Taxonomy(
    "llama-guard-1",
    "Llama Guard 1",
    (
        Category("O1", "Violence and Hate", ("violence", "hate"), _LG1_POLICIES["O1"]),
        Category("O2", "Sexual Content", ("sexual",), _LG1_POLICIES["O2"]),
        Category("O3", "Criminal Planning", ("illicit",), _LG1_POLICIES["O3"]),
        Category("O4", "Guns and Illegal Weapons", ("illicit", "illicit/violent"), _LG1_POLICIES["O4"]),
        Category("O5", "Regulated or Controlled Substances", ("illicit",), _LG1_POLICIES["O5"]),
        Category("O6", "Self-Harm", ("self-harm",), _LG1_POLICIES["O6"]),
    ),
    assistant_role="Agent",
)

TAXONOMIES: dict[str, Taxonomy] = {
    t.name: t for t in (LLAMA_GUARD_1, LLAMA_GUARD_2, LLAMA_GUARD_3, LLAMA_GUARD_4)
}
TAXONOMY_NAMES = tuple(TAXONOMIES)
ALL_CODES = frozenset(code for t in TAXONOMIES.values() for code in t.codes)

# -- which guard a model id names ----------------------------------------------------------------------

_SEP = r"[-_ .]?"
_GUARD = re.compile(rf"llama{_SEP}guard{_SEP}(?P<version>[1234](?![0-9]))?", re.IGNORECASE)


@dataclass(frozen=True)
class GuardModel:
    """What a model id says about the guard: its family and whether it judges images."""

    family: str | None  # "llama-guard-1" .. "llama-guard-4", None: not a known Llama Guard
    variant: str = ""  # Llama Guard 3: "8b", "1b", "11b-vision" or "" (size not named)
    vision: bool = False

    @property
    def known(self) -> bool:
        return self.family is not None


def identify(model_id: str) -> GuardModel:
    """The Llama Guard a model id names (Hugging Face repo ids, Llama Stack's, Ollama tags, ...).

    ``meta-llama/Llama-Guard-3-8B``, ``Llama-Guard-3-1B``, ``llama-guard3:1b``, ``Llama-Guard-3-11B-Vision``,
    ``meta-llama/Llama-Guard-4-12B``, ``meta-llama/Meta-Llama-Guard-2-8B``, ``Llama-Guard-2-8B``,
    ``meta-llama/LlamaGuard-7b``, ``llamaguard-7b``.
    """
    match = _GUARD.search(model_id)
    if match is None:
        return GuardModel(None)
    version = match.group("version")
    rest = model_id[match.end() :].lower()
    if version is None:
        # "LlamaGuard-7b": Llama Guard 1 is the one whose name carries no version number.
        return GuardModel("llama-guard-1")
    if version == "3":
        size = re.match(r"[-_ .:]?(\d+)b", rest)
        vision = "vision" in rest or (size is not None and size.group(1) == "11")
        variant = "11b-vision" if vision else (f"{size.group(1)}b" if size else "")
        return GuardModel("llama-guard-3", variant, vision)
    return GuardModel(f"llama-guard-{version}")


def pick_taxonomy(name: str | None, guards: list[GuardModel]) -> Taxonomy:
    """The taxonomy named (``taxonomy`` param or config), else the one of the first known guard model.

    ``guards``: what the shield's model id and its upstream name say, in that order. Llama Guard 3
    includes S14 unless the model is a Llama Guard 3 known to lack it (1B, 11B-Vision), as Llama Stack.
    """
    known = next((g for g in guards if g.known), GuardModel(None))
    family = name or known.family or "llama-guard-3"
    if (
        family == "llama-guard-3"
        and known.family == "llama-guard-3"
        and known.variant in ("1b", "11b-vision")
    ):
        return LLAMA_GUARD_3_NO_S14
    return TAXONOMIES[family]


def moderation_categories(codes: list[str], taxonomy: Taxonomy) -> list[str]:
    """The moderation categories of these codes, in a stable order (OpenAI's first, then the extras);
    a bare "unsafe" (no code) falls under the unknown category, so a flagged result always names one."""
    names: set[str] = set() if codes else {UNKNOWN_CATEGORY}
    for code in codes:
        category = taxonomy.by_code.get(code)
        names.update(category.moderation if category is not None else (UNKNOWN_CATEGORY,))
    order = (*OPENAI_MODERATION_CATEGORIES, *EXTRA_MODERATION_CATEGORIES)
    return [n for n in order if n in names]
