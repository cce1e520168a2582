"""The Excel source: workbooks written with openpyxl (as Excel saves them), read by zsync as
an admin means them, end to end against the Zivver emulator."""

from __future__ import annotations

import datetime
import re
from pathlib import Path
from typing import Any

import openpyxl
import pytest

from zsync_core.config import parse_config
from zsync_core.errors import ConfigError

ENTERPRISE = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"


def workbook(path: Path, sheets: dict[str, list[list[Any]]], hidden: int | None = None) -> Path:
    book = openpyxl.Workbook()
    book.remove(book.active)
    for title, rows in sheets.items():
        sheet = book.create_sheet(title)
        for row in rows:
            sheet.append(row)
        if hidden is not None:
            sheet.row_dimensions[hidden].hidden = True
    book.save(path)
    return path


def excel(**extra: Any) -> dict[str, Any]:
    return {"name": "Staff workbook", "type": "excel", "path": "staff.xlsx", **extra}


def test_a_workbook_of_users_and_functional_accounts_is_synced_with_its_typed_cells(
    tmp_path, zivver, make_profile, capsys
):
    workbook(
        tmp_path / "staff.xlsx",
        {
            "Users": [
                ["Email", "Name", "Active", "Phone", "Division"],  # any case
                ["ann@example.org", "Ann", True, 612345678, "finance"],  # a number cell
                [None, None, None, None, None],  # an empty row ends nothing
                ["bob@example.org", "Bob", False, None, None],  # a boolean cell
                ["cat@example.org", "Cat", "yes", "+31 6 8765 4321", None],  # hidden row
            ],
            "Functional accounts": [
                ["email", "name", "delegates"],
                ["desk@example.org", "Help Desk", "ann@example.org"],
            ],
        },
        hidden=4,
    )
    zivver.org.divisions.add("finance")
    source = excel(
        sheet="Users",
        functional_sheet="Functional accounts",
        phone_region="NL",
        description="HR export, weekly",
    )
    profile = make_profile([source], sync_phone_numbers=True)

    code, err, report = profile.run(capsys=capsys)

    assert code == 0, err
    org = zivver.org
    ann = org.user_by_email("ann@example.org")
    assert [n["value"] for n in ann["phoneNumbers"]] == ["+31612345678"], "digits, not 612345678.0"
    assert ann[ENTERPRISE]["division"] == "finance"
    assert org.user_by_email("bob@example.org") is None, "inactive: not created"
    assert org.user_by_email("cat@example.org") is not None, "a hidden row is read"
    assert org.delegates_of("desk@example.org") == {"ann@example.org"}
    assert report["summary"] == {"create-user": 2, "create-functional": 1}


def test_bad_cells_are_named_by_file_sheet_and_row(tmp_path, zivver, make_profile, capsys):
    workbook(
        tmp_path / "staff.xlsx",
        {
            "Blad1": [
                ["email", "kind", "active", "phone"],
                ["ann@example.org", "personal", True, None],
                ["not an address", "personal", True, None],
                ["bob@example.org", "robot", True, None],
                ["cat@example.org", "personal", "maybe", None],
                ["dan@example.org", "personal", True, "12"],
                ["eve@example.org", "personal", datetime.date(2026, 1, 2), None, "a note"],
            ]
        },
    )
    profile = make_profile([excel(phone_region="NL")], sync_phone_numbers=True)

    code, err, report = profile.run(capsys=capsys)

    assert code == 2, err
    assert "staff.xlsx:Blad1:3: 'not an address' is not a valid e-mail address" in err
    assert "staff.xlsx:Blad1:4 (bob@example.org): kind 'robot'" in err
    assert "staff.xlsx:Blad1:5 (cat@example.org): active 'maybe'" in err
    assert "staff.xlsx:Blad1:6 (dan@example.org): the phone number '12'" in err
    assert "staff.xlsx:Blad1:7 (eve@example.org): active '2026-01-02'" in err
    assert "right of the header's last column (rows 7)" in err
    assert zivver.org.user_by_email("ann@example.org") is not None
    assert zivver.org.user_by_email("dan@example.org") is not None, "synced without the number"

    from zsync_tui.cli import main

    main(["check", "--config", str(profile.path)])
    said = capsys.readouterr()
    assert (said.out + said.err).count("right of the header's last column") == 1, "said once"


@pytest.mark.parametrize(
    ("source", "message"),
    [
        ({"sheet": "Personeel"}, "has no sheet 'Personeel' (it has 'Users')"),
        ({"sheet": 3}, "has 1 sheet(s) ('Users'), so there is no sheet 3"),
        ({"path": "missing.xlsx"}, "missing.xlsx does not exist"),
        ({"path": "not-a-workbook.xlsx"}, "cannot be read as a workbook"),
    ],
)
def test_a_workbook_that_cannot_be_read_changes_nothing_and_says_why(
    tmp_path, zivver, make_profile, capsys, source, message
):
    workbook(tmp_path / "staff.xlsx", {"Users": [["email"], ["ann@example.org"]]})
    (tmp_path / "not-a-workbook.xlsx").write_text("email\nann@example.org\n")
    profile = make_profile([excel(**source)])

    code, err, _report = profile.run(capsys=capsys)

    assert code == 3, err
    assert message in err
    assert zivver.org.users == {}


def test_sheet_numbers_count_from_one(tmp_path):
    with pytest.raises(ConfigError, match="sheets are counted from 1"):
        parse_config(
            {"target": {"api_key_env": "X"}, "sources": [excel(sheet=0)]}, tmp_path / "z.toml"
        )


def test_an_error_cell_or_an_unsaved_formula_is_never_read_as_empty(
    tmp_path, zivver, make_profile, capsys
):
    """calamine reads both as "": an empty `active` is true, and a suspended person would be
    re-enabled, an empty `name` would replace the real one with the address."""
    org = zivver.org
    org.add_user("sus@example.org", "Sus", active=False)
    org.add_user("named@example.org", "Real Name")
    workbook(
        tmp_path / "staff.xlsx",
        {
            "Users": [
                ["email", "name", "active"],
                ["sus@example.org", "Sus", "#N/A"],  # an error cell
                ["named@example.org", '="Re"&"named"', "true"],  # a formula, no saved value
                ["ann@example.org", "Ann", "true"],
            ]
        },
    )
    profile = make_profile([excel()])

    code, err, report = profile.run(capsys=capsys)

    assert code == 2, err
    assert "staff.xlsx:Users:2 (sus@example.org): active (C2) holds the error #N/A" in err
    assert "staff.xlsx:Users:3 (named@example.org): name (B3) holds a formula saved" in err
    assert org.user_by_email("sus@example.org")["active"] is False, "not re-enabled"
    assert org.user_by_email("named@example.org")["name"]["formatted"] == "Real Name"
    assert report["summary"] == {"create-user": 1}


def test_one_sheet_named_twice_is_a_profile_error(tmp_path):
    with pytest.raises(ConfigError, match="sheet and functional_sheet both name 'Users'"):
        parse_config(
            {
                "target": {"api_key_env": "X"},
                "sources": [excel(sheet="Users", functional_sheet="users")],
            },
            tmp_path / "z.toml",
        )


def with_saved_values(path: Path, values: dict[str, tuple[str, str]]) -> None:
    """Give formula cells the value Excel saves beside each formula: cell -> (t, value),
    as in ``<c r="B2" t="str"><f>…</f><v>Renamed</v></c>`` (openpyxl saves none)."""
    import zipfile

    parts: dict[str, bytes] = {}
    with zipfile.ZipFile(path) as archive:
        for name in archive.namelist():
            parts[name] = archive.read(name)
    sheet = parts["xl/worksheets/sheet1.xml"].decode()
    for cell, (kind, value) in values.items():
        sheet, count = re.subn(
            rf'<c r="{cell}"[^>]*>(<f>.*?</f>)<v\s*/>\s*</c>|<c r="{cell}"[^>]*>(<f>.*?</f>)(<v></v>)?</c>',
            lambda m, c=cell, k=kind, v=value: (
                f'<c r="{c}" t="{k}">{m.group(1) or m.group(2)}<v>{v}</v></c>'
            ),
            sheet,
        )
        assert count == 1, (cell, sheet)
    parts["xl/worksheets/sheet1.xml"] = sheet.encode()
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in parts.items():
            archive.writestr(name, data)


def test_a_formula_gives_the_value_excel_saved_with_it(tmp_path, zivver, make_profile, capsys):
    path = workbook(
        tmp_path / "staff.xlsx",
        {
            "Users": [
                ["email", "name", "active", "phone"],
                ["ann@example.org", '="Ann "&"Smit"', "=1=1", "=612345678"],
            ]
        },
    )
    with_saved_values(path, {"B2": ("str", "Ann Smit"), "C2": ("b", "1"), "D2": ("n", "612345678")})
    profile = make_profile([excel(phone_region="NL")], sync_phone_numbers=True)

    code, err, _report = profile.run(capsys=capsys)

    assert code == 0, err
    ann = zivver.org.user_by_email("ann@example.org")
    assert (ann["name"]["formatted"], ann["active"]) == ("Ann Smit", True)
    assert [n["value"] for n in ann["phoneNumbers"]] == ["+31612345678"]


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ({"path": "staff.xls"}, "staff.xls is not an .xlsx workbook: zsync reads .xlsx and .xlsm"),
        ({"path": "staff.ods"}, "Save the workbook as .xlsx (Excel Workbook)"),
        ({"sheet": True}, "true is no sheet: give its name or its place from 1"),
    ],
)
def test_a_workbook_whose_errors_cannot_be_seen_or_a_flag_for_a_sheet_is_a_profile_error(
    tmp_path, extra, message
):
    with pytest.raises(ConfigError, match=re.escape(message)):
        parse_config(
            {"target": {"api_key_env": "X"}, "sources": [excel(**extra)]}, tmp_path / "z.toml"
        )


def test_a_workbook_that_unpacks_to_gigabytes_is_not_read(tmp_path, zivver, make_profile, capsys):
    """A zip bomb: a few MiB on disk, more than a GiB unpacked."""
    import zipfile

    path = workbook(tmp_path / "staff.xlsx", {"Users": [["email"], ["ann@example.org"]]})
    with zipfile.ZipFile(path, "a", compression=zipfile.ZIP_DEFLATED, compresslevel=1) as archive:
        with archive.open("xl/media/padding.bin", "w", force_zip64=True) as part:
            block = bytes(2**24)
            for _ in range(65):  # 1040 MiB of zeros
                part.write(block)
    assert path.stat().st_size < 8 * 2**20
    profile = make_profile([excel()])

    code, err, _report = profile.run(capsys=capsys)

    assert code == 3, err
    assert "unpacks to 1,040 MiB, more than any workbook of accounts" in err
    assert zivver.org.users == {}
