"""The exceptions mailbot raises, all under one root.

::

    MailbotError
     ├── ConfigError (ValueError)          a key of the configuration file is wrong
     ├── InputError (ValueError)           a message cannot be read as sent
     │    ├── MimeError                    the MIME structure is broken or too large
     │    └── CalendarError                the iCalendar data is broken or too costly
     ├── MailboxError (OSError)            the IMAP server or Maildir failed
     └── DeliveryError (OSError)           the SMTP server refused or failed

Bad input never escapes the pipeline: it becomes a decision with a reason.
Configuration errors end the command with exit code 2.
"""

from __future__ import annotations


class MailbotError(Exception):
    """The root of every error mailbot raises on purpose."""


class ConfigError(MailbotError, ValueError):
    """A configuration value is missing or wrong; names the key and the file."""

    def __init__(self, message: str, *, key: str = "", path: str = "") -> None:
        self.key = key
        self.path = path
        where = ""
        if key and path:
            where = f"{path}: {key}: "
        elif key:
            where = f"{key}: "
        elif path:
            where = f"{path}: "
        super().__init__(f"{where}{message}")


class InputError(MailbotError, ValueError):
    """A message cannot be read; ``reason`` is a short code stored for auditors."""

    def __init__(self, reason: str, detail: str = "") -> None:
        self.reason = reason
        self.detail = detail
        super().__init__(f"{reason}: {detail}" if detail else reason)


class MimeError(InputError):
    """The MIME structure is broken, or larger or deeper than the caps allow."""


class CalendarError(InputError):
    """The iCalendar data is broken, or would cost more than the caps allow."""


class MailboxError(MailbotError, OSError):
    """The mailbox (IMAP server or Maildir) could not be read or changed."""


class DeliveryError(MailbotError, OSError):
    """A reply could not be handed to the SMTP server.

    ``permanent`` is true for 5xx answers, which retrying will not cure.
    """

    def __init__(self, message: str, *, permanent: bool = False) -> None:
        self.permanent = permanent
        super().__init__(message)
