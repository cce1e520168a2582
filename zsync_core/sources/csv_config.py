"""The ``csv`` source type: a CSV file, its profile keys and its entry in the registry."""

from __future__ import annotations

import codecs
from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator

from ..registry import SourceType
from ..section import SourceSection


class CsvSourceConfig(SourceSection):
    type: Literal["csv"]
    path: Path
    """CSV file; relative paths are relative to the profile. Columns are in the README."""
    delimiter: str = Field(default=",", min_length=1, max_length=1)
    encoding: str = "utf-8-sig"

    @field_validator("encoding")
    @classmethod
    def _known_encoding(cls, value: str) -> str:
        try:
            codecs.lookup(value)
        except LookupError:
            raise ValueError(
                f"{value!r} is no encoding Python knows (e.g. utf-8, utf-8-sig, cp1252, latin-1)"
            ) from None
        return value


SOURCE_TYPE = SourceType("csv", CsvSourceConfig, "zsync_core.sources.csv:CsvSource")
