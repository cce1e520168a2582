"""CSV source: columns, bad rows named by file and line, and what bad rows protect."""

from __future__ import annotations

import re

import pytest

from zsync_core.config import Config, TargetConfig
from zsync_core.errors import SourceError
from zsync_core.model import Kind
from zsync_core.sources.csv import CsvSource
from zsync_core.sources.csv_config import CsvSourceConfig


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
    messages = [u.text() for u in result.unusable]
    assert (
        "Source 'People', people.csv:2: 'not-an-address' is not a valid e-mail address; entry skipped."
        in messages
    )
    assert any(
        "people.csv:3 (ann@example.org): kind 'robot' must be 'personal' or 'functional'" in m
        for m in messages
    )
    assert any("people.csv:4 (bob@example.org): active 'maybe' must be" in m for m in messages)
    assert any(
        "people.csv:5 (cat@example.org): aliases has invalid address(es) bad alias" in m
        for m in messages
    )
    assert [u.address for u in result.unusable] == [
        None,
        "ann@example.org",
        "bob@example.org",
        "cat@example.org",
    ], "a readable address protects that account only"
    assert result.unreadable_ids == {"E1", "ann@example.org", "E3", "cat@example.org"}
    assert result.unidentified == 0


def test_an_unclosed_quote_spoils_its_own_row_only(tmp_path):
    """The rows after it were swallowed into one display name and never created."""
    result = load(
        tmp_path,
        "email,name,kind,active,aliases,delegates\n"
        "extern.one@example.org,Extern One,personal,true,,\n"
        'extern.two@example.org,"Extern Two,personal,true,,\n'
        "extern.three@example.org,Extern Three,personal,true,,\n",
    )
    assert [(a.email, a.display_name) for a in result.accounts] == [
        ("extern.one@example.org", "Extern One"),
        ("extern.three@example.org", "Extern Three"),
    ]
    [bad] = result.unusable
    assert bad.where == "people.csv:3" and bad.address == "extern.two@example.org"
    assert "a quoted field is not closed on its line" in bad.reason


@pytest.mark.parametrize(
    ("row", "reason", "address"),
    [
        (
            "ann@example.org,Ann,personal",
            "the row has 3 fields where the header has 4",
            "ann@example.org",
        ),
        (
            "ann@example.org,Ann,personal,true,x",
            "the row has 5 fields where the header has 4",
            "ann@example.org",
        ),
        (
            "ann@example.org,Ann\x00,personal,true",
            "name holds \\x00, a control character",
            "ann@example.org",
        ),
        (
            "ann@example.org,Ann\x1b]0;pwned\x07,personal,true",
            "name holds \\x1b",
            "ann@example.org",
        ),
        ("ann@example.org,Ann\u202eevil,personal,true", "name holds \\u202e", "ann@example.org"),
        ('"ann@example.org,Ann,personal,true', "not closed on its line", None),
    ],
    ids=[
        "fewer fields",
        "more fields",
        "NUL",
        "escape",
        "bidi override",
        "quote before the address",
    ],
)
def test_a_bad_row_is_unusable_and_named(tmp_path, row, reason, address):
    result = load(tmp_path, f"email,name,kind,active\n{row}\nbob@example.org,Bob,personal,true\n")
    assert [a.email for a in result.accounts] == ["bob@example.org"]
    [bad] = result.unusable
    assert bad.where == "people.csv:2" and reason in bad.reason and bad.address == address


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


def test_a_file_in_another_encoding_names_the_line_and_the_key(tmp_path):
    path = tmp_path / "people.csv"
    rows = ["email,name"] + [f"user{n}@example.org,User {n}" for n in range(3000)]
    path.write_bytes(("\n".join(rows) + "\n").encode() + "zoe@example.org,Zoë\n".encode("cp1252"))
    source = CsvSourceConfig(type="csv", name="People", path=path)
    config = Config(
        target=TargetConfig(api_key_env="X"), sources=[source], path=tmp_path / "zsync.toml"
    )
    with pytest.raises(SourceError, match=r"people\.csv:3002 is not utf-8-sig .*set encoding"):
        CsvSource(source, config)._read()


def test_a_broken_row_in_a_file_with_ids_may_be_anyone_and_a_cut_field_is_not_read(tmp_path):
    """An attack review suspended u1: its broken row (renamed, a quote left open) protected
    the new address only, while the old account, mapped by id, looked like a leaver."""
    result = load(
        tmp_path,
        "email,name,active,id\n"
        'ann.new@example.org,"Ann,true,E1\n'
        "bob@example.org,Bob,true,E2,extra\n"
        "cat@example.org,Cat,true,E3\n"
        "user29@example.or",  # the file cut off while it was written
    )
    assert [a.email for a in result.accounts] == ["cat@example.org"]
    assert [u.unidentified for u in result.unusable] == [True, True, True]
    assert result.unidentified == 3, "no removal is safe this run"


def test_without_an_id_column_a_broken_row_still_protects_its_address(tmp_path):
    result = load(tmp_path, 'email,name,active\nann@example.org,"Ann,true\n')
    [bad] = result.unusable
    assert bad.address == "ann@example.org" and not bad.unidentified


def test_the_rest_of_a_quoted_field_on_the_next_line_is_no_account(tmp_path):
    result = load(
        tmp_path,
        'email,name,active,id\nann@example.org,"Ann\nbob@example.org,Bob",true,E1\n'
        "cat@example.org,Cat,true,E3\n",
    )
    assert [a.email for a in result.accounts] == ["cat@example.org"]
    assert [u.where for u in result.unusable] == ["people.csv:2", "people.csv:3"]


@pytest.mark.parametrize(
    ("header", "said"),
    [
        ("email,name,active,id,active", "names the column(s) active more than once"),
        ("email,name,", "unknown column(s) (an empty name)"),
        ('email,"name', "people.csv:1, the header:"),
    ],
)
def test_a_header_zsync_cannot_read_for_sure_is_a_source_error(tmp_path, header, said):
    with pytest.raises(SourceError, match=re.escape(said)):
        load(tmp_path, f"{header}\nann@example.org,Ann,true,E0,false\n")


def test_a_path_that_is_not_a_file_is_refused_instead_of_read_for_ever(tmp_path):
    import os

    fifo = tmp_path / "people.fifo"
    os.mkfifo(fifo)
    source = CsvSourceConfig(type="csv", name="People", path=fifo)
    config = Config(
        target=TargetConfig(api_key_env="X"), sources=[source], path=tmp_path / "zsync.toml"
    )
    with pytest.raises(SourceError, match="is not a regular file"):
        CsvSource(source, config)._read()


def test_an_encoding_python_does_not_know_is_a_profile_error(tmp_path):
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match="no encoding Python knows"):
        CsvSourceConfig(type="csv", name="People", path=tmp_path / "p.csv", encoding="no-such-enc")
