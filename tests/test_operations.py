"""Operations: one INFO line per message, no password in any log, the systemd unit."""

from __future__ import annotations

import re
import secrets
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session

from tests.helpers import MAILBOT, PASSWORD_ENV, run_mailbot
from tests.mailgen import (
    SERVICE,
    auto_reply,
    entities_csv,
    google_invitation,
    outlook_invitation,
)
from tests.servers import (
    DovecotServer,
    ImapAccount,
    SmtpSink,
    _LoopbackController,
    _SinkHandler,
)

UNIT = Path(__file__).parent.parent / "contrib" / "mailbot.service"
SMTP_PASSWORD_ENV = "MAILBOT_TEST_SMTP_PASSWORD"  # noqa: S105 (a variable name)
SMTP_USER = "mailbot-submit"
INFO_LINE = re.compile(r"^\S+ \S+ INFO mailbot\.pipeline: (?P<text>.*)$")


class AuthSink(SmtpSink):
    """The test SMTP sink with AUTH (PLAIN or LOGIN) on plaintext loopback.

    It records who logged in; a wrong password is refused.
    """

    def __init__(self, username: str, password: str) -> None:
        super().__init__()
        self._credentials = (username.encode(), password.encode())
        self.logins: list[bytes] = []

    def _authenticate(
        self,
        server: SMTP,
        session: Session,
        envelope: Envelope,
        mechanism: str,
        auth_data: Any,
    ) -> AuthResult:
        if not isinstance(auth_data, LoginPassword):
            return AuthResult(success=False, handled=False)
        self.logins.append(auth_data.login)
        granted = (auth_data.login, auth_data.password) == self._credentials
        return AuthResult(success=granted)

    def start(self) -> None:
        controller = _LoopbackController(
            _SinkHandler(self),
            hostname=self.host,
            port=self.port,
            authenticator=self._authenticate,
            auth_require_tls=False,
        )
        controller.start()
        self._controller = controller
        self.port = controller.port


@pytest.fixture
def passwords() -> tuple[str, str]:
    """Distinctive passwords, so that any trace of them in a log is found."""
    return f"imap-{secrets.token_hex(12)}", f"smtp-{secrets.token_hex(12)}"


@pytest.fixture
def account(dovecot: DovecotServer, passwords: tuple[str, str]) -> ImapAccount:
    username = f"ops{secrets.token_hex(4)}"
    dovecot.add_user(username, passwords[0])
    return ImapAccount(dovecot.host, dovecot.port, username, passwords[0])


@pytest.fixture
def auth_sink(passwords: tuple[str, str]) -> Any:
    with AuthSink(SMTP_USER, passwords[1]) as sink:
        yield sink


def write_config(folder: Path, account: ImapAccount, sink: SmtpSink) -> Path:
    path = folder / "mailbot.toml"
    path.write_text(
        f"""
[service]
address = "{SERVICE}"
support = ["suport@localret.example"]

[licenses]
pool = ["adv-01", "adv-02"]

[imap]
host = "{account.host}"
port = {account.port}
tls = "none"
username = "{account.username}"
password_env = "{PASSWORD_ENV}"
connect_timeout = 5
read_timeout = 20

[smtp]
host = "{sink.host}"
port = {sink.port}
tls = "none"
username = "{SMTP_USER}"
password_env = "{SMTP_PASSWORD_ENV}"
timeout = 10

[database]
path = "mailbot.sqlite3"
""",
        encoding="utf-8",
    )
    return path


def fill_inbox(account: ImapAccount) -> list[str]:
    """Four messages of different kinds; returns their Message-IDs, no brackets."""
    from datetime import UTC, datetime, timedelta

    now = datetime.now(UTC)
    start = (now + timedelta(days=9)).replace(microsecond=0)
    local = start.replace(tzinfo=None)
    messages = [
        outlook_invitation(
            uid="ops-plenary",
            organizer="secretaria@ajbcn.example",
            summary="Ple ordinari",
            description="Ple ordinari, retransmissió pel canal propi",
            start=local,
            end=local + timedelta(hours=2),
        ),
        google_invitation(
            uid="ops-board@google.com",
            organizer="tecnic@ccdemo.example",
            summary="Junta de Govern",
            description="Junta de Govern",
            start=start + timedelta(days=1),
            end=start + timedelta(days=1, hours=1),
        ),
        google_invitation(
            uid="ops-board@google.com",
            organizer="tecnic@ccdemo.example",
            summary="Junta de Govern",
            description="Junta de Govern",
            start=start + timedelta(days=1),
            end=start + timedelta(days=1, hours=1),
            sequence=1,
            method="CANCEL",
        ),
        auto_reply(sender="secretaria@ajbcn.example", subject="Ple ordinari"),
    ]
    ids = []
    for data in messages:
        account.append("INBOX", data, arrived=now - timedelta(minutes=5))
        header = next(
            line
            for line in data.splitlines()
            if line.lower().startswith(b"message-id:")
        )
        ids.append(header.split(b":", 1)[1].strip().decode().strip("<>"))
    return ids


def run_once(
    tmp_path: Path,
    account: ImapAccount,
    sink: AuthSink,
    passwords: tuple[str, str],
    *flags: str,
) -> tuple[list[str], subprocess.CompletedProcess[str]]:
    config = write_config(tmp_path, account, sink)
    env = {PASSWORD_ENV: passwords[0], SMTP_PASSWORD_ENV: passwords[1]}
    csv = tmp_path / "entities.csv"
    csv.write_text(entities_csv(), encoding="utf-8")
    imported = run_mailbot(
        "entities", "import", str(csv), "-c", str(config), cwd=tmp_path, env=env
    )
    assert 0 == imported.returncode, imported.stderr
    ids = fill_inbox(account)

    done = run_mailbot(
        *flags, "run", "--once", "-c", str(config), cwd=tmp_path, env=env
    )

    assert 0 == done.returncode, done.stderr
    return ids, done


def pipeline_lines(stderr: str) -> list[str]:
    return [
        match["text"]
        for line in stderr.splitlines()
        if (match := INFO_LINE.match(line)) is not None
    ]


@pytest.mark.integration
@pytest.mark.parametrize("flags", [(), ("-v",)], ids=["info", "debug"])
def test_run_once_logs_one_info_line_per_message_id_first_outcome_last(
    tmp_path: Path,
    account: ImapAccount,
    auth_sink: AuthSink,
    passwords: tuple[str, str],
    flags: tuple[str, ...],
) -> None:
    ids, done = run_once(tmp_path, account, auth_sink, passwords, *flags)

    lines = pipeline_lines(done.stderr)
    assert sorted(ids) == sorted(line.split()[0] for line in lines)
    assert all(re.fullmatch(r"outcome=[a-z-]+", line.split()[-1]) for line in lines)


@pytest.mark.integration
@pytest.mark.parametrize("flags", [(), ("-v",)], ids=["info", "debug"])
def test_run_once_logs_neither_password_at_any_level(
    tmp_path: Path,
    account: ImapAccount,
    auth_sink: AuthSink,
    passwords: tuple[str, str],
    flags: tuple[str, ...],
) -> None:
    _ids, done = run_once(tmp_path, account, auth_sink, passwords, *flags)
    output = done.stdout + done.stderr

    assert [SMTP_USER.encode()] == auth_sink.logins[:1]  # the SMTP password was used
    assert 3 == len(auth_sink.received)
    assert [] == [secret for secret in passwords if secret in output]


@pytest.mark.integration
def test_debug_output_has_protocol_detail_that_info_output_lacks(
    tmp_path: Path,
    account: ImapAccount,
    auth_sink: AuthSink,
    passwords: tuple[str, str],
) -> None:
    _ids, done = run_once(tmp_path, account, auth_sink, passwords, "-v")

    assert " DEBUG " in done.stderr


def test_systemd_unit_passes_systemd_analyze_verify(tmp_path: Path) -> None:
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.skip("systemd-analyze is not installed (package systemd)")
    # verify checks that ExecStart exists: point it at the installed command.
    unit = tmp_path / "mailbot.service"
    text = UNIT.read_text(encoding="utf-8")
    unit.write_text(text.replace("/opt/mailbot/.venv/bin/mailbot", str(MAILBOT)))

    done = subprocess.run(
        [analyze, "verify", str(unit)], capture_output=True, text=True, check=False
    )

    assert (0, "") == (done.returncode, done.stderr.strip())


def test_systemd_unit_runs_the_daemon_as_a_sandboxed_simple_service() -> None:
    settings = {
        key: value
        for line in UNIT.read_text(encoding="utf-8").splitlines()
        if "=" in line and not line.startswith("#")
        for key, value in [line.split("=", 1)]
    }

    assert "simple" == settings["Type"]
    assert "mailbot" == settings["User"]
    assert "on-failure" == settings["Restart"]
    assert "strict" == settings["ProtectSystem"]
    assert "yes" == settings["NoNewPrivileges"]
    assert "yes" == settings["PrivateTmp"]
    assert "/var/lib/mailbot" == settings["ReadWritePaths"]
    assert settings["ExecStart"].endswith("mailbot run")
