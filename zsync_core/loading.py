"""Step 1, the load: every source (in order) and the Zivver organization, read into one
:class:`LoadResult`. Nothing here raises for I/O: what could not be read is named in it."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from .config import Config
from .errors import TargetError, ZsyncError
from .model import Emit, LogEvent, StepEvent, ZivverAccount
from .section import SourceSection
from .sources import SourceResult, fields, make_source
from .store import Store
from .zivver.client import ZivverClient


@dataclass(slots=True)
class LoadResult:
    """Everything one load read: each source, Zivver, and what could not be read."""

    sources: list[SourceResult] = field(default_factory=list)
    source_errors: dict[str, str] = field(default_factory=dict)
    target_error: str | None = None
    zivver: list[ZivverAccount] = field(default_factory=list)
    user_ids: dict[str, str] = field(default_factory=dict)
    unreadable: dict[str, str] = field(default_factory=dict)
    """Zivver accounts answered in a shape that cannot be read whole (id: what is wrong):
    nothing is written to them (see :meth:`SyncSession.plan`)."""
    unaddressed: list[str] = field(default_factory=list)
    """Zivver accounts whose address is no address zsync can use, described: never touched."""

    @property
    def ok(self) -> bool:
        return not self.source_errors and self.target_error is None

    def __repr__(self) -> str:
        return f"LoadResult({self.sources!r}, {len(self.zivver)} in Zivver, ok={self.ok})"

    def errors(self) -> list[str]:
        return list(self.source_errors.values()) + (
            [self.target_error] if self.target_error else []
        )


def read_numbers(result: LoadResult, config: Config) -> None:
    """Check every source's phone numbers, after Zivver's were read (most are in step
    unparsed): a bad one becomes an unusable value."""
    known = {account.email: account.phones for account in result.zivver if account.kept}
    regions = {source.name: source.phone_region for source in config.sources}
    for source_result in result.sources:
        fields.read_numbers(source_result, regions.get(source_result.name), known)


async def read_source(
    source: SourceSection,
    config: Config,
    store: Store | None,
    full_read: bool,
    emit: Emit,
) -> SourceResult:
    """One source read and mapped as a run reads it: its divisions, its names cleaned, its
    phone numbers kept for :func:`read_numbers` when the profile syncs them, else dropped
    unread.

    Raises:
        ZsyncError: the source cannot be read whole (named).
    """
    loaded = await make_source(source, config, store=store, full_read=full_read).load(emit)
    fields.finish(loaded, source, config.sync.sync_phone_numbers)
    loaded.clean()
    return loaded


async def read_sources(
    result: LoadResult, config: Config, store: Store | None, full_read: bool, emit: Emit
) -> None:
    """Read every source in order into ``result`` (the first source wins a conflict); a
    source that fails is named in ``result.source_errors``. ``store`` is None for a check:
    a delta source then reads whole and keeps nothing."""
    for source_config in config.sources:
        try:
            read = read_source(source_config, config, store, full_read, emit)
            result.sources.append(await read)
        except ZsyncError as error:
            result.source_errors[source_config.name] = str(error)
            emit(LogEvent("error", str(error)))
        except Exception as error:  # an unexpected failure still names the source
            message = f"Source {source_config.name!r}: unexpected error while reading: {error!r}"
            result.source_errors[source_config.name] = message
            emit(LogEvent("error", message))


async def read_zivver(
    result: LoadResult, make_client: Callable[[], ZivverClient], emit: Emit
) -> None:
    """Read the Zivver organization into ``result``; what fails is ``result.target_error``."""
    step = "Zivver: read users and functional accounts"
    emit(StepEvent(step, step, "running"))
    try:
        client = make_client()
    except ZsyncError as error:
        result.target_error = str(error)
        emit(StepEvent(step, step, "failed", detail=str(error)))
        return
    try:

        def on_page(kind: str, done: int, total: int | None) -> None:
            emit(StepEvent(step, step, "running", done, total, f"{kind}"))

        result.zivver, result.user_ids = await client.read_organization(on_page)
    except TargetError as error:
        result.target_error = str(error)
        emit(StepEvent(step, step, "failed", detail=str(error)))
        return
    except (
        ValueError,
        TypeError,
        AttributeError,
        KeyError,
        IndexError,
        RecursionError,
    ) as error:
        # what a Zivver answer zsync did not foresee would raise: unreadable, not a crash
        message = (
            f"Reading Zivver at {client.base_url} failed on an answer zsync could not read "
            f"({error!r}), so nothing was planned from it. Try again later; if it repeats, "
            "report it with this message."
        )
        result.target_error = message
        emit(StepEvent(step, step, "failed", detail=message))
        return
    finally:
        await client.aclose()
    result.unreadable = dict(client.unreadable)
    result.unaddressed = list(client.unaddressed)
    if result.unaddressed:
        shown = "; ".join(result.unaddressed[:5])
        more = f" and {len(result.unaddressed) - 5} more" if len(result.unaddressed) > 5 else ""
        emit(
            LogEvent(
                "warning",
                f"Zivver at {client.base_url} holds {len(result.unaddressed)} account(s) whose "
                f"address is no address zsync can use: {shown}{more}. zsync never touches "
                "them; fix or remove them in the Zivver WebApp.",
            )
        )
    for what in result.unreadable.values():
        emit(
            LogEvent(
                "warning",
                f"Zivver at {client.base_url} answered the {what}, so zsync cannot tell what "
                "Zivver holds for it and writes nothing to it this run. If it repeats, tell "
                "Zivver support (or check the proxy between zsync and Zivver).",
            )
        )
    emit(StepEvent(step, step, "done", len(result.zivver), len(result.zivver)))
