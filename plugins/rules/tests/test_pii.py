"""Each built-in detector on what it must find and on look-alikes it must leave alone."""

from __future__ import annotations

import pytest

from lamina_rules.pii import DETECTORS, card_brand, iban_ok, luhn_ok, shannon_entropy, ssn_ok


def found(kind: str, text: str) -> list[str]:
    return [text[start:end] for start, end in DETECTORS[kind](text)]


def check(kind: str, text: str, expected: str | None) -> None:
    hits = found(kind, text)
    if expected is None:
        assert hits == [], f"{kind} flagged {hits} in {text!r}"
    else:
        assert hits == [expected], f"{kind} found {hits} in {text!r}, expected {expected!r}"


# Hard negatives every detector must leave alone: dates, prices, versions, UUIDs, git SHAs, ISBNs,
# order numbers, timestamps, plain prose.
COMMON_NEGATIVES = [
    "The meeting is on 2024-01-15 at 10:30, see you then.",
    "It costs $1,234.56 (or EUR 1.234,56) including tax.",
    "Upgrade from v1.2.3 to 10.4.2-rc1 and then 2.0.0.",
    "request id 123e4567-e89b-12d3-a456-426614174000 failed",
    "fixed in commit 9fceb02d0ae598e95dc970b74767f19372d61af8 (9fceb02)",
    "ISBN 978-3-16-148410-0 and ISBN-10 0-306-40615-2",
    "Your order ORD-2024-000123456 ships soon; tracking 1Z999AA10123456784.",
    "epoch 1712345678901 ms, or 1712345678 s",
    "Call me maybe, on the 3rd of May at 5 pm.",
    "The answer is 42 and pi is 3.14159265358979.",
]


@pytest.mark.parametrize("kind", sorted(DETECTORS))
@pytest.mark.parametrize("text", COMMON_NEGATIVES)
def test_common_look_alikes_are_not_flagged(kind: str, text: str) -> None:
    check(kind, text, None)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("mail me at john.doe+news@example.co.uk.", "john.doe+news@example.co.uk"),
        ("first.last@sub.example.org", "first.last@sub.example.org"),
        ("<o'brien@example.ie>", "o'brien@example.ie"),
        ("UPPER_CASE@EXAMPLE.COM, please", "UPPER_CASE@EXAMPLE.COM"),
        ("user@localhost", None),
        ("pkg@1.2.3 is pinned", None),
        ("@property decorators", None),
        ("a@b.c", None),
        ("me@example", None),
        ("npm i @scope/pkg@2.0.1", None),
        (".dot@example.com", "dot@example.com"),
        ("x" * 64 + "@example.com", "x" * 64 + "@example.com"),
        ("x" * 65 + "@example.com", None),  # a local part has at most 64 characters
    ],
)
def test_email(text: str, expected: str | None) -> None:
    check("email", text, expected)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("call (555) 123-4567 now", "(555) 123-4567"),
        ("call 555-123-4567.", "555-123-4567"),
        ("fax 555.123.4567", "555.123.4567"),
        ("1-800-555-1234 toll free", "1-800-555-1234"),
        ("London: +44 20 7946 0958", "+44 20 7946 0958"),
        ("UK +44 (0) 20 7946 0958", "+44 (0) 20 7946 0958"),
        ("US +1 (555) 123-4567", "+1 (555) 123-4567"),
        ("E.164 +14155552671 works", "+14155552671"),
        ("Paris +33 1 23 45 67 89", "+33 1 23 45 67 89"),
        ("Berlin +49 30 901820", "+49 30 901820"),
        ("+1-202-555-0143", "+1-202-555-0143"),
        ("+44 20 7946 0958 2024 was the year", "+44 20 7946 0958"),
        # not phone numbers
        ("order 5551234567 shipped", None),
        ("555 123 4567", None),
        ("ORD-555-123-4567", None),
        ("ticket 555-123-4567-89", None),
        ("id 123-456-7890", None),  # area codes do not start with 0 or 1
        ("up +12.50 today", None),
        ("grew +1234567.89", None),
        ("delta +1 2345", None),
        ("x = 3+14155552671", None),
        ("host 192.168.100.200", None),
        ("version 555.123.4567.1", None),
        ("+100 points", None),
    ],
)
def test_phone(text: str, expected: str | None) -> None:
    check("phone", text, expected)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("card 4111 1111 1111 1111 exp 12/29", "4111 1111 1111 1111"),
        ("4111-1111-1111-1111", "4111-1111-1111-1111"),
        ("4111111111111111", "4111111111111111"),
        ("Mastercard 5555 5555 5555 4444", "5555 5555 5555 4444"),
        ("Mastercard 2-series 2223003122003222", "2223003122003222"),
        ("Amex 378282246310005", "378282246310005"),
        ("Amex 3782 822463 10005", "3782 822463 10005"),
        ("Discover 6011111111111117", "6011111111111117"),
        ("Diners 3056 930902 5904", "3056 930902 5904"),
        ("JCB 3530111333300000", "3530111333300000"),
        ("UnionPay 6200000000000005", "6200000000000005"),
        ("Visa 19 digits 4222 2222 2222 2222 224", "4222 2222 2222 2222 224"),
        # Luhn failures and unknown prefixes
        ("4111 1111 1111 1112", None),
        ("1234 5678 9012 3456", None),
        ("0000 0000 0000 0000", None),
        ("9999999999999995", None),  # Luhn-valid, no issuer starts with 99
        # wrong grouping or separators
        ("4111 111111111111", None),
        ("4111 1111-1111 1111", None),
        ("41 11 11 11 11 11 11 11", None),
        # part of something longer
        ("4111111111111111111111", None),
        ("ref-4111111111111111", None),
        ("v4111111111111111", None),
        ("3.4111111111111111", None),
    ],
)
def test_credit_card(text: str, expected: str | None) -> None:
    check("credit_card", text, expected)


def test_luhn_and_brands() -> None:
    assert luhn_ok("79927398713")
    assert not luhn_ok("79927398710")
    assert card_brand("4111111111111111") == "visa"
    assert card_brand("378282246310005") == "amex"
    assert card_brand("37828224631000") is None  # Amex is 15 digits
    assert card_brand("5105105105105100") == "mastercard"
    assert card_brand("2720990000000000") == "mastercard"
    assert card_brand("2721000000000000") is None
    assert card_brand("6759649826438453") == "maestro"
    assert card_brand("2200000000000004") == "mir"
    assert card_brand("1234567890123456") is None


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("ssn 123-45-6789 on file", "123-45-6789"),
        ("SSN: 123456789", "123456789"),
        ("my social security number is 123 45 6789", "123 45 6789"),
        ("Social Security No. 078051121", "078051121"),
        ("666-12-3456", None),  # area 666 is never issued
        ("000-12-3456", None),
        ("900-12-3456", None),  # 900-999: not SSNs (ITINs, ads)
        ("123-00-6789", None),
        ("123-45-0000", None),
        ("123-45-6789-1", None),
        ("A123-45-6789", None),
        ("part 123-45-6789.5", None),
        ("123456789", None),  # nine digits without a label
        ("ssn 123 456789", None),  # inconsistent spacing
        ("date 2024-01-15", None),
    ],
)
def test_us_ssn(text: str, expected: str | None) -> None:
    check("us_ssn", text, expected)


def test_ssn_ranges() -> None:
    assert ssn_ok("001", "01", "0001")
    assert ssn_ok("899", "99", "9999")
    assert not ssn_ok("666", "01", "0001")
    assert not ssn_ok("900", "01", "0001")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("IBAN DE89 3704 0044 0532 0130 00", "DE89 3704 0044 0532 0130 00"),
        ("pay to GB82WEST12345698765432 today", "GB82WEST12345698765432"),
        ("GB82 WEST 1234 5698 7654 32", "GB82 WEST 1234 5698 7654 32"),
        ("FR14 2004 1010 0505 0001 3M02 606", "FR14 2004 1010 0505 0001 3M02 606"),
        ("NL91ABNA0417164300", "NL91ABNA0417164300"),
        ("NO9386011117947", "NO9386011117947"),
        ("DE89 3704 0044 0532 0130 00 AT once", "DE89 3704 0044 0532 0130 00"),
        ("DE89 3704 0044 0532 0130 01", None),  # mod-97 fails
        ("DE89 3704 0044 0532 0130", None),  # too short for Germany
        ("XX89 3704 0044 0532 0130 00", None),  # no such country
        ("de89 3704 0044 0532 0130 00", None),  # lower case
        ("ABCD1234EFGH5678", None),
    ],
)
def test_iban(text: str, expected: str | None) -> None:
    check("iban", text, expected)


def test_iban_check() -> None:
    assert iban_ok("GB82WEST12345698765432")
    assert not iban_ok("GB82WEST12345698765433")
    assert not iban_ok("GB82WEST1234569876543")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("resolver 8.8.8.8 answered", "8.8.8.8"),
        ("from 203.0.113.7", None),  # documentation range
        ("lan 192.168.1.1", None),
        ("loopback 127.0.0.1", None),
        ("10.0.0.1", None),
        ("999.1.1.1", None),
        ("1.2.3.4.5", None),
        ("v1.2.3.4", None),
        ("ipv6 2001:4860:4860::8888 ok", "2001:4860:4860::8888"),
        ("::1", None),
        ("fe80::1", None),
        ("at 12:30:45 sharp", None),
        ("2001:db8::1", None),
    ],
)
def test_ip_address(text: str, expected: str | None) -> None:
    check("ip_address", text, expected)


OPENAI_KEY = "sk-proj-" + "Ab3dE5fG7hJ9kL1mN3pQ5rS7tU9vW1xY3zA5bC7dE9fG"
ANTHROPIC_KEY = "sk-ant-api03-" + "Zx9Yw8Vu7Ts6Rq5Po4Nm3Lk2Ji1Hg0Fe9Dc8Ba7" * 2 + "AA"
JWT = (
    "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIiwibmFtZSI6IkpvaG4ifQ."
    "SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV_adQssw5c"
)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (f"key {OPENAI_KEY} leaked", OPENAI_KEY),
        (f"anthropic {ANTHROPIC_KEY}", ANTHROPIC_KEY),
        ("aws AKIAIOSFODNN7EXAMPLE", "AKIAIOSFODNN7EXAMPLE"),
        ("ghp_" + "a1B2c3D4e5F6g7H8i9J0k1L2m3N4o5P6q7R8", "ghp_" + "a1B2c3D4e5F6g7H8i9J0k1L2m3N4o5P6q7R8"),
        (
            "github_pat_11ABCDEFG0123456789_abcdefghijklmnopqrstuv",
            "github_pat_11ABCDEFG0123456789_abcdefghijklmnopqrstuv",
        ),
        (
            "xoxb-123456789012-1234567890123-AbCdEfGhIjKlMnOp",
            "xoxb-123456789012-1234567890123-AbCdEfGhIjKlMnOp",
        ),
        (
            "https://hooks.slack.com/services/T0123ABCD/B0123ABCD/abcdefghijKLMNOPQRSTuvwx",
            "hooks.slack.com/services/T0123ABCD/B0123ABCD/abcdefghijKLMNOPQRSTuvwx",
        ),
        ("AIzaSyD-1a2B3c4D5e6F7g8H9i0J1k2L3m4N5o6", "AIzaSyD-1a2B3c4D5e6F7g8H9i0J1k2L3m4N5o6"),
        ("stripe sk_live_4eC39HqLyjWDarjtT1zdp7dc", "sk_live_4eC39HqLyjWDarjtT1zdp7dc"),
        ("rk_live_51H8xYzAbCdEfGhIjKlMnOpQr", "rk_live_51H8xYzAbCdEfGhIjKlMnOpQr"),
        ("hf_AbCdEfGhIjKlMnOpQrStUvWxYzAbCdEfGh", "hf_AbCdEfGhIjKlMnOpQrStUvWxYzAbCdEfGh"),
        ("-----BEGIN RSA PRIVATE KEY-----\nMIIE...", "-----BEGIN RSA PRIVATE KEY-----"),
        ("-----BEGIN OPENSSH PRIVATE KEY-----", "-----BEGIN OPENSSH PRIVATE KEY-----"),
        ("-----BEGIN PGP PRIVATE KEY BLOCK-----", "-----BEGIN PGP PRIVATE KEY BLOCK-----"),
        (f"Authorization: Bearer {JWT}", JWT),
        ('OPENAI_API_KEY="a8Fk29DkLq0Pz7XcVb3N"', "a8Fk29DkLq0Pz7XcVb3N"),
        (
            '{"github_token": "9fceb02d0ae598e95dc970b74767f19372d61af8"}',
            "9fceb02d0ae598e95dc970b74767f19372d61af8",
        ),
        (
            "aws_secret_access_key = wJalrXUtnFEMI/K7MDENG/bPxRfiCYzq9RkLm3",
            "wJalrXUtnFEMI/K7MDENG/bPxRfiCYzq9RkLm3",
        ),
        ("db_password: Tr0ub4dor-3-correct-Horse-77", "Tr0ub4dor-3-correct-Horse-77"),
        ("Authorization: Bearer abcDEF123456ghiJKL789mno", "abcDEF123456ghiJKL789mno"),
        # not secrets
        ("sk-spinner-double-bounce-container", None),
        ("the sk-learn package", None),
        ("api_key = YOUR_API_KEY_HERE_12345", None),
        ("api_key: <paste-your-key-here-0000>", None),
        ("password: hunter2", None),
        ("token = get_token_from_environment_variable()", None),
        ("token_url = https://auth.example.com/oauth2/token", None),
        ("password_file: /etc/app/secrets/db-password-2024.txt", None),
        ("the token is not valid", None),
        ("the bearer of 12345678901234567890 news", None),
        ("api_key = os.environ['OPENAI_API_KEY']", None),
        ("secret: aaaaaaaaaaaaaaaaaaaaaaaa1", None),
        ("hf_hub_download(repo_id='x')", None),
        ("xoxo-gossip-girl-2024-forever", None),
        ("eyJhbGciOiJIUzI1NiJ9 alone", None),
        ("-----BEGIN PUBLIC KEY-----", None),
        ("-----BEGIN CERTIFICATE-----", None),
    ],
)
def test_api_key(text: str, expected: str | None) -> None:
    check("api_key", text, expected)


def test_legacy_openai_key_format() -> None:
    key = "sk-" + "a1B2c3D4e5F6g7H8i9J0" + "T3BlbkFJ" + "k1L2m3N4o5P6q7R8s9T0"
    check("api_key", f"OPENAI {key}", key)


def test_a_secret_found_twice_is_reported_once() -> None:
    # the OpenAI format and the OPENAI_API_KEY= assignment both find it: one span
    assert found("api_key", f"OPENAI_API_KEY={OPENAI_KEY}") == [OPENAI_KEY]


def test_entropy() -> None:
    assert shannon_entropy("aaaa") == 0
    assert shannon_entropy("abcd") == 2
    assert shannon_entropy("a8Fk29DkLq0Pz7XcVb3N") > 4


def test_several_hits_in_one_text() -> None:
    text = "a@example.com, b@example.org; card 4111 1111 1111 1111 and 5555-5555-5555-4444"
    assert found("email", text) == ["a@example.com", "b@example.org"]
    assert found("credit_card", text) == ["4111 1111 1111 1111", "5555-5555-5555-4444"]


def test_detectors_stay_linear_on_adversarial_text() -> None:
    # long runs of what candidates are made of: each detector must finish (no quadratic rescans);
    # no timing assertion, only that it completes and finds nothing.
    for text in (
        "a" * 50_000,
        "1" * 50_000,
        "1 " * 25_000,
        "a_" * 25_000 + "=",
        "+1" * 25_000,
        "A1" * 25_000,
    ):
        for kind in DETECTORS:
            assert found(kind, text) == [], kind
