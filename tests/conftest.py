"""Fixtures that start the real IMAP and SMTP servers integration tests use."""

from collections.abc import Iterator

import pytest

from tests.servers import DovecotServer, DovecotUnavailableError, ImapAccount, SmtpSink


@pytest.fixture(scope="session")
def dovecot() -> Iterator[DovecotServer]:
    """One Dovecot instance for the whole session, removed at the end."""
    try:
        server = DovecotServer()
    except DovecotUnavailableError as error:
        pytest.fail(str(error), pytrace=False)
    with server:
        yield server


@pytest.fixture
def imap_account(dovecot: DovecotServer) -> ImapAccount:
    """A new user of the session's Dovecot, with an empty mailbox."""
    return dovecot.new_account()


@pytest.fixture
def smtp_sink() -> Iterator[SmtpSink]:
    """A running SMTP sink on a free loopback port, stopped after the test."""
    with SmtpSink() as sink:
        yield sink
