"""How replies leave: the SMTP transport and the Maildir outbox that writes them."""

from __future__ import annotations

import asyncio
import logging
import os
import re
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Protocol

import aiosmtplib

from mailbot.config import OutboxConfig, SmtpConfig
from mailbot.errors import DeliveryError

log = logging.getLogger("mailbot.outbox")

# A kept connection used more recently than this is trusted without a NOOP.
NOOP_AFTER = 5.0  # seconds


class Transport(Protocol):
    """Hands one reply at a time to whatever carries it on."""

    def send(
        self, message: bytes, *, recipients: Sequence[str], message_id: str
    ) -> str:
        """Send ``message`` with an empty envelope sender; return the answer text.

        Raises DeliveryError, ``permanent`` when retrying cannot help.
        """

    def close(self) -> None:
        """Let go of the connection; never raises."""


def open_transport(config: SmtpConfig | OutboxConfig) -> Transport:
    """The transport the configuration names; it connects when first used."""
    if isinstance(config, OutboxConfig):
        return MaildirTransport(config)
    return SmtpTransport(config)


class SmtpTransport:
    """An SMTP submission server, through aiosmtplib.

    One event loop and one connection serve every send until ``close``; a
    connection that failed is dropped and made again on the next send.  A
    connection idle for ``noop_after`` seconds or more is checked with NOOP
    first; one used more recently is only checked for a close the server has
    already announced, which costs no round trip.
    Replies go with the empty envelope sender (``MAIL FROM:<>``) that
    RFC 3834 asks of automatic replies.
    """

    def __init__(self, config: SmtpConfig, *, noop_after: float = NOOP_AFTER) -> None:
        self.config = config
        self.noop_after = noop_after
        self._runner = asyncio.Runner()
        self._smtp: aiosmtplib.SMTP | None = None
        self._used = 0.0  # time.monotonic() of the last answer on the connection

    def send(
        self, message: bytes, *, recipients: Sequence[str], message_id: str
    ) -> str:
        if not recipients:
            raise DeliveryError(f"{message_id}: no recipients", permanent=True)
        try:
            return self._runner.run(self._send(message, list(recipients), message_id))
        except DeliveryError:
            self._drop()
            raise

    def close(self) -> None:
        smtp, self._smtp = self._smtp, None
        if smtp is not None and smtp.is_connected:
            try:
                self._runner.run(smtp.quit(timeout=self.config.timeout))
            except (aiosmtplib.SMTPException, OSError) as exc:
                log.debug("QUIT failed: %s", exc)
                smtp.close()
        self._runner.close()

    async def _send(
        self, message: bytes, recipients: list[str], message_id: str
    ) -> str:
        where = f"{self.config.host}:{self.config.port}"
        try:
            smtp = await self._connected()
            options = []
            if not message.isascii() and smtp.supports_extension("8bitmime"):
                options.append("BODY=8BITMIME")
            if any(not address.isascii() for address in recipients):
                options.append("SMTPUTF8")
            refused, answer = await smtp.sendmail(
                "", recipients, message, mail_options=options
            )
            self._used = time.monotonic()
        except aiosmtplib.SMTPRecipientsRefused as exc:
            permanent = all(item.code >= 500 for item in exc.recipients)
            detail = "; ".join(
                f"{item.recipient}: {item.code} {item.message}"
                for item in exc.recipients
            )
            raise DeliveryError(
                f"{message_id}: {where} refused every recipient: {detail}",
                permanent=permanent,
            ) from exc
        except aiosmtplib.SMTPAuthenticationError as exc:
            # The reply is fine; the credentials are not: retry once they are fixed.
            raise DeliveryError(
                f"{message_id}: login on {where} refused: {exc.code} {exc.message}"
            ) from exc
        except aiosmtplib.SMTPResponseException as exc:
            raise DeliveryError(
                f"{message_id}: {where} answered {exc.code} {exc.message}",
                permanent=exc.code >= 500,
            ) from exc
        except aiosmtplib.SMTPNotSupported as exc:
            raise DeliveryError(
                f"{message_id}: {where}: {exc}", permanent=True
            ) from exc
        except ValueError as exc:
            raise DeliveryError(f"{message_id}: {exc}", permanent=True) from exc
        except (aiosmtplib.SMTPException, OSError) as exc:
            detail = str(exc) or type(exc).__name__
            raise DeliveryError(f"{message_id}: {where}: {detail}") from exc

        log.debug("%s accepted by %s: %s", message_id, where, answer)
        if refused:
            answer += "; refused: " + "; ".join(
                f"{address}: {response.code} {response.message}"
                for address, response in refused.items()
            )
        return answer

    async def _connected(self) -> aiosmtplib.SMTP:
        if self._smtp is not None and time.monotonic() - self._used < self.noop_after:
            # Let the loop read what arrived meanwhile (a 421 and the close).
            for _ in range(2):
                await asyncio.sleep(0)
            if self._smtp.is_connected:
                return self._smtp
        if self._smtp is not None and self._smtp.is_connected:
            # A kept connection may have been dropped by the server meanwhile:
            # find out with NOOP, before any of the message is on its way.
            try:
                await self._smtp.noop()
                self._used = time.monotonic()
                return self._smtp
            except (aiosmtplib.SMTPException, OSError) as exc:
                log.debug("kept connection is gone (%s); connecting again", exc)
                self._drop()
        config = self.config
        smtp = aiosmtplib.SMTP(
            hostname=config.host,
            port=config.port,
            timeout=config.timeout,
            use_tls=config.tls == "ssl",
            start_tls=config.tls == "starttls",
        )
        await smtp.connect()
        if smtp.is_ehlo_or_helo_needed:
            await smtp.ehlo()
        if config.username:
            try:
                await smtp.login(config.username, config.password.read())
            except BaseException:
                smtp.close()
                raise
        log.debug("connected to %s:%s", config.host, config.port)
        self._smtp = smtp
        self._used = time.monotonic()
        return smtp

    def _drop(self) -> None:
        smtp, self._smtp = self._smtp, None
        if smtp is not None:
            smtp.close()


class MaildirTransport:
    """Writes each reply into a Maildir's new/ instead of sending it.

    The file holds the message exactly as it would have been sent; its name
    carries the Message-ID, made safe for a file name.
    """

    def __init__(self, config: OutboxConfig) -> None:
        self.path = Path(config.maildir)
        self._count = 0

    def send(
        self, message: bytes, *, recipients: Sequence[str], message_id: str
    ) -> str:
        self._count += 1
        safe = _SAFE_NAME.sub("_", message_id.strip("<>"))[:120]
        name = f"{time.time_ns()}.P{os.getpid()}Q{self._count}.{safe}"
        try:
            for sub in ("tmp", "new", "cur"):
                (self.path / sub).mkdir(parents=True, exist_ok=True)
            aside = self.path / "tmp" / name
            with aside.open("xb") as handle:
                handle.write(message)
                handle.flush()
                os.fsync(handle.fileno())
            os.rename(aside, self.path / "new" / name)
        except OSError as exc:
            raise DeliveryError(
                f"{message_id}: cannot write to the outbox {self.path}: {exc.strerror}"
            ) from exc
        log.debug("%s written for %s as %s", message_id, ", ".join(recipients), name)
        return f"written to {self.path / 'new' / name}"

    def close(self) -> None:
        """Nothing to let go of."""


# What of a Message-ID may go into a Maildir file name: no '/', no ':' (flags).
_SAFE_NAME = re.compile(r"[^A-Za-z0-9.@=+_-]")
