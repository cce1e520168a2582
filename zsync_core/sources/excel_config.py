"""The ``excel`` source type: an Excel workbook (.xlsx or .xlsm), its profile keys and its
entry in the registry."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import field_validator, model_validator

from ..registry import SourceType
from ..section import SourceSection

WORKBOOKS = (".xlsx", ".xlsm")
"""The workbooks whose error cells and unsaved formulas zsync can see (a zip of XML)."""


class ExcelSourceConfig(SourceSection):
    type: Literal["excel"]
    path: Path
    """The workbook; relative paths are relative to the profile. Columns as for CSV (the
    README), matched whatever their case."""
    sheet: str | int = 1
    """The sheet of accounts: its name, or its place from 1 (default the first)."""
    functional_sheet: str | int | None = None
    """A second sheet whose rows are functional accounts (the Synctool's V1 template had
    one); a row's ``kind`` column, when it has one, still counts."""

    @field_validator("path")
    @classmethod
    def _xlsx(cls, value: Path) -> Path:
        if value.suffix.lower() not in WORKBOOKS:
            raise ValueError(
                f"{value.name} is not an .xlsx workbook: zsync reads .xlsx and .xlsm only (as "
                "Zivver's Synctool does), where an error cell such as #N/A can be told from an "
                "empty one; in other formats it reads as empty, and an empty 'active' means "
                "active. Save the workbook as .xlsx (Excel Workbook), or use a csv source"
            )
        return value

    @field_validator("sheet", "functional_sheet", mode="before")
    @classmethod
    def _not_a_flag(cls, value: object) -> object:
        if isinstance(value, bool):
            raise ValueError(f"{str(value).lower()} is no sheet: give its name or its place from 1")
        return value

    @field_validator("sheet", "functional_sheet")
    @classmethod
    def _sheet(cls, value: str | int | None) -> str | int | None:
        if isinstance(value, int) and value < 1:
            raise ValueError(f"{value} is no sheet: sheets are counted from 1, or named")
        if isinstance(value, str) and not value.strip():
            raise ValueError("a sheet's name cannot be empty")
        return value

    @model_validator(mode="after")
    def _two_sheets(self) -> ExcelSourceConfig:
        if (
            self.functional_sheet is not None
            and str(self.functional_sheet).strip().lower() == str(self.sheet).strip().lower()
        ):
            raise ValueError(
                f"sheet and functional_sheet both name {self.sheet!r}: each row would be read "
                "twice. Name the sheet of functional accounts in functional_sheet"
            )
        return self

    def sheets(self) -> list[tuple[str | int, bool]]:
        """(sheet, its rows are functional by default) for each sheet read."""
        found: list[tuple[str | int, bool]] = [(self.sheet, False)]
        if self.functional_sheet is not None:
            found.append((self.functional_sheet, True))
        return found


SOURCE_TYPE = SourceType("excel", ExcelSourceConfig, "zsync_core.sources.excel:ExcelSource")
