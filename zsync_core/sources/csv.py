"""CSV source: personal and functional accounts from a file (columns in the README)."""

from __future__ import annotations

import asyncio
import csv
from collections.abc import Iterator

from ..addresses import normalize_address
from ..config import Config, CsvSourceConfig
from ..errors import SourceError
from ..model import Kind, Notice, SourceAccount, StepEvent, address_set
from . import Emit, SourceResult

COLUMNS = ("email", "name", "kind", "active", "aliases", "delegates", "id", "sso_key", "division")
TRUE = {"true", "yes", "1", "y", "active", "enabled", ""}
FALSE = {"false", "no", "0", "n", "disabled", "inactive", "suspended"}
KINDS = {
    "personal": Kind.PERSONAL,
    "user": Kind.PERSONAL,
    "": Kind.PERSONAL,
    "functional": Kind.FUNCTIONAL,
}


class CsvSource:
    def __init__(self, source: CsvSourceConfig, config: Config) -> None:
        self.config = source
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

    def _read(self) -> SourceResult:
        try:
            with self.path.open(encoding=self.config.encoding, newline="") as handle:
                return self._parse(csv.reader(handle, delimiter=self.config.delimiter))
        except FileNotFoundError:
            raise SourceError(
                f"Source {self.name!r}: CSV file {self.path} does not exist. Check sources.path."
            ) from None
        except (OSError, UnicodeDecodeError, csv.Error) as error:
            raise SourceError(
                f"Source {self.name!r}: cannot read CSV file {self.path}: {error}"
            ) from error

    def _parse(self, rows: Iterator[list[str]]) -> SourceResult:
        result = SourceResult(self.name, [])
        header = next(rows, None)
        if not header:
            raise SourceError(
                f"Source {self.name!r}: {self.path} is empty; it needs a header row with at least 'email'."
            )
        names = [name.strip().lower() for name in header]
        if "email" not in names:
            raise SourceError(
                f"Source {self.name!r}: {self.path} has no 'email' column (header: {', '.join(names)}). "
                f"Columns: {', '.join(COLUMNS)}."
            )
        unknown = [name for name in names if name not in COLUMNS]
        if unknown:
            raise SourceError(
                f"Source {self.name!r}: {self.path} has unknown column(s) {', '.join(unknown)}. "
                f"Known columns: {', '.join(COLUMNS)}."
            )
        for line, row in enumerate(rows, start=2):
            if not any(cell.strip() for cell in row):
                continue
            record = dict(zip(names, (cell.strip() for cell in row), strict=False))
            where = f"{self.path.name}:{line}"
            account = self._account(record, where, result)
            if account is not None:
                result.accounts.append(account)
        return result

    def _account(
        self, record: dict[str, str], where: str, result: SourceResult
    ) -> SourceAccount | None:
        def reject(message: str) -> None:
            result.notices.append(
                Notice("error", f"Source {self.name!r}, {where}: {message}; row skipped.")
            )
            if record.get("id"):
                result.unreadable_ids.add(record["id"])
            else:
                result.unidentified += 1

        email = normalize_address(record.get("email"))
        if email is None:
            reject(f"{record.get('email', '')!r} is not a valid e-mail address")
            return None
        kind = KINDS.get(record.get("kind", "").lower())
        if kind is None:
            reject(f"kind {record['kind']!r} must be 'personal' or 'functional'")
            return None
        active_text = record.get("active", "").lower()
        if active_text not in TRUE | FALSE:
            reject(f"active {record['active']!r} must be true or false")
            return None
        addresses: dict[str, frozenset[str]] = {}
        for column in ("aliases", "delegates"):
            values = [
                value
                for value in record.get(column, "").replace(",", ";").split(";")
                if value.strip()
            ]
            parsed = {normalize_address(value) for value in values}
            if None in parsed:
                bad = [value for value in values if normalize_address(value) is None]
                reject(f"{column} has invalid address(es) {', '.join(bad)}")
                return None
            addresses[column] = address_set(a for a in parsed if a)
        return SourceAccount(
            kind=kind,
            source_id=record.get("id") or email,
            email=email,
            display_name=record.get("name") or email,
            active=active_text in TRUE,
            source=self.name,
            entry=where,
            aliases=addresses["aliases"],
            delegates=addresses["delegates"],
            sso_key=record.get("sso_key") or None,
            division=record.get("division") or None,
        )
