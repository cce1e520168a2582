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
from typing import Any

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
        try:
            workbook = CalamineWorkbook.from_path(str(self.path))
        except (CalamineError, OSError, ValueError) as error:
            raise SourceError(
                f"{head}: {self.path} cannot be read as a workbook ({error}). Save it from Excel "
                "as .xlsx, or check sources.path."
            ) from None
        result = SourceResult(self.name, [])
        for sheet, functional in self.config.sheets():
            name, rows = self._rows(workbook, sheet, head)
            self._parse(rows, name, functional, result)
        return result

    def _rows(self, workbook: Any, sheet: str | int, head: str) -> tuple[str, list[list[Any]]]:
        """The sheet's name as the workbook has it, and its rows as Python values."""
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
        try:
            rows: list[list[Any]] = workbook.get_sheet_by_name(name).to_python(
                skip_empty_area=False
            )
        except Exception as error:  # noqa: BLE001 - calamine's own errors, named with the sheet
            raise SourceError(
                f"{head}: {self.path.name}:{name} cannot be read ({error}). Open and save it in "
                "Excel, then run again."
            ) from None
        return name, rows

    def _parse(
        self, rows: list[list[Any]], sheet: str, functional: bool, result: SourceResult
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
            if not any(cells):
                continue  # an empty row ends nothing
            if len(cells) > width and any(cells[width:]):  # a note beside the table
                beyond.append(number)
            elif len(cells) < width:
                cells += [""] * (width - len(cells))
            # the header's columns; a note beside the table is left out
            record = dict(zip(names, cells, strict=False))
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
