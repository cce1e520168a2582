"""CSV source: personal and functional accounts from a file (columns in the README)."""

from __future__ import annotations

import asyncio
import csv
from abc import ABC, abstractmethod
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from ..addresses import normalize_address
from ..config import Config
from ..errors import SourceError
from ..model import NO_ADDRESSES, Kind, SourceAccount, StepEvent, address_set
from ..output import first_control
from . import Emit, SourceResult
from .csv_config import CsvSourceConfig

if TYPE_CHECKING:
    from .excel_config import ExcelSourceConfig

OPEN_QUOTE = (
    "a quoted field is not closed on its line, or closes one an earlier line opened (a missing "
    'or an extra ")'
)
"""Why a row is unusable when csv finds a quote open at the end of its line."""

COLUMNS = (
    "email",
    "name",
    "kind",
    "active",
    "aliases",
    "delegates",
    "id",
    "sso_key",
    "division",
    "phone",
)
TRUE = {"true", "yes", "1", "y", "active", "enabled", ""}
FALSE = {"false", "no", "0", "n", "disabled", "inactive", "suspended"}
ACTIVE_WORDS = TRUE | FALSE
KINDS = {
    "personal": Kind.PERSONAL,
    "user": Kind.PERSONAL,
    "": Kind.PERSONAL,
    "functional": Kind.FUNCTIONAL,
}


class TableFile(ABC):
    """A source that is one file of rows (CSV, a workbook), read in a worker thread as one
    step; a subclass reads it in :meth:`_read`."""

    def __init__(self, source: CsvSourceConfig | ExcelSourceConfig, config: Config) -> None:
        self.name = source.name
        self.path = config.resolve(source.path)

    async def load(self, emit: Emit) -> SourceResult:
        step = f"{self.name}: read {self.path.name}"
        emit(StepEvent(step, step, "running"))
        try:
            result = await asyncio.to_thread(self._read)
        except SourceError as error:
            emit(StepEvent(step, step, "failed", detail=str(error)))
            raise
        emit(StepEvent(step, step, "done", len(result.accounts), len(result.accounts)))
        return result

    @abstractmethod
    def _read(self) -> SourceResult:
        """Every row of the file (or workbook) as accounts; SourceError when it cannot."""


class CsvSource(TableFile):
    def __init__(self, source: CsvSourceConfig, config: Config) -> None:
        super().__init__(source, config)
        self.config = source

    def _read(self) -> SourceResult:
        try:
            if self.path.exists() and not self.path.is_file():  # a FIFO would never end
                raise SourceError(
                    f"Source {self.name!r}: {self.path} is not a regular file. Check sources.path."
                )
            with self.path.open(encoding=self.config.encoding, newline="") as handle:
                return self._parse(handle)
        except FileNotFoundError:
            raise SourceError(
                f"Source {self.name!r}: CSV file {self.path} does not exist. Check sources.path."
            ) from None
        except UnicodeDecodeError as error:
            line = _line_of_bad_byte(self.path, self.config.encoding)
            raise SourceError(
                f"Source {self.name!r}: {self.path.name}:{line} is not {self.config.encoding} "
                f"({error.reason}). Save the file as UTF-8, or set encoding in the source "
                '(e.g. encoding = "cp1252" for a file from Excel on Windows).'
            ) from error
        except OSError as error:
            raise SourceError(
                f"Source {self.name!r}: cannot read CSV file {self.path}: {error}"
            ) from error

    def _parse(self, lines: Iterable[str]) -> SourceResult:
        """One row per line, each parsed on its own: no value may hold a line break, so a
        quote left open spoils its own line (and the line that closes it) instead of
        swallowing the rows after it."""
        result = SourceResult(self.name, [])
        delimiter = self.config.delimiter
        numbered = enumerate(lines, start=1)
        names = self._header(numbered)
        at = names.index("email")
        # with an id column, a row whose id cannot be read may be any account (a rename): it
        # blocks every removal rather than protect an address
        identified = "id" in names
        for number, line in numbered:
            where = f"{self.path.name}:{number}"
            if not line.strip():
                continue
            # an odd number of quotes opens a field the line does not close, or closes one an
            # earlier line opened: either way the line is not a row of its own
            row, error = self._row(line)
            if row is None:
                # the fields before the first quote are where the header says
                before = line.partition('"')[0].split(delimiter)
                complete = len(before) - 1  # the last one runs into the quote
                address = normalize_address(before[at]) if complete > at else None
                source_id = None
                if identified and complete > names.index("id"):
                    source_id = before[names.index("id")].strip() or None
                if identified and source_id is None:
                    address = None  # its id is unknown: it may be any account
                result.skip(where, error, address=address, source_id=source_id)
                continue
            if not any(cell.strip() for cell in row):
                continue
            if len(row) != len(names):
                # a missing or extra delimiter shifts what follows it, and a file cut off
                # mid-write cuts its last field: only a first column before others is sure
                sure = at == 0 and len(row) > 1 and not identified
                result.skip(
                    where,
                    f"the row has {len(row)} fields where the header has {len(names)} "
                    f"(a missing or an extra {delimiter!r}?)",
                    address=normalize_address(row[0]) if sure else None,
                )
                continue
            record = dict(zip(names, (cell.strip() for cell in row), strict=True))
            account = row_account(record, where, result)
            if account is not None:
                result.accounts.append(account)
        return result

    def _header(self, numbered: Iterator[tuple[int, str]]) -> list[str]:
        """The column names of the first line that is not blank.

        Raises:
            SourceError: no header, one that cannot be read, or a column unknown, empty or
                named twice.
        """
        for number, line in numbered:
            if line.strip():
                header, error = self._row(line)
                if header is None:
                    raise SourceError(
                        f"Source {self.name!r}: {self.path.name}:{number}, the header: {error}."
                    )
                break
        else:
            header = []
        if not any(cell.strip() for cell in header):
            raise SourceError(
                f"Source {self.name!r}: {self.path} is empty; it needs a header row with at least 'email'."
            )
        return column_names(header, f"Source {self.name!r}: {self.path}")

    def _row(self, line: str) -> tuple[list[str] | None, str]:
        """The fields of one line, or None and why not. A line with an odd number of quotes
        opens a field it does not close, or closes one an earlier line opened: either way
        it is not a row of its own."""
        if line.count('"') % 2:
            return None, OPEN_QUOTE
        try:
            return next(csv.reader((line,), delimiter=self.config.delimiter, strict=True), []), ""
        except csv.Error as error:
            if "field larger than field limit" in str(error):
                limit = csv.field_size_limit()
                return None, f"a field is longer than {limit:,} characters"
            return None, 'a quote where none may be (a field with a " must be quoted whole)'


def column_names(header: list[str], where: str) -> list[str]:
    """A table's header as column names (lower case, as the rows are read).

    Raises:
        SourceError: no 'email' column, or a column unknown, empty or named twice.
    """
    names = [str(name).strip().lstrip("\ufeff").lower() for name in header]
    if "email" not in names:
        raise SourceError(
            f"{where} has no 'email' column (header: {', '.join(names)}). "
            f"Columns: {', '.join(COLUMNS)}."
        )
    unknown = [name or "(an empty name)" for name in names if name not in COLUMNS]
    if unknown:
        raise SourceError(
            f"{where} has unknown column(s) {', '.join(unknown)} (a delimiter at the end of "
            f"the header?). Known columns: {', '.join(COLUMNS)}."
        )
    twice = sorted({name for name in names if names.count(name) > 1})
    if twice:
        raise SourceError(
            f"{where} names the column(s) {', '.join(twice)} more than once; which one holds "
            "the value is not known. Keep one of each."
        )
    return names


def row_account(
    record: dict[str, str], where: str, result: SourceResult, default_kind: Kind = Kind.PERSONAL
) -> SourceAccount | None:
    """The account one row of a table (CSV, a sheet) describes, by column name; None, and
    the row in ``result.unusable``, when it cannot be used. A row without a kind is
    ``default_kind``."""
    address = normalize_address(record.get("email"))

    def reject(message: str) -> None:
        result.skip(where, message, address=address, source_id=record.get("id") or address)

    if not "".join(record.values()).isprintable():  # nearly every row is: one look for all
        for column, value in record.items():
            control = first_control(value)
            if control is not None:
                reject(
                    f"{column} holds {control}, a control character (nothing sent to Zivver may)"
                )
                return None
    email = address
    if email is None:
        reject(f"{record.get('email', '')!r} is not a valid e-mail address")
        return None
    kind_text = record.get("kind", "").lower()
    kind = default_kind if not kind_text else KINDS.get(kind_text)
    if kind is None:
        reject(f"kind {record['kind']!r} must be 'personal' or 'functional'")
        return None
    active_text = record.get("active", "").lower()
    if active_text not in ACTIVE_WORDS:
        reject(f"active {record['active']!r} must be true or false")
        return None
    addresses: dict[str, frozenset[str]] = {}
    for column in ("aliases", "delegates"):
        if not record.get(column):
            addresses[column] = NO_ADDRESSES
            continue
        values = [
            value for value in record.get(column, "").replace(",", ";").split(";") if value.strip()
        ]
        parsed = {normalize_address(value) for value in values}
        if None in parsed:
            bad = [value for value in values if normalize_address(value) is None]
            reject(f"{column} has invalid address(es) {', '.join(bad)}")
            return None
        addresses[column] = address_set(a for a in parsed if a)
    return SourceAccount(  # positional: a row of 100,000
        kind,
        record.get("id") or email,
        email,
        record.get("name") or email,
        active_text in TRUE,
        result.name,
        where,
        addresses["aliases"],
        addresses["delegates"],
        record.get("sso_key") or None,
        record.get("division") or None,
        (record.get("phone") or None) if kind is Kind.PERSONAL else None,
    )


def _line_of_bad_byte(path: Path, encoding: str) -> int:
    """The line of the first byte ``encoding`` cannot read (a text read sees one chunk)."""
    data = path.read_bytes()
    try:
        data.decode(encoding)
    except UnicodeDecodeError as error:
        return data[: error.start].count(b"\n") + 1
    return 1
