"""The fields every source type maps the same way, once its entries are read: the division
by the source's ``ou_mapping`` and the mobile number in E.164.

:func:`finish` runs once per read: in the reading process for a source read in one (the
numbers are parsed while Zivver's list is decoded), else when the session takes the result.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from ..model import Notice, SourceAccount, Unusable
from ..section import SourceSection, dn_key

if TYPE_CHECKING:
    from . import SourceResult

PHONE = "phone number"
"""The value an :class:`Unusable` names for a number that cannot be read."""
_AROUND = re.compile(r"\s*([,=])\s*")


def finish(result: SourceResult, source: SourceSection, write_phones: bool) -> None:
    """Each account's division as ``source.ou_mapping`` says and its phone number checked
    and in E.164; a number that cannot be read is dropped and named (an unusable value when
    ``write_phones``: the account syncs without it; else a warning). Runs once per result."""
    if result.finished:
        return
    result.finished = True
    mapping = source.ou_mapping
    accounts = result.accounts
    if mapping == "attribute" and not any(account.phone for account in accounts):
        return  # the daily run of most profiles: nothing to do
    by_dn = _DnMap(source.ou_map)
    region = source.phone_region
    for index, account in enumerate(accounts):
        division = account.division
        if mapping == "domain":
            division = account.email.rpartition("@")[2]
        elif mapping == "custom":
            division = source.ou_identifier
        elif mapping == "dn":
            division = by_dn.division(account.entry)
        phone = account.phone
        if phone is not None:
            phone, why = e164(phone, region)
            if why is not None:
                _bad_number(result, account, why, write_phones)
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
        if " " in key:
            key = _AROUND.sub(r"\1", key)
        if key in self.exact:  # the entry is a mapped DN itself: the longest suffix there is
            return self.exact[key]
        # any other suffix it is under, its parent is or is under too
        parent = key.partition(",")[2]
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


def _bad_number(result: SourceResult, account: SourceAccount, why: str, write: bool) -> None:
    if write:
        result.unusable.append(
            Unusable(result.name, account.entry, why, account.email, account.source_id, PHONE)
        )
    else:
        result.notices.append(
            Notice(
                "warning",
                f"Source {result.name!r}, {account.entry} ({account.email}): {why}. Phone "
                "numbers are not synced (sync.sync_phone_numbers is off); fix it in the source "
                "before turning them on.",
            )
        )


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
    try:
        parsed = phonenumbers.parse(text, region)
    except phonenumbers.NumberParseException as error:
        said = str(error).partition(") ")[2] or str(error)  # "(1) Missing or invalid…"
        return None, f"the phone number {raw!r} cannot be read ({said.rstrip('.')})"
    if not phonenumbers.is_valid_number(parsed):
        where = f" in {region}" if region and not text.startswith("+") else ""
        return None, f"the phone number {raw!r} is not a valid number{where}"
    return phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164), None
