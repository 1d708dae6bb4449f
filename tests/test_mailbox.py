"""Tests of the mailboxes: IMAP against the real Dovecot, Maildir on a temp dir."""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest

from mailbot.config import ImapConfig, MaildirConfig, Secret
from mailbot.errors import MailboxError
from mailbot.mailbox import (
    ImapMailbox,
    MaildirMailbox,
    maildir_uid,
    open_mailbox,
)
from mailbot.models import Folder
from tests.servers import DovecotServer, ImapAccount, free_port

PASSWORD_ENV = "MAILBOT_TEST_IMAP_PASSWORD"  # noqa: S105 - a variable name


def message(number: int, *, body: bytes = b"Convocatoria del ple.\r\n") -> bytes:
    return (
        b"From: Ajuntament <secretaria@example.org>\r\n"
        b"To: localretmeet@webfine.com\r\n"
        b"Subject: Ple ordinari " + str(number).encode() + b"\r\n"
        b"Message-ID: <message-" + str(number).encode() + b"@example.org>\r\n"
        b"\r\n" + body
    )


def imap_config(account: ImapAccount, **options: object) -> ImapConfig:
    values: dict[str, object] = {
        "host": account.host,
        "port": account.port,
        "tls": "none",
        "username": account.username,
        "password": Secret(env=PASSWORD_ENV),
        "connect_timeout": 5.0,
        "read_timeout": 10.0,
    }
    values.update(options)
    return ImapConfig(**values)  # type: ignore[arg-type]


@pytest.fixture
def imap_password(imap_account: ImapAccount, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(PASSWORD_ENV, imap_account.password)


@pytest.fixture
def imap(imap_account: ImapAccount, imap_password: None) -> Iterator[ImapMailbox]:
    with ImapMailbox(imap_config(imap_account)) as mailbox:
        yield mailbox


# IMAP, against the real Dovecot


@pytest.mark.integration
def test_imap_pending_uids_lists_appended_messages_ascending(
    imap_account: ImapAccount, imap: ImapMailbox
) -> None:
    appended = [imap_account.append("INBOX", message(n)) for n in range(3)]

    pending = imap.pending_uids()

    assert sorted(appended) == pending


@pytest.mark.integration
def test_imap_pending_uids_of_an_empty_inbox_is_empty(imap: ImapMailbox) -> None:
    assert [] == imap.pending_uids()


@pytest.mark.integration
def test_imap_uidvalidity_is_the_servers(
    imap_account: ImapAccount, imap: ImapMailbox
) -> None:
    with imap_account.client() as client:
        expected = client.select_folder("INBOX", readonly=True)[b"UIDVALIDITY"]

    assert expected == imap.uidvalidity()


@pytest.mark.integration
def test_imap_fetch_returns_the_appended_bytes(
    imap_account: ImapAccount, imap: ImapMailbox
) -> None:
    data = message(1, body="Sessió plenària\r\n".encode())
    uid = imap_account.append("INBOX", data)
    imap.pending_uids()

    fetched = list(imap.fetch([uid]))

    assert [(uid, data, len(data), False)] == [
        (m.uid, m.data, m.size, m.oversized) for m in fetched
    ]


@pytest.mark.integration
def test_imap_fetch_gives_internaldate_as_aware_utc(
    imap_account: ImapAccount, imap: ImapMailbox
) -> None:
    arrived = datetime(2024, 3, 5, 9, 30, 15, tzinfo=timezone(timedelta(hours=1)))
    uid = imap_account.append("INBOX", message(1), arrived=arrived)
    imap.pending_uids()

    [fetched] = imap.fetch([uid])

    assert (arrived, UTC) == (fetched.arrived, fetched.arrived.tzinfo)


@pytest.mark.integration
def test_imap_fetch_names_folder_and_uidvalidity(
    imap_account: ImapAccount, imap: ImapMailbox
) -> None:
    uid = imap_account.append("INBOX", message(1))
    imap.pending_uids()

    [fetched] = imap.fetch([uid])

    assert ("INBOX", imap.uidvalidity()) == (fetched.folder, fetched.uidvalidity)


@pytest.mark.integration
def test_imap_fetch_of_an_oversized_message_gives_its_header_only(
    imap_account: ImapAccount, imap_password: None
) -> None:
    data = message(1, body=b"x" * 76 + b"\r\n") + b"y" * 76 * 60
    header = data[: data.index(b"\r\n\r\n") + 4]
    uid = imap_account.append("INBOX", data)

    with ImapMailbox(imap_config(imap_account, max_message_bytes=2048)) as mailbox:
        [fetched] = mailbox.fetch([uid])

    assert (header, len(data), True) == (fetched.data, fetched.size, fetched.oversized)


@pytest.mark.integration
def test_imap_fetch_in_small_batches_yields_every_message_in_order(
    imap_account: ImapAccount, imap_password: None
) -> None:
    data = [message(n) for n in range(5)]
    uids = [imap_account.append("INBOX", item) for item in data]

    with ImapMailbox(imap_config(imap_account, batch_size=2)) as mailbox:
        fetched = [(m.uid, m.data) for m in mailbox.fetch(uids)]

    assert list(zip(uids, data, strict=True)) == fetched


@pytest.mark.integration
def test_imap_fetch_mixes_oversized_and_normal_messages_in_order(
    imap_account: ImapAccount, imap_password: None
) -> None:
    small, large = message(1), message(2, body=b"z" * 4096)
    uids = [imap_account.append("INBOX", item) for item in (small, large, small)]

    with ImapMailbox(imap_config(imap_account, max_message_bytes=2048)) as mailbox:
        fetched = [(m.uid, m.oversized) for m in mailbox.fetch(uids)]

    assert list(zip(uids, [False, True, False], strict=True)) == fetched


@pytest.mark.integration
def test_imap_fetch_skips_a_message_no_longer_in_the_inbox(
    imap_account: ImapAccount, imap: ImapMailbox
) -> None:
    kept = imap_account.append("INBOX", message(1))
    gone = imap_account.append("INBOX", message(2))
    imap.pending_uids()
    with imap_account.client() as client:
        client.select_folder("INBOX")
        client.delete_messages([gone])
        client.expunge()

    fetched = [m.uid for m in imap.fetch([kept, gone])]

    assert [kept] == fetched


@pytest.mark.integration
def test_imap_open_creates_the_missing_folders(
    imap_account: ImapAccount, imap: ImapMailbox
) -> None:
    folders = set(imap_account.folders())

    assert {"INBOX", "Processed", "Quarantine", "Support"} == folders


@pytest.mark.integration
@pytest.mark.parametrize(
    ("folder", "name"),
    [
        (Folder.PROCESSED, "Processed"),
        (Folder.QUARANTINE, "Quarantine"),
        (Folder.PEOPLE, "Support"),
    ],
)
def test_imap_file_moves_messages_into_the_folder(
    imap_account: ImapAccount, imap: ImapMailbox, folder: Folder, name: str
) -> None:
    data = [message(1), message(2)]
    uids = [imap_account.append("INBOX", item) for item in data]
    imap.pending_uids()

    imap.file(uids, folder)

    assert ([], data) == (imap.pending_uids(), imap_account.messages(name))


@pytest.mark.integration
def test_imap_file_without_move_copies_and_expunges(
    imap_account: ImapAccount, imap_password: None
) -> None:
    data = [message(1), message(2), message(3)]
    uids = [imap_account.append("INBOX", item) for item in data]

    with ImapMailbox(imap_config(imap_account), allow_move=False) as mailbox:
        mailbox.file(uids[:2], Folder.QUARANTINE)
        pending = mailbox.pending_uids()

    assert (uids[2:], data[:2], [data[2]]) == (
        pending,
        imap_account.messages("Quarantine"),
        imap_account.messages("INBOX"),
    )


@pytest.mark.integration
def test_imap_file_uses_the_configured_folder_names(
    imap_account: ImapAccount, imap_password: None
) -> None:
    uid = imap_account.append("INBOX", message(1))
    config = imap_config(imap_account, people_folder="Persones")

    with ImapMailbox(config) as mailbox:
        mailbox.file([uid], Folder.PEOPLE)

    assert [message(1)] == imap_account.messages("Persones")


@pytest.mark.integration
def test_imap_wait_returns_true_soon_after_another_client_appends(
    imap_account: ImapAccount, imap: ImapMailbox
) -> None:
    timer = threading.Timer(0.5, imap_account.append, ("INBOX", message(1)))
    started = time.monotonic()
    timer.start()
    try:
        new_mail = imap.wait(30)
    finally:
        timer.join()
    elapsed = time.monotonic() - started

    assert (True, True) == (new_mail, elapsed < 10)


@pytest.mark.integration
def test_imap_wait_without_new_mail_returns_false_after_the_timeout(
    imap: ImapMailbox,
) -> None:
    started = time.monotonic()

    new_mail = imap.wait(1.0)
    elapsed = time.monotonic() - started

    assert (False, True) == (new_mail, 0.9 < elapsed < 5)


@pytest.mark.integration
def test_imap_wait_keeps_the_connection_usable(
    imap_account: ImapAccount, imap: ImapMailbox
) -> None:
    imap.wait(0.2)
    uid = imap_account.append("INBOX", message(1))

    assert [uid] == imap.pending_uids()


@pytest.mark.integration
def test_imap_wait_without_idle_sleeps_and_returns_true(
    imap_account: ImapAccount, imap_password: None
) -> None:
    with ImapMailbox(imap_config(imap_account), allow_idle=False) as mailbox:
        started = time.monotonic()
        new_mail = mailbox.wait(0.3)
        elapsed = time.monotonic() - started

    assert (True, True) == (new_mail, 0.25 < elapsed < 3)


@pytest.mark.integration
def test_imap_session_ended_by_the_server_during_wait_raises_mailbox_error(
    dovecot: DovecotServer, imap_account: ImapAccount, imap: ImapMailbox
) -> None:
    timer = threading.Timer(0.5, dovecot.kick, (imap_account.username,))
    timer.start()
    try:
        with pytest.raises(MailboxError):
            imap.wait(20)
    finally:
        timer.join()


def kill_imap_session(dovecot: DovecotServer, username: str) -> None:
    """End the user's imap process at once: the client sees EOF and no BYE."""
    who = dovecot.doveadm("who", "-1", username).stdout.splitlines()[1:]
    for line in who:
        os.kill(int(line.split()[2]), signal.SIGKILL)


@pytest.mark.integration
def test_imap_session_dropped_without_goodbye_during_wait_raises_mailbox_error(
    dovecot: DovecotServer, imap_account: ImapAccount, imap: ImapMailbox
) -> None:
    timer = threading.Timer(0.5, kill_imap_session, (dovecot, imap_account.username))
    started = time.monotonic()
    timer.start()
    try:
        with pytest.raises(MailboxError):
            imap.wait(20)
    finally:
        timer.join()

    assert time.monotonic() - started < 10


@pytest.mark.integration
def test_imap_lost_session_raises_mailbox_error_then_reopening_works(
    dovecot: DovecotServer, imap_account: ImapAccount, imap: ImapMailbox
) -> None:
    uid = imap_account.append("INBOX", message(1))
    kill_imap_session(dovecot, imap_account.username)
    with pytest.raises(MailboxError):
        imap.pending_uids()

    imap.close()
    imap.open()

    assert [uid] == imap.pending_uids()


@pytest.mark.integration
def test_imap_wrong_password_raises_mailbox_error_without_the_password(
    imap_account: ImapAccount, monkeypatch: pytest.MonkeyPatch
) -> None:
    wrong = "Wrong-Secret-4711"
    monkeypatch.setenv(PASSWORD_ENV, wrong)

    with pytest.raises(MailboxError) as raised:
        ImapMailbox(imap_config(imap_account)).open()

    assert (False, True) == (wrong in str(raised.value), "login" in str(raised.value))


@pytest.mark.integration
def test_imap_closed_port_raises_mailbox_error_quickly(
    imap_account: ImapAccount, imap_password: None
) -> None:
    config = imap_config(imap_account, port=free_port(), connect_timeout=2.0)
    started = time.monotonic()

    with pytest.raises(MailboxError):
        ImapMailbox(config).open()

    assert time.monotonic() - started < 5


@pytest.mark.integration
def test_imap_mailbox_used_before_open_raises_mailbox_error(
    imap_account: ImapAccount,
) -> None:
    with pytest.raises(MailboxError):
        ImapMailbox(imap_config(imap_account)).pending_uids()


# Maildir, on a temporary directory


def deliver(
    root: Path, name: str, data: bytes, *, arrived: datetime | None = None
) -> Path:
    """Put a message into the Maildir's new/ as a delivery agent would."""
    (root / "tmp").mkdir(parents=True, exist_ok=True)
    (root / "new").mkdir(parents=True, exist_ok=True)
    aside = root / "tmp" / name
    aside.write_bytes(data)
    if arrived is not None:
        os.utime(aside, (arrived.timestamp(), arrived.timestamp()))
    path = root / "new" / name
    aside.rename(path)
    return path


@pytest.fixture
def maildir(tmp_path: Path) -> Iterator[MaildirMailbox]:
    with MaildirMailbox(MaildirConfig(path=tmp_path / "mail")) as mailbox:
        yield mailbox


def test_maildir_open_creates_the_maildir_and_its_folders(tmp_path: Path) -> None:
    root = tmp_path / "mail"

    with MaildirMailbox(MaildirConfig(path=root)):
        made = sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_dir())

    assert [
        ".Processed",
        ".Processed/cur",
        ".Processed/new",
        ".Processed/tmp",
        ".Quarantine",
        ".Quarantine/cur",
        ".Quarantine/new",
        ".Quarantine/tmp",
        ".Support",
        ".Support/cur",
        ".Support/new",
        ".Support/tmp",
        "cur",
        "new",
        "tmp",
    ] == made


def test_maildir_pending_uids_lists_delivered_messages_in_delivery_order(
    maildir: MaildirMailbox,
) -> None:
    names = ["1700000100.M1P1.host", "1700000000.M2P1.host", "1700000200.M3P1.host"]
    for number, name in enumerate(names):
        deliver(maildir.path, name, message(number))

    pending = maildir.pending_uids()

    assert [maildir_uid(names[i]) for i in (1, 0, 2)] == pending


def test_maildir_pending_uids_includes_messages_in_cur(maildir: MaildirMailbox) -> None:
    (maildir.path / "cur" / "1700000000.M1P1.host:2,S").write_bytes(message(1))

    assert [maildir_uid("1700000000.M1P1.host")] == maildir.pending_uids()


def test_maildir_fetch_returns_the_delivered_bytes(maildir: MaildirMailbox) -> None:
    data = message(1, body="Sessió plenària\n".encode())
    deliver(maildir.path, "1700000000.M1P1.host", data)
    [uid] = maildir.pending_uids()

    [fetched] = maildir.fetch([uid])

    assert (uid, data, len(data), False) == (
        fetched.uid,
        fetched.data,
        fetched.size,
        fetched.oversized,
    )


def test_maildir_fetch_gives_the_file_time_as_aware_utc(
    maildir: MaildirMailbox,
) -> None:
    arrived = datetime(2024, 3, 5, 8, 30, 15, tzinfo=UTC)
    deliver(maildir.path, "1700000000.M1P1.host", message(1), arrived=arrived)
    [uid] = maildir.pending_uids()

    [fetched] = maildir.fetch([uid])

    assert (arrived, UTC) == (fetched.arrived, fetched.arrived.tzinfo)


def test_maildir_fetch_of_an_oversized_message_gives_its_header_only(
    tmp_path: Path,
) -> None:
    data = message(1, body=b"x" * 5000 + b"\n")
    header = data[: data.index(b"\r\n\r\n") + 4]
    config = MaildirConfig(path=tmp_path / "mail", max_message_bytes=1024)
    deliver(config.path, "1700000000.M1P1.host", data)

    with MaildirMailbox(config) as mailbox:
        [fetched] = mailbox.fetch(mailbox.pending_uids())

    assert (header, len(data), True) == (fetched.data, fetched.size, fetched.oversized)


def test_maildir_fetch_yields_every_message_in_the_order_asked(
    maildir: MaildirMailbox,
) -> None:
    data = [message(n) for n in range(5)]
    for number, item in enumerate(data):
        deliver(maildir.path, f"17000000{number:02d}.M{number}P1.host", item)

    fetched = [m.data for m in maildir.fetch(maildir.pending_uids())]

    assert data == fetched


def test_maildir_fetch_skips_a_message_no_longer_there(
    maildir: MaildirMailbox,
) -> None:
    deliver(maildir.path, "1700000000.M1P1.host", message(1))
    gone = deliver(maildir.path, "1700000001.M2P1.host", message(2))
    uids = maildir.pending_uids()
    gone.unlink()

    fetched = [m.data for m in maildir.fetch(uids)]

    assert [message(1)] == fetched


@pytest.mark.parametrize(
    ("folder", "name"),
    [
        (Folder.PROCESSED, ".Processed"),
        (Folder.QUARANTINE, ".Quarantine"),
        (Folder.PEOPLE, ".Support"),
    ],
)
def test_maildir_file_moves_messages_into_the_folder(
    maildir: MaildirMailbox, folder: Folder, name: str
) -> None:
    deliver(maildir.path, "1700000000.M1P1.host", message(1))
    maildir.path.joinpath("cur", "1700000001.M2P1.host:2,S").write_bytes(message(2))

    maildir.file(maildir.pending_uids(), folder)

    filed = sorted(p.name for p in (maildir.path / name / "cur").iterdir())
    assert ([], ["1700000000.M1P1.host:2,", "1700000001.M2P1.host:2,S"]) == (
        maildir.pending_uids(),
        filed,
    )


def test_maildir_file_uses_the_given_folder_names(tmp_path: Path) -> None:
    root = tmp_path / "mail"
    deliver(root, "1700000000.M1P1.host", message(1))
    folders = {
        Folder.PROCESSED: "Fet",
        Folder.QUARANTINE: "Quarantena",
        Folder.PEOPLE: "Persones",
    }

    with MaildirMailbox(MaildirConfig(path=root), folders=folders) as mailbox:
        mailbox.file(mailbox.pending_uids(), Folder.PEOPLE)

    assert [message(1)] == [p.read_bytes() for p in (root / ".Persones/cur").iterdir()]


def test_maildir_uids_and_uidvalidity_survive_reopening(tmp_path: Path) -> None:
    config = MaildirConfig(path=tmp_path / "mail")
    deliver(config.path, "1700000000.M1P1.host", message(1))
    with MaildirMailbox(config) as first:
        before = (first.uidvalidity(), first.pending_uids())

    with MaildirMailbox(config) as second:
        after = (second.uidvalidity(), second.pending_uids())

    assert before == after


def test_maildir_wait_sleeps_at_most_the_poll_interval(tmp_path: Path) -> None:
    config = MaildirConfig(path=tmp_path / "mail", poll_seconds=1)
    with MaildirMailbox(config) as mailbox:
        started = time.monotonic()
        new_mail = mailbox.wait(0.2)
        elapsed = time.monotonic() - started

    assert (True, True) == (new_mail, 0.15 < elapsed < 0.9)


def test_maildir_used_before_open_raises_mailbox_error(tmp_path: Path) -> None:
    with pytest.raises(MailboxError):
        MaildirMailbox(MaildirConfig(path=tmp_path / "mail")).pending_uids()


def test_maildir_that_cannot_be_made_raises_mailbox_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_bytes(b"")

    with pytest.raises(MailboxError):
        MaildirMailbox(MaildirConfig(path=blocker / "mail")).open()


# UIDs of Maildir files


def test_maildir_uid_ignores_the_flags() -> None:
    assert maildir_uid("1700000000.M1P1.host") == maildir_uid(
        "1700000000.M1P1.host:2,RS"
    )


def test_maildir_uid_fits_in_63_bits() -> None:
    uids = [maildir_uid(f"4294967295.M{n}P1.host") for n in range(100)]

    assert [] == [uid for uid in uids if not 0 <= uid < 2**63]


def test_maildir_uid_orders_by_the_delivery_second() -> None:
    earlier = maildir_uid("1700000000.Mzzzz.host")
    later = maildir_uid("1700000001.M0000.host")

    assert earlier < later


def test_maildir_uid_of_a_name_without_a_time_is_still_distinct() -> None:
    names = [f"message-{n}" for n in range(1000)]

    assert len(names) == len({maildir_uid(name) for name in names})


# Choosing the mailbox


def test_open_mailbox_gives_a_maildir_mailbox_for_maildir_config(
    tmp_path: Path,
) -> None:
    mailbox = open_mailbox(MaildirConfig(path=tmp_path))

    assert isinstance(mailbox, MaildirMailbox)


def test_open_mailbox_gives_an_imap_mailbox_for_imap_config() -> None:
    mailbox = open_mailbox(ImapConfig(host="127.0.0.1"))

    assert isinstance(mailbox, ImapMailbox)


def test_maildir_names_without_a_delivery_second_keep_arrival_order(
    tmp_path: Path,
) -> None:
    config = MaildirConfig(path=tmp_path / "mail")
    names = ["zzz-first", "aaa-second", "mmm-third"]
    with MaildirMailbox(config) as maildir:
        for offset, name in enumerate(names):
            path = tmp_path / "mail" / "new" / name
            path.write_bytes(b"Subject: x\r\n\r\nx\r\n")
            os.utime(path, (1_700_000_000 + offset, 1_700_000_000 + offset))

        pending = maildir.pending_uids()

    assert [
        maildir_uid(n, delivered=1_700_000_000 + i) for i, n in enumerate(names)
    ] == (pending)
