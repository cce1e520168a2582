"""Hearing about a headless run: a mail over STARTTLS to a real SMTP server (aiosmtpd), a
webhook to a real HTTP receiver, and the Prometheus textfile."""

from __future__ import annotations

import json
from typing import Any

from tests.conftest import HOOK_TOKEN, SMTP_PASSWORD, ldap_source
from tests.servers import free_port
from tests.test_headless_ldap import staff


def notifying(profile, smtp, hook, monkeypatch, **notify: Any):
    controller, _box, cert = smtp
    monkeypatch.setenv("SMTP_PASSWORD", SMTP_PASSWORD)
    monkeypatch.setenv("HOOK_URL", hook[0])
    profile.data["notify"] = {
        "email": {
            "smtp_host": "127.0.0.1",
            "smtp_port": controller.port,
            "ca_file": str(cert),
            "username": "zsync",
            "password_env": "SMTP_PASSWORD",
            "from": "zsync@example.org",
            "to": ["it@example.org"],
        },
        "webhook": {"url_env": "HOOK_URL"},
        **notify,
    }
    profile.write()


def test_a_held_run_reaches_the_admin_by_mail_and_webhook_without_a_secret(
    directory, zivver, make_profile, smtp, hook, monkeypatch, capsys
):
    staff(directory, 10)
    profile = make_profile([ldap_source(directory.slapd)], delete_users=True)
    notifying(profile, smtp, hook, monkeypatch)
    _controller, box, _cert = smtp
    assert profile.run(capsys=capsys)[0] == 0
    assert box.mails == [] and hook[1] == [], "a run without problems is quiet by default"
    directory.delete(directory.user_dn("user003"))

    code, err, _ = profile.run(capsys=capsys)

    assert code == 2 and "WARN notify" not in err
    [mail] = box.mails
    assert mail["tls"] and box.logins == ["zsync"], "STARTTLS, then AUTH"
    assert mail["to"] == ["it@example.org"]
    assert mail["subject"].endswith(
        ": changes held — Applied 0 change(s); 1 held for confirmation."
    )
    assert (
        "Held for confirmation (1; run again with --confirm delete-users once reviewed):"
        in (mail["body"])
    )
    assert "  delete-user user003@example.org" in mail["body"]
    [(path, data)] = hook[1]
    assert data["exit_code"] == 2 and data["status"] == "held"
    assert data["held"] == [{"action": "delete-user", "email": "user003@example.org"}]
    everything = json.dumps(box.mails) + json.dumps(hook[1]) + err
    assert SMTP_PASSWORD not in everything and "api-key" not in everything.lower()


def test_a_run_that_could_not_run_is_told_and_failures_to_tell_are_warnings(
    directory, zivver, make_profile, smtp, hook, monkeypatch, capsys
):
    staff(directory, 3)
    profile = make_profile([ldap_source(directory.slapd)])
    notifying(profile, smtp, hook, monkeypatch, when="always")
    profile.data["notify"]["webhook"]["format"] = "slack"
    profile.write()
    _controller, box, _cert = smtp
    assert profile.run(capsys=capsys)[0] == 0
    assert (
        len(box.mails) == 1 and ": done — Task completed successfully." in box.mails[0]["subject"]
    )
    assert hook[1][0][1]["text"].startswith("*zsync on ")

    monkeypatch.setenv("LDAP_PASSWORD", "wrong")
    code, err, _ = profile.run(capsys=capsys)
    assert code == 3
    assert ": could not run — " in box.mails[1]["subject"]
    assert "invalid credentials" in box.mails[1]["body"]

    profile.data["notify"]["email"]["smtp_port"] = free_port()  # nothing listens there
    profile.write()
    monkeypatch.setenv("HOOK_URL", "http://127.0.0.1:9/hooks/" + HOOK_TOKEN)
    code, err, _ = profile.run(capsys=capsys)
    assert code == 3, "the run's own exit code, whatever happened to its notifications"
    assert "WARN notify.email: the mail to it@example.org via 127.0.0.1:" in err
    assert "WARN notify.webhook: the slack webhook was not called" in err
    assert HOOK_TOKEN not in err, "the webhook's URL carries its token: never shown"


def test_the_textfile_says_how_the_last_run_went_and_keeps_the_last_success(
    directory, zivver, make_profile, monkeypatch, capsys, tmp_path
):
    staff(directory, 3)
    profile = make_profile([ldap_source(directory.slapd)])
    prom = tmp_path / "textfile" / "zsync.prom"
    profile.data["monitoring"] = {"textfile": str(prom)}
    profile.write()
    assert profile.run(capsys=capsys)[0] == 0
    first = prom.read_text()
    assert 'zsync_last_run_exit_code{profile="' in first and "} 0\n" in first
    assert 'status="completed"} 1' in first
    assert 'action="create-user",result="succeeded"} 3' in first
    success = next(
        line for line in first.splitlines() if line.startswith("zsync_last_success_timestamp")
    )

    monkeypatch.setenv("LDAP_PASSWORD", "wrong")
    assert profile.run(capsys=capsys)[0] == 3
    second = prom.read_text()
    assert "zsync_last_run_exit_code{" in second and "} 3\n" in second
    assert 'status="aborted"} 1' in second
    assert success in second.splitlines(), "the last success is kept from the run before"
    assert [p.name for p in prom.parent.iterdir()] == ["zsync.prom"]


def test_a_slack_message_cannot_call_everyone_or_hide_a_link(
    directory, zivver, make_profile, hook, monkeypatch, capsys
):
    """Zivver's error repeats the directory's text; Slack would read <!channel> in it."""
    directory.user("mallory")
    directory.modify(directory.user_dn("mallory"), ou="<!channel> <https://evil.example|Zivver>")
    profile = make_profile([ldap_source(directory.slapd, attributes={"division": "ou"})])
    monkeypatch.setenv("HOOK_URL", hook[0])
    profile.data["notify"] = {"webhook": {"url_env": "HOOK_URL", "format": "slack"}}
    profile.write()

    code, err, _ = profile.run(capsys=capsys)

    assert code == 1 and "Invalid division: <!channel>" in err
    [(_path, sent)] = hook[1]
    assert "Invalid division: &lt;!channel&gt; &lt;https://evil.example|Zivver&gt;" in sent["text"]
    assert "<!channel>" not in sent["text"] and "<https:" not in sent["text"]


def test_a_teams_card_shows_a_name_as_text_never_as_markdown(
    directory, zivver, make_profile, hook, monkeypatch, capsys
):
    """Teams reads Markdown in a TextBlock: a division like this would become a link."""
    directory.user("mallory")
    directory.modify(directory.user_dn("mallory"), ou="[Zivver](https://evil.example) **now**")
    profile = make_profile([ldap_source(directory.slapd, attributes={"division": "ou"})])
    monkeypatch.setenv("HOOK_URL", hook[0])
    profile.data["notify"] = {"webhook": {"url_env": "HOOK_URL", "format": "teams"}}
    profile.write()

    code, err, _ = profile.run(capsys=capsys)

    assert code == 1 and "Invalid division: [Zivver](https://evil.example)" in err
    [(_path, sent)] = hook[1]
    card = sent["attachments"][0]["content"]
    blocks = card["body"]
    assert {block["type"] for block in blocks} == {"RichTextBlock"}, "no Markdown is read"
    runs = [run for block in blocks for run in block["inlines"]]
    assert {run["type"] for run in runs} == {"TextRun"}
    assert any("[Zivver](https://evil.example) **now**" in run["text"] for run in runs)


def test_a_write_not_sent_is_told_with_its_own_reason(
    directory, zivver, make_profile, hook, monkeypatch, capsys
):
    """An account Zivver answers unreadably is not sent; the webhook says why, not that an
    SsoAccountKey was unknown."""
    staff(directory, 3)
    profile = make_profile([ldap_source(directory.slapd)])
    monkeypatch.setenv("HOOK_URL", hook[0])
    profile.data["notify"] = {"webhook": {"url_env": "HOOK_URL", "format": "slack"}}
    profile.write()
    assert profile.run(capsys=capsys)[0] == 0
    zivver.org.user_by_email("user001@example.org")["active"] = "false"

    code, err, _ = profile.run(capsys=capsys)

    assert code == 2, err
    [(_path, sent)] = hook[1]
    assert "1 change(s) not sent: Zivver answered these accounts in a shape" in sent["text"]
    assert "user001@example.org" in sent["text"]
    assert "SsoAccountKey" not in sent["text"]
