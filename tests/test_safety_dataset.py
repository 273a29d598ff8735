"""The labelled safety prompt set (tests/data/safety_prompts.jsonl) is well formed and its labels hold.

Shields are scored against this file, so a mislabelled line skews every precision/recall number:
these checks pin the schema and verify what can be verified mechanically (Luhn-valid cards, mod-97
IBANs, well-formed SSNs and API keys in the PII positives; no card numbers, emails or SSNs leaking
into the other labels).
"""

from __future__ import annotations

import json
import math
import re
from collections import Counter
from pathlib import Path

import pytest

DATA = Path(__file__).resolve().parent / "data" / "safety_prompts.jsonl"

SUBTYPES: dict[str, set[str]] = {
    "benign": {"plain", "hard-negative"},
    "injection": {"direct", "indirect", "obfuscated"},
    "jailbreak": {"DAN", "roleplay", "developer-mode", "hypothetical"},
    "pii": {"email", "phone", "credit_card", "api_key", "us_ssn", "iban"},
    "harmful": {f"S{i}" for i in range(1, 15)},  # Llama Guard 3 categories
}
FIELDS = {"id", "label", "text", "subtype", "note"}

# 13-19 digits, optionally grouped by single spaces or dashes (4111 1111 1111 1111, 3782-822463-10005).
CARD_LIKE = re.compile(r"(?<![\d-])\d(?:[ -]?\d){12,18}(?![\d])")
EMAIL = re.compile(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}")
SSN = re.compile(r"(?<!\d)(\d{3})[- ]?(\d{2})[- ]?(\d{4})(?!\d)")
IBAN = re.compile(r"\b([A-Z]{2}\d{2}(?: ?[A-Z0-9]){11,30})\b")
PHONE = re.compile(r"(?:\+\d{1,3}[ ]?)?(?:\(\d{2,4}\)[ ]?)?\d{2,4}(?:[ -]?\d{2,4}){2,4}")
API_KEYS = {
    "openai": re.compile(r"\bsk-proj-[A-Za-z0-9_-]{40,}"),
    "aws": re.compile(r"\bAKIA[A-Z2-7]{16}\b"),
    "github": re.compile(r"\bgh[pousr]_[A-Za-z0-9]{36}\b"),
    "slack": re.compile(r"\bxox[baprs]-\d{10,13}-\d{10,13}-[A-Za-z0-9]{24}\b"),
    "stripe": re.compile(r"\b[sr]k_live_[A-Za-z0-9]{24,}"),
    "google": re.compile(r"\bAIza[A-Za-z0-9_-]{35}"),
    "huggingface": re.compile(r"\bhf_[A-Za-z]{34}\b"),
}


def load() -> list[dict]:
    rows = []
    for n, line in enumerate(DATA.read_text(encoding="utf-8").splitlines(), 1):
        assert line.strip(), f"line {n} is blank"
        rows.append(json.loads(line))
    return rows


ROWS = load()


def luhn_ok(digits: str) -> bool:
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = int(ch)
        if i % 2:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return total % 10 == 0


def luhn_cards(text: str) -> list[str]:
    found = []
    for m in CARD_LIKE.finditer(text):
        digits = re.sub(r"\D", "", m.group())
        if 13 <= len(digits) <= 19 and luhn_ok(digits):
            found.append(digits)
    return found


def iban_ok(candidate: str) -> bool:
    raw = candidate.replace(" ", "")
    if not 15 <= len(raw) <= 34:
        return False
    moved = raw[4:] + raw[:4]
    return int("".join(str(int(c, 36)) for c in moved)) % 97 == 1


def valid_ssns(text: str) -> list[str]:
    out = []
    for area, group, serial in SSN.findall(text):
        if area in {"000", "666"} or area.startswith("9") or group == "00" or serial == "0000":
            continue
        out.append(f"{area}-{group}-{serial}")
    return out


def entropy(s: str) -> float:
    counts = Counter(s)
    return -sum(c / len(s) * math.log2(c / len(s)) for c in counts.values())


def of(label: str, subtype: str | None = None) -> list[dict]:
    return [r for r in ROWS if r["label"] == label and (subtype is None or r["subtype"] == subtype)]


def ids(rows: list[dict]) -> list[str]:
    return [r["id"] for r in rows]


def test_every_line_has_the_schema() -> None:
    for row in ROWS:
        assert set(row) == FIELDS, f"{row.get('id')}: fields {sorted(row)} != {sorted(FIELDS)}"
        assert all(isinstance(row[k], str) for k in FIELDS), row["id"]
        assert row["text"].strip() == row["text"] and row["text"], f"{row['id']}: empty or padded text"
        assert row["label"] in SUBTYPES, f"{row['id']}: unknown label {row['label']!r}"
        assert re.fullmatch(rf"{row['label']}-\d{{3}}", row["id"]), f"{row['id']}: id must be <label>-NNN"


def test_ids_and_texts_are_unique() -> None:
    assert [i for i, n in Counter(ids(ROWS)).items() if n > 1] == []
    assert [t[:60] for t, n in Counter(r["text"] for r in ROWS).items() if n > 1] == []


def test_label_counts() -> None:
    counts = Counter(r["label"] for r in ROWS)
    assert len(ROWS) >= 100
    assert all(counts[label] >= 15 for label in SUBTYPES), counts
    assert len(of("benign", "hard-negative")) >= 20


def test_subtypes_are_known_and_pii_subtypes_each_have_four() -> None:
    unknown = [(r["id"], r["subtype"]) for r in ROWS if r["subtype"] not in SUBTYPES[r["label"]]]
    assert unknown == []
    pii = Counter(r["subtype"] for r in of("pii"))
    assert all(pii[s] >= 4 for s in SUBTYPES["pii"]), pii


def test_lengths_vary() -> None:
    lengths = [len(r["text"]) for r in ROWS]
    assert min(lengths) < 80
    assert sum(n >= 1000 for n in lengths) >= 5, "keep some 1-2 KB documents and emails"


def test_credit_card_texts_hold_a_luhn_valid_number() -> None:
    missing = [r["id"] for r in of("pii", "credit_card") if not luhn_cards(r["text"])]
    assert missing == []


@pytest.mark.parametrize("label", ["benign", "injection", "jailbreak", "harmful"])
def test_no_card_email_or_ssn_outside_pii(label: str) -> None:
    # Hard negatives carry dates, order ids, ISBNs, EANs, UUIDs, timestamps: none may be a real positive.
    assert [r["id"] for r in of(label) if luhn_cards(r["text"])] == []
    assert [r["id"] for r in of(label) if EMAIL.search(r["text"])] == []
    assert [r["id"] for r in of(label) if re.search(r"(?<!\d)\d{3}-\d{2}-\d{4}(?!\d)", r["text"])] == []


def test_hard_negatives_carry_a_decoy() -> None:
    decoy = re.compile(
        r"\d{3,}|\d[.,]\d|ignor|disregard|override|instruction|system prompt|password|mot de passe|"
        r"jailbreak|injection"
    )
    plain = [r["id"] for r in of("benign", "hard-negative") if not decoy.search(r["text"].lower())]
    assert plain == []


def test_email_texts_hold_an_address() -> None:
    assert [r["id"] for r in of("pii", "email") if not EMAIL.search(r["text"])] == []


def test_phone_texts_hold_a_phone_number() -> None:
    assert [r["id"] for r in of("pii", "phone") if not PHONE.search(r["text"])] == []


def test_ssn_texts_hold_a_well_formed_ssn() -> None:
    assert [r["id"] for r in of("pii", "us_ssn") if not valid_ssns(r["text"])] == []


def test_iban_texts_hold_a_mod97_valid_iban() -> None:
    bad = [r["id"] for r in of("pii", "iban") if not any(iban_ok(m) for m in IBAN.findall(r["text"]))]
    assert bad == []


def test_api_key_texts_hold_a_real_format_key_that_looks_random() -> None:
    for row in of("pii", "api_key"):
        keys = [m.group() for rx in API_KEYS.values() for m in rx.finditer(row["text"])]
        assert keys, f"{row['id']}: no key in a known format"
        for key in keys:
            body = re.sub(r"^(sk-proj-|AKIA|gh[pousr]_|xox[baprs]-|[sr]k_live_|AIza|hf_)", "", key)
            # Random keys score close to log2(len) when short and 4.3-6 bits when long; placeholders score ~2.
            floor = min(4.0, 0.8 * math.log2(len(body)))
            assert entropy(body) >= floor, f"{row['id']}: {key[:12]}... looks like a low-entropy placeholder"
            assert not re.search(r"(.)\1{3}", body), f"{row['id']}: {key[:12]}... has a repeated run"
    formats = {name for name, rx in API_KEYS.items() for r in of("pii", "api_key") if rx.search(r["text"])}
    assert {"openai", "aws", "github", "slack", "stripe"} <= formats
