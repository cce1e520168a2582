"""Hostile directory data: every bad entry is named, and nothing it should not is changed."""

from __future__ import annotations

from tests.conftest import ldap_source
from tests.servers import Directory


def test_hostile_entries_are_named_and_the_rest_syncs(
    directory: Directory, zivver, make_profile, capsys
):
    long_name = "Ünïcødé Ñame " + "x" * 300
    directory.user("good", name="Zoë Ångström-Østergaard 山田")
    directory.user("longname", name=long_name)
    directory.user("badmail", mail="not an address")
    directory.user("dup1", mail="same@example.org")
    directory.user("dup2", mail="SAME@example.org ")
    directory.user("outside", mail="someone@other.com")
    directory.user("cycle.a", delegates=["cycle.b"])
    directory.user("cycle.b", delegates=["cycle.a"])
    directory.user("desk", shared=True, delegates=["good"])
    zivver.org.add_user("desk@example.org", "A person in Zivver")
    profile = make_profile([ldap_source(directory.slapd)])

    code, err, report = profile.run(capsys=capsys)

    assert code == 2, "an entry skipped as unusable needs the admin (product.md's exit codes)"
    assert "2 source entries skipped as unusable" in err  # badmail, and dup2 beside dup1
    messages = "\n".join(n["message"] for n in report["notices"]) + err
    said = (
        "Source 'Active Directory', cn=badmail,ou=staff,dc=example,dc=org: mail 'not an address' "
        "is not a valid address; entry skipped."
    )
    assert f"ERROR {said}" in err
    unusable, twice = report["unusable"]
    assert twice["where"] == "cn=dup2,ou=staff,dc=example,dc=org"
    assert twice["address"] == "same@example.org"
    assert "also held by cn=dup1,ou=staff,dc=example,dc=org in this source" in twice["reason"]
    assert unusable["where"] == "cn=badmail,ou=staff,dc=example,dc=org"
    assert unusable["reason"] == "mail 'not an address' is not a valid address"
    assert unusable["source"] == "Active Directory" and unusable["id"]
    assert "someone@other.com" in messages and "outside the domain filter" in messages
    assert "Skipping desk@example.org: it is a functional account" in messages
    org = zivver.org
    assert (
        org.user_by_email("good@example.org")["name"]["formatted"] == "Zoë Ångström-Østergaard 山田"
    )
    assert org.user_by_email("longname@example.org")["name"]["formatted"] == long_name
    assert org.user_by_email("same@example.org") is None, (
        "which of dup1 and dup2 is right is not known"
    )
    assert org.user_by_email("someone@other.com") is None
    assert "same@example.org" in report["left_alone"]
    assert org.user_by_email("cycle.a@example.org")["urn:ietf:params:scim:schemas:zivver:0.1:User"][
        "delegates"
    ] == ["cycle.b@example.org"]
    assert org.user_by_email("desk@example.org")["active"] is True, "the type clash is left alone"
    assert org.group_by_email("desk@example.org") is None

    # the bad entry's account is not a leaver: fixing or breaking its mail never suspends it
    directory.modify(directory.user_dn("good"), mail="bro ken")
    code, err, report = profile.run(capsys=capsys)
    assert code == 2, err
    assert org.user_by_email("good@example.org")["active"] is True
    assert report["changes"] == []


def test_openldap_preset_uses_entryuuid_and_a_disabled_attribute(
    slapd, zivver, make_profile, capsys, monkeypatch
):
    conn = slapd.admin()
    conn.add("dc=example,dc=org", ["dcObject", "organization"], {"dc": "example", "o": "Example"})
    conn.add("ou=people,dc=example,dc=org", ["organizationalUnit"], {"ou": "people"})
    for uid, state in (("ann", "active"), ("bob", "active"), ("cat", "disabled")):
        conn.add(
            f"uid={uid},ou=people,dc=example,dc=org",
            ["inetOrgPerson"],
            {
                "uid": uid,
                "cn": uid.title(),
                "sn": uid,
                "mail": f"{uid}@example.org",
                "employeeType": state,
            },
        )
    conn.add(
        "cn=desk,ou=people,dc=example,dc=org",
        ["groupOfNames", "extensibleObject"],
        {
            "cn": "desk",
            "mail": "desk@example.org",
            "member": ["uid=ann,ou=people,dc=example,dc=org"],
        },
    )
    source = ldap_source(
        slapd, directory="openldap", bind_dn="cn=admin,dc=example,dc=org", password_env="ADMIN_PW"
    )
    source["attributes"] = {"disabled": "employeeType"}
    monkeypatch.setenv("ADMIN_PW", "admin-secret")
    profile = make_profile([source])
    code, err, _ = profile.run(capsys=capsys)
    assert code == 0, err
    org = zivver.org
    assert org.user_by_email("ann@example.org")["name"]["formatted"] == "Ann"
    assert org.user_by_email("cat@example.org") is None
    conn.search("uid=ann,ou=people,dc=example,dc=org", "(objectClass=*)", attributes=["entryUUID"])
    assert org.sso_keys[org.user_by_email("ann@example.org")["id"]] == str(
        conn.entries[0].entryUUID
    )
    assert org.delegates_of("desk@example.org") == {"ann@example.org"}

    conn.modify(
        "uid=bob,ou=people,dc=example,dc=org", {"employeeType": [("MODIFY_REPLACE", ["disabled"])]}
    )
    conn.modify_dn("uid=ann,ou=people,dc=example,dc=org", "uid=ann2")
    conn.modify(
        "uid=ann2,ou=people,dc=example,dc=org", {"mail": [("MODIFY_REPLACE", ["ann2@example.org"])]}
    )
    # (what slapd's refint overlay would do)
    conn.modify(
        "cn=desk,ou=people,dc=example,dc=org",
        {"member": [("MODIFY_REPLACE", ["uid=ann2,ou=people,dc=example,dc=org"])]},
    )
    code, err, report = profile.run("--confirm", "suspend-users", capsys=capsys)
    assert code == 0, err
    assert sorted(c["action"] for c in report["changes"]) == ["suspend-user", "update-user"]
    assert org.user_by_email("bob@example.org")["active"] is False
    assert org.user_by_email("ann2@example.org") is not None, (
        "entryUUID survives a modrdn: a rename"
    )
    assert org.delegates_of("desk@example.org") == {"ann2@example.org"}
