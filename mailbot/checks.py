"""``mailbot check-config``: validate the configuration, connect, and report.

It reads nothing from the inbox and sends nothing; it only logs in, lists
what the servers offer, and says what it found.  Passwords are never shown.
"""

from __future__ import annotations

import asyncio
from typing import TextIO

import aiosmtplib

from mailbot.config import Config, ImapConfig, MaildirConfig, OutboxConfig, SmtpConfig
from mailbot.errors import MailbotError
from mailbot.mailbox import open_mailbox
from mailbot.store import Store


def check_config(config: Config, *, online: bool, out: TextIO) -> int:
    """Print a report; 0 when everything answered, 1 when something did not."""
    ok = True
    say = out.write
    say(f"configuration: {config.path} is valid\n")
    say(f"  service address: {config.service.address}\n")
    say(f"  support: {', '.join(config.service.support) or '(none)'}\n")
    say(f"  license pool: {', '.join(config.pool)} ({len(config.pool)} licenses)\n")
    rules = config.rules
    say(
        f"  rules: {rules.min_notice_hours} h notice, holds {rules.setup_minutes} min"
        f" before and {rules.overrun_minutes} min after, at most"
        f" {rules.max_participants} participants, series checked"
        f" {rules.horizon_months} months ahead\n"
    )

    try:
        store = Store(config.database)
    except Exception as exc:
        say(f"database: {config.database}: FAILED: {exc}\n")
        ok = False
    else:
        entities = store.entities()
        pending = sum(1 for e in entities if e.status == "pending")
        say(
            f"database: {config.database}: schema version {store.schema_version()},"
            f" {len(entities)} entities ({pending} awaiting confirmation),"
            f" outbox {store.outbox_counts() or 'empty'}\n"
        )
        store.close()

    if not online:
        say("connections: not tried (--offline)\n")
        return 0 if ok else 1
    ok = _check_mailbox(config, say) and ok
    ok = _check_transport(config, say) and ok
    return 0 if ok else 1


def _check_mailbox(config: Config, say: object) -> bool:
    assert callable(say)
    mailbox = config.mailbox
    if isinstance(mailbox, MaildirConfig):
        where = f"maildir {mailbox.path}"
    else:
        assert isinstance(mailbox, ImapConfig)
        where = f"imap {mailbox.username}@{mailbox.host}:{mailbox.port} ({mailbox.tls})"
    try:
        with open_mailbox(mailbox) as box:
            waiting = len(box.pending_uids())
            uidvalidity = box.uidvalidity()
            offers = ""
            capabilities = getattr(box, "capabilities", None)
            if callable(capabilities):
                offers = ", offers " + " ".join(sorted(capabilities()))
    except MailbotError as exc:
        say(f"mailbox: {where}: FAILED: {exc}\n")
        return False
    say(
        f"mailbox: {where}: logged in, {waiting} messages waiting,"
        f" UIDVALIDITY {uidvalidity}{offers}\n"
    )
    return True


def _check_transport(config: Config, say: object) -> bool:
    assert callable(say)
    transport = config.transport
    if isinstance(transport, OutboxConfig):
        say(f"replies: written to the Maildir {transport.maildir} (not sent)\n")
        return True
    assert isinstance(transport, SmtpConfig)
    where = f"smtp {transport.host}:{transport.port} ({transport.tls})"
    try:
        extensions = asyncio.run(_probe_smtp(transport))
    except (aiosmtplib.SMTPException, OSError, MailbotError) as exc:
        say(f"replies: {where}: FAILED: {exc}\n")
        return False
    login = f", logged in as {transport.username}" if transport.username else ""
    say(f"replies: {where}: answered{login}, offers {' '.join(extensions)}\n")
    return True


async def _probe_smtp(config: SmtpConfig) -> list[str]:
    smtp = aiosmtplib.SMTP(
        hostname=config.host,
        port=config.port,
        timeout=config.timeout,
        use_tls=config.tls == "ssl",
        start_tls=config.tls == "starttls",
    )
    await smtp.connect()
    try:
        if smtp.is_ehlo_or_helo_needed:
            await smtp.ehlo()
        if config.username:
            await smtp.login(config.username, config.password.read())
        return sorted(smtp.esmtp_extensions)
    finally:
        try:
            await smtp.quit()
        except (aiosmtplib.SMTPException, OSError):
            smtp.close()
