"""End-to-end: `zsync --headless` and `zsync check` with a Microsoft 365 source, against the
Graph and Exchange emulator and the Zivver emulator over HTTP (and slapd for hybrid AD)."""

from __future__ import annotations

from tests.conftest import M365_CLIENT, ldap_source, m365_source
from zsync_tui.cli import main

ZIVVER_USER = "urn:ietf:params:scim:schemas:zivver:0.1:User"


def cloud_only(tenant) -> dict[str, str]:
    ids = {
        name: tenant.add_user(f"{name}@example.org", name.title()) for name in ("ann", "bob", "cat")
    }
    team = tenant.add_group("Team", "team@example.org", [ids["ann"], ids["bob"]], unified=True)
    ids["team"] = team
    ids["desk"] = tenant.add_mailbox("servicedesk@example.org", "Service Desk")
    tenant.grant(ids["desk"], "cat@example.org")
    return ids


def test_a_cloud_only_organization_syncs_then_runs_quiet_deltas(
    microsoft, zivver, make_profile, capsys
):
    tenant = microsoft.tenant
    ids = cloud_only(tenant)
    profile = make_profile([m365_source(microsoft, shared_mailboxes=True)])

    code, err, report = profile.run(capsys=capsys)

    assert code == 0, err
    org = zivver.org
    ann = org.user_by_email("ann@example.org")
    assert org.sso_keys[ann["id"]] == ids["ann"], "the SSO key is the Entra object id"
    assert org.user_by_email("servicedesk@example.org") is None
    assert org.delegates_of("servicedesk@example.org") == {"cat@example.org"}
    assert org.delegates_of("team@example.org") == {"ann@example.org", "bob@example.org"}
    assert report["summary"] == {"create-user": 3, "create-functional": 2}

    pages = tenant.count("GET /v1.0/")
    code, err, report = profile.run(capsys=capsys)
    assert code == 0, err
    assert report["summary"] == {}, "a quiet day plans nothing"
    assert tenant.count("GET /v1.0/") - pages == 2, "one page of users and one of groups"

    tenant.update_user(ids["bob"], accountEnabled=False)
    code, err, report = profile.run("--confirm", "suspend-users", capsys=capsys)
    assert code == 0, err
    assert org.user_by_email("bob@example.org")["active"] is False
    assert org.delegates_of("team@example.org") == {"ann@example.org"}


def test_a_delta_that_fails_half_way_suspends_nobody(microsoft, zivver, make_profile, capsys):
    tenant = microsoft.tenant
    cloud_only(tenant)
    profile = make_profile([m365_source(microsoft, max_retries=0)])
    assert profile.run(capsys=capsys)[0] == 0
    for n in range(1200):
        tenant.add_user(f"late{n:04}@example.org")
    for user_id in list(tenant.users)[:3]:
        tenant.delete_user(user_id)
    tenant.fail_page = 2

    code, err, report = profile.run(capsys=capsys)

    assert code == 3
    assert "incomplete" in err
    assert all(u["active"] for u in zivver.org.users.values()), "nobody suspended"
    tenant.fail_page = None
    code, err, report = profile.run(
        "--confirm", "suspend-users", "--confirm", "suspend-functional", capsys=capsys
    )
    assert code == 0, err
    assert report["summary"]["create-user"] == 1200
    assert report["summary"]["suspend-user"] == 3


def test_a_hybrid_organization_reads_people_from_ad_and_shared_mailboxes_from_exchange(
    directory, microsoft, zivver, make_profile, capsys
):
    tenant = microsoft.tenant
    # Entra Connect synced ann and bob to Entra and wrote their object ids back to AD
    ann_id = tenant.add_user("ann@example.org", "Ann", upn="ann@corp.example.org")
    bob_id = tenant.add_user("bob@example.org", "Bob")
    directory.user("ann", entra_id=ann_id)
    directory.user("bob", entra_id=bob_id)
    desk = tenant.add_mailbox(
        "servicedesk@example.org", "Service Desk", aliases=["help@example.org"]
    )
    tenant.grant(desk, "ann@corp.example.org")
    profile = make_profile(
        [
            ldap_source(directory.slapd, sso_key="entra-object-id"),
            m365_source(microsoft, users=False, groups=False, shared_mailboxes=True),
        ]
    )

    code, err, report = profile.run(capsys=capsys)

    assert code == 0, err
    org = zivver.org
    ann = org.user_by_email("ann@example.org")
    assert org.sso_keys[ann["id"]] == ann_id, "msDS-ExternalDirectoryObjectId without User_"
    assert org.delegates_of("servicedesk@example.org") == {"ann@example.org"}
    assert org.group_by_email("servicedesk@example.org")[
        "urn:ietf:params:scim:schemas:zivver:0.1:Group"
    ]["aliases"] == ["help@example.org"]
    code, err, report = profile.run(capsys=capsys)
    assert (code, report["summary"]) == (0, {})


def test_check_tries_sign_in_consents_and_the_exchange_role_one_by_one(
    microsoft, zivver, make_profile, capsys
):
    cloud_only(microsoft.tenant)
    profile = make_profile([m365_source(microsoft, shared_mailboxes=True)])

    assert main(["check", "--config", str(profile.path)]) == 0
    out = capsys.readouterr().out
    for line in ("sign in", "Graph users", "Graph groups", "Exchange Online"):
        assert f"(microsoft365): {line}" in out
    assert "FAIL" not in out

    microsoft.tenant.apps[M365_CLIENT].exchange_role = None
    assert main(["check", "--config", str(profile.path)]) == 3
    out = capsys.readouterr().out
    failed = [line for line in out.splitlines() if line.startswith("FAIL")]
    assert len(failed) == 1 and "Exchange Recipient Administrator" in failed[0], out
