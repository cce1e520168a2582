"""``zsync demo``: the TUI on a bundled staff list and an in-process Zivver emulator.

The emulator starts with an organization as it might have been after last month's run:
most staff are there, but since then people joined, left, married (a new address), were
disabled in the directory or came back, and one functional account gained a delegate.
The local store remembers which directory id is which Zivver account, so renames are
renames and leavers are recognised. Nothing outside a temporary directory is touched.
"""

from __future__ import annotations

import csv
import itertools
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from zsync_core.config import Config, load_config
from zsync_core.session import SyncSession
from zsync_core.store import Store
from zsync_emulator.organization import ZIVVER_GROUP, Organization
from zsync_emulator.server import EmulatorServer

DATA = Path(__file__).parent / "demo"
API_KEY_ENV = "ZSYNC_DEMO_API_KEY"
API_KEY = "demo-key-not-secret"
SOURCE = "Staff list"

RENAMED = {"E1010": "fleur.dejong@example.org", "E1020": "iris.smit@example.org"}
"""Directory id → the address Zivver still has (the person changed name since)."""
RENAMED_DISPLAY = {"E1030": "Vera Bruijn"}
"""Directory id → the display name Zivver still has; Vera also moved to the division "care"
(the staff list's ``division``), which Zivver has but she is not in yet."""
OLD_PHONE = {"E1010": "+31611110000"}
"""Directory id → the mobile number Zivver has; the staff list has a newer one."""
DIVISIONS = {"care"}
SUSPENDED_IN_ZIVVER = {"E1045"}
"""Suspended in Zivver, active again in the directory: re-enabled."""
NEW = {f"E{n}" for n in range(1053, 1061)}
"""In the directory, not yet in Zivver: created."""
LEAVERS = {
    "E0901": ("kees.vandijk@example.org", "Kees van Dijk"),
    "E0902": ("marieke.bosman@example.org", "Marieke Bosman"),
    "E0903": ("thomas.dewit@example.org", "Thomas de Wit"),
}
"""In Zivver and remembered by zsync, gone from the directory: suspended (guarded: > 5 %)."""
UNMANAGED = [("it-admin@example.org", "IT Admin"), ("contractor@partner.com", "Contractor")]
"""Zivver accounts zsync never created or matched, and one outside the domain filter."""
GUEST = "j.smit-extern@example.org"
"""A guest account in Zivver: a new user with this alias is refused (a failed change)."""
NEW_FUNCTIONAL = {"F2002"}
MISSING_DELEGATE = {"F2001": "noor.visser@example.org"}


@dataclass
class Demo:
    directory: Path
    org: Organization
    server: EmulatorServer
    config: Config

    def close(self) -> None:
        self.server.stop()


def start_demo(directory: Path) -> Demo:
    """Lay out the demo in ``directory`` and start its emulator; the caller closes it."""
    staff = directory / "staff.csv"
    shutil.copyfile(DATA / "staff.csv", staff)
    counter = itertools.count(1)
    org = Organization(
        api_key=API_KEY,
        domains=["example.org", "partner.com"],
        guests={GUEST},
        new_id=lambda: f"00000000-0000-4000-8000-{next(counter):012d}",
    )
    store = Store.open(directory / "zsync-state")  # the profile's default state_dir
    try:
        _seed(org, store, staff)
    finally:
        store.close()
    server = EmulatorServer(org).start()
    profile = directory / "demo.toml"
    profile.write_text(
        "# The zsync demo profile: a staff list and the built-in Zivver emulator.\n"
        "[target]\n"
        f'url = "{server.url}"\n'
        f'api_key_env = "{API_KEY_ENV}"\n\n'
        "[[sources]]\n"
        f'name = "{SOURCE}"\n'
        'type = "csv"\n'
        'path = "staff.csv"\n'
        'phone_region = "NL"   # numbers without +31 are Dutch\n\n'
        "[sync]\n"
        'domains = ["example.org"]\n'
        "sync_phone_numbers = true\n",
        encoding="utf-8",
    )
    os.environ[API_KEY_ENV] = API_KEY
    return Demo(directory, org, server, load_config(profile))


def _seed(org: Organization, store: Store, staff: Path) -> None:
    with staff.open(encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    user_ids: dict[str, str] = {}
    org.divisions |= DIVISIONS
    for row in rows:
        source_id = row["id"]
        if row["kind"] != "personal" or source_id in NEW:
            continue
        email = RENAMED.get(source_id, row["email"])
        aliases = row["aliases"].split(";")[:1] if row["aliases"] else []
        zivver_id = org.add_user(
            email,
            RENAMED_DISPLAY.get(source_id, row["name"]),
            active=source_id not in SUSPENDED_IN_ZIVVER,
            aliases=aliases,
            phone_numbers=[OLD_PHONE[source_id]] if source_id in OLD_PHONE else None,
        )
        user_ids[row["email"]] = zivver_id
        # zsync created these users last month: it knows the key it sent (or that it sent none)
        store.remember_account(
            source_id, "personal", zivver_id, email, SOURCE, row.get("sso_key") or ""
        )
    for source_id, (email, name) in LEAVERS.items():
        zivver_id = org.add_user(email, name)
        store.remember_account(source_id, "personal", zivver_id, email, SOURCE, "")
    for email, name in UNMANAGED:
        org.add_user(email, name)
    for row in rows:
        source_id = row["id"]
        if row["kind"] != "functional" or source_id in NEW_FUNCTIONAL:
            continue
        delegates = [
            d for d in row["delegates"].split(";") if d and d != MISSING_DELEGATE.get(source_id)
        ]
        group_id = org.add_group(row["email"], row["name"], [user_ids[d] for d in delegates])
        if row["aliases"]:
            org.groups[group_id][ZIVVER_GROUP]["aliases"] = row["aliases"].split(";")
        store.remember_account(source_id, "functional", group_id, row["email"], SOURCE, None)


def run_demo() -> int:
    from .app import ZsyncApp

    with tempfile.TemporaryDirectory(prefix="zsync-demo-") as directory:
        demo = start_demo(Path(directory))
        session = SyncSession(demo.config, mode="tui")
        try:
            app = ZsyncApp(session, where="demo")
            return app.run() or 0
        finally:
            session.close()
            demo.close()
