"""Run a command inside the parts of deploy/zsync.service's sandbox that can be had without a
running systemd: its system call filter, its socket address families and its W^X memory
rule, set up as systemd does them (seccomp, and the kernel's PR_SET_MDWE), then exec.

    /usr/bin/python3 tests/sandbox.py deploy/zsync.service -- COMMAND ...

Runs under Debian's python3 (python3-seccomp). The filter is read from the unit itself:
``SystemCallFilter=`` lines (groups expanded with ``systemd-analyze syscall-filter``),
``SystemCallErrorNumber=``, ``RestrictAddressFamilies=``, ``MemoryDenyWriteExecute=``.
"""

from __future__ import annotations

import ctypes
import errno
import os
import socket
import subprocess
import sys

import seccomp  # type: ignore[import-not-found]

PR_SET_MDWE, PR_MDWE_REFUSE_EXEC_GAIN = 65, 1
AF_MAX = 46


def groups() -> dict[str, list[str]]:
    """Each @group of systemd-analyze syscall-filter, with its members (syscalls or @groups)."""
    shown = subprocess.run(
        ["systemd-analyze", "syscall-filter"], capture_output=True, text=True, check=True
    ).stdout
    found: dict[str, list[str]] = {}
    current = None
    for line in shown.splitlines():
        if line.startswith("@"):
            current = line.strip()
            found[current] = []
        elif current and line.strip() and not line.strip().startswith("#"):
            found[current].append(line.strip())
    return found


def expand(names: list[str], known: dict[str, list[str]]) -> set[str]:
    result: set[str] = set()
    for name in names:
        if name.startswith("@"):
            result |= expand(known.get(name, []), known)
        else:
            result.add(name)
    return result


def settings(unit: str) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    with open(unit, encoding="utf-8") as text:
        for line in text:
            if "=" in line and not line.lstrip().startswith("#"):
                key, value = line.strip().split("=", 1)
                found.setdefault(key, []).append(value)
    return found


def main() -> int:
    unit, separator, *command = sys.argv[1:]
    assert separator == "--" and command, __doc__
    unit_settings = settings(unit)
    known = groups()
    allowed: set[str] = set()
    for value in unit_settings.get("SystemCallFilter", []):
        names = value.split()
        if value.startswith("~"):
            allowed -= expand([names[0][1:], *names[1:]], known)
        else:
            allowed |= expand(names, known)
    error = getattr(errno, unit_settings.get("SystemCallErrorNumber", ["EPERM"])[-1])
    families = [
        getattr(socket, family)
        for value in unit_settings.get("RestrictAddressFamilies", [])
        for family in value.split()
    ]
    flt = seccomp.SyscallFilter(defaction=seccomp.ERRNO(error))
    for name in sorted(allowed - {"socket"}):
        try:
            flt.add_rule(seccomp.ALLOW, name)
        except (RuntimeError, ValueError):
            pass  # a name this kernel or libseccomp does not know
    if families:
        for family in families:
            flt.add_rule(seccomp.ALLOW, "socket", seccomp.Arg(0, seccomp.EQ, int(family)))
        refused = seccomp.ERRNO(errno.EAFNOSUPPORT)  # what systemd answers for the others
        for family in range(AF_MAX):
            if family not in families:
                flt.add_rule(refused, "socket", seccomp.Arg(0, seccomp.EQ, family))
    elif "socket" in allowed:
        flt.add_rule(seccomp.ALLOW, "socket")
    if unit_settings.get("MemoryDenyWriteExecute", ["no"])[-1] == "yes":
        libc = ctypes.CDLL(None, use_errno=True)
        if libc.prctl(PR_SET_MDWE, PR_MDWE_REFUSE_EXEC_GAIN, 0, 0, 0) != 0:
            raise OSError(ctypes.get_errno(), "prctl(PR_SET_MDWE)")
    flt.load()
    os.execv(command[0], command)
    return 127


if __name__ == "__main__":
    raise SystemExit(main())
