"""Saving options into a profile keeps the admin's comments and layout, or changes nothing."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from zsync_core.config import load_config
from zsync_core.errors import ConfigError
from zsync_core.profile_edit import changed_options, save_sync_options

PROFILE = """\
# Production profile — owned by the identity team
[target]
url = "https://app.zivver.com/api/scim/v2"  # prod
api_key_env = "ZIVVER_API_KEY"

[sync]  # reviewed 2026-10
create_users = true   # yes, always
domains = [
  "example.org",  # main
  "example.nl",
]

[[sources]]
name = "AD"
type = "csv"
path = "staff.csv"
"""


def write(tmp_path: Path, text: str = PROFILE) -> Path:
    path = tmp_path / "zsync.toml"
    path.write_text(text, encoding="utf-8")
    path.chmod(0o640)
    return path


def test_values_change_in_place_and_every_comment_stays(tmp_path):
    path = write(tmp_path)
    config = save_sync_options(
        path, {"create_users": False, "domains": ["example.org"], "delete_users": True}
    )
    text = path.read_text()
    assert "create_users = false   # yes, always\n" in text
    assert "# Production profile — owned by the identity team" in text
    assert "[sync]  # reviewed 2026-10" in text
    assert 'url = "https://app.zivver.com/api/scim/v2"  # prod' in text
    assert "example.nl" not in text
    assert text.index("delete_users = true") < text.index("[[sources]]"), "added inside [sync]"
    assert (config.sync.create_users, config.sync.delete_users) == (False, True)
    assert load_config(path).sync.domains == ["example.org"]
    assert os.stat(path).st_mode & 0o777 == 0o640


def test_a_profile_without_sync_gets_a_table_at_the_end(tmp_path):
    path = write(
        tmp_path,
        PROFILE.split("[sync]")[0] + '[[sources]]\nname = "AD"\ntype = "csv"\npath = "s.csv"\n',
    )
    save_sync_options(path, {"suspend_threshold_percent": 10.0})
    assert path.read_text().endswith("[sync]\nsuspend_threshold_percent = 10.0\n")
    assert load_config(path).sync.suspend_threshold_percent == 10


def test_an_inline_sync_table_is_edited_where_it_is(tmp_path):
    text = "sync = { create_users = true }  # inline\n" + PROFILE.split("[sync]")[0]
    text += '[[sources]]\nname = "AD"\ntype = "csv"\npath = "s.csv"\n'
    path = write(tmp_path, text)
    save_sync_options(path, {"create_users": False})
    assert path.read_text() == text.replace("create_users = true", "create_users = false")


def test_sync_that_is_not_a_table_is_refused_and_the_file_is_unchanged(tmp_path):
    text = 'sync = "yes"\n' + PROFILE.split("[sync]")[0]
    path = write(tmp_path, text)
    with pytest.raises(ConfigError, match=r"zsync\.toml: 'sync' is not a table"):
        save_sync_options(path, {"create_users": False})
    assert path.read_text() == text


def test_a_value_the_profile_would_reject_changes_nothing(tmp_path):
    path = write(tmp_path)
    with pytest.raises(ConfigError, match="would make the profile invalid"):
        save_sync_options(path, {"suspend_threshold_percent": 500})
    assert path.read_text() == PROFILE


def test_only_changed_options_are_written(tmp_path):
    config = load_config(write(tmp_path))
    changed = config.sync.model_copy(update={"update_sso_keys": True})
    assert changed_options(config.sync, changed) == {"update_sso_keys": True}


def test_saving_as_root_keeps_the_service_users_profile_theirs(tmp_path):
    if os.geteuid() != 0:
        pytest.skip("needs root: the admin saves from the TUI as root")
    path = write(tmp_path)
    os.chown(path, 4321, 4322)  # the service user's profile (any uid root may give it)
    path.chmod(0o600)

    save_sync_options(path, {"delete_users": True})

    status = path.stat()
    assert (status.st_uid, status.st_gid) == (4321, 4322), "the next daily run can read it"
    assert status.st_mode & 0o7777 == 0o600
    assert load_config(path).sync.delete_users is True
    assert [p.name for p in tmp_path.iterdir()] == ["zsync.toml"], "no temporary file left"


def test_sources_are_added_changed_duplicated_reordered_and_removed_keeping_comments(tmp_path):
    from zsync_core.profile_edit import ProfileDocument

    path = tmp_path / "zsync.toml"
    path.write_text(
        '# our profile\n[target]\nurl = "https://zivver.example.org/api/scim/v2"\n'
        'api_key_env = "ZIVVER_API_KEY"  # from the vault\n\n'
        '[[sources]]\nname = "HR"\ntype = "csv"\npath = "hr.csv"  # weekly export\n'
    )
    path.chmod(0o640)
    document = ProfileDocument.load(path)
    document.add_source({"name": "Staff", "type": "excel", "path": "staff.xlsx", "sheet": "Users"})
    document.update_source("HR", {"description": "HR export", "delimiter": ";"})
    document.duplicate_source("HR", "HR copy")
    document.move_source("Staff", 0)
    document.remove_source("HR copy")
    config = document.save()

    assert [s.name for s in config.sources] == ["Staff", "HR"], "the order is precedence"
    text = path.read_text()
    assert "# our profile" in text and "# from the vault" in text and "# weekly export" in text
    assert config.sources[1].description == "HR export"
    assert path.stat().st_mode & 0o777 == 0o640

    broken = ProfileDocument.load(path)
    broken.update_source("Staff", {"sheet": 0})
    with pytest.raises(ConfigError, match="sheets are counted from 1"):
        broken.save()
    assert path.read_text() == text, "an invalid edit changes nothing"
    with pytest.raises(ConfigError, match="there is no source named 'Nope'"):
        broken.remove_source("Nope")


def test_a_new_profile_never_overwrites_one_and_secrets_go_to_a_private_file(tmp_path):
    from zsync_core.profile_edit import ProfileDocument, write_secret

    path = tmp_path / "zsync.toml"
    document = ProfileDocument.new(path)
    secret = write_secret(path, "zivver-api-key", "s3cret-key\n")
    document.set(
        "target", {"url": "https://zivver.example.org/api/scim/v2", "api_key_file": secret.name}
    )
    document.add_source({"name": "HR", "type": "csv", "path": "hr.csv"})
    config = document.save()

    assert "s3cret" not in path.read_text(), "no secret in the profile"
    assert secret.read_text() == "s3cret-key\n"
    assert secret.stat().st_mode & 0o777 == 0o640
    assert config.target.api_key_file == secret.name or str(config.target.api_key_file).endswith(
        secret.name
    )
    with pytest.raises(ConfigError, match="already exists, and zsync init never overwrites"):
        ProfileDocument.new(path)


def test_a_symlinked_profile_is_saved_through_its_link_and_secrets_are_no_wider(tmp_path):
    import os
    import stat

    from zsync_core.profile_edit import ProfileDocument, write_secret

    real = tmp_path / "real"
    real.mkdir()
    (real / "zsync.toml").write_text(
        '[target]\nurl = "https://app.zivver.com/api/scim/v2"\napi_key_env = "K"\n\n'
        '[[sources]]\nname = "HR"\ntype = "csv"\npath = "hr.csv"\n'
    )
    os.chmod(real / "zsync.toml", 0o600)
    link = tmp_path / "zsync.toml"
    link.symlink_to(real / "zsync.toml")

    document = ProfileDocument.load(link)
    document.set("sync", {"domains": ["example.org"]})
    document.save()
    written = write_secret(link, "zivver-api-key", "k-123")

    assert link.is_symlink(), "the link stays"
    assert 'domains = ["example.org"]' in (real / "zsync.toml").read_text(), "its file is saved"
    assert stat.S_IMODE(written.stat().st_mode) == 0o600, "no wider than the profile (0600)"
