"""The same headless scenarios against scim2-server: a SCIM implementation we did not write,
with a Zivver-like schema extension. It keeps RFC 7644 semantics (PUT replaces the whole
resource, PATCH answers 204, it pages), so it checks that zsync does not lean on the
emulator's behaviour for paging, ids and PATCH answers.

One difference is deliberate: Zivver merges a PUT at the top level and replaces a block that
is sent, so zsync's PUT carries the core attributes and only the blocks that change
(zivver-wire.md); on an RFC server such a PUT drops the blocks it leaves out. A rename there
loses the user's aliases, and the next run puts them back."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import tomli_w

from tests.servers import free_port, wait_for_port
from zsync_tui.cli import main

TOKEN = "scim2-server-token"
ZIVVER_USER = "urn:ietf:params:scim:schemas:zivver:0.1:User"
ZIVVER_GROUP = "urn:ietf:params:scim:schemas:zivver:0.1:Group"


def _attribute(
    name: str, *, multi: bool = False, mutability: str = "readWrite", returned: str = "default"
) -> dict:
    return {
        "name": name,
        "type": "string",
        "multiValued": multi,
        "required": False,
        "caseExact": False,
        "mutability": mutability,
        "returned": returned,
        "uniqueness": "none",
        "description": name,
    }


def _write_schemas(directory: Path) -> tuple[Path, Path]:
    import scim2_server

    resources = Path(scim2_server.__file__).parent / "resources"
    schemas = json.loads((resources / "default-schemas.json").read_text())
    schemas.append(
        {
            "schemas": ["urn:ietf:params:scim:schemas:core:2.0:Schema"],
            "id": ZIVVER_USER,
            "name": "ZivverUser",
            "description": "Zivver user extension",
            "attributes": [
                _attribute("SsoAccountKey", mutability="writeOnly", returned="never"),
                _attribute("aliases", multi=True),
                _attribute("delegates", multi=True),
            ],
        }
    )
    schemas.append(
        {
            "schemas": ["urn:ietf:params:scim:schemas:core:2.0:Schema"],
            "id": ZIVVER_GROUP,
            "name": "ZivverGroup",
            "description": "Zivver group extension",
            "attributes": [_attribute("aliases", multi=True)],
        }
    )
    types = json.loads((resources / "default-resource-types.json").read_text())
    types[0]["schemaExtensions"].append({"schema": ZIVVER_USER, "required": False})
    types[1]["schemaExtensions"] = [{"schema": ZIVVER_GROUP, "required": False}]
    schema_file, types_file = directory / "schemas.json", directory / "resource-types.json"
    schema_file.write_text(json.dumps(schemas))
    types_file.write_text(json.dumps(types))
    return schema_file, types_file


@pytest.fixture
def scim2(tmp_path: Path) -> Iterator[str]:
    binary = shutil.which("scim2-server", path=str(Path(sys.executable).parent))
    assert binary, "scim2-server is a test dependency (pip install -e '.[test]')"
    schema_file, types_file = _write_schemas(tmp_path)
    port = free_port()
    process = subprocess.Popen(
        [
            binary,
            "--hostname",
            "127.0.0.1",
            "--port",
            str(port),
            "--bearer-token",
            TOKEN,
            "--schema",
            str(schema_file),
            "--resource-type",
            str(types_file),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_for_port(port, process, timeout=20)
        yield f"http://127.0.0.1:{port}"
    finally:
        process.terminate()
        process.wait(10)


def _resources(url: str, kind: str) -> list[dict]:
    response = httpx.get(
        f"{url}/{kind}", params={"count": 1000}, headers={"Authorization": f"Bearer {TOKEN}"}
    )
    response.raise_for_status()
    return response.json().get("Resources", [])


def test_headless_scenarios_pass_against_scim2_server(scim2, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("SCIM_TOKEN", TOKEN)
    people = tmp_path / "people.csv"
    rows = ["email,name,kind,active,aliases,delegates,id"]
    rows += [f"user{n}@example.org,User {n},personal,true,,,U{n}" for n in range(25)]
    rows.append("ann@example.org,Ann,personal,true,ann.alias@example.org,user1@example.org,A1")
    rows.append(
        "desk@example.org,Service Desk,functional,true,,ann@example.org;user2@example.org,F1"
    )
    people.write_text("\n".join(rows) + "\n")
    profile = tmp_path / "zsync.toml"
    profile.write_text(
        tomli_w.dumps(
            {
                "target": {"url": scim2, "api_key_env": "SCIM_TOKEN", "max_retries": 1},
                "sources": [{"name": "People", "type": "csv", "path": "people.csv"}],
            }
        )
    )
    run = ["--headless", "--config", str(profile)]

    assert main(run) == 0, capsys.readouterr().err
    users = {u["userName"]: u for u in _resources(scim2, "Users")}
    assert len(users) == 26
    assert users["ann@example.org"][ZIVVER_USER]["aliases"] == ["ann.alias@example.org"]
    groups = _resources(scim2, "Groups")
    assert [g["externalId"] for g in groups] == ["desk@example.org"]
    assert {m["value"] for m in groups[0]["members"]} == {
        users["ann@example.org"]["id"],
        users["user2@example.org"]["id"],
    }

    capsys.readouterr()
    assert main(run) == 0
    assert "Summary: no changes." in capsys.readouterr().err

    # a rename, a leaver (1 of 26: under the threshold), and the desk losing every delegate
    text = (
        people.read_text()
        .replace("ann@example.org,Ann,", "ann.b@example.org,Ann B,")
        .replace("ann@example.org;", "ann.b@example.org;")
    )
    text = text.replace(
        "user7@example.org,User 7,personal,true", "user7@example.org,User 7,personal,false"
    )
    text = text.replace("ann.b@example.org;user2@example.org,F1", ",F1")
    people.write_text(text)
    assert main([*run, "--confirm", "suspend-functional"]) == 0, capsys.readouterr().err
    users = {u["userName"]: u for u in _resources(scim2, "Users")}
    assert (
        "ann@example.org" not in users
        and users["ann.b@example.org"]["name"]["formatted"] == "Ann B"
    )
    assert users["user7@example.org"]["active"] is False
    assert users["user8@example.org"]["active"] is True
    assert ZIVVER_USER not in users["ann.b@example.org"], (
        "the rename's PUT carries no zivver block; an RFC server drops the one it had"
    )
    assert not _resources(scim2, "Groups")[0].get("members")

    # the RFC server leaves the emptied members out; Zivver always answers them ([] when
    # none), so zsync takes a group without them as unknown and writes nothing to it (exit 2)
    capsys.readouterr()
    assert main(run) == 2
    err = capsys.readouterr().err
    assert "There will be 1 user updated." in err
    assert "functional account desk@example.org" in err and "members is missing" in err
    users = {u["userName"]: u for u in _resources(scim2, "Users")}
    assert users["ann.b@example.org"][ZIVVER_USER]["aliases"] == ["ann.alias@example.org"]

    assert main(run) == 2
    assert "Summary: no changes." in capsys.readouterr().err
