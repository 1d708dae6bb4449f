"""Real servers for integration tests: a throwaway Dovecot and an aiosmtpd sink."""

from __future__ import annotations

import asyncio
import email.policy
import grp
import itertools
import os
import pwd
import re
import secrets
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
from dataclasses import dataclass
from datetime import datetime
from email.message import EmailMessage
from email.parser import BytesParser
from pathlib import Path
from types import TracebackType
from typing import Any, Literal, Self

import imapclient
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session

LOOPBACK = "127.0.0.1"

_INSTALL_HINT = (
    "run scripts/test as root (it installs Dovecot) or `apt-get install dovecot-imapd`"
)
_SBIN_PATH = os.pathsep.join(["/usr/sbin", "/sbin", "/usr/bin", "/bin"])
_APPENDUID = re.compile(rb"\[APPENDUID \d+ (\d+)\]")
_ACCOUNT_BATCH = 200


class DovecotUnavailableError(RuntimeError):
    """Dovecot is not installed, or not a version these fixtures can configure."""


class DovecotStartError(RuntimeError):
    """A Dovecot instance did not come up; the message holds the end of its log."""


def find_program(name: str) -> str:
    """Return the full path of a Dovecot program, looking in sbin too."""
    search_path = os.pathsep.join([os.environ.get("PATH", ""), _SBIN_PATH])
    found = shutil.which(name, path=search_path)
    if found is None:
        raise DovecotUnavailableError(f"`{name}` was not found: {_INSTALL_HINT}")
    return found


def dovecot_version(dovecot: str) -> tuple[int, int]:
    """Return the (major, minor) version that `dovecot --version` reports."""
    output = subprocess.run(
        [dovecot, "--version"], capture_output=True, text=True, check=True
    ).stdout
    match = re.match(r"(\d+)\.(\d+)", output.strip())
    if match is None:
        raise DovecotUnavailableError(f"unreadable `dovecot --version`: {output!r}")
    return int(match.group(1)), int(match.group(2))


def free_port() -> int:
    """Return a loopback TCP port that nothing listened on a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((LOOPBACK, 0))
        port: int = probe.getsockname()[1]
        return port


def child_pids(parent: int) -> list[int]:
    """Return the pids of the running processes whose parent is `parent`."""
    children = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        fields_after_name = stat.rsplit(")", 1)[1].split()
        if int(fields_after_name[1]) == parent:
            children.append(int(entry.name))
    return children


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


@dataclass(frozen=True)
class ImapAccount:
    """One user of a test Dovecot, with helpers to fill and read its mailbox."""

    host: str
    port: int
    username: str
    password: str

    def client(self) -> imapclient.IMAPClient:
        """Return a connected, logged-in client; use it as a context manager."""
        client = imapclient.IMAPClient(self.host, port=self.port, ssl=False, timeout=10)
        try:
            client.login(self.username, self.password)
        except BaseException:
            client.shutdown()
            raise
        return client

    def append(
        self, folder: str, data: bytes, *, arrived: datetime | None = None
    ) -> int:
        """Store a message in `folder` (created if missing) and return its UID.

        `arrived` becomes the message's INTERNALDATE and must carry a time zone.
        """
        if arrived is not None and arrived.utcoffset() is None:
            raise ValueError("arrived must be timezone-aware")

        with self.client() as client:
            if not client.folder_exists(folder):
                client.create_folder(folder)
            response: bytes = client.append(folder, data, msg_time=arrived)

        match = _APPENDUID.search(response)
        if match is None:
            raise RuntimeError(f"APPEND answered without APPENDUID: {response!r}")
        return int(match.group(1))

    def messages(self, folder: str) -> list[bytes]:
        """Return the full messages in `folder` by UID order, [] if it is missing."""
        with self.client() as client:
            if not client.folder_exists(folder):
                return []
            client.select_folder(folder, readonly=True)
            uids = client.search("ALL")
            fetched = client.fetch(uids, ["BODY.PEEK[]"]) if uids else {}
        return [fetched[uid][b"BODY[]"] for uid in sorted(fetched)]

    def folders(self) -> list[str]:
        """Return the names of the account's folders."""
        with self.client() as client:
            return [name for _flags, _delimiter, name in client.list_folders()]


class DovecotServer:
    """A private Dovecot 2.3 instance on a loopback port, in a temporary directory.

    As root, its processes run as `nobody`; otherwise as the current user.
    """

    def __init__(self, *, idle_notify_seconds: int = 5) -> None:
        self._dovecot = find_program("dovecot")
        self._doveadm = find_program("doveadm")
        version = dovecot_version(self._dovecot)
        if version != (2, 3):
            raise DovecotUnavailableError(
                f"Dovecot {version[0]}.{version[1]} is installed, but these "
                "fixtures write Dovecot 2.3 configuration only: Dovecot 2.4 and "
                "later are not supported yet"
            )

        self.host = LOOPBACK
        self.port = free_port()
        self._idle_notify_seconds = idle_notify_seconds
        self._process: subprocess.Popen[bytes] | None = None
        self._user_numbers = itertools.count(1)
        self._spare_accounts: list[tuple[str, str]] = []

        self.root = Path(tempfile.mkdtemp(prefix="mailbot-dovecot-"))
        self.config_path = self.root / "dovecot.conf"
        self.log_path = self.root / "dovecot.log"
        self.passwd_path = self.root / "passwd"
        self._stderr_path = self.root / "dovecot.stderr"
        self._prepare_directory()

    @property
    def pid(self) -> int | None:
        """The master process id while the instance runs."""
        return None if self._process is None else self._process.pid

    def _prepare_directory(self) -> None:
        if os.geteuid() == 0:
            account = pwd.getpwnam("nobody")
        else:
            account = pwd.getpwuid(os.geteuid())
        uid, gid = account.pw_uid, account.pw_gid

        self.root.chmod(0o755)
        for name in ("state", "mail", "home"):
            (self.root / name).mkdir(mode=0o755)
        for name in ("mail", "home"):
            os.chown(self.root / name, uid, gid)
        self.passwd_path.touch(mode=0o644)

        self.config_path.write_text(
            _DOVECOT_23_CONFIG.format(
                instance=self.root.name,
                root=self.root,
                user=account.pw_name,
                group=grp.getgrgid(gid).gr_name,
                uid=uid,
                gid=gid,
                port=self.port,
                idle_notify=self._idle_notify_seconds,
                passwd=self.passwd_path,
                loopback=LOOPBACK,
            )
        )

    def start(self, *, timeout: float = 15.0) -> None:
        """Start the instance and wait until its IMAP port greets."""
        if self._process is not None:
            raise RuntimeError("Dovecot is already running")

        with self._stderr_path.open("wb") as stderr:
            self._process = subprocess.Popen(
                [self._dovecot, "-F", "-c", str(self.config_path)],
                stdin=subprocess.DEVNULL,
                stdout=stderr,
                stderr=stderr,
            )

        deadline = time.monotonic() + timeout
        while not self._greets():
            if self._process.poll() is not None:
                self._process = None
                raise DovecotStartError(f"Dovecot exited at start\n{self._log_tail()}")
            if time.monotonic() > deadline:
                self.stop()
                raise DovecotStartError(
                    f"Dovecot did not answer on port {self.port} within "
                    f"{timeout:g} s\n{self._log_tail()}"
                )
            time.sleep(0.05)

    def _greets(self) -> bool:
        try:
            with socket.create_connection((self.host, self.port), timeout=2) as conn:
                return conn.recv(4).startswith(b"* OK")
        except OSError:
            return False

    def _log_tail(self, lines: int = 20) -> str:
        texts = []
        for path in (self._stderr_path, self.log_path):
            if path.exists():
                tail = path.read_text(errors="replace").splitlines()[-lines:]
                texts.append(f"--- {path.name}\n" + "\n".join(tail))
        return "\n".join(texts) or "(Dovecot wrote no log)"

    def stop(self, *, timeout: float = 15.0) -> None:
        """Stop the instance and wait until all its processes are gone."""
        process = self._process
        if process is None:
            return
        self._process = None

        children = child_pids(process.pid)
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()

        deadline = time.monotonic() + timeout
        while any(_pid_alive(pid) for pid in children):
            if time.monotonic() > deadline:
                raise RuntimeError(f"Dovecot processes outlived it: {children}")
            time.sleep(0.02)

    def restart(self) -> None:
        """Stop and start again on the same port, keeping users and mail."""
        self.stop()
        self.start()

    def close(self) -> None:
        """Stop the instance and delete its directory."""
        self.stop()
        shutil.rmtree(self.root, ignore_errors=True)

    def __enter__(self) -> Self:
        try:
            self.start()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def doveadm(
        self, *args: str, stdin: bytes | None = None, check: bool = True
    ) -> subprocess.CompletedProcess[str]:
        """Run `doveadm -c CONFIG ARGS...`; with `check`, fail on a non-zero exit."""
        command = [self._doveadm, "-c", str(self.config_path), *args]
        result = subprocess.run(command, input=stdin, capture_output=True, timeout=30)
        completed = subprocess.CompletedProcess(
            command,
            result.returncode,
            result.stdout.decode(errors="replace"),
            result.stderr.decode(errors="replace"),
        )
        if check and completed.returncode != 0:
            raise RuntimeError(
                f"{' '.join(args)} exited with {completed.returncode}: "
                f"{completed.stdout}{completed.stderr}"
            )
        return completed

    def kick(self, username: str) -> None:
        """Drop every IMAP session of `username` (fails if it had none)."""
        self.doveadm("kick", username)

    def add_user(self, username: str, password: str) -> None:
        """Add a user and, while running, wait until Dovecot accepts it."""
        self._write_users([(username, password)])
        if self._process is not None:
            self._wait_until_known(username)

    def new_account(self) -> ImapAccount:
        """Hand out a user with an empty mailbox, under a name not used before."""
        if not self._spare_accounts:
            batch = [
                (f"user{next(self._user_numbers)}", secrets.token_urlsafe(12))
                for _ in range(_ACCOUNT_BATCH)
            ]
            self._write_users(batch)
            if self._process is not None:
                self._wait_until_known(batch[-1][0])
            self._spare_accounts.extend(batch)

        username, password = self._spare_accounts.pop(0)
        return ImapAccount(self.host, self.port, username, password)

    def _write_users(self, users: list[tuple[str, str]]) -> None:
        for value in itertools.chain.from_iterable(users):
            if not value or any(char in value for char in ":\r\n"):
                raise ValueError(f"unusable in a passwd file: {value!r}")
        with self.passwd_path.open("a") as passwd:
            passwd.writelines(f"{name}:{{PLAIN}}{secret}\n" for name, secret in users)

    def _wait_until_known(self, username: str, *, timeout: float = 5.0) -> None:
        # Dovecot looks at a changed passwd file at most once a second.
        deadline = time.monotonic() + timeout
        while self.doveadm("auth", "lookup", username, check=False).returncode:
            if time.monotonic() > deadline:
                raise RuntimeError(f"Dovecot did not pick up the new user {username}")
            time.sleep(0.1)


_DOVECOT_23_CONFIG = """\
# Written by tests/servers.py for one throwaway test instance (Dovecot 2.3).
instance_name = {instance}
base_dir = {root}/run
state_dir = {root}/state
log_path = {root}/dovecot.log
protocols = imap
listen = {loopback}
ssl = no
disable_plaintext_auth = no
auth_mechanisms = plain login
auth_failure_delay = 0secs
auth_verbose = yes
default_login_user = {user}
default_internal_user = {user}
default_internal_group = {group}
first_valid_uid = {uid}
first_valid_gid = {gid}
mail_location = maildir:{root}/mail/%u
mail_fsync = never
imap_idle_notify_interval = {idle_notify} secs

passdb {{
  driver = passwd-file
  args = scheme=PLAIN username_format=%u {passwd}
}}
userdb {{
  driver = static
  args = uid={uid} gid={gid} home={root}/home/%u
}}

service imap-login {{
  chroot =
  inet_listener imap {{
    address = {loopback}
    port = {port}
  }}
  inet_listener imaps {{
    port = 0
  }}
}}
service anvil {{
  chroot =
  # No growing delay after failed logins from 127.0.0.1: tests fail logins.
  unix_listener anvil-auth-penalty {{
    mode = 0
  }}
}}
"""


@dataclass(frozen=True)
class ReceivedMail:
    """One message the SMTP sink accepted.

    `mail_from` is "" for the null sender (MAIL FROM:<>). `message` is parsed
    from `data` as it came over the wire, so its body text keeps CRLF line ends.
    """

    mail_from: str
    rcpt_tos: tuple[str, ...]
    data: bytes
    message: EmailMessage


@dataclass(frozen=True)
class _Fault:
    reply: str
    command: Literal["MAIL", "DATA"]


class _LoopbackController(Controller):
    """An aiosmtpd Controller that may bind port 0 and learns the port it got."""

    def _trigger_server(self) -> None:
        server = self.server
        assert isinstance(server, asyncio.Server)
        self.port = server.sockets[0].getsockname()[1]
        super()._trigger_server()  # type: ignore[no-untyped-call]


class _SinkHandler:
    def __init__(self, sink: SmtpSink) -> None:
        self._sink = sink

    async def handle_MAIL(
        self,
        server: SMTP,
        session: Session,
        envelope: Envelope,
        address: str,
        mail_options: list[str],
    ) -> str:
        fault = self._sink._take_fault("MAIL")
        if fault is not None:
            return fault

        envelope.mail_from = address
        envelope.mail_options.extend(mail_options)
        return "250 OK"

    async def handle_DATA(
        self, server: SMTP, session: Session, envelope: Envelope
    ) -> str:
        fault = self._sink._take_fault("DATA")
        if fault is not None:
            return fault

        data = envelope.original_content
        assert isinstance(data, bytes)
        mail_from = "" if envelope.mail_from in ("<>", None) else envelope.mail_from
        parsed = BytesParser(policy=email.policy.default).parsebytes(data)
        assert isinstance(parsed, EmailMessage)
        self._sink._record(
            ReceivedMail(mail_from, tuple(envelope.rcpt_tos), data, parsed)
        )
        # Kept, then answered late: a client that dies meanwhile never learns
        # that its message was taken (the window of RFC 1047).
        await asyncio.sleep(self._sink.answer_delay)
        return "250 OK"

    async def handle_QUIT(
        self, server: SMTP, session: Session, envelope: Envelope
    ) -> str:
        await asyncio.sleep(self._sink.answer_delay)
        return "221 Bye"


class SmtpSink:
    """A real SMTP server on loopback that keeps every message it accepts.

    `answer_delay` seconds pass between keeping a message and answering its
    DATA, and before answering QUIT: a slow server, as seen by its client.
    """

    def __init__(self, *, answer_delay: float = 0.0) -> None:
        self.answer_delay = answer_delay
        self.host = LOOPBACK
        self.port = 0
        self._controller: _LoopbackController | None = None
        self._received: list[ReceivedMail] = []
        self._faults: list[_Fault] = []
        self._changed = threading.Condition()

    @property
    def received(self) -> list[ReceivedMail]:
        """A snapshot of the messages accepted so far, oldest first."""
        with self._changed:
            return list(self._received)

    def start(self) -> None:
        """Listen on a free loopback port (on the same port again after stop)."""
        if self._controller is not None:
            raise RuntimeError("the SMTP sink is already running")
        controller = _LoopbackController(
            _SinkHandler(self), hostname=self.host, port=self.port
        )
        controller.start()
        self._controller = controller
        self.port = controller.port

    def stop(self) -> None:
        """Stop listening and end the server's thread."""
        if self._controller is not None:
            self._controller.stop()
            self._controller = None

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.stop()

    def wait_for(self, count: int, timeout: float = 10.0) -> list[ReceivedMail]:
        """Wait until at least `count` messages arrived and return them all."""
        with self._changed:
            if not self._changed.wait_for(
                lambda: len(self._received) >= count, timeout
            ):
                raise TimeoutError(
                    f"{len(self._received)} of {count} messages arrived "
                    f"within {timeout:g} s"
                )
            return list(self._received)

    def fail_next(
        self,
        code: int,
        text: str,
        *,
        count: int = 1,
        command: Literal["MAIL", "DATA"] = "DATA",
    ) -> None:
        """Answer the next `count` MAIL or DATA commands with `code text`."""
        if not 400 <= code <= 599:
            raise ValueError(f"not a failure code: {code}")
        if "\r" in text or "\n" in text:
            raise ValueError("the reply text must be one line")
        with self._changed:
            self._faults.extend([_Fault(f"{code} {text}", command)] * count)

    def _take_fault(self, command: Literal["MAIL", "DATA"]) -> str | None:
        with self._changed:
            for index, fault in enumerate(self._faults):
                if fault.command == command:
                    del self._faults[index]
                    return fault.reply
            return None

    def _record(self, mail: ReceivedMail) -> None:
        with self._changed:
            self._received.append(mail)
            self._changed.notify_all()
