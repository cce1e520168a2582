"""Excel source: personal and functional accounts from a workbook's sheets, read with
python-calamine (Rust's calamine), each row as the CSV source reads one.

A cell is read as the admin means it: a number cell holding a phone number (612345678) is
its digits, never ``612345678.0``; a boolean is true or false; a date is its ISO form; a
formula cell gives the value Excel saved with it. An empty row ends nothing (the rows after
it are read); hidden and merged rows are read as values (a merged cell's value is in its
first cell). Errors name ``file:sheet:row``.
"""

from __future__ import annotations

import datetime
import html
import re
import zipfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from ..addresses import normalize_address
from ..config import Config
from ..errors import SourceError
from ..model import Kind, Notice
from . import SourceResult
from .csv import TableFile, column_names, row_account
from .excel_config import ExcelSourceConfig


class ExcelSource(TableFile):
    def __init__(self, source: ExcelSourceConfig, config: Config) -> None:
        super().__init__(source, config)
        self.config = source

    def _read(self) -> SourceResult:
        from python_calamine import CalamineError, CalamineWorkbook

        head = f"Source {self.name!r}"
        if not self.path.exists():
            raise SourceError(f"{head}: workbook {self.path} does not exist. Check sources.path.")
        if not self.path.is_file():
            raise SourceError(f"{head}: {self.path} is not a regular file. Check sources.path.")
        unpacked = _unpacked_size(self.path)
        if unpacked is not None and unpacked > MAX_UNPACKED:
            raise SourceError(
                f"{head}: {self.path} unpacks to {unpacked // 2**20:,} MiB, more than any "
                f"workbook of accounts ({MAX_UNPACKED // 2**20:,} MiB is the limit: 100,000 "
                "rows are about 60 MiB); it was not read, and nothing was changed. Check "
                "sources.path: is this the export of the accounts?"
            )
        try:
            workbook = CalamineWorkbook.from_path(str(self.path))
        except (CalamineError, OSError, ValueError) as error:
            raise SourceError(
                f"{head}: {self.path} cannot be read as a workbook ({error}). Save it from Excel "
                "as .xlsx, or check sources.path."
            ) from None
        result = SourceResult(self.name, [])
        with ThreadPoolExecutor(1, thread_name_prefix="zsync-xlsx-scan") as scanner:
            for sheet, functional in self.config.sheets():
                name = self._sheet_name(workbook, sheet, head)
                # its own read of the sheet's XML, while calamine reads it (both let go of
                # the GIL for much of it: a tenth of the read saved at 100,000 rows)
                scan = scanner.submit(unreadable_cells, self.path, name)
                rows = self._rows(workbook, name, head)
                self._parse(rows, name, functional, result, scan.result())
        return result

    def _sheet_name(self, workbook: Any, sheet: str | int, head: str) -> str:
        """The sheet's name as the workbook has it."""
        names: list[str] = list(workbook.sheet_names)
        shown = ", ".join(repr(n) for n in names)
        if isinstance(sheet, int):
            if sheet > len(names):
                raise SourceError(
                    f"{head}: {self.path.name} has {len(names)} sheet(s) ({shown}), so there "
                    f"is no sheet {sheet}. Check sheet / functional_sheet."
                )
            name = names[sheet - 1]
        else:
            found = [n for n in names if n.strip().lower() == sheet.strip().lower()]
            if not found:
                raise SourceError(
                    f"{head}: {self.path.name} has no sheet {sheet!r} (it has {shown}). Check "
                    "sheet / functional_sheet."
                )
            name = found[0]
        return name

    def _rows(self, workbook: Any, name: str, head: str) -> list[list[Any]]:
        """The sheet's rows as Python values."""
        try:
            rows: list[list[Any]] = workbook.get_sheet_by_name(name).to_python(
                skip_empty_area=False
            )
        except Exception as error:  # noqa: BLE001 - calamine's own errors, named with the sheet
            raise SourceError(
                f"{head}: {self.path.name}:{name} cannot be read ({error}). Open and save it in "
                "Excel, then run again."
            ) from None
        return rows

    def _parse(
        self,
        rows: list[list[Any]],
        sheet: str,
        functional: bool,
        result: SourceResult,
        unreadable: dict[int, list[tuple[str, str]]],
    ) -> None:
        at = f"{self.path.name}:{sheet}"
        numbered = iter(enumerate(rows, start=1))
        header: list[Any] = []
        for _number, row in numbered:
            if any(_text(cell) for cell in row):
                header = row
                break
        if not header:
            raise SourceError(
                f"Source {self.name!r}: {at} is empty; it needs a header row with at least 'email'."
            )
        while header and not _text(header[-1]):  # columns after the last header are none
            header = header[:-1]
        names = column_names([_text(cell) for cell in header], f"Source {self.name!r}: {at}")
        kind = Kind.FUNCTIONAL if functional else Kind.PERSONAL
        width = len(names)
        beyond: list[int] = []
        for number, row in numbered:
            # text and empty cells (nearly all) inline: a call per cell is a third of the read
            cells = [
                cell.strip() if type(cell) is str else "" if cell is None else _text(cell)
                for cell in row
            ]
            if not any(cells) and number not in unreadable:
                continue  # an empty row ends nothing
            if len(cells) > width and any(cells[width:]):  # a note beside the table
                beyond.append(number)
            elif len(cells) < width:
                cells += [""] * (width - len(cells))
            # the header's columns; a note beside the table is left out
            record = dict(zip(names, cells, strict=False))
            if number in unreadable:
                # calamine reads an error or an unsaved formula as "": its value is not known
                bad = [(ref, why) for ref, why in unreadable[number] if _column(ref) < width]
                if bad:
                    self._unreadable_row(record, names, bad, f"{at}:{number}", result)
                    continue
            account = row_account(record, f"{at}:{number}", result, kind)
            if account is not None:
                result.accounts.append(account)
        if beyond:
            rows_named = ", ".join(str(n) for n in beyond[:10]) + (" …" if len(beyond) > 10 else "")
            result.notices.append(
                Notice(
                    "warning",
                    f"Source {self.name!r}: {at}: {len(beyond)} row(s) have values right of "
                    f"the header's last column (rows {rows_named}); they belong to no column "
                    "and were not read. Give the column a header zsync knows, or move them.",
                )
            )

    def _unreadable_row(
        self,
        record: dict[str, str],
        names: list[str],
        cells: list[tuple[str, str]],
        where: str,
        result: SourceResult,
    ) -> None:
        """A row with a cell whose value is not known: unusable, its account left alone (or,
        when its address or id is the unknown cell, every removal blocked)."""
        columns = {names[_column(reference)] for reference, _why in cells}
        named = ", ".join(f"{names[_column(ref)]} ({ref}) {why}" for ref, why in cells)
        email_known = "email" not in columns
        id_known = "id" not in columns
        address = normalize_address(record.get("email")) if email_known else None
        source_id = (record.get("id") or address) if id_known else None
        result.skip(
            where,
            f"{named}: its value is not known, so the row is not used. Fix the cell (or open "
            "and save the workbook in Excel, which saves each formula's value)",
            address=address if id_known else None,
            source_id=source_id,
        )


_SHEET = re.compile(rb'<(?:\w+:)?sheet\b[^>]*?\bname="([^"]*)"[^>]*?\br:id="([^"]*)"')
_RELATION = re.compile(rb"<(?:\w+:)?Relationship\b[^>]*>")
_ATTRIBUTE = re.compile(rb'\b(Id|Target)="([^"]*)"')
_ERROR = b't="e"'
"""A cell holding an error: found with a plain search (a regex over every cell of a sheet of
100,000 rows takes as long as calamine's whole read)."""
_CELL = re.compile(rb'<(?:\w+:)?c\b[^>]*?\br="([A-Z]+[0-9]+)"[^>]*>\s*(?:<(?:\w+:)?v>([^<]*))?')
_FORMULA = re.compile(rb"<f[\s>/]")
_FORMULA_PREFIXED = re.compile(rb"<\w+:f[\s>/]")
_VALUE = re.compile(rb"<(?:\w+:)?v>\s*[^<\s]")


MAX_UNPACKED = 2**30
"""The most a workbook may unpack to (its parts' sizes, as its zip directory says): a
workbook is a zip, and a small one can unpack to more memory than the server has."""


def _unpacked_size(path: Path) -> int | None:
    """What an .xlsx/.xlsm unpacks to, by its zip directory; None when it is no zip (calamine
    then says what it is). A part that claims less than it holds is cut at its claim by both
    readers (zip checks each part's size as it unpacks)."""
    try:
        with zipfile.ZipFile(path) as archive:
            return sum(info.file_size for info in archive.infolist())
    except (zipfile.BadZipFile, OSError, ValueError):
        return None


def unreadable_cells(path: Path, sheet: str) -> dict[int, list[tuple[str, str]]]:
    """Row number → (cell, why) of the cells of ``sheet`` whose value is not known: an error
    (``#N/A``, ``#REF!``…) or a formula saved without its value (a file no spreadsheet
    program saved). calamine reads both as an empty cell, which for ``active`` means true.
    Only a ``.xlsx``/``.xlsm`` workbook (a zip of XML) can be looked at; other formats give
    nothing."""
    found: dict[int, list[tuple[str, str]]] = {}
    try:
        with zipfile.ZipFile(path) as archive:
            part = _sheet_part(archive, sheet)
            if part is None:
                return found
            data = archive.read(part)
    except (zipfile.BadZipFile, KeyError, OSError, ValueError):
        return found
    at = data.find(_ERROR)
    while at != -1:
        start = data.rfind(b"<", 0, at)  # the tag it is an attribute of: attributes hold no "<"
        match = _CELL.match(data, start)
        if match is not None and data.find(b">", start, at) == -1:
            said = (match.group(2) or b"").decode("utf-8", "replace").strip() or "an error"
            _add(found, match.group(1).decode(), f"holds the error {said}")
        at = data.find(_ERROR, at + len(_ERROR))
    formulas = list(_FORMULA.finditer(data))
    if b":f" in data:  # a workbook whose writer prefixes every tag (x:c, x:f)
        formulas += _FORMULA_PREFIXED.finditer(data)
    for formula in formulas:
        # the nearest r="…" before it is its cell's (a cell's other attributes have none)
        at = data.rfind(b'r="', 0, formula.start())
        end = data.find(b"c>", formula.end())  # the cell's end tag: text holds no bare ">"
        if at == -1 or end == -1:
            continue
        reference = data[at + 3 : data.find(b'"', at + 3)].decode("ascii", "replace")
        cell = data[data.rfind(b"<", 0, at) : formula.start()]
        if b't="e"' not in cell and _VALUE.search(data, formula.end(), end) is None:
            _add(found, reference, "holds a formula saved without its value")
    return found


def _sheet_part(archive: zipfile.ZipFile, sheet: str) -> str | None:
    """The zip member holding ``sheet``'s cells."""
    ids = {
        name.decode("utf-8", "replace"): rid
        for name, rid in _SHEET.findall(archive.read("xl/workbook.xml"))
    }
    rid = ids.get(html.escape(sheet, quote=True)) or ids.get(sheet)
    if rid is None:
        return None
    targets = {}
    for relation in _RELATION.findall(archive.read("xl/_rels/workbook.xml.rels")):
        attributes = dict(_ATTRIBUTE.findall(relation))
        targets[attributes.get(b"Id")] = attributes.get(b"Target")
    target = targets.get(rid)
    if target is None:
        return None
    name = target.decode("utf-8", "replace")
    return name.lstrip("/") if name.startswith("/") else f"xl/{name}"


def _add(found: dict[int, list[tuple[str, str]]], reference: str, why: str) -> None:
    row = int(reference.lstrip("ABCDEFGHIJKLMNOPQRSTUVWXYZ"))
    found.setdefault(row, []).append((reference, why))


def _column(reference: str) -> int:
    """0 for A, 25 for Z, 26 for AA."""
    number = 0
    for letter in reference.rstrip("0123456789"):
        number = number * 26 + ord(letter) - 64
    return number - 1


def _text(cell: Any) -> str:
    """A cell as the admin means it, as text."""
    if type(cell) is str:  # most cells
        return cell.strip()
    if cell is None:
        return ""
    if isinstance(cell, bool):
        return "true" if cell else "false"
    if isinstance(cell, float):
        if cell.is_integer():
            return str(int(cell))  # a phone number or an id typed as a number
        return repr(cell)
    if isinstance(cell, datetime.datetime | datetime.date | datetime.time):
        return cell.isoformat()
    if isinstance(cell, datetime.timedelta):
        return str(cell)
    return str(cell).strip()
