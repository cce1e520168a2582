"""Bad profiles get a clear error naming the file and key, exit 3, and change nothing."""

from __future__ import annotations

from pathlib import Path

import pytest
import tomli_w

from zsync_core.config import api_key, load_config, read_secret
from zsync_core.errors import ConfigError
from zsync_tui.cli import main

GOOD = {
    "target": {"url": "https://app.zivver.com/api/scim/v2", "api_key_env": "ZIVVER_API_KEY"},
    "sources": [
        {
            "name": "AD",
            "type": "ldap",
            "url": "ldaps://dc1.example.org:636",
            "bind_dn": "CN=svc,DC=example,DC=org",
            "password_env": "LDAP_PASSWORD",
            "base_dn": "DC=example,DC=org",
        }
    ],
}


def _without_none(value):
    if isinstance(value, dict):
        return {k: _without_none(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_without_none(v) for v in value]
    return value


def write(tmp_path: Path, data: dict) -> Path:
    path = tmp_path / "zsync.toml"
    path.write_text(tomli_w.dumps(_without_none(data)))
    return path


def with_changes(section: str, **values) -> dict:
    data = {"target": dict(GOOD["target"]), "sources": [dict(GOOD["sources"][0])]}
    if section == "sources":
        data["sources"][0].update(values)
    else:
        data.setdefault(section, {}).update(values)
    return data


EXAMPLE = Path(__file__).parent.parent / "config.example.toml"


def test_the_store_table_names_a_misspelt_key_and_a_bad_value(tmp_path):
    path = tmp_path / "zsync.toml"
    base = EXAMPLE.read_text()
    path.write_text(base + "\n[store]\nkeep_run = 10\n")
    with pytest.raises(ConfigError, match="store.keep_run: unknown key. Did you mean 'keep_runs'"):
        load_config(path)
    path.write_text(base + "\n[store]\nkeep_days = 0\n")
    with pytest.raises(ConfigError, match="store.keep_days"):
        load_config(path)
    path.write_text(base + "\n[store]\nkeep_runs = 30\n")
    assert load_config(path).store.keep_runs == 30


def test_the_example_profile_is_valid():
    config = load_config(EXAMPLE)
    assert config.sync.suspend_threshold_percent == 5
    assert config.sources[0].directory == "active-directory"


@pytest.mark.parametrize("preset", ["active-directory", "openldap"])
def test_the_example_profile_is_right_for_each_preset(tmp_path, preset):
    """Switching ``directory`` as the example's comment invites leaves no attribute of the
    other preset behind (an AD id on OpenLDAP would make every id a DN)."""
    from zsync_core.sources.ldap import PRESETS, effective_attributes

    text = EXAMPLE.read_text().replace(
        'directory = "active-directory"', f'directory = "{preset}"', 1
    )
    path = tmp_path / "zsync.toml"
    path.write_text(text)
    source = load_config(path).sources[0]
    assert source.directory == preset
    assert effective_attributes(source) == PRESETS[preset].attributes


def test_the_example_openldap_source_loads_when_uncommented(tmp_path):
    from zsync_core.sources.ldap import effective_attributes

    text = EXAMPLE.read_text()
    start = text.index("# An OpenLDAP directory instead")
    block = text[start : text.index("\n\n", start)].splitlines()[1:]
    uncommented = "\n".join(line.removeprefix("# ") for line in block)
    path = tmp_path / "zsync.toml"
    path.write_text(text.replace("[sync]\n", uncommented + "\n\n[sync]\n", 1))
    config = load_config(path)
    openldap = config.sources[1]
    assert (openldap.name, openldap.directory) == ("OpenLDAP", "openldap")
    attributes = effective_attributes(openldap)
    assert (attributes.id, attributes.aliases, attributes.disabled) == (
        "entryUUID",
        "mailAlternateAddress",
        "employeeStatus",
    )


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (
            with_changes("sync", suspend_treshold_percent=5),
            "sync.suspend_treshold_percent: unknown key. Did you mean 'suspend_threshold_percent'?",
        ),
        (
            with_changes("target", api_kee_env="X"),
            "target.api_kee_env: unknown key. Did you mean 'api_key_env'?",
        ),
        (
            with_changes("sources", bse_dn="x"),
            "sources[0] (AD).bse_dn: unknown key. Did you mean 'base_dn'?",
        ),
        (
            with_changes("sync", create_users="yes please"),
            "sync.create_users: Input should be a valid boolean",
        ),
        (
            with_changes("sync", suspend_threshold_percent=150),
            "sync.suspend_threshold_percent: Input should be less than or equal to 100",
        ),
        (
            with_changes("sync", confirm=["suspend-everyone"]),
            "sync.confirm[0]: Input should be 'suspend-users'",
        ),
        (with_changes("sync", domains=["not a domain"]), "'not a domain' is not a domain name"),
        (
            with_changes("target", url="app.zivver.com/api"),
            "target.url: 'app.zivver.com/api' is not a http/https URL",
        ),
        (with_changes("target", url="https://app.zivver.com:99999/api"), "has an invalid port"),
        (
            with_changes("sources", url="http://dc1.example.org"),
            "'http://dc1.example.org' is not a ldap/ldaps URL",
        ),
        (
            with_changes("sources", user_filter="(&(objectClass=user)(mail=*)"),
            "is not a valid LDAP filter",
        ),
        (with_changes("sources", user_filter="objectClass=user"), "is not a valid LDAP filter"),
        (
            with_changes("sources", type="exchange"),
            'sources[0] (AD).type: must be "ldap", "csv", "excel" or "microsoft365"',
        ),
        (
            with_changes("sources", directory="novell"),
            "sources[0] (AD).directory: Input should be 'active-directory' or 'openldap'",
        ),
        (
            with_changes("sources", page_size=0),
            "sources[0] (AD).page_size: Input should be greater than or equal to 1",
        ),
        (
            with_changes("sources", password_env=None, password_file=None),
            "bind_dn is set but no password",
        ),
        (
            with_changes("sources", password_file="/etc/pw"),
            "set only one of password_env and password_file",
        ),
        (with_changes("sources", start_tls=True), "start_tls is for ldap:// URLs"),
        (
            with_changes("target", timeout_seconds=-1),
            "target.timeout_seconds: Input should be greater than 0",
        ),
        (
            with_changes("target", rate_limit_requests="fifty"),
            "target.rate_limit_requests: Input should be a valid integer",
        ),
        ({"target": GOOD["target"]}, "sources: required key is missing"),
        ({"target": GOOD["target"], "sources": []}, "sources: List should have at least 1 item"),
        ({"sources": GOOD["sources"]}, "target: required key is missing"),
        ({**GOOD, "sourcess": []}, "sourcess: unknown key. Did you mean 'sources'?"),
        (
            {**GOOD, "sources": [GOOD["sources"][0], GOOD["sources"][0]]},
            "two sources are named 'AD'",
        ),
        (
            with_changes("sources", attributes={"mial": "mail"}),
            "sources[0] (AD).attributes.mial: unknown key. Did you mean 'mail'?",
        ),
    ],
)
def test_a_bad_profile_names_the_key(tmp_path, data, expected):
    path = write(tmp_path, data)
    with pytest.raises(ConfigError) as raised:
        load_config(path)
    message = str(raised.value)
    assert str(path) in message
    assert expected in message


def test_invalid_toml_names_the_line(tmp_path):
    path = tmp_path / "zsync.toml"
    path.write_text("[target]\nurl = https://x\n")
    with pytest.raises(ConfigError, match=r"not valid TOML: .*line 2"):
        load_config(path)


def test_a_missing_profile_says_how_to_make_one(tmp_path):
    with pytest.raises(ConfigError, match="no such profile. Copy config.example.toml"):
        load_config(tmp_path / "nope.toml")


def test_a_missing_secret_names_the_variable(tmp_path, monkeypatch):
    monkeypatch.delenv("ZIVVER_API_KEY", raising=False)
    config = load_config(write(tmp_path, GOOD))
    with pytest.raises(
        ConfigError,
        match="target.api_key_env names the environment variable ZIVVER_API_KEY, which is not set",
    ):
        api_key(config)


def test_a_secret_file_is_read_relative_to_the_profile(tmp_path):
    (tmp_path / "key").write_text("  the-key  \n")
    config = load_config(
        write(tmp_path, with_changes("target", api_key_env=None, api_key_file="key") | {})
    )
    assert read_secret(None, config.target.api_key_file, "target.api_key", config) == "the-key"
    (tmp_path / "key").write_text("\n")
    with pytest.raises(ConfigError, match="is empty"):
        api_key(config)


def test_headless_with_a_bad_profile_exits_3_and_creates_nothing(tmp_path, capsys):
    path = write(tmp_path, with_changes("sync", delete_user=True))
    assert main(["--headless", "--config", str(path)]) == 3
    err = capsys.readouterr().err
    assert "sync.delete_user: unknown key. Did you mean 'delete_users'?" in err
    assert "Nothing was changed." in err
    assert not (tmp_path / "zsync-state").exists()


def test_headless_with_a_missing_secret_exits_3(tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("ZIVVER_API_KEY", raising=False)
    monkeypatch.delenv("LDAP_PASSWORD", raising=False)
    csv = tmp_path / "a.csv"
    csv.write_text("email\nann@example.org\n")
    data = {"target": GOOD["target"], "sources": [{"name": "CSV", "type": "csv", "path": "a.csv"}]}
    assert main(["--headless", "--config", str(write(tmp_path, data))]) == 3
    assert "ZIVVER_API_KEY, which is not set" in capsys.readouterr().err
    assert not (tmp_path / "zsync-state").exists()


def test_the_store_goes_to_systemds_state_directory_unless_the_profile_names_one(
    tmp_path, monkeypatch
):
    path = tmp_path / "zsync.toml"
    path.write_text(EXAMPLE.read_text())
    monkeypatch.setenv("STATE_DIRECTORY", "/var/lib/zsync")
    assert load_config(path).state_path == Path("/var/lib/zsync")
    path.write_text('state_dir = "/srv/zsync"\n' + EXAMPLE.read_text())
    assert load_config(path).state_path == Path("/srv/zsync"), "the profile's wins"
    monkeypatch.delenv("STATE_DIRECTORY")
    path.write_text(EXAMPLE.read_text())
    assert load_config(path).state_path == tmp_path / "zsync-state"


def test_a_secret_file_is_read_from_systemds_credentials_when_one_has_its_name(
    tmp_path, monkeypatch
):
    from zsync_core.config import api_key

    path = tmp_path / "zsync.toml"
    path.write_text(
        EXAMPLE.read_text().replace(
            'api_key_env = "ZIVVER_API_KEY"', 'api_key_file = "/etc/zsync/api-key"'
        )
    )
    credentials = tmp_path / "credentials"
    credentials.mkdir()
    (credentials / "api-key").write_text("from-systemd\n")
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(credentials))
    assert api_key(load_config(path)) == "from-systemd"
    monkeypatch.delenv("CREDENTIALS_DIRECTORY")
    with pytest.raises(ConfigError, match="api_key_file /etc/zsync/api-key cannot be read"):
        api_key(load_config(path))


def test_the_example_microsoft365_source_loads_when_uncommented(tmp_path):
    text = EXAMPLE.read_text()
    start = text.index('# [[sources]]\n# name = "Microsoft 365"')
    block = text[start : text.index("\n\n", start)].splitlines()
    uncommented = "\n".join(line.removeprefix("# ") for line in block)
    path = tmp_path / "zsync.toml"
    path.write_text(text.replace("[sync]\n", uncommented + "\n\n[sync]\n", 1))
    source = load_config(path).sources[1]
    assert (source.type, source.shared_mailboxes, source.sso_key) == (
        "microsoft365",
        True,
        "entra-object-id",
    )
    assert source.certificate_file is not None and source.client_secret_file is None


PASTED = {
    "target.api_key": "zv_live_4f8a9c2b1e3d5a7f9e0c",
    "sources (AD).password": "S3cr3t-Passw0rd!",
    "notify.webhook.url": "https://hooks.example.org/services/T0123/B4567/abcdefgh",
}


@pytest.mark.parametrize("key", PASTED)
def test_a_secret_pasted_as_a_variable_name_is_never_echoed(tmp_path, capsys, monkeypatch, key):
    """A key in ``*_env`` would go to stderr, the report, a notification and the log."""
    data = with_changes("target")
    data["sources"] = [{"name": "AD", "type": "csv", "path": "a.csv"}]
    (tmp_path / "a.csv").write_text("email\nann@example.org\n")
    monkeypatch.setenv("ZIVVER_API_KEY", "the-real-key")
    if key == "target.api_key":
        data["target"]["api_key_env"] = PASTED[key]
    elif key.startswith("sources"):
        data["sources"] = [dict(GOOD["sources"][0], password_env=PASTED[key])]
    else:
        data["notify"] = {"webhook": {"url_env": PASTED[key]}}
    path = write(tmp_path, data)
    report = tmp_path / "report.json"

    code = main(["--headless", "--config", str(path), "--report", str(report)])

    err = capsys.readouterr().err
    assert code == 3
    assert f"the value of {key}_env is not an environment variable's name" in err
    assert "it looks like a key itself: put the key in the environment or a file" in err
    assert PASTED[key] not in err + report.read_text()
    assert not (tmp_path / "zsync-state").exists()


def test_an_ordinary_variable_name_that_is_unset_is_still_named(tmp_path, monkeypatch):
    monkeypatch.delenv("AZURE_CLIENT_SECRET_2", raising=False)
    config = load_config(
        write(tmp_path, with_changes("target", api_key_env="AZURE_CLIENT_SECRET_2"))
    )
    with pytest.raises(ConfigError, match="names the environment variable AZURE_CLIENT_SECRET_2"):
        api_key(config)


def test_an_api_key_with_a_stray_character_is_named_without_the_key(tmp_path, capsys):
    """A zero-width space pasted with the key: httpx refused the header, and the error quoted
    the whole key (on stderr, in the log, the report and the store's events)."""
    (tmp_path / "key").write_text("SECRET-KEY-123\u200b\n")
    path = write(tmp_path, with_changes("target", api_key_env=None, api_key_file="key") | {})

    with pytest.raises(ConfigError, match="U\\+200B at position 15") as raised:
        api_key(load_config(path))
    assert "SECRET" not in str(raised.value)

    code = main(["show", "zivver", "--json", "--config", str(path)])
    out, err = capsys.readouterr()
    assert code == 3 and "SECRET" not in out + err and "U+200B" in out
