"""The fields every source type maps the same way, once its entries are read: the division
by the source's ``ou_mapping`` and the mobile number in E.164.

:func:`finish` maps the divisions once per read: in the reading process for a source read in
one, else when the session takes the result. :func:`read_numbers` reads the phone numbers
when Zivver's accounts are in too: a number Zivver already holds in the form the source's
canonically gives is in step without a parse; only the others (what would be sent) are read
and checked with libphonenumber, at ~40 µs a number.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Mapping
from typing import TYPE_CHECKING

from ..model import SourceAccount, Unusable
from ..section import SourceSection, dn_key

if TYPE_CHECKING:
    from . import SourceResult

PHONE = "phone number"
"""The value an :class:`Unusable` names for a number that cannot be read."""
_AROUND = re.compile(r"\s*([,=])\s*")


def finish(result: SourceResult, source: SourceSection, write_phones: bool) -> None:
    """Each account's division as ``source.ou_mapping`` says. Without ``write_phones`` the
    phone numbers are dropped unread (they are never sent, and a number nobody syncs is no
    one's problem); with it they stay as the source has them, for :func:`read_numbers`.
    Runs once per result."""
    if result.finished:
        return
    result.finished = True
    mapping = source.ou_mapping
    accounts = result.accounts
    if mapping == "attribute" and (write_phones or not any(a.phone for a in accounts)):
        return  # the daily run of most profiles: nothing to do
    by_dn = _DnMap(source.ou_map)
    for index, account in enumerate(accounts):
        division = account.division
        if mapping == "domain":
            division = account.email.rpartition("@")[2]
        elif mapping == "custom":
            division = source.ou_identifier
        elif mapping == "dn":
            division = by_dn.division(account.entry)
        phone = account.phone if write_phones else None
        if division != account.division or phone != account.phone:
            # division and phone are its last fields: _replace costs 3 µs an account
            accounts[index] = SourceAccount._make((*account[:-2], division, phone))


class _DnMap:
    """``ou_map`` as DN suffixes, longest first, with the division found for each parent DN:
    a directory's accounts live under a few OUs, so each is looked up once."""

    def __init__(self, ou_map: dict[str, str]) -> None:
        self.table = sorted(
            ((",".join(dn_key(suffix)), division) for suffix, division in ou_map.items()),
            key=lambda item: -len(item[0]),
        )
        self.exact = dict(self.table)
        self.parents: dict[str, str | None] = {}

    def division(self, dn: str) -> str | None:
        """The division of the longest suffix that ``dn`` is or is under; None for none."""
        key = dn.strip().lower()
        if "\\" in key:  # an escaped comma is no separator: as the map's keys are read
            rdns = dn_key(key)
            key, parent = ",".join(rdns), ",".join(rdns[1:])
        else:
            if " " in key:
                key = _AROUND.sub(r"\1", key)
            parent = key.partition(",")[2]
        if key in self.exact:  # the entry is a mapped DN itself: the longest suffix there is
            return self.exact[key]
        # any other suffix it is under, its parent is or is under too
        if parent not in self.parents:
            self.parents[parent] = next(
                (
                    d
                    for suffix, d in self.table
                    if parent == suffix or parent.endswith("," + suffix)
                ),
                None,
            )
        return self.parents[parent]


def read_numbers(
    result: SourceResult, region: str | None, known: Mapping[str, tuple[str, ...]]
) -> None:
    """Each account's phone number (as the source has it) in E.164, checked; ``known``: the
    numbers Zivver holds, by address. One that cannot be read is an unusable value: named,
    and the account syncs without it."""
    accounts = result.accounts
    for index, account in enumerate(accounts):
        raw = account.phone
        if raw is None:
            continue
        number = canonical(raw, region)
        if number is None or number not in known.get(account.email, ()):
            number, why = e164(raw, region)
            if why is not None:
                result.unusable.append(
                    Unusable(
                        result.name, account.entry, why, account.email, account.source_id, PHONE
                    )
                )
        if number != raw:  # the phone is its last field
            accounts[index] = SourceAccount._make((*account[:-1], number))


_LAYOUT = " -.()/+\u00a0"
"""What a phone number may hold besides digits: its layout."""
_SEPARATORS = str.maketrans("", "", _LAYOUT.replace("+", ""))


def canonical(raw: str, region: str | None) -> str | None:
    """``raw`` as E.164 would write it, by the plain rules (separators out, ``00`` for ``+``,
    the region's trunk prefix for its country code), unchecked; None when those do not
    apply. Only ever compared with a number Zivver holds: anything else is parsed."""
    text = raw.strip().translate(_SEPARATORS)
    if text.startswith("00"):
        text = "+" + text[2:]
    if text.startswith("+"):
        return text if text[1:].isdigit() else None
    if region is None or not text.isdigit():
        return None
    import phonenumbers

    metadata = phonenumbers.PhoneMetadata.metadata_for_region(region)
    prefix = metadata.national_prefix if metadata is not None else None
    if prefix and text.startswith(prefix):
        text = text[len(prefix) :]
    return f"+{phonenumbers.country_code_for_region(region)}{text}"


def _character(char: str) -> str:
    """A character named for an admin: 'x', or its Unicode name when it is not printable."""
    if char.isprintable() and not char.isspace():
        return repr(char)
    return f"{unicodedata.name(char, 'an unnamed character')} (U+{ord(char):04X})"


def is_held(number: str, held: tuple[str, ...]) -> bool:
    """Whether Zivver holds ``number`` (E.164) among ``held``, in any layout: a number held
    with spaces or dashes is held all the same."""
    if number in held:
        return True
    return any(canonical(n, None) == number for n in held if not n[1:].isdigit())


def e164(raw: str, region: str | None) -> tuple[str | None, str | None]:
    """``raw`` in E.164 (``+31612345678``), read with Google's libphonenumber (a number
    without ``+`` or ``00`` in ``region``), or None and why it cannot be used."""
    import phonenumbers

    text = raw.strip()
    if text.startswith("00"):  # the international prefix of most of the world
        text = "+" + text[2:]
    if not text.startswith("+") and region is None:
        return None, (
            f"the phone number {raw!r} has no country code (+…) and the source has no "
            'phone_region to read it in; add e.g. phone_region = "NL" to the source'
        )
    odd = [char for char in dict.fromkeys(text) if not char.isdecimal() and char not in _LAYOUT]
    # libphonenumber reads letters as keypad digits and skips what it does not know: a typo
    # or a stray character would become another number
    stray = f"the phone number {raw!r} holds {', '.join(map(_character, odd))}, which no phone number has"
    try:
        parsed = phonenumbers.parse(text, region)
    except phonenumbers.NumberParseException as error:
        said = str(error).partition(") ")[2] or str(error)  # "(1) Missing or invalid…"
        return (
            None,
            stray if odd else f"the phone number {raw!r} cannot be read ({said.rstrip('.')})",
        )
    if parsed.extension:
        return None, (
            f"the phone number {raw!r} has an extension ({parsed.extension}), which Zivver "
            "cannot hold (it would be dropped); give the mobile number alone"
        )
    if odd:
        return None, stray
    if not phonenumbers.is_valid_number(parsed):
        where = f" in {region}" if region and not text.startswith("+") else ""
        return None, f"the phone number {raw!r} is not a valid number{where}"
    return phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164), None
