"""The parser every zsync command uses: a usage error exits 3 (could not run), with
``--json`` also as ``{"error": …}`` on stdout; an option that takes a value may be given once,
and no option is abbreviated."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from zsync_core.outcome import ExitCode
from zsync_core.output import inert_json


class _Once(argparse.Action):
    """An option that takes one value and may be given once: ``--config A … --config B``
    would otherwise quietly use one of them (which one depends on where each stands)."""

    def __call__(
        self,
        parser: argparse.ArgumentParser,
        namespace: argparse.Namespace,
        values: Any,
        option_string: str | None = None,
    ) -> None:
        if self.option_strings and getattr(self, "given", False):
            parser.error(f"{option_string} is given twice; give it once")
        self.given = True
        setattr(namespace, self.dest, values)


class Parser(argparse.ArgumentParser):
    """zsync's commands' parser: a usage error exits 3 (could not run; 2 means "held" to
    monitoring), with ``--json`` also as ``{"error": …}`` on stdout; an option that takes a
    value may be given once."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("allow_abbrev", False)  # --js is no --json: say so
        super().__init__(*args, **kwargs)
        for name in (None, "store"):  # None: an option without action= (argparse's default)
            self.register("action", name, _Once)
        self.argv: list[str] = []

    def parse_args(self, args: Any = None, namespace: Any = None) -> Any:  # type: ignore[override]
        self.argv = list(sys.argv[1:] if args is None else args)
        return super().parse_args(args, namespace)

    def parse_intermixed_args(self, args: Any = None, namespace: Any = None) -> Any:  # type: ignore[override]
        self.argv = list(sys.argv[1:] if args is None else args)
        return super().parse_intermixed_args(args, namespace)

    def error(self, message: str) -> None:  # type: ignore[override]
        said = f"{self.prog}: error: {message}. Nothing was changed."
        if "--json" in self.argv:
            print(inert_json(json.dumps({"error": said}, ensure_ascii=False)))
        self.print_usage(sys.stderr)
        self.exit(ExitCode.CANNOT_RUN, said + "\n")
