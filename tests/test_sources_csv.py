"""CSV source: columns, bad rows named by file and line, and what bad rows protect."""

from __future__ import annotations

import pytest

from zsync_core.config import Config, CsvSourceConfig, TargetConfig
from zsync_core.errors import SourceError
from zsync_core.model import Kind
from zsync_core.sources.csv import CsvSource


def load(tmp_path, text: str):
    path = tmp_path / "people.csv"
    path.write_text(text, encoding="utf-8")
    source = CsvSourceConfig(type="csv", name="People", path=path)
    config = Config(
        target=TargetConfig(api_key_env="X"), sources=[source], path=tmp_path / "zsync.toml"
    )
    return CsvSource(source, config)._read()


def test_columns_become_accounts(tmp_path):
    result = load(
        tmp_path,
        "Email,Name,Kind,Active,Aliases,Delegates,Id,Sso_Key\n"
        " Ann@Example.org ,Ann Ström,personal,yes,a1@example.org;A2@example.org,,E1,key-1\n"
        "desk@example.org,Desk,functional,,,ann@example.org,F1,\n"
        "\n"
        "old@example.org,Old,,false,,,,\n",
    )
    ann, desk, old = result.accounts
    assert (ann.email, ann.display_name, ann.source_id, ann.sso_key) == (
        "ann@example.org",
        "Ann Ström",
        "E1",
        "key-1",
    )
    assert ann.aliases == {"a1@example.org", "a2@example.org"} and ann.entry == "people.csv:2"
    assert desk.kind is Kind.FUNCTIONAL and desk.delegates == {"ann@example.org"}
    assert (
        old.active is False and old.source_id == "old@example.org" and old.entry == "people.csv:5"
    )


def test_bad_rows_are_named_and_skipped(tmp_path):
    result = load(
        tmp_path,
        "email,kind,active,aliases,id\n"
        "not-an-address,,,,E1\n"
        "ann@example.org,robot,,,\n"
        "bob@example.org,,maybe,,E3\n"
        "cat@example.org,,,bad alias,\n"
        "dan@example.org,,,,E5\n",
    )
    assert [a.email for a in result.accounts] == ["dan@example.org"]
    messages = [n.message for n in result.notices]
    assert (
        "Source 'People', people.csv:2: 'not-an-address' is not a valid e-mail address; row skipped."
        in messages
    )
    assert any(
        "people.csv:3: kind 'robot' must be 'personal' or 'functional'" in m for m in messages
    )
    assert any("people.csv:4: active 'maybe' must be true or false" in m for m in messages)
    assert any("people.csv:5: aliases has invalid address(es) bad alias" in m for m in messages)
    assert result.unreadable_ids == {"E1", "E3"} and result.unidentified == 2


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", "is empty; it needs a header row"),
        ("name,kind\nAnn,personal\n", "has no 'email' column"),
        ("email,mail_alias\nann@example.org,x\n", "unknown column(s) mail_alias"),
    ],
)
def test_a_bad_file_is_a_source_error(tmp_path, text, expected):
    with pytest.raises(SourceError, match=expected.replace("(", r"\(").replace(")", r"\)")):
        load(tmp_path, text)


def test_a_missing_file_names_the_path(tmp_path):
    source = CsvSourceConfig(type="csv", name="People", path=tmp_path / "nope.csv")
    config = Config(
        target=TargetConfig(api_key_env="X"), sources=[source], path=tmp_path / "zsync.toml"
    )
    with pytest.raises(SourceError, match="nope.csv does not exist"):
        CsvSource(source, config)._read()
