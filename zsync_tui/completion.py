"""``zsync completion bash``: a bash completion script for every command and option."""

from __future__ import annotations

import argparse

from zsync_core.config import GuardedAction
from zsync_core.outcome import ExitCode

_BASH = """# bash completion for zsync: eval "$(zsync completion bash)", or save it as
# /etc/bash_completion.d/zsync
_zsync() {
    local cur prev
    cur="${COMP_WORDS[COMP_CWORD]}"
    prev="${COMP_WORDS[COMP_CWORD-1]}"
    case "$prev" in
        --config|--report|--log-file) COMPREPLY=($(compgen -f -- "$cur")); return ;;
        --confirm) COMPREPLY=($(compgen -W "%(actions)s" -- "$cur")); return ;;
    esac
    local command="${COMP_WORDS[1]}"
    case "$command" in
%(commands)s
        *) COMPREPLY=($(compgen -W "%(top)s" -- "$cur")) ;;
    esac
}
complete -F _zsync zsync
"""


def command(
    argv: list[str], parser_class: type[argparse.ArgumentParser], commands_known: tuple[str, ...]
) -> int:
    """``zsync completion bash``: print the script."""
    parser = parser_class(
        prog="zsync completion",
        description='Print a shell completion script: eval "$(zsync completion bash)".',
    )
    parser.add_argument("shell", choices=["bash"])
    parser.parse_args(argv)
    options = {
        "check": "--config --help",
        "status": "--config --help",
        "history": "--config --run --limit --json --help",
        "show": "source zivver --config --json --filter --help",
        "explain": "--address --config --json --help",
        "demo": "--help",
        "init": "--config --help",
        "emulator": "--port --host --api-key --domain --division --rate-limit --rate-window "
        "--microsoft --client-secret --users --groups --shared --help",
        "completion": "bash",
    }
    top = " ".join(
        [
            *commands_known,
            "--config",
            "--headless",
            "--dry-run",
            "--confirm",
            "--report",
            "-q",
            "-v",
            "--full-read",
        ]
        + ["--log-file", "--version", "--help"]
    )
    commands = "\n".join(
        f'        {name}) COMPREPLY=($(compgen -W "{words}" -- "$cur")) ;;'
        for name, words in options.items()
    )
    print(
        _BASH
        % {
            "actions": " ".join(a.value for a in GuardedAction),
            "commands": commands,
            "top": top,
        },
        end="",
    )
    return ExitCode.OK
