"""Phone numbers and divisions as Zivver's Synctool maps them: end to end against a real
slapd and the Zivver emulator over HTTP, and a CSV file."""

from __future__ import annotations

import pytest

from tests.conftest import ldap_source
from tests.servers import STAFF, Directory
from zsync_core.config import parse_config
from zsync_core.errors import ConfigError

ENTERPRISE = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"


def phones_of(org, email: str) -> list[str]:
    return [n["value"] for n in org.user_by_email(email).get("phoneNumbers", [])]


def division_of(org, email: str) -> str:
    return org.user_by_email(email)[ENTERPRISE]["division"]


def finance_and_staff(directory: Directory) -> dict[str, str]:
    finance = directory.ou("Finance")
    return {
        finance.upper().replace(" ", ""): "finance",  # compared as DNs: case does not matter
        "ou=Staff, dc=example, dc=org": "staff",  # nor spaces after commas
    }


def test_numbers_and_divisions_by_ou_are_written_as_the_synctool_would(
    directory, zivver, make_profile, capsys
):
    ou_map = finance_and_staff(directory)
    directory.user("ann", mobile="06 1234 5678", under=f"ou=Finance,{STAFF}")
    directory.user("bob", mobile="+32 470 12 34 56")
    directory.user("cat", mobile="0031 6 8765 4321")
    directory.user("dan")  # no number: none is written
    zivver.org.divisions |= {"finance", "staff"}
    source = ldap_source(directory.slapd, phone_region="NL", ou_mapping="dn", ou_map=ou_map)
    profile = make_profile([source], sync_phone_numbers=True)

    code, err, report = profile.run(capsys=capsys)

    assert code == 0, err
    org = zivver.org
    assert phones_of(org, "ann@example.org") == ["+31612345678"]
    assert phones_of(org, "bob@example.org") == ["+32470123456"]
    assert phones_of(org, "cat@example.org") == ["+31687654321"]
    assert phones_of(org, "dan@example.org") == []
    assert division_of(org, "ann@example.org") == "finance", "the longest suffix wins"
    assert division_of(org, "bob@example.org") == "staff"
    ann = next(c for c in report["changes"] if c["email"] == "ann@example.org")
    assert ann["after"]["phone"] == "+31612345678" and ann["after"]["division"] == "finance"

    # a second run finds everything in step
    code, err, report = profile.run(capsys=capsys)
    assert (code, report["summary"]) == (0, {}), err


def test_a_bad_number_is_named_and_the_account_syncs_without_it(
    directory, zivver, make_profile, capsys
):
    directory.user("ann", mobile="12345")
    directory.user("bob", mobile="+99 1234")
    directory.user("cat", mobile="612345678")
    source = ldap_source(directory.slapd, phone_region="NL")
    profile = make_profile([source], sync_phone_numbers=True)

    code, err, report = profile.run(capsys=capsys)

    assert code == 2, err
    org = zivver.org
    assert org.user_by_email("ann@example.org") is not None, "the account itself is created"
    assert phones_of(org, "ann@example.org") == []
    assert phones_of(org, "cat@example.org") == ["+31612345678"], "read in phone_region"
    assert (
        "cn=ann,ou=staff,dc=example,dc=org (ann@example.org): the phone number '12345' is not "
        "a valid number in NL; the phone number is not synced" in err
    )
    assert (
        "the phone number '+99 1234' cannot be read (Could not interpret numbers after plus-sign)"
        in err
    )
    assert "2 phone numbers that cannot be read, not synced" in err
    named = {u["address"]: u for u in report["unusable"]}
    assert named["ann@example.org"]["value"] == "phone number"
    assert set(named) == {"ann@example.org", "bob@example.org"}


def test_an_adopted_organization_keeps_the_numbers_people_set_unless_asked(
    directory, zivver, make_profile, capsys
):
    org = zivver.org
    ann_id = org.add_user("ann@example.org", "Ann", phone_numbers=["+31611111111", "+31600000000"])
    org.sso_keys.pop(ann_id, None)
    directory.user("ann", "ann@example.org", "Ann", mobile="0622222222")
    source = ldap_source(directory.slapd, phone_region="NL")
    profile = make_profile([source])

    profile.data["sync"]["sync_phone_numbers"] = True
    profile.write()
    code, err, report = profile.run("--dry-run", capsys=capsys)
    assert "1 phone number(s) would change" in err, "the takeover says so before any write"
    assert "it replaces the first number 1 of them have now: ann@example.org." in err
    assert report["takeover"]["phone_numbers_replaced"] == ["ann@example.org"]
    profile.data["sync"]["sync_phone_numbers"] = False
    profile.write()

    code, err, report = profile.run(capsys=capsys)
    assert code == 0, err
    assert report["summary"] == {}, "option off: nothing is sent for the numbers"
    assert phones_of(org, "ann@example.org") == ["+31611111111", "+31600000000"]

    profile.data["sync"]["sync_phone_numbers"] = True
    profile.write()
    code, err, report = profile.run("--dry-run", capsys=capsys)
    change = report["changes"][0]
    assert (change["before"]["phone"], change["after"]["phone"]) == ("+31611111111", "+31622222222")
    code, err, report = profile.run(capsys=capsys)
    assert code == 0, err
    # the managed (first) number changes; the other stays; nothing else of ann is touched
    assert phones_of(org, "ann@example.org") == ["+31622222222", "+31600000000"]


def test_a_division_zivver_does_not_know_fails_that_change_alone_and_says_what_to_do(
    directory, zivver, make_profile, capsys
):
    directory.user("ann")
    source = ldap_source(directory.slapd, ou_mapping="custom", ou_identifier="Nowhere")
    profile = make_profile([source])

    code, err, report = profile.run(capsys=capsys)

    assert code != 0
    assert "division Nowhere does not exist in Zivver" in err
    assert "create it in the Zivver WebApp" in err and "ou_mapping" in err


def test_a_csv_source_maps_phones_and_divisions_by_domain(tmp_path, zivver, make_profile, capsys):
    (tmp_path / "people.csv").write_text(
        "email,name,phone\nann@example.org,Ann,+31 6 1234 5678\nbob@example.org,Bob,\n"
    )
    zivver.org.divisions.add("example.org")
    source = {"name": "HR", "type": "csv", "path": "people.csv", "ou_mapping": "domain"}
    profile = make_profile([source], sync_phone_numbers=True)

    code, err, _report = profile.run(capsys=capsys)

    assert code == 0, err
    assert phones_of(zivver.org, "ann@example.org") == ["+31612345678"]
    assert division_of(zivver.org, "bob@example.org") == "example.org"


@pytest.mark.parametrize(
    ("source", "message"),
    [
        (
            {"ou_mapping": "dn", "ou_map": {"ou=x,dc=y": "x"}},
            "needs entries with distinguished names",
        ),
        ({"ou_mapping": "custom"}, "needs ou_identifier"),
        ({"ou_identifier": "x"}, 'only with ou_mapping = "custom"'),
        ({"phone_region": "Netherlands"}, "two-letter ISO 3166 code"),
        ({"ou_mapping": "department"}, "ou_mapping"),
        ({"ou_mapping": "custom", "ou_identifier": "x\x1b[31m"}, "holds a control character"),
    ],
)
def test_ou_and_phone_mistakes_in_the_profile_are_named(tmp_path, source, message):
    data = {"name": "HR", "type": "csv", "path": "people.csv", **source}
    with pytest.raises(ConfigError) as caught:
        parse_config({"target": {"api_key_env": "X"}, "sources": [data]}, tmp_path / "z.toml")
    assert message in str(caught.value)


def test_the_dn_map_names_a_suffix_that_is_no_dn(tmp_path):
    data = {
        "name": "AD",
        "type": "ldap",
        "url": "ldaps://dc.example.org",
        "base_dn": "dc=example,dc=org",
        "ou_mapping": "dn",
        "ou_map": {"Finance": "finance"},
    }
    with pytest.raises(ConfigError, match="'Finance' is not a DN"):
        parse_config({"target": {"api_key_env": "X"}, "sources": [data]}, tmp_path / "z.toml")


def test_check_names_each_source_with_its_description(tmp_path, zivver, make_profile, capsys):
    from zsync_tui.cli import main

    (tmp_path / "people.csv").write_text("email\nann@example.org\n")
    source = {"name": "HR", "type": "csv", "path": "people.csv", "description": "HR export, weekly"}
    profile = make_profile([source])

    code = main(["check", "--config", str(profile.path)])

    out = capsys.readouterr()
    assert code == 0, out.err
    assert "source 'HR' (csv) — HR export, weekly" in out.out + out.err


def test_the_dn_map_finds_the_longest_suffix_per_entry_whatever_the_order_read():
    from zsync_core.model import SourceAccount
    from zsync_core.sources.fields import _DnMap

    # finish() rebuilds an account from its fields with these two last
    assert SourceAccount._fields[-2:] == ("division", "phone")
    dn_map = _DnMap(
        {
            "OU=Finance,OU=Staff,DC=example,DC=org": "finance",
            "OU=Staff,DC=example,DC=org": "staff",
            "CN=Special,OU=Staff,DC=example,DC=org": "special",
            "OU=Sales\\, EU,DC=example,DC=org": "sales",
        }
    )
    assert dn_map.division("CN=A,OU=Sales\\, EU,DC=example,DC=org") == "sales", "escaped comma"
    assert dn_map.division("cn=ann,ou=staff,dc=example,dc=org") == "staff"
    assert dn_map.division("CN=Bob, OU=Finance, OU=Staff, DC=example, DC=org") == "finance"
    assert dn_map.division("cn=cat,ou=finance,ou=staff,dc=example,dc=org") == "finance"
    assert dn_map.division("cn=special,ou=staff,dc=example,dc=org") == "special", "itself mapped"
    assert dn_map.division("cn=dan,ou=elsewhere,dc=example,dc=org") is None
    assert dn_map.division("cn=eve,ou=staff,dc=example,dc=org") == "staff", "from the cache"


def test_a_number_zivver_already_holds_is_in_step_without_a_parse_and_others_are_checked():
    from zsync_core.model import Kind, SourceAccount
    from zsync_core.sources import SourceResult
    from zsync_core.sources.fields import canonical, read_numbers

    assert canonical("06 1234 5678", "NL") == "+31612345678"
    assert canonical("0031 (6) 1234-5678", None) == "+31612345678"
    assert canonical("06 44 55", "IT") == "+390644 55".replace(" ", "")  # Italy keeps its 0
    assert canonical("call me", "NL") is None

    def person(email: str, phone: str) -> SourceAccount:
        return SourceAccount(
            Kind.PERSONAL, email, email, "P", True, "S", f"row {email}", phone=phone
        )

    result = SourceResult("S", [person("a@x.org", "06 1234 5678"), person("b@x.org", "06 12")])
    read_numbers(result, "NL", {"a@x.org": ("+31612345678",), "b@x.org": ("+31699999999",)})
    assert [a.phone for a in result.accounts] == ["+31612345678", None]
    assert [u.address for u in result.unusable] == ["b@x.org"], "not held as it reads: checked"


def test_a_number_zivver_holds_with_spaces_is_held_and_nothing_is_rewritten(
    tmp_path, zivver, make_profile, capsys
):
    org = zivver.org
    org.add_user("ann@example.org", "Ann", phone_numbers=["+31611111111", "+31 6 22222222"])
    (tmp_path / "people.csv").write_text("email,name,phone\nann@example.org,Ann,0622222222\n")
    source = {"name": "HR", "type": "csv", "path": "people.csv", "phone_region": "NL"}
    profile = make_profile([source], sync_phone_numbers=True)

    code, err, report = profile.run(capsys=capsys)

    assert (code, report["summary"]) == (0, {}), err
    assert [n["value"] for n in org.user_by_email("ann@example.org")["phoneNumbers"]] == [
        "+31611111111",
        "+31 6 22222222",
    ]


@pytest.mark.parametrize(
    ("raw", "said"),
    [
        ("+31 20 123 4567 ext. 9", "has an extension (9), which Zivver cannot hold"),
        ("06 1234 5678 x12", "has an extension (12)"),
        ("06 BLOEMEN", "holds 'B', 'L', 'O', 'E', 'M', 'N', which no phone number has"),
        ("+31 6 1234 ABCD", "holds 'A', 'B', 'C', 'D', which"),
        ("\U0001f4de 06 1234 5678", "holds '\U0001f4de', which"),
        ("06 1234\u200b5678", "holds ZERO WIDTH SPACE (U+200B)"),
    ],
)
def test_a_number_with_an_extension_letters_or_stray_characters_is_refused(raw, said):
    # libphonenumber would read each of these as a valid number: letters as keypad digits,
    # the rest skipped or cut off, so the number written would not be the one in the source
    from zsync_core.sources.fields import e164

    number, why = e164(raw, "NL")

    assert number is None
    assert why is not None and said in why, why
    assert e164("+31 (0)6 1234-5678", "NL") == ("+31612345678", None), "layout is no mistake"
    assert e164("06\u00a01234.5678", "NL") == ("+31612345678", None)
