"""Phone numbers, ICCIDs and IMSIs, and the numbering plan that routes a number (pure).

Parsing and validity come from ``phonenumbers`` (the Python port of Google's
libphonenumber) rather than hand-written patterns; bcx only decides what it accepts
around it. Only mainland mobile numbers (``+861[3-9]`` and nine more digits) are
subscriber numbers a carrier can shut down; every other number is refused with a
``NumberError`` that names the input and the reason.

The default numbering plan comes from phonenumbers' offline carrier and geocoder data
(``default_block``); the office's directory publishes blocks that override it (reseller
blocks, corrections), and ``NumberingPlan`` routes by the longest matching prefix.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from importlib import resources
from types import MappingProxyType

import phonenumbers
from phonenumbers import carrier as pn_carrier

from exchange.errors import NumberError

__all__ = [
    "NEVER_ACTIONABLE",
    "PROVINCE_CODES",
    "RESELLER_PREFIXES",
    "NotActionableError",
    "NumberBlock",
    "NumberingPlan",
    "Route",
    "check_actionable",
    "default_block",
    "digits_only",
    "luhn_check_digit",
    "luhn_valid",
    "normalise",
    "province_of",
    "validate_iccid",
    "validate_imsi",
]


class NotActionableError(NumberError):
    """An emergency or service number: never the subject of a report or a shutdown."""


# A stored, routable subscriber number. [0-9], not \d: \d also matches other scripts' digits.
E164_MOBILE = re.compile(r"\+861[3-9][0-9]{9}")
_MOBILE_NSN = re.compile(r"1[3-9][0-9]*")
_BLOCK_PREFIX = re.compile(r"\+861[0-9]{0,10}")
_MOBILE_DIGITS = 11
_BLOCK_DIGITS = 7  # phonenumbers' carrier and geocoder data resolve mainland mobiles to 7 digits
_MAX_SHOWN = 60

# Chinese input methods produce full-width forms; treat them as their ASCII counterparts.
_FULL_WIDTH = {
    **{0xFF10 + i: ord("0") + i for i in range(10)},
    0xFF0B: ord("+"),
    0xFF08: ord("("),
    0xFF09: ord(")"),
    0xFF0D: ord("-"),
    0xFF0E: ord("."),
}
_SEPARATORS = frozenset("-.()")
_DIGITS = frozenset("0123456789")

# Emergency and service numbers. Reports about them are mistakes or caller-id spoofing,
# never black cards, so no carrier is ever told to shut one down.
NEVER_ACTIONABLE: frozenset[str] = frozenset(
    {
        "110",  # police
        "112",  # GSM emergency, redirected to 110
        "119",  # fire
        "120",  # ambulance
        "122",  # road traffic accidents
        "999",  # Red Cross emergency rescue (Beijing and others)
        "12110",  # police by SMS
        "12119",  # forest fires
        "12395",  # maritime search and rescue
        "96110",  # anti-fraud warning and dissuasion line (反诈劝阻专线)
        "12381",  # MIIT fraud early-warning SMS (涉诈预警劝阻短信)
        "12321",  # spam and harmful-information reporting centre
        "12300",  # MIIT telecom users' complaints
        "12315",  # market regulation: consumer complaints
        "12345",  # local government service hotline
        "12306",  # railway tickets
        "114",  # directory enquiries
        "10086",  # China Mobile customer service
        "10010",  # China Unicom customer service
        "10000",  # China Telecom customer service
        "10099",  # China Broadnet customer service
        "95555",  # China Merchants Bank: banks' numbers are favourite spoofing targets
        "95588",  # Industrial and Commercial Bank of China
        "95533",  # China Construction Bank
        "95599",  # Agricultural Bank of China
        "95566",  # Bank of China
        "95559",  # Bank of Communications
        "95580",  # Postal Savings Bank of China
    }
)

# Mobile virtual network operators' (reseller) prefixes. The host network follows from
# the 4th digit (170x) or the whole prefix, but not which reseller serves the number: the
# directory's plan must say so.
RESELLER_PREFIXES: frozenset[str] = frozenset({"170", "171", "162", "165", "167"})

# Province names as phonenumbers' English geocoder spells them (the last part of e.g.
# "Fuzhou, Fujian"), mapped to ISO 3166-2:CN subdivision codes, lowercased. Those are the
# usual two-letter pinyin abbreviations, made unique where initials would collide:
# Hebei "he" / Henan "ha" / Hubei "hb" / Hunan "hn" / Hainan "hi", Shanxi "sx" / Shaanxi "sn".
PROVINCE_CODES: Mapping[str, str] = MappingProxyType(
    {
        "Beijing": "bj",
        "Tianjin": "tj",
        "Hebei": "he",
        "Shanxi": "sx",
        "Inner Mongolia": "nm",
        "Liaoning": "ln",
        "Jilin": "jl",
        "Heilongjiang": "hl",
        "Shanghai": "sh",
        "Jiangsu": "js",
        "Zhejiang": "zj",
        "Anhui": "ah",
        "Fujian": "fj",
        "Jiangxi": "jx",
        "Shandong": "sd",
        "Henan": "ha",
        "Hubei": "hb",
        "Hunan": "hn",
        "Guangdong": "gd",
        "Guangxi": "gx",
        "Hainan": "hi",
        "Chongqing": "cq",
        "Sichuan": "sc",
        "Guizhou": "gz",
        "Yunnan": "yn",
        "Tibet": "xz",
        "Shaanxi": "sn",
        "Gansu": "gs",
        "Qinghai": "qh",
        "Ningxia": "nx",
        "Xinjiang": "xj",
    }
)

_PARSE_ERRORS = {
    phonenumbers.NumberParseException.INVALID_COUNTRY_CODE: "unknown country code",
    phonenumbers.NumberParseException.NOT_A_NUMBER: "not a phone number",
    phonenumbers.NumberParseException.TOO_SHORT_AFTER_IDD: "too short",
    phonenumbers.NumberParseException.TOO_SHORT_NSN: "too short",
    phonenumbers.NumberParseException.TOO_LONG: "too long",
}


def _shown(raw: object) -> str:
    """The input as error messages name it: its repr, cut short if it is long."""
    if isinstance(raw, str) and len(raw) > _MAX_SHOWN:
        return f"{raw[:_MAX_SHOWN]!r}… ({len(raw)} characters)"
    return repr(raw)


def _error(raw: object, reason: str) -> NumberError:
    return NumberError(f"{_shown(raw)}: {reason}")


def _compact(raw: object) -> str:
    """``raw`` without separators: an optional leading '+' and ASCII digits, or raise."""
    if not isinstance(raw, str):
        raise _error(raw, f"not a string but {type(raw).__name__}")
    out: list[str] = []
    for ch in raw.translate(_FULL_WIDTH):
        if ch in _DIGITS:
            out.append(ch)
        elif ch == "+":
            if out:
                raise _error(raw, "'+' is allowed only at the start")
            out.append(ch)
        elif ch.isspace() or ch in _SEPARATORS:
            continue
        elif ch.isalpha():
            raise _error(raw, "contains letters")
        else:
            raise _error(raw, f"contains {ch!r}, which is neither a digit nor a separator")
    if not out:
        raise _error(raw, "empty")
    if out == ["+"]:
        raise _error(raw, "no digits after '+'")
    return "".join(out)


def digits_only(raw: str) -> str:
    """The digits of ``raw`` (ASCII or full-width), separators dropped; raise on anything else.

    A leading '+' is dropped too: '+86110' gives '86110'.
    """
    return _compact(raw).removeprefix("+")


def _national_digits(raw: str) -> str:
    """The digits after any '+86', '0086' or '86' prefix, as a caller would dial them."""
    compact = _compact(raw)
    if compact.startswith("+86"):
        return compact[3:]
    if compact.startswith("+"):
        return compact[1:]
    for prefix in ("0086", "86"):
        if compact.startswith(prefix):
            return compact[len(prefix) :]
    return compact


def normalise(raw: str) -> str:
    """Return the mainland mobile number ``raw`` names in E.164 (``+8615959000001``).

    Accepts '+86', '0086' and '86' prefixes, no prefix, and spaces, dashes, dots and
    parentheses anywhere (full-width forms too); phonenumbers also strips China's trunk
    prefix '0' and IP-dialling prefixes such as 17951. Raises NumberError otherwise.
    """
    # Numbers already in E.164 are most of a bulk report: phonenumbers' metadata decides
    # mainland mobile validity by the first digits (within the 7-digit block), so one
    # full parse per block answers for every number in it.
    if type(raw) is str and E164_MOBILE.fullmatch(raw) and _block_is_valid(raw[:_BLOCK_CHARS]):
        return raw
    return _normalise(raw)


_BLOCK_CHARS = 3 + _BLOCK_DIGITS


@functools.lru_cache(maxsize=1 << 16)
def _block_is_valid(prefix: str) -> bool:
    sample = prefix + "0" * (_MOBILE_DIGITS - _BLOCK_DIGITS)
    try:
        return _normalise(sample) == sample
    except NumberError:
        return False


def _normalise(raw: str) -> str:
    compact = _compact(raw)
    try:
        parsed = phonenumbers.parse(compact, "CN")
    except phonenumbers.NumberParseException as e:
        reason = _PARSE_ERRORS.get(e.error_type, "not a phone number")
        raise _error(raw, reason) from e
    if parsed.country_code != 86:
        raise _error(
            raw, f"not a mainland mobile number (country code +{parsed.country_code}, not +86)"
        )
    nsn = phonenumbers.national_significant_number(parsed)
    if _MOBILE_NSN.fullmatch(nsn):
        if len(nsn) < _MOBILE_DIGITS:
            raise _error(raw, f"too short: {len(nsn)} digits, a mobile number has 11")
        if len(nsn) > _MOBILE_DIGITS:
            raise _error(raw, f"too long: {len(nsn)} digits, a mobile number has 11")
        if not phonenumbers.is_valid_number(parsed):
            raise _error(
                raw,
                f"not a mainland mobile number (block {nsn[:_BLOCK_DIGITS]} is not allocated)",
            )
    elif phonenumbers.number_type(parsed) in (
        phonenumbers.PhoneNumberType.FIXED_LINE,
        phonenumbers.PhoneNumberType.FIXED_LINE_OR_MOBILE,
    ) and phonenumbers.is_valid_number(parsed):
        raise _error(raw, "not a mainland mobile number (a fixed line)")
    else:
        raise _error(raw, "not a mainland mobile number")
    e164 = phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)
    if not E164_MOBILE.fullmatch(e164):  # phonenumbers data changed under us: refuse, not guess
        raise _error(raw, f"not a mainland mobile number (phonenumbers gave {e164!r})")
    return e164


def check_actionable(raw: str) -> str:
    """Like ``normalise``, but first refuse emergency and service numbers.

    Raises NotActionableError for any of NEVER_ACTIONABLE, with or without a
    '+86', '0086' or '86' prefix; NumberError for every other unusable input.
    """
    # A number already in E.164 mobile form is 11 digits, longer than any never-actionable
    # number (a test keeps it so), so the prefix strip is needed only for the rest.
    if type(raw) is str and E164_MOBILE.fullmatch(raw):
        return normalise(raw)
    if _national_digits(raw) in NEVER_ACTIONABLE:
        raise NotActionableError(f"{_shown(raw)}: is an emergency/service number, never actionable")
    return normalise(raw)


def luhn_check_digit(payload: str) -> str:
    """The Luhn check digit to append to the ASCII digit string ``payload``."""
    if not payload or not _DIGITS.issuperset(payload):
        raise _error(payload, "a Luhn payload must be ASCII digits")
    total = 0
    # The check digit will sit right of the payload, so the payload's last digit doubles.
    for i, ch in enumerate(reversed(payload)):
        d = int(ch)
        if i % 2 == 0:
            d *= 2
            if d > 9:
                d -= 9
        total += d
    return str((10 - total % 10) % 10)


def luhn_valid(digits: str) -> bool:
    """Whether the ASCII digit string ``digits`` ends with its correct Luhn check digit."""
    if len(digits) < 2 or not _DIGITS.issuperset(digits):
        return False
    return luhn_check_digit(digits[:-1]) == digits[-1]


def _digits_with_spaces(raw: str, what: str) -> str:
    if not isinstance(raw, str):
        raise _error(raw, f"{what} must be a string, not {type(raw).__name__}")
    digits = "".join(ch for ch in raw.translate(_FULL_WIDTH) if not (ch.isspace() or ch == "-"))
    if not digits:
        raise _error(raw, f"empty {what}")
    if not _DIGITS.issuperset(digits):
        raise _error(raw, f"{what} must be digits only")
    return digits


def validate_iccid(raw: str) -> str:
    """Return the digits of the SIM card serial ``raw`` (ICCID, ITU-T E.118), or raise.

    19 or 20 digits (spaces and dashes as printed on cards are dropped), starting with
    the telecom industry code 89, the last digit a Luhn check over all the others.
    """
    digits = _digits_with_spaces(raw, "ICCID")
    if not 19 <= len(digits) <= 20:
        raise _error(raw, f"an ICCID has 19 or 20 digits, not {len(digits)}")
    if not digits.startswith("89"):
        raise _error(raw, "an ICCID starts with 89 (telecommunications)")
    if not luhn_valid(digits):
        raise _error(raw, "ICCID fails its Luhn check digit")
    return digits


def validate_imsi(raw: str) -> str:
    """Return the digits of the subscriber identity ``raw`` (IMSI), or raise.

    15 digits with mobile country code 460 (mainland China).
    """
    digits = _digits_with_spaces(raw, "IMSI")
    if len(digits) != 15:
        raise _error(raw, f"an IMSI has 15 digits, not {len(digits)}")
    if not digits.startswith("460"):
        raise _error(raw, f"IMSI country code is {digits[:3]}, not mainland China's 460")
    return digits


@dataclass(frozen=True, slots=True)
class NumberBlock:
    """The numbers starting with ``prefix`` (E.164: "+861595", "+8617001") and who serves them."""

    prefix: str
    carrier_node: str
    province: str
    reseller: bool = False

    def __post_init__(self) -> None:
        if not isinstance(self.prefix, str) or not _BLOCK_PREFIX.fullmatch(self.prefix):
            raise _error(
                self.prefix, "a number block's prefix is '+861' and at most 10 more digits"
            )
        if not self.carrier_node:
            raise _error(self.prefix, "number block without a carrier node")
        if not self.province:
            raise _error(self.prefix, "number block without a province")


@dataclass(frozen=True, slots=True)
class Route:
    """Where ``number`` is served, and the plan's ``block`` prefix that said so."""

    number: str
    carrier_node: str
    province: str
    reseller: bool
    block: str


class NumberingPlan:
    """An immutable set of number blocks; a number goes to its longest matching block."""

    __slots__ = ("_by_prefix", "_lengths")

    def __init__(self, blocks: Iterable[NumberBlock]) -> None:
        by_prefix: dict[str, NumberBlock] = {}
        for block in blocks:
            held = by_prefix.setdefault(block.prefix, block)
            if held != block:
                raise NumberError(
                    f"number block {block.prefix!r} is listed twice: "
                    f"{held.carrier_node} and {block.carrier_node}"
                )
        self._by_prefix: Mapping[str, NumberBlock] = MappingProxyType(by_prefix)
        self._lengths = tuple(sorted({len(p) for p in by_prefix}, reverse=True))

    @property
    def blocks(self) -> tuple[NumberBlock, ...]:
        return tuple(self._by_prefix[p] for p in sorted(self._by_prefix))

    def overridden_by(self, blocks: Iterable[NumberBlock]) -> NumberingPlan:
        """A new plan in which ``blocks`` replace this plan's blocks with the same prefix.

        Used to lay the directory's plan over the default one from phonenumbers' data;
        blocks with other prefixes already win or lose by length.
        """
        override = NumberingPlan(blocks)
        merged = dict(self._by_prefix)
        merged.update(override._by_prefix)
        return NumberingPlan(merged.values())

    def route(self, number: str) -> Route:
        """The carrier node serving the normalised E.164 mobile ``number``, or raise."""
        block = self.block_of(number)
        if block is None:
            raise _error(number, f"no carrier serves {number[:7]}…: not in the numbering plan")
        return Route(
            number=number,
            carrier_node=block.carrier_node,
            province=block.province,
            reseller=block.reseller,
            block=block.prefix,
        )

    def block_of(self, number: str) -> NumberBlock | None:
        """The longest block of this plan holding the normalised ``number``, or None.

        For callers that fall back to another plan for most numbers: no error is built
        for a number this plan does not hold. Raises NumberError if ``number`` is not a
        normalised E.164 mainland mobile number.
        """
        if not isinstance(number, str) or not E164_MOBILE.fullmatch(number):
            raise _error(number, "not a normalised E.164 mainland mobile number")
        for length in self._lengths:
            block = self._by_prefix.get(number[:length])
            if block is not None:
                return block
        return None

    def __len__(self) -> int:
        return len(self._by_prefix)

    def __repr__(self) -> str:
        return f"NumberingPlan(<{len(self._by_prefix)} blocks>)"


PROVINCE_TABLE = "cn_mobile_provinces.txt"


@functools.cache
def _province_table() -> tuple[dict[str, str], tuple[int, ...]]:
    """Prefix -> province name for mainland mobiles, extracted from phonenumbers' geocoder.

    The geocoder itself loads every country's place names (about 100 MB a process);
    scripts/gen_numbering.py keeps only this, and `make numbering-check` keeps it current.
    """
    text = resources.files("exchange.data").joinpath(PROVINCE_TABLE).read_text()
    table: dict[str, str] = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            prefix, _, name = line.partition(" ")
            table[prefix] = name
    return table, tuple(sorted({len(p) for p in table}, reverse=True))


def _province_name(e164: str) -> str | None:
    """"Fujian" for a normalised mainland mobile number, as the geocoder names its block."""
    table, lengths = _province_table()
    digits = e164.removeprefix("+")
    for length in lengths:
        name = table.get(digits[:length])
        if name is not None:
            return name
    return None


def province_of(number: str) -> str | None:
    """The home province code of a mainland mobile number, per phonenumbers' geocoder data.

    None where the data has no province for the number's block (many reseller blocks).
    """
    name = _province_name(normalise(number))
    return None if name is None else PROVINCE_CODES.get(name)


def default_block(
    number: str,
    *,
    carriers: Mapping[str, str],
    province_codes: Mapping[str, str] | None = None,
) -> NumberBlock:
    """The 7-digit block of ``number`` as phonenumbers' offline data sees it.

    ``carriers`` maps the carrier names phonenumbers uses ("China Mobile") to carrier ids
    ("cmcc"); the node is "<carrier id>.<province code>", e.g. "cmcc.fj". Reseller blocks
    get their host network's node and ``reseller=True``: which reseller serves them comes
    only from the directory's plan. Raises NumberError if the data lacks the carrier or
    the province, or ``carriers`` lacks the carrier.
    """
    codes = PROVINCE_CODES if province_codes is None else province_codes
    e164 = normalise(number)
    parsed = phonenumbers.parse(e164)
    nsn = phonenumbers.national_significant_number(parsed)
    prefix = "+86" + nsn[:_BLOCK_DIGITS]
    carrier_name: str = pn_carrier.name_for_number(parsed, "en")
    if not carrier_name:
        raise _error(number, f"phonenumbers knows no carrier for block {prefix}")
    carrier_id = carriers.get(carrier_name)
    if carrier_id is None:
        raise _error(number, f"carrier {carrier_name!r} of block {prefix} has no carrier id")
    province_name = _province_name(e164)
    province = codes.get(province_name) if province_name is not None else None
    if province is None:
        raise _error(number, f"phonenumbers knows no province for block {prefix}"
                     + (f" ({province_name!r} has no province code)" if province_name else ""))
    return NumberBlock(
        prefix=prefix,
        carrier_node=f"{carrier_id}.{province}",
        province=province,
        reseller=nsn[:3] in RESELLER_PREFIXES,
    )
