"""The mailbox mailbot reads: one protocol, an IMAP and a Maildir implementation."""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import re
import socket
import ssl
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType
from typing import Any, Protocol, Self

import imapclient
import imapclient.exceptions

from mailbot.config import ImapConfig, MaildirConfig
from mailbot.errors import MailboxError
from mailbot.models import Folder, RawMessage

log = logging.getLogger("mailbot.mailbox")

# One FETCH of message bodies asks for no more than this many bytes in all
# (and for at least one message), so memory stays flat whatever the batch size.
FETCH_BYTES_BUDGET = 16 * 1024 * 1024

DEFAULT_MAILDIR_FOLDERS: Mapping[Folder, str] = {
    Folder.PROCESSED: "Processed",
    Folder.QUARANTINE: "Quarantine",
    Folder.PEOPLE: "Support",
}


class Mailbox(Protocol):
    """Where messages wait to be handled, and where handled ones are filed."""

    def open(self) -> None:
        """Connect, log in, select the inbox and create missing folders."""

    def close(self) -> None:
        """Let go of the connection; never raises."""

    def uidvalidity(self) -> int:
        """The inbox's UIDVALIDITY: UIDs are only comparable while it holds."""

    def pending_uids(self) -> list[int]:
        """The UIDs of the messages in the inbox, ascending."""

    def fetch(self, uids: Sequence[int]) -> Iterator[RawMessage]:
        """Yield the messages with these UIDs, one at a time, in that order.

        The UIDs are ones ``pending_uids`` returned; one no longer in the
        inbox is skipped.
        """

    def file(self, uids: Sequence[int], folder: Folder) -> None:
        """Move handled messages (UIDs ``pending_uids`` returned) into ``folder``."""

    def wait(self, timeout: float) -> bool:
        """Wait for new mail at most ``timeout`` seconds; True if some may be there."""

    def __enter__(self) -> Self:
        self.open()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def open_mailbox(config: ImapConfig | MaildirConfig) -> Mailbox:
    """The mailbox the configuration names, not yet opened."""
    if isinstance(config, MaildirConfig):
        return MaildirMailbox(config)
    return ImapMailbox(config)


# The failures of the connection: imapclient's (imaplib's) errors, and the
# socket's, which include ssl.SSLError and the timeouts.
_IMAP_FAILURES = (imapclient.exceptions.IMAPClientError, OSError)


@dataclass(frozen=True, slots=True)
class _Sized:
    """What the first FETCH of a batch says about one message."""

    uid: int
    size: int
    arrived: datetime


class ImapMailbox(Mailbox):
    """The inbox of an IMAP server, through imapclient.

    ``allow_move`` and ``allow_idle`` exist so that tests can run the paths
    taken with servers that lack MOVE or IDLE.
    """

    def __init__(
        self,
        config: ImapConfig,
        *,
        allow_move: bool = True,
        allow_idle: bool = True,
    ) -> None:
        self.config = config
        self.allow_move = allow_move
        self.allow_idle = allow_idle
        self.folders: Mapping[Folder, str] = {
            Folder.PROCESSED: config.processed_folder,
            Folder.QUARANTINE: config.quarantine_folder,
            Folder.PEOPLE: config.people_folder,
        }
        self._client: Any = None
        self._uidvalidity = 0
        self._capabilities: frozenset[bytes] = frozenset()
        self._idling = False  # IDLE sent and not yet ended with DONE

    def open(self) -> None:
        config = self.config
        where = f"{config.host}:{config.port}"
        timeout = imapclient.SocketTimeout(
            connect=config.connect_timeout, read=config.read_timeout
        )
        with self._failures(f"cannot connect to the IMAP server {where}"):
            client = imapclient.IMAPClient(
                config.host,
                port=config.port,
                ssl=config.tls == "ssl",
                ssl_context=ssl.create_default_context(),
                timeout=timeout,
            )
        self._client = client
        client.normalise_times = False

        try:
            if config.tls == "starttls":
                with self._failures(f"STARTTLS with {where} failed"):
                    client.starttls(ssl.create_default_context())

            password = config.password.read()
            try:
                client.login(config.username, password)
            except _IMAP_FAILURES as exc:
                message = str(exc).replace(password, "***") if password else str(exc)
                raise MailboxError(
                    f"IMAP login as {config.username!r} on {where} failed: {message}"
                ) from None
            log.debug("logged in as %s on %s", config.username, where)

            with self._failures("cannot prepare the folders"):
                self._capabilities = frozenset(client.capabilities())
                for name in self.folders.values():
                    if not client.folder_exists(name):
                        log.debug("creating folder %s", name)
                        client.create_folder(name)
                selected = client.select_folder(config.folder)
            self._uidvalidity = int(selected[b"UIDVALIDITY"])
            log.debug(
                "selected %s: %s messages, UIDVALIDITY %s",
                config.folder,
                selected.get(b"EXISTS"),
                self._uidvalidity,
            )
        except BaseException:
            self.close()
            raise

    def close(self) -> None:
        client, self._client = self._client, None
        if client is None:
            return
        if self._idling:
            # Left in IDLE (a signal, a dead server): LOGOUT would not be
            # answered as such, so just drop the connection.
            self._idling = False
            with contextlib.suppress(Exception):
                client.shutdown()
            return
        try:
            client.logout()
        except Exception:  # the connection may be dead already
            with contextlib.suppress(Exception):
                client.shutdown()

    def uidvalidity(self) -> int:
        self._connected()
        return self._uidvalidity

    def capabilities(self) -> frozenset[str]:
        """What the server offers (IDLE, MOVE, UIDPLUS...), for check-config."""
        self._connected()
        return frozenset(c.decode("ascii", "replace") for c in self._capabilities)

    def pending_uids(self) -> list[int]:
        client = self._connected()
        with self._failures(f"cannot search {self.config.folder}"):
            # SEARCH alone may answer from a stale view: NOOP lets the server
            # take in mail that arrived since the last command.
            client.noop()
            found = client.search(["UNDELETED"])
        return sorted(int(uid) for uid in found)

    def fetch(self, uids: Sequence[int]) -> Iterator[RawMessage]:
        client = self._connected()
        cap = self.config.max_message_bytes
        step = self.config.batch_size
        for start in range(0, len(uids), step):
            batch = list(uids[start : start + step])
            with self._failures(f"cannot fetch the sizes of UIDs {batch}"):
                response = client.fetch(batch, ["RFC822.SIZE", "INTERNALDATE"])
            sized = [
                _Sized(
                    uid=uid,
                    size=int(response[uid][b"RFC822.SIZE"]),
                    arrived=_utc(response[uid][b"INTERNALDATE"]),
                )
                for uid in batch
                if uid in response
            ]
            del response

            for group in _body_groups(sized, cap=cap):
                yield from self._fetch_bodies(group, oversized=group[0].size > cap)

    def _fetch_bodies(
        self, group: Sequence[_Sized], *, oversized: bool
    ) -> Iterator[RawMessage]:
        client = self._connected()
        part, key = ("BODY.PEEK[HEADER]", b"BODY[HEADER]")
        if not oversized:
            part, key = ("BODY.PEEK[]", b"BODY[]")
        uids = [item.uid for item in group]
        with self._failures(f"cannot fetch UIDs {uids}"):
            response = client.fetch(uids, [part])
        log.debug("fetched %s of UIDs %s", part, uids)

        for item in group:
            entry = response.pop(item.uid, None)
            if entry is None or key not in entry:
                log.debug("UID %s vanished before its body was fetched", item.uid)
                continue
            yield RawMessage(
                folder=self.config.folder,
                uidvalidity=self._uidvalidity,
                uid=item.uid,
                data=bytes(entry[key]),
                arrived=item.arrived,
                size=item.size,
                oversized=oversized,
            )

    def file(self, uids: Sequence[int], folder: Folder) -> None:
        client = self._connected()
        name = self.folders[folder]
        move = self.allow_move and b"MOVE" in self._capabilities
        step = self.config.batch_size
        for start in range(0, len(uids), step):
            batch = list(uids[start : start + step])
            with self._failures(f"cannot file UIDs {batch} into {name}"):
                if move:
                    client.move(batch, name)
                else:
                    client.copy(batch, name)
                    client.delete_messages(batch, silent=True)
                    if b"UIDPLUS" in self._capabilities:
                        client.uid_expunge(batch)
                    else:
                        client.expunge()
            log.debug(
                "filed UIDs %s into %s (%s)", batch, name, "MOVE" if move else "COPY"
            )

    def wait(self, timeout: float) -> bool:
        client = self._connected()
        if not (self.allow_idle and b"IDLE" in self._capabilities):
            time.sleep(max(0.0, min(timeout, self.config.poll_seconds)))
            return True

        # The watchdog: IDLE ends when the server has said nothing for
        # read_timeout seconds, and DONE must be answered within read_timeout
        # too, so a connection that died without a word is found out within
        # twice read_timeout whatever the IDLE period.  Servers that send
        # keepalives during IDLE (Dovecot: every 2 minutes) stay in IDLE.
        period = max(0.0, min(timeout, self.config.idle_seconds))
        silence = self.config.read_timeout
        started = heard = time.monotonic()
        deadline = started + period
        seen: list[Any] = []
        with self._failures("IDLE failed"):
            client.idle()
            self._idling = True
            log.debug("IDLE for at most %.1f s", period)
            while not _new_mail(seen) and not _goodbye(seen):
                left = min(deadline, heard + silence) - time.monotonic()
                if left <= 0:
                    break
                responses = client.idle_check(timeout=left)
                if not responses:
                    # The time is up, the server kept silent too long, or the
                    # socket woke with nothing to read (a closed connection):
                    # DONE and its answer tell which.
                    break
                heard = time.monotonic()
                seen.extend(responses)
        if not _goodbye(seen):
            with self._failures("ending IDLE (DONE) failed"):
                seen.extend(client.idle_done()[1])
            self._idling = False
        log.debug("IDLE ended after %.1f s: %s", time.monotonic() - started, seen)

        if _goodbye(seen):
            raise MailboxError(f"the IMAP server ended the session: {seen}")
        return _new_mail(seen)

    def _connected(self) -> Any:
        if self._client is None:
            raise MailboxError("the IMAP mailbox is not open")
        return self._client

    @contextlib.contextmanager
    def _failures(self, action: str) -> Iterator[None]:
        """Turn the connection's failures into MailboxError naming the action."""
        try:
            yield
        except _IMAP_FAILURES as exc:
            detail = str(exc) or type(exc).__name__
            if isinstance(exc, TimeoutError | socket.timeout):
                detail = f"timed out ({detail})"
            raise MailboxError(f"{action}: {detail}") from exc


def _body_groups(sized: Sequence[_Sized], *, cap: int) -> Iterator[list[_Sized]]:
    """Split a batch for body FETCHes: oversized messages apart, bounded bytes."""
    group: list[_Sized] = []
    total = 0
    for item in sized:
        oversized = item.size > cap
        if group and (oversized or total + item.size > FETCH_BYTES_BUDGET):
            yield group
            group, total = [], 0
        if oversized:
            yield [item]
            continue
        group.append(item)
        total += item.size
    if group:
        yield group


def _new_mail(responses: Sequence[Any]) -> bool:
    return any(
        len(item) >= 2 and item[1] in (b"EXISTS", b"RECENT") for item in responses
    )


def _goodbye(responses: Sequence[Any]) -> bool:
    return any(item and item[0] == b"BYE" for item in responses)


def _utc(value: datetime) -> datetime:
    """INTERNALDATE as an aware UTC datetime; a naive one is in local time."""
    return value.astimezone(UTC)


class MaildirMailbox(Mailbox):
    """A Maildir++ directory: the inbox in cur/ and new/, folders as .Name/.

    A message's UID is derived from its unique file name, so it is stable:
    the leading delivery second (when the name starts with one) in the high
    bits keeps ascending UIDs close to arrival order.
    """

    def __init__(
        self,
        config: MaildirConfig,
        *,
        folders: Mapping[Folder, str] = DEFAULT_MAILDIR_FOLDERS,
    ) -> None:
        self.config = config
        self.path = Path(config.path)
        self.folders = dict(folders)
        self._uidvalidity = 0
        self._files: dict[int, Path] = {}
        self._open = False

    def open(self) -> None:
        with self._failures(f"cannot prepare the Maildir {self.path}"):
            _make_maildir(self.path)
            for name in self.folders.values():
                folder = self.path / f".{name}"
                _make_maildir(folder)
                (folder / "maildirfolder").touch()
            self._uidvalidity = self._read_uidvalidity()
        self._open = True
        log.debug("opened Maildir %s, UIDVALIDITY %s", self.path, self._uidvalidity)

    def close(self) -> None:
        self._open = False
        self._files = {}

    def uidvalidity(self) -> int:
        self._check_open()
        return self._uidvalidity

    def pending_uids(self) -> list[int]:
        self._check_open()
        self._files = self._scan()
        return sorted(self._files)

    def fetch(self, uids: Sequence[int]) -> Iterator[RawMessage]:
        self._check_open()
        for uid in uids:
            message = self._read(uid)
            if message is not None:
                yield message

    def _read(self, uid: int) -> RawMessage | None:
        path = self._file(uid)
        if path is None:
            log.debug("UID %s vanished before it was read", uid)
            return None
        cap = self.config.max_message_bytes
        with self._failures(f"cannot read {path}"):
            try:
                with path.open("rb") as handle:
                    stat = os.fstat(handle.fileno())
                    oversized = stat.st_size > cap
                    data = _read_header(handle, cap) if oversized else handle.read()
            except FileNotFoundError:
                log.debug("UID %s vanished before it was read", uid)
                return None
        return RawMessage(
            folder="INBOX",
            uidvalidity=self._uidvalidity,
            uid=uid,
            data=data,
            arrived=datetime.fromtimestamp(stat.st_mtime, UTC),
            size=stat.st_size,
            oversized=oversized,
        )

    def file(self, uids: Sequence[int], folder: Folder) -> None:
        self._check_open()
        target = self.path / f".{self.folders[folder]}" / "cur"
        for uid in uids:
            path = self._file(uid)
            if path is None:
                log.debug("UID %s vanished before it was filed", uid)
                continue
            name = path.name if ":2," in path.name else f"{path.name}:2,"
            with self._failures(f"cannot file {path.name} into {target}"):
                os.rename(path, target / name)
            del self._files[uid]
            log.debug("filed %s into %s", path.name, target)

    def wait(self, timeout: float) -> bool:
        self._check_open()
        time.sleep(max(0.0, min(timeout, self.config.poll_seconds)))
        return True

    def _file(self, uid: int) -> Path | None:
        path = self._files.get(uid)
        if path is None or not path.exists():
            self._files = self._scan()
            path = self._files.get(uid)
        return path

    def _scan(self) -> dict[int, Path]:
        found: dict[int, Path] = {}
        with self._failures(f"cannot list the Maildir {self.path}"):
            for sub in ("new", "cur"):
                with os.scandir(self.path / sub) as entries:
                    for entry in entries:
                        if not entry.name.startswith(".") and entry.is_file():
                            uid = maildir_uid(
                                entry.name, delivered=entry.stat().st_mtime
                            )
                            found[uid] = Path(entry.path)
        return found

    def _read_uidvalidity(self) -> int:
        path = self.path / "mailbot-uidvalidity"
        if not path.exists():
            # Written aside, then linked: a reader never sees a half-written file.
            aside = self.path / "tmp" / f"uidvalidity.{os.getpid()}.{time.time_ns()}"
            aside.write_text(f"{int(time.time()) & 0xFFFFFFFF or 1}\n", "ascii")
            with contextlib.suppress(FileExistsError):
                os.link(aside, path)
            aside.unlink()
        text = path.read_text(encoding="ascii").strip()
        if not text.isdigit():
            raise MailboxError(f"{path} does not hold a UIDVALIDITY number")
        return int(text)

    def _check_open(self) -> None:
        if not self._open:
            raise MailboxError(f"the Maildir {self.path} is not open")

    @contextlib.contextmanager
    def _failures(self, action: str) -> Iterator[None]:
        try:
            yield
        except OSError as exc:
            raise MailboxError(f"{action}: {exc.strerror or exc}") from exc


_DELIVERY_SECONDS = re.compile(rb"\A([0-9]{1,10})\.")


def maildir_uid(name: str, *, delivered: float = 0) -> int:
    """A stable 63-bit UID for a Maildir file, from its unique base name.

    The delivery second, in the high bits, keeps UIDs in arrival order: the
    one the name starts with, as delivery agents write it, or else
    ``delivered`` (the file's mtime, which a rename into cur/ keeps).
    """
    unique = name.split(":2,", 1)[0].encode("utf-8", "surrogateescape")
    digest = hashlib.blake2b(unique, digest_size=8).digest()
    low = int.from_bytes(digest, "big") & 0x7FFFFFFF
    match = _DELIVERY_SECONDS.match(unique)
    seconds = int(match.group(1)) if match else max(int(delivered), 0)
    return ((seconds & 0xFFFFFFFF) << 31) | low


def _make_maildir(path: Path) -> None:
    for sub in ("cur", "new", "tmp"):
        (path / sub).mkdir(parents=True, exist_ok=True)


def _read_header(handle: Any, cap: int) -> bytes:
    """The header of a message file and the blank line after it, at most ``cap``."""
    lines: list[bytes] = []
    total = 0
    while total < cap:
        line = handle.readline(cap - total)
        lines.append(line)
        total += len(line)
        if line in (b"", b"\r\n", b"\n"):
            break
    return b"".join(lines)
