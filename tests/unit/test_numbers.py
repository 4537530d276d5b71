"""Phone numbers, ICCIDs, IMSIs and the numbering plan (exchange.numbers)."""

from __future__ import annotations

import re

import phonenumbers
import pytest
from hypothesis import assume, given
from hypothesis import strategies as st
from phonenumbers.geodata import GEOCODE_DATA

from exchange.errors import NumberError
from exchange.numbers import (
    NEVER_ACTIONABLE,
    PROVINCE_CODES,
    NotActionableError,
    NumberBlock,
    NumberingPlan,
    Route,
    check_actionable,
    default_block,
    digits_only,
    luhn_check_digit,
    luhn_valid,
    normalise,
    province_of,
    validate_iccid,
    validate_imsi,
)

FUZHOU = "+8615959000001"  # China Mobile, Fuzhou, Fujian
GUANGZHOU = "+8613800200000"  # China Mobile, Guangzhou, Guangdong
CARRIERS = {"China Mobile": "cmcc", "China Unicom": "cucc", "China Telecom": "ctcc"}
E164_MOBILE = re.compile(r"\+861[3-9][0-9]{9}")

# --- normalise ----------------------------------------------------------------------------

ACCEPTED = [
    ("+8615959000001", FUZHOU),
    ("+86 159-5900-0001", FUZHOU),
    ("+86 159 5900 0001", FUZHOU),
    ("008615959000001", FUZHOU),
    ("0086 159 5900 0001", FUZHOU),
    ("8615959000001", FUZHOU),
    ("86-159-5900-0001", FUZHOU),
    ("15959000001", FUZHOU),
    ("159.5900.0001", FUZHOU),
    ("(+86) 159 5900 0001", FUZHOU),
    ("(0086)15959000001", FUZHOU),
    ("  15959000001\n", FUZHOU),
    ("159\t5900\u00a00001", FUZHOU),  # tab and no-break space, as pasted from documents
    ("＋８６ １５９－５９００－０００１", FUZHOU),  # full-width, as Chinese input methods type
    ("159\u30005900\u30000001", FUZHOU),  # ideographic space
    ("015959000001", FUZHOU),  # trunk prefix 0 (dialled from a landline in another city)
    ("1795115959000001", FUZHOU),  # IP-dialling prefix 17951, stripped by phonenumbers
    ("+86 138 0020 0000", GUANGZHOU),
    ("+8617001234567", "+8617001234567"),  # reseller block
]


@pytest.mark.parametrize(("raw", "expected"), ACCEPTED)
def test_normalise_accepts(raw: str, expected: str) -> None:
    assert normalise(raw) == expected


REFUSED = [
    ("", "empty"),
    ("   ", "empty"),
    ("-().", "empty"),
    ("+", r"no digits after '\+'"),
    ("abc", "contains letters"),
    ("159590000O1", "contains letters"),  # letter O for zero
    ("1-800-FLOWERS", "contains letters"),  # phonenumbers alone would read letters as digits
    ("电话15959000001", "contains letters"),
    ("tel:+8615959000001", "contains letters"),
    ("159+59000001", r"'\+' is allowed only at the start"),
    ("++8615959000001", r"'\+' is allowed only at the start"),
    ("#15959000001", "contains '#'"),
    ("15959000001;", "contains ';'"),
    ("١٥٩٥٩٠٠٠٠٠١", "contains '١'"),  # Arabic-Indic digits are not accepted
    ("1", "not a phone number"),
    ("1595900", "too short: 7 digits, a mobile number has 11"),
    ("+86 159 5900 000", "too short: 10 digits"),
    ("159590000012", "too long: 12 digits, a mobile number has 11"),
    ("+86 159 5900 00012", "too long: 12 digits"),
    ("1" * 300, "too long"),
    ("+86 591 8765 4321", r"not a mainland mobile number \(a fixed line\)"),  # Fuzhou landline
    ("0591-87654321", r"not a mainland mobile number \(a fixed line\)"),
    ("+86 10 6552 9988", r"not a mainland mobile number \(a fixed line\)"),  # Beijing landline
    ("+1 202 555 0123", r"not a mainland mobile number \(country code \+1, not \+86\)"),
    ("+852 9123 4567", r"country code \+852"),  # Hong Kong mobile
    ("001 202 555 0123", r"country code \+1"),
    ("+999 1234 5678", "unknown country code"),
    ("+8614012345678", r"block 1401234 is not allocated"),
    ("+8612345678901", "not a mainland mobile number"),
    ("+8611012345678", "not a mainland mobile number"),
]


@pytest.mark.parametrize(("raw", "reason"), REFUSED)
def test_normalise_refuses(raw: str, reason: str) -> None:
    with pytest.raises(NumberError, match=reason) as caught:
        normalise(raw)
    # Every error names its input.
    assert str(caught.value).startswith(repr(raw)[:40])


def test_normalise_refuses_a_non_string() -> None:
    with pytest.raises(NumberError, match=r"^15959000001: not a string but int$"):
        normalise(15959000001)  # type: ignore[arg-type]


def test_long_input_is_named_but_cut_short() -> None:
    with pytest.raises(NumberError, match=r"\(300 characters\): too long") as caught:
        normalise("1" * 300)
    assert len(str(caught.value)) < 120


def test_digits_only_drops_prefix_plus_and_separators() -> None:
    assert digits_only("+86 (159) 5900-0001") == "8615959000001"


# --- never actionable ----------------------------------------------------------------------


def _prefix_forms(service: str) -> list[str]:
    return [
        service,
        f"+86{service}",
        f"+86 {service}",
        f"0086{service}",
        f"0086 {service}",
        f"86{service}",
        f"86-{service}",
        f"(+86) {service}",
        " ".join(service),
    ]


NEVER_ACTIONABLE_FORMS = [
    form for service in sorted(NEVER_ACTIONABLE) for form in _prefix_forms(service)
]


@pytest.mark.parametrize("raw", NEVER_ACTIONABLE_FORMS)
def test_service_numbers_are_never_actionable(raw: str) -> None:
    with pytest.raises(
        NotActionableError, match=r"is an emergency/service number, never actionable$"
    ) as caught:
        check_actionable(raw)
    assert str(caught.value).startswith(repr(raw))


@pytest.mark.parametrize(
    "service",
    [
        "110",
        "119",
        "120",
        "122",
        "96110",
        "12321",
        "10086",
        "10010",
        "10000",
        "12315",
        "12345",
        "12110",
        "95555",
    ],
)
def test_required_service_numbers_are_listed(service: str) -> None:
    assert service in NEVER_ACTIONABLE


def test_no_never_actionable_number_is_as_long_as_a_mobile_number() -> None:
    # check_actionable skips the never-actionable lookup for numbers already in E.164
    # mobile form (11 digits after +86); that is sound only while this holds.
    assert all(len(n) < 11 for n in NEVER_ACTIONABLE)


def test_never_actionable_is_a_number_error() -> None:
    # Callers that handle NumberError (and the gRPC status mapping) also handle these.
    assert issubclass(NotActionableError, NumberError)


@pytest.mark.parametrize(("raw", "expected"), ACCEPTED)
def test_check_actionable_accepts_mobile_numbers(raw: str, expected: str) -> None:
    assert check_actionable(raw) == expected


@pytest.mark.parametrize(
    ("raw", "error", "reason"),
    [
        ("", NumberError, "empty"),
        ("11O", NumberError, "contains letters"),
        ("1100", NumberError, "not a mainland mobile number"),  # not the service number 110
        ("+1 110", NumberError, "not a mainland mobile number"),
        ("+86 591 8765 4321", NumberError, "a fixed line"),
    ],
)
def test_check_actionable_refuses_other_numbers(
    raw: str, error: type[NumberError], reason: str
) -> None:
    with pytest.raises(error, match=reason) as caught:
        check_actionable(raw)
    assert not isinstance(caught.value, NotActionableError)


# --- Luhn, ICCID, IMSI ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("digits", "valid"),
    [
        ("79927398713", True),  # the textbook example
        ("79927398710", False),
        ("89860012345678901238", True),
        ("89860012345678901239", False),
        ("0", False),
        ("", False),
        ("00", True),
        ("7992739871a", False),
        ("７９９２７３９８７１３", False),  # full-width digits are not ASCII digits
    ],
)
def test_luhn_valid(digits: str, valid: bool) -> None:
    assert luhn_valid(digits) is valid


def test_luhn_check_digit_refuses_non_digits() -> None:
    with pytest.raises(NumberError, match=r"^'12a': a Luhn payload must be ASCII digits$"):
        luhn_check_digit("12a")


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("89860012345678901238", "89860012345678901238"),  # 20 digits
        ("8986001234567890120", "8986001234567890120"),  # 19 digits
        ("8986 0012 3456 7890 1238", "89860012345678901238"),  # as printed on the card
        ("8986-0012-3456-7890-1238", "89860012345678901238"),
        (" 89861111222233334445 ", "89861111222233334445"),
    ],
)
def test_validate_iccid_accepts(raw: str, expected: str) -> None:
    assert validate_iccid(raw) == expected


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        ("", "empty ICCID"),
        ("89860012345678901239", "ICCID fails its Luhn check digit"),
        ("89860012345678901283", "ICCID fails its Luhn check digit"),  # transposed digits
        ("898600123456789012", "an ICCID has 19 or 20 digits, not 18"),
        ("898600123456789012380", "an ICCID has 19 or 20 digits, not 21"),
        ("99860012345678901234", r"an ICCID starts with 89"),
        ("8986001234567890123X", "ICCID must be digits only"),
        ("8986.0012.3456.7890.1238", "ICCID must be digits only"),
    ],
)
def test_validate_iccid_refuses(raw: str, reason: str) -> None:
    with pytest.raises(NumberError, match=reason) as caught:
        validate_iccid(raw)
    assert str(caught.value).startswith(repr(raw))


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("460001234567890", "460001234567890"),  # China Mobile
        ("460 01 1234567890", "460011234567890"),  # China Unicom, grouped
        ("460110123456789", "460110123456789"),  # China Telecom
    ],
)
def test_validate_imsi_accepts(raw: str, expected: str) -> None:
    assert validate_imsi(raw) == expected


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        ("", "empty IMSI"),
        ("46000123456789", "an IMSI has 15 digits, not 14"),
        ("4600012345678901", "an IMSI has 15 digits, not 16"),
        ("310150123456789", "IMSI country code is 310, not mainland China's 460"),
        ("454001234567890", "IMSI country code is 454"),  # Hong Kong
        ("46000123456789X", "IMSI must be digits only"),
    ],
)
def test_validate_imsi_refuses(raw: str, reason: str) -> None:
    with pytest.raises(NumberError, match=reason) as caught:
        validate_imsi(raw)
    assert str(caught.value).startswith(repr(raw))


# --- numbering plan -----------------------------------------------------------------------

DEFAULT_170 = NumberBlock("+861700123", "ctcc.bj", "bj", reseller=True)
RESELLER_170 = NumberBlock("+8617001", "mvno-x.bj", "bj", reseller=True)
FUJIAN_159 = NumberBlock("+861595", "cmcc.fj", "fj")
FUZHOU_1595900 = NumberBlock("+861595900", "cmcc.fj", "fj")


@pytest.mark.parametrize(
    ("blocks", "number", "expected"),
    [
        ([FUJIAN_159], FUZHOU, Route(FUZHOU, "cmcc.fj", "fj", False, "+861595")),
        (
            [FUJIAN_159, FUZHOU_1595900],
            FUZHOU,
            Route(FUZHOU, "cmcc.fj", "fj", False, "+861595900"),
        ),
        # The longer 7-digit default block beats the directory's shorter reseller block
        # only for its own numbers; other numbers of the reseller block go to the reseller.
        (
            [DEFAULT_170, RESELLER_170],
            "+8617001234567",
            Route("+8617001234567", "ctcc.bj", "bj", True, "+861700123"),
        ),
        (
            [DEFAULT_170, RESELLER_170],
            "+8617001999999",
            Route("+8617001999999", "mvno-x.bj", "bj", True, "+8617001"),
        ),
        (
            [NumberBlock("+86170", "ctcc.bj", "bj", reseller=True), RESELLER_170],
            "+8617001234567",
            Route("+8617001234567", "mvno-x.bj", "bj", True, "+8617001"),
        ),
        (
            [NumberBlock("+861", "cmcc.fj", "fj")],
            GUANGZHOU,
            Route(GUANGZHOU, "cmcc.fj", "fj", False, "+861"),
        ),
        (
            [NumberBlock(FUZHOU, "cucc.fj", "fj"), FUJIAN_159],
            FUZHOU,
            Route(FUZHOU, "cucc.fj", "fj", False, FUZHOU),
        ),  # a single ported number
    ],
)
def test_route_takes_the_longest_matching_block(
    blocks: list[NumberBlock], number: str, expected: Route
) -> None:
    assert NumberingPlan(blocks).route(number) == expected
    assert NumberingPlan(reversed(blocks)).route(number) == expected
    block = NumberingPlan(blocks).block_of(number)
    assert block is not None and block.prefix == expected.block


def test_block_of_a_number_outside_the_plan_is_none() -> None:
    assert NumberingPlan([FUJIAN_159]).block_of("+8617001234567") is None
    assert NumberingPlan([]).block_of(FUZHOU) is None


def test_route_refuses_a_number_outside_the_plan() -> None:
    plan = NumberingPlan([FUJIAN_159])
    with pytest.raises(
        NumberError,
        match=r"^'\+8617001234567': no carrier serves \+861700…: not in the numbering plan$",
    ):
        plan.route("+8617001234567")


def test_empty_plan_routes_nothing() -> None:
    with pytest.raises(NumberError, match="not in the numbering plan"):
        NumberingPlan([]).route(FUZHOU)


@pytest.mark.parametrize("number", ["15959000001", "+86 159 5900 0001", "+861595900000", ""])
def test_route_refuses_an_unnormalised_number(number: str) -> None:
    with pytest.raises(NumberError, match=r"not a normalised E\.164 mainland mobile number"):
        NumberingPlan([FUJIAN_159]).route(number)
    with pytest.raises(NumberError, match=r"not a normalised E\.164 mainland mobile number"):
        NumberingPlan([FUJIAN_159]).block_of(number)


def test_plan_refuses_conflicting_duplicate_blocks() -> None:
    with pytest.raises(NumberError, match=r"'\+861595' is listed twice: cmcc.fj and cucc.fj"):
        NumberingPlan([FUJIAN_159, NumberBlock("+861595", "cucc.fj", "fj")])


def test_plan_accepts_identical_duplicate_blocks() -> None:
    assert NumberingPlan([FUJIAN_159, FUJIAN_159]).blocks == (FUJIAN_159,)


def test_directory_blocks_override_default_blocks_with_the_same_prefix() -> None:
    default = NumberingPlan([DEFAULT_170, FUJIAN_159])
    directory_block = NumberBlock("+861700123", "mvno-y.bj", "bj", reseller=True)
    plan = default.overridden_by([directory_block, RESELLER_170])
    assert plan.route("+8617001234567").carrier_node == "mvno-y.bj"
    assert plan.route("+8617001999999").carrier_node == "mvno-x.bj"
    assert plan.route(FUZHOU).carrier_node == "cmcc.fj"
    assert default.route("+8617001234567").carrier_node == "ctcc.bj"  # unchanged


def test_plan_blocks_are_sorted_and_immutable() -> None:
    plan = NumberingPlan([RESELLER_170, FUJIAN_159])
    assert plan.blocks == (FUJIAN_159, RESELLER_170)
    assert len(plan) == 2
    with pytest.raises(AttributeError):
        plan.blocks = ()  # type: ignore[misc]
    with pytest.raises(AttributeError):
        plan.extra = 1  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("prefix", "carrier_node", "province", "reason"),
    [
        ("861595", "cmcc.fj", "fj", "prefix is '\\+861'"),
        ("+86 1595", "cmcc.fj", "fj", "prefix is '\\+861'"),
        ("+852", "cmcc.fj", "fj", "prefix is '\\+861'"),
        ("+86159590000012", "cmcc.fj", "fj", "prefix is '\\+861'"),  # longer than a number
        ("+861595", "", "fj", "without a carrier node"),
        ("+861595", "cmcc.fj", "", "without a province"),
    ],
)
def test_number_block_checks_its_fields(
    prefix: str, carrier_node: str, province: str, reason: str
) -> None:
    with pytest.raises(NumberError, match=reason):
        NumberBlock(prefix, carrier_node, province)


# --- default plan from phonenumbers' data --------------------------------------------------


def test_default_block_for_a_fujian_china_mobile_number() -> None:
    assert default_block(FUZHOU, carriers=CARRIERS) == NumberBlock(
        "+861595900", "cmcc.fj", "fj", reseller=False
    )


def test_default_block_for_a_guangdong_number() -> None:
    assert default_block("138 0020 0000", carriers=CARRIERS) == NumberBlock(
        "+861380020", "cmcc.gd", "gd", reseller=False
    )


def test_default_block_marks_reseller_blocks() -> None:
    # 1700 is hosted by China Telecom; which reseller serves it only the directory says.
    assert default_block("+8617001234567", carriers=CARRIERS) == NumberBlock(
        "+861700123", "ctcc.bj", "bj", reseller=True
    )


def test_default_block_uses_given_province_codes() -> None:
    block = default_block(FUZHOU, carriers=CARRIERS, province_codes={"Fujian": "35"})
    assert block == NumberBlock("+861595900", "cmcc.35", "35")


@pytest.mark.parametrize(
    ("number", "reason"),
    [
        ("+8616212345678", r"phonenumbers knows no carrier for block \+861621234$"),
        ("+8617101234567", r"phonenumbers knows no province for block \+861710123$"),
        ("+8619212345678", r"carrier 'China Broadnet' of block \+861921234 has no carrier id"),
        ("+86 591 8765 4321", "a fixed line"),
    ],
)
def test_default_block_refuses_what_the_data_does_not_say(number: str, reason: str) -> None:
    with pytest.raises(NumberError, match=reason) as caught:
        default_block(number, carriers=CARRIERS)
    assert str(caught.value).startswith(repr(number))


@pytest.mark.parametrize(
    ("number", "province"),
    [(FUZHOU, "fj"), (GUANGZHOU, "gd"), ("+8613800138000", "bj"), ("+8617101234567", None)],
)
def test_province_of(number: str, province: str | None) -> None:
    assert province_of(number) == province


def test_province_codes_are_31_distinct_two_letter_codes() -> None:
    assert len(PROVINCE_CODES) == 31
    assert len(set(PROVINCE_CODES.values())) == 31
    assert all(re.fullmatch(r"[a-z]{2}", code) for code in PROVINCE_CODES.values())


def test_every_province_in_phonenumbers_mobile_data_has_a_code() -> None:
    # Pins the spelling of province names against phonenumbers upgrades.
    names = {
        entry["en"].rsplit(", ", 1)[-1]
        for prefix, entry in GEOCODE_DATA.items()
        if prefix.startswith("861") and "en" in entry
    }
    assert names == set(PROVINCE_CODES)


# --- properties ---------------------------------------------------------------------------


def _is_valid_mobile(nsn: str) -> bool:
    return bool(phonenumbers.is_valid_number(phonenumbers.parse("+86" + nsn)))


mobile_nsns = st.integers(13_000_000_000, 19_999_999_999).map(str).filter(_is_valid_mobile)
prefixes = st.sampled_from(["", "+86", "+86 ", "0086", "0086 ", "86", "86-", "(+86) ", "+ 86"])
separators = st.sampled_from([" ", "-", ".", "(", ")", "\t", "\u3000", "  "])
_TO_FULL_WIDTH = str.maketrans({c: chr(ord(c) + 0xFEE0) for c in "0123456789+-.()"})


@st.composite
def formatted(draw: st.DrawFn, nsn: str) -> str:
    text = draw(prefixes) + nsn
    for _ in range(draw(st.integers(0, 6))):
        at = draw(st.integers(0, len(text)))
        text = text[:at] + draw(separators) + text[at:]
    if draw(st.booleans()):
        text = text.translate(_TO_FULL_WIDTH)
    return text


@given(data=st.data(), nsn=mobile_nsns)
def test_every_formatting_of_a_mobile_number_normalises_alike(
    data: st.DataObject, nsn: str
) -> None:
    raw = data.draw(formatted(nsn))
    assert normalise(raw) == "+86" + nsn
    assert check_actionable(raw) == "+86" + nsn


@given(nsn=mobile_nsns)
def test_normalise_is_idempotent(nsn: str) -> None:
    once = normalise(nsn)
    assert normalise(once) == once


def _normalise_or_refuse(text: str) -> None:
    try:
        result = normalise(text)
    except NumberError as e:
        assert str(e).startswith(repr(text)[:40])
    else:
        assert E164_MOBILE.fullmatch(result)
        assert normalise(result) == result


@given(st.text())
def test_any_text_normalises_to_a_mobile_number_or_raises_number_error(text: str) -> None:
    _normalise_or_refuse(text)


@given(st.text(alphabet="0123456789+-.() 86１", max_size=24))
def test_any_dialable_text_normalises_to_a_mobile_number_or_raises_number_error(
    text: str,
) -> None:
    _normalise_or_refuse(text)


@given(st.text())
def test_check_actionable_raises_only_number_errors(text: str) -> None:
    try:
        check_actionable(text)
    except NumberError:
        pass


digit_strings = st.text(alphabet="0123456789", min_size=1, max_size=30)


@given(digit_strings)
def test_appending_the_luhn_check_digit_validates(payload: str) -> None:
    assert luhn_valid(payload + luhn_check_digit(payload))


@given(digit_strings, st.data())
def test_changing_any_single_digit_breaks_luhn(payload: str, data: st.DataObject) -> None:
    valid = payload + luhn_check_digit(payload)
    at = data.draw(st.integers(0, len(valid) - 1))
    digit = data.draw(st.sampled_from("0123456789").filter(lambda d: d != valid[at]))
    assert not luhn_valid(valid[:at] + digit + valid[at + 1 :])


@given(st.text(alphabet="0123456789", min_size=18, max_size=19))
def test_any_89_iccid_with_its_check_digit_validates(body: str) -> None:
    payload = "89" + body[:-1]
    assume(18 <= len(payload) <= 19)
    iccid = payload + luhn_check_digit(payload)
    assert validate_iccid(iccid) == iccid


@given(st.from_regex(r"\+861[3-9][0-9]{9}", fullmatch=True))
def test_the_e164_fast_path_agrees_with_a_full_parse(number: str) -> None:
    """normalise() answers E.164 input from a per-block cache; it must say what
    phonenumbers says for the very number (valid or not, and the same form)."""
    from exchange.numbers import _normalise

    try:
        slow: str | None = _normalise(number)
    except NumberError:
        slow = None
    try:
        fast: str | None = normalise(number)
    except NumberError:
        fast = None
    assert fast == slow


@given(st.from_regex(r"\+861[3-9][0-9]{9}", fullmatch=True))
def test_the_province_table_says_what_the_geocoder_says(number: str) -> None:
    """exchange/data's table (scripts/gen_numbering.py) answers exactly as the geocoder."""
    from phonenumbers import geocoder

    from exchange.numbers import _province_name

    parsed = phonenumbers.parse(number)
    description = geocoder.description_for_number(parsed, "en")
    expected = description.rsplit(", ", 1)[-1] if description not in ("", "China") else None
    assert _province_name(number) == expected
