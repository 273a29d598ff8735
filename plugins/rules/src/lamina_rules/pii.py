"""Built-in PII and secret detectors: a candidate regex each, then checks in code.

Each ``find_<kind>(text)`` yields ``(start, end)`` spans. Candidate regexes begin with a required
character (a digit, '+', '@', a secret's literal prefix) so the regex engine skips straight to
candidates, and check "starts a token" right after that character; each attempt is bounded, so a
scan is linear in the text's length. Checksums (Luhn, mod-97), number ranges and issuer prefixes
then reject what merely looks right. The exact definitions are in this plugin's README.

They run on the ``regex`` engine (in its ``re``-compatible VERSION0 mode): about twice as fast as
``re`` on these patterns, and ``concurrent=True`` releases the GIL, so a scan in a worker thread
does not stall the event loop.
"""

from __future__ import annotations

import ipaddress
import math
from collections import Counter
from collections.abc import Callable, Iterator

import regex

Span = tuple[int, int]


def _token_start(text: str, index: int, also: str = "") -> bool:
    """No letter, digit or '_' (nor a character of ``also``) right before ``text[index]``."""
    if index == 0:
        return True
    before = text[index - 1]
    return not (before.isalnum() or before == "_" or before in also)


def _merge(spans: list[Span]) -> Iterator[Span]:
    """Sorted spans with overlapping ones joined (two patterns of one kind finding the same thing)."""
    current: Span | None = None
    for start, end in sorted(spans):
        if current and start < current[1]:
            current = (current[0], max(current[1], end))
            continue
        if current:
            yield current
        current = (start, end)
    if current:
        yield current


def _shrink(text: str, start: int, end: int, ok: Callable[[str], bool]) -> Span | None:
    """The longest prefix of text[start:end] ending at a group boundary (space, dot, dash) passing ``ok``."""
    while end > start:
        if ok(text[start:end]):
            return start, end
        cut = max(text.rfind(" ", start, end), text.rfind("-", start, end), text.rfind(".", start, end))
        if cut <= start:
            return None
        end = cut
        while end > start and not text[end - 1].isalnum() and text[end - 1] != ")":
            end -= 1
    return None


# -- email -----------------------------------------------------------------------------------------

# Anchored on each "@": the local part is matched backwards from it, the domain forwards.
_EMAIL_LOCAL = regex.compile(
    r"(?<![A-Za-z0-9_%+'-])[A-Za-z0-9_%+'-](?:[A-Za-z0-9._%+'-]{0,62}[A-Za-z0-9_%+'-])?\Z"
)
_EMAIL_DOMAIN = regex.compile(
    # host labels (at most 126, as DNS: bounded so a long run of labels costs linear time) and a letter TLD
    r"(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.){1,126}[A-Za-z]{2,24}"
    r"(?![A-Za-z0-9-]|\.[A-Za-z0-9])"
)


def find_email(text: str) -> Iterator[Span]:
    at = text.find("@")
    while at != -1:
        domain = _EMAIL_DOMAIN.match(text, at + 1)
        local = _EMAIL_LOCAL.search(text, max(0, at - 64), at) if domain else None
        if domain and local:
            yield local.start(), domain.end()
            at = text.find("@", domain.end())
        else:
            at = text.find("@", at + 1)


# -- phone -----------------------------------------------------------------------------------------

# International: '+', then digits in groups separated by one space, dot or dash; a group may be in
# parentheses, e.g. "+44 (0) 20 7946 0958".
_PHONE_INTL = regex.compile(r"\+(?<![\w+.]\+)\(?\d(?:\)?[ .-]?\(?\d){6,24}(?![\w]|[.-]\d)")
# North American: (555) 123-4567, 555-123-4567, 555.123.4567, optionally after "1-", "1." or "1 "
# (added in code). The first character is "(" or the area code's first digit.
_PHONE_NANP = regex.compile(
    r"[(2-9](?:(?<=\()[2-9]\d\d\)[ .-]?\d{3}[.-]|(?<=[2-9])\d\d(?P<sep>[.-])\d{3}(?P=sep))"
    r"\d{4}(?![\w]|[.-]\d)"
)
_NANP_BEFORE = "+.()-"
_GROUPS = regex.compile(r"\(?\d+\)?")


def _intl_phone_ok(candidate: str) -> bool:
    body = candidate[1:]
    if body.count("(") != body.count(")") or body.count("(") > 1:
        return False
    trunk = "(0)" in body  # the UK-style "(0)" trunk digit is not part of the number
    groups = _GROUPS.findall(body.replace("(0)", "", 1) if trunk else body)
    if any(g.startswith("(") != g.endswith(")") for g in groups):
        return False
    digits = [g.strip("()") for g in groups]
    total = sum(len(d) for d in digits)
    if len(digits) == 1:
        return 10 <= total <= 15  # E.164 written without separators: +14155552671
    if not 8 <= total <= 15 or len(digits) > 6:
        return False
    if len(digits[0]) > 3:  # the country code is 1-3 digits
        return False
    if len(digits) == 2 and len(digits[1]) < 7:  # "+1 2345" and prices like "+12.50" are not numbers
        return False
    return sum(1 for d in digits[1:] if len(d) == 1) <= 1


def find_phone(text: str) -> Iterator[Span]:
    spans = []
    if "+" in text:
        for m in _PHONE_INTL.finditer(text, concurrent=True):
            span = _shrink(text, m.start(), m.end(), _intl_phone_ok)
            if span:
                spans.append(span)
    for m in _PHONE_NANP.finditer(text, concurrent=True):
        start = m.start()
        if (
            start >= 2
            and text[start - 2] == "1"
            and text[start - 1] in " .-"
            and _token_start(text, start - 2, _NANP_BEFORE)
        ):
            spans.append((start - 2, m.end()))  # 1-800-555-1234
        elif _token_start(text, start, _NANP_BEFORE):
            spans.append(m.span())
    yield from _merge(spans)


# -- credit_card -----------------------------------------------------------------------------------

_CARD = regex.compile(r"\d(?<![\w.,-]\d)(?:[ -]?\d){12,18}(?![\w]|[.,-]\d)")


def luhn_ok(digits: str) -> bool:
    total = 0
    for i, char in enumerate(reversed(digits)):
        d = ord(char) - 48
        if i % 2:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return total % 10 == 0


def card_brand(digits: str) -> str | None:
    """The card network whose issuer prefix (IIN) and length ``digits`` matches, or None."""
    n = len(digits)
    p2, p3, p4, p6 = int(digits[:2]), int(digits[:3]), int(digits[:4]), int(digits[:6])
    if digits[0] == "4" and n in (13, 16, 19):
        return "visa"
    if (51 <= p2 <= 55 or 2221 <= p4 <= 2720) and n == 16:
        return "mastercard"
    if p2 in (34, 37) and n == 15:
        return "amex"
    if (p4 == 6011 or 644 <= p3 <= 649 or p2 == 65 or 622126 <= p6 <= 622925) and 16 <= n <= 19:
        return "discover"
    if (300 <= p3 <= 305 or p2 in (36, 38, 39)) and 14 <= n <= 19:
        return "diners"
    if 3528 <= p4 <= 3589 and 16 <= n <= 19:
        return "jcb"
    if p2 == 62 and 16 <= n <= 19:
        return "unionpay"
    if 2200 <= p4 <= 2204 and n == 16:
        return "mir"
    if p4 in (5018, 5020, 5038, 5893, 6304, 6759, 6761, 6762, 6763) and 13 <= n <= 19:
        return "maestro"
    return None


def _card_grouping_ok(candidate: str) -> bool:
    seps = {c for c in candidate if c in " -"}
    if not seps:
        return True
    if len(seps) > 1:
        return False
    sizes = [len(g) for g in candidate.split(seps.pop())]
    if sizes in ([4, 6, 5], [4, 6, 4]):  # Amex, Diners
        return True
    return len(sizes) >= 4 and all(s == 4 for s in sizes[:-1]) and 1 <= sizes[-1] <= 4


def find_credit_card(text: str) -> Iterator[Span]:
    for m in _CARD.finditer(text, concurrent=True):
        candidate = m.group()
        digits = candidate.replace(" ", "").replace("-", "")
        if _card_grouping_ok(candidate) and card_brand(digits) and luhn_ok(digits):
            yield m.span()


# -- us_ssn ----------------------------------------------------------------------------------------

_SSN = regex.compile(r"(\d(?<![\w-]\d)\d\d)-(\d{2})-(\d{4})(?![\w-]|\.\d)")
_SSN_LABELLED = regex.compile(
    # Bounded whitespace: unbounded runs on both sides of the optional separator split a long run of
    # spaces in O(n^2) ways (a 16 KB run of spaces took 3.4 s).
    r"(?i)s(?:sn|ocial\s{1,8}security(?:\s{1,8}(?:number|no\.?|#))?)\s{0,8}(?:(?:is|:|#|=)\s{0,8})?"
    r"(\d{3})(?P<sep> ?)(\d{2})(?P=sep)(\d{4})(?!\w)"
)


def ssn_ok(area: str, group: str, serial: str) -> bool:
    """SSA's rules: area 001-899 but not 666, group 01-99, serial 0001-9999."""
    a = int(area)
    return 0 < a < 900 and a != 666 and group != "00" and serial != "0000"


def find_us_ssn(text: str) -> Iterator[Span]:
    spans = [m.span() for m in _SSN.finditer(text, concurrent=True) if ssn_ok(*m.groups())]
    spans += [
        (m.start(1), m.end(4))
        for m in _SSN_LABELLED.finditer(text, concurrent=True)
        if _token_start(text, m.start()) and ssn_ok(m.group(1), m.group(3), m.group(4))
    ]
    yield from _merge(spans)


# -- iban ------------------------------------------------------------------------------------------

IBAN_LENGTHS: dict[str, int] = {
    "AD": 24, "AE": 23, "AL": 28, "AT": 20, "AZ": 28, "BA": 20, "BE": 16, "BG": 22, "BH": 22, "BI": 27,
    "BR": 29, "BY": 28, "CH": 21, "CR": 22, "CY": 28, "CZ": 24, "DE": 22, "DJ": 27, "DK": 18, "DO": 28,
    "EE": 20, "EG": 29, "ES": 24, "FI": 18, "FK": 18, "FO": 18, "FR": 27, "GB": 22, "GE": 22, "GI": 23,
    "GL": 18, "GR": 27, "GT": 28, "HR": 21, "HU": 28, "IE": 22, "IL": 23, "IQ": 23, "IS": 26, "IT": 27,
    "JO": 30, "KW": 30, "KZ": 20, "LB": 28, "LC": 32, "LI": 21, "LT": 20, "LU": 20, "LV": 21, "LY": 25,
    "MC": 27, "MD": 24, "ME": 22, "MK": 19, "MN": 20, "MR": 27, "MT": 31, "MU": 30, "NI": 28, "NL": 18,
    "NO": 15, "OM": 23, "PK": 24, "PL": 28, "PS": 29, "PT": 25, "QA": 29, "RO": 24, "RS": 22, "RU": 33,
    "SA": 24, "SC": 31, "SD": 18, "SE": 24, "SI": 19, "SK": 24, "SM": 27, "SO": 23, "ST": 25, "SV": 28,
    "TL": 23, "TN": 24, "TR": 26, "UA": 29, "VA": 22, "VG": 24, "XK": 20, "YE": 30,
}  # fmt: skip
_IBAN = regex.compile(r"[A-Z](?<!\w[A-Z])[A-Z]\d{2}(?: ?[A-Z0-9]{4}){2,7}(?: ?[A-Z0-9]{1,3})?(?![\w])")


def iban_ok(candidate: str) -> bool:
    """Known country, that country's length, and the ISO 13616 mod-97 check."""
    iban = candidate.replace(" ", "")
    if IBAN_LENGTHS.get(iban[:2]) != len(iban):
        return False
    rearranged = iban[4:] + iban[:4]
    return int("".join(str(int(c, 36)) for c in rearranged)) % 97 == 1


def find_iban(text: str) -> Iterator[Span]:
    for m in _IBAN.finditer(text, concurrent=True):
        span = _shrink(text, m.start(), m.end(), iban_ok)
        if span:
            yield span


# -- ip_address ------------------------------------------------------------------------------------

_IPV4 = regex.compile(r"\d(?<![\w.]\d)\d{0,2}\.\d{1,3}\.\d{1,3}\.\d{1,3}(?![\w]|\.\d)")
_IPV6_HINT = regex.compile(r":[0-9A-Fa-f]{0,4}:")
_IPV6_CHARS = frozenset("0123456789abcdefABCDEF:.")


def _ipv6_candidates(text: str) -> Iterator[Span]:
    """The run of hex digits, colons and dots around each "x:y:" hint (at most 45 characters)."""
    pos = 0
    while (m := _IPV6_HINT.search(text, pos)) is not None:
        start, end = m.start(), m.end()
        while start > 0 and text[start - 1] in _IPV6_CHARS and end - start < 45:
            start -= 1
        while end < len(text) and text[end] in _IPV6_CHARS and end - start < 45:
            end += 1
        while end > start and text[end - 1] == ".":
            end -= 1
        if _token_start(text, start) and not (end < len(text) and (text[end].isalnum() or text[end] == "_")):
            yield start, end
        pos = max(end, m.start() + 1)


def _global_ip(candidate: str) -> bool:
    try:
        return ipaddress.ip_address(candidate).is_global
    except ValueError:
        return False


def find_ip_address(text: str) -> Iterator[Span]:
    spans = [m.span() for m in _IPV4.finditer(text, concurrent=True) if _global_ip(m.group())]
    if ":" in text:
        spans += [(a, b) for a, b in _ipv6_candidates(text) if _global_ip(text[a:b])]
    yield from _merge(spans)


# -- api_key ---------------------------------------------------------------------------------------

# Each well-known format, behind the literals it contains (cheap substring tests gate the regexes).
_END = r"(?![A-Za-z0-9_-])"
_SECRET_FORMATS: list[tuple[str, tuple[str, ...], regex.Pattern[str]]] = [
    (
        "openai",  # and Anthropic's sk-ant-api03-...
        ("sk-",),
        regex.compile(
            r"sk-(?<![A-Za-z0-9_-]sk-)(?:ant-[a-z]{2,12}\d{2}-[A-Za-z0-9_-]{32,}"
            r"|(?!ant-)(?:proj-|svcacct-|admin-)?[A-Za-z0-9_-]{20,})" + _END
        ),
    ),
    (
        "aws",
        ("AKIA", "ASIA", "ABIA", "ACCA"),
        regex.compile(r"A(?<![A-Za-z0-9]A)(?:KIA|SIA|BIA|CCA)[0-9A-Z]{16}(?![A-Za-z0-9])"),
    ),
    (
        "github",
        ("ghp_", "gho_", "ghu_", "ghs_", "ghr_", "github_pat_"),
        regex.compile(
            r"g(?<![A-Za-z0-9_-]g)(?:h[pousr]_[A-Za-z0-9]{36,255}|ithub_pat_[A-Za-z0-9_]{22,255})" + _END
        ),
    ),
    ("slack", ("xox",), regex.compile(r"x(?<![A-Za-z0-9_-]x)ox[abprse]-\d{6,}-[A-Za-z0-9-]{8,}" + _END)),
    (
        "slack_webhook",
        ("hooks.slack.com",),
        regex.compile(r"hooks\.slack\.com/services/T[A-Z0-9]{6,}/B[A-Z0-9]{6,}/[A-Za-z0-9]{16,}"),
    ),
    ("google", ("AIza",), regex.compile(r"A(?<![A-Za-z0-9_-]A)Iza[0-9A-Za-z_-]{35}" + _END)),
    (
        "stripe",
        ("k_live_", "k_test_"),
        regex.compile(r"[sr](?<![A-Za-z0-9_-][sr])k_(?:live|test)_[0-9A-Za-z]{16,}" + _END),
    ),
    ("huggingface", ("hf_",), regex.compile(r"h(?<![A-Za-z0-9_-]h)f_[A-Za-z0-9]{30,}" + _END)),
    (
        "jwt",
        ("eyJ",),
        regex.compile(
            r"e(?<![A-Za-z0-9_-]e)yJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{16,}" + _END
        ),
    ),
    ("private_key", ("-----BEGIN",), regex.compile(r"-----BEGIN (?:[A-Z0-9]+ )*PRIVATE KEY(?: BLOCK)?-----")),
]
# `api_key = "..."`, `"GITHUB_TOKEN": "..."`, `password: ...`: found at the operator, then the name
# before it is checked: it must end in one of these words (OPENAI_API_KEY, db_password, x-api-key).
_ASSIGNMENT = regex.compile(r"(?:=>|:=|[:=])[ \t]*[\"']?(?P<value>[A-Za-z0-9_\-.+/=~]{20,})")
_SECRET_NAME = regex.compile(
    r"(?i)(?<![A-Za-z0-9])"
    r"(?:api[_-]?key|apikey|secret(?:[_-]?key)?|access[_-]?key|private[_-]?key|token|password|passwd|pwd)"
    r"[\"']?[ \t]*\Z"
)
_BEARER = regex.compile(r"(?i)bearer[ \t]+(?P<value>[A-Za-z0-9_\-.+/=~]{20,})")

_PLACEHOLDER_WORDS = ("your", "example", "placeholder", "xxxx", "changeme", "redacted", "dummy", "here")


def _classes(value: str) -> tuple[bool, bool, bool]:
    return (
        any(c.isupper() for c in value),
        any(c.islower() for c in value),
        any(c.isdigit() for c in value),
    )


def shannon_entropy(value: str) -> float:
    """Bits per character of ``value``'s own character distribution."""
    counts = Counter(value)
    n = len(value)
    return -sum(c / n * math.log2(c / n) for c in counts.values())


def high_entropy(value: str) -> bool:
    """Looks machine-generated: a letter and a digit, >= 3 bits/char, no placeholder word, not a path."""
    if value[0] in "/.~" or value.lower().startswith(("http", "www.")):
        return False
    upper, lower, digit = _classes(value)
    if not digit or not (upper or lower):
        return False
    lowered = value.lower()
    if any(word in lowered for word in _PLACEHOLDER_WORDS):
        return False
    return shannon_entropy(value) >= 3.0


def _token_ok(kind: str, token: str) -> bool:
    if kind == "openai" and not token.startswith("sk-ant-"):
        return all(_classes(token[3:]))  # random base62/base64url: upper, lower and digits
    if kind == "huggingface":
        upper, lower, _ = _classes(token[3:])
        return upper and lower
    return True


def find_api_key(text: str) -> Iterator[Span]:
    spans = []
    for kind, literals, pattern in _SECRET_FORMATS:
        if any(literal in text for literal in literals):
            spans += [m.span() for m in pattern.finditer(text, concurrent=True) if _token_ok(kind, m.group())]
    for m in _ASSIGNMENT.finditer(text, concurrent=True):
        if high_entropy(m.group("value")) and _SECRET_NAME.search(text, max(0, m.start() - 48), m.start()):
            spans.append(m.span("value"))
    for m in _BEARER.finditer(text, concurrent=True):
        if _token_start(text, m.start()) and high_entropy(m.group("value")):
            spans.append(m.span("value"))
    yield from _merge(spans)


DETECTORS: dict[str, Callable[[str], Iterator[Span]]] = {
    "email": find_email,
    "phone": find_phone,
    "credit_card": find_credit_card,
    "api_key": find_api_key,
    "us_ssn": find_us_ssn,
    "iban": find_iban,
    "ip_address": find_ip_address,
}
