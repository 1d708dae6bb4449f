"""The configuration file: what is accepted, and errors that name key and file."""

from __future__ import annotations

from pathlib import Path

import pytest

from mailbot.config import (
    ImapConfig,
    MaildirConfig,
    OutboxConfig,
    SmtpConfig,
    load_config,
)
from mailbot.errors import ConfigError

EXAMPLE = Path(__file__).parent.parent / "config.example.toml"

MINIMAL = """
[service]
address = "localretmeet@webfine.com"
support = ["suport@localret.cat"]

[licenses]
pool = ["adv-01"]

[maildir]
path = "mail"

[outbox]
maildir = "out"
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "mailbot.toml"
    path.write_text(text, encoding="utf-8")
    return path


def error_for(tmp_path: Path, text: str) -> ConfigError:
    with pytest.raises(ConfigError) as caught:
        load_config(write(tmp_path, text))
    return caught.value


def test_example_file_is_valid_and_uses_every_documented_key() -> None:
    config = load_config(EXAMPLE)

    assert isinstance(config.mailbox, ImapConfig)
    assert isinstance(config.transport, SmtpConfig)
    assert config.service.timezone == "Europe/Madrid"
    assert config.rules.min_notice_hours == 24
    assert config.rules.max_participants == 300
    assert len(config.pool) >= 1


def test_minimal_file_gets_the_spec_defaults(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, MINIMAL))

    assert config.rules.setup_minutes == 30
    assert config.rules.overrun_minutes == 30
    assert config.rules.horizon_months == 12
    assert config.service.language == "ca"
    assert config.message_id_domain == "webfine.com"


def test_relative_paths_are_relative_to_the_file(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, MINIMAL))

    assert isinstance(config.mailbox, MaildirConfig)
    assert tmp_path / "mail" == config.mailbox.path
    assert isinstance(config.transport, OutboxConfig)
    assert tmp_path / "out" == config.transport.maildir
    assert tmp_path / "var" / "mailbot.sqlite3" == config.database


def test_missing_file_names_the_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        load_config(tmp_path / "absent.toml")

    assert "absent.toml" in str(caught.value)


def test_bad_toml_names_the_file(tmp_path: Path) -> None:
    error = error_for(tmp_path, "[service\n")

    assert "mailbot.toml" in str(error)
    assert "TOML" in str(error)


def test_wrong_type_names_key_and_file(tmp_path: Path) -> None:
    error = error_for(
        tmp_path,
        MINIMAL.replace("[licenses]", "[rules]\nmin_notice_hours = 'x'\n[licenses]"),
    )

    assert "rules.min_notice_hours" == error.key
    assert str(tmp_path / "mailbot.toml") == error.path


def test_unknown_key_is_refused(tmp_path: Path) -> None:
    error = error_for(tmp_path, MINIMAL.replace("[maildir]", "[maildir]\npaht = 'x'"))

    assert "maildir.paht" == error.key


def test_password_in_the_file_is_refused(tmp_path: Path) -> None:
    text = MINIMAL.replace(
        '[maildir]\npath = "mail"',
        '[imap]\nhost = "127.0.0.1"\npassword = "hunter2"',
    )

    error = error_for(tmp_path, text)

    assert "imap.password" == error.key
    assert "hunter2" not in str(error)


def test_both_mailboxes_are_refused(tmp_path: Path) -> None:
    error = error_for(tmp_path, MINIMAL + '\n[imap]\nhost = "127.0.0.1"\n')

    assert "imap" == error.key


def test_bad_tls_mode_is_refused(tmp_path: Path) -> None:
    text = MINIMAL.replace(
        '[outbox]\nmaildir = "out"', '[smtp]\nhost = "127.0.0.1"\ntls = "yes"'
    )

    error = error_for(tmp_path, text)

    assert "smtp.tls" == error.key


def test_unknown_time_zone_is_refused(tmp_path: Path) -> None:
    text = MINIMAL.replace("[service]", '[service]\ntimezone = "Europe/Atlantis"')

    error = error_for(tmp_path, text)

    assert "service.timezone" == error.key


def test_empty_pool_is_refused(tmp_path: Path) -> None:
    error = error_for(tmp_path, MINIMAL.replace('["adv-01"]', "[]"))

    assert "licenses.pool" == error.key


def test_bad_support_address_is_refused(tmp_path: Path) -> None:
    error = error_for(tmp_path, MINIMAL.replace("suport@localret.cat", "suport"))

    assert "service.support" == error.key


def test_secret_is_read_from_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    text = MINIMAL.replace(
        '[maildir]\npath = "mail"',
        '[imap]\nhost = "127.0.0.1"\npassword_env = "MAILBOT_TEST_PW"',
    )
    config = load_config(write(tmp_path, text))
    monkeypatch.setenv("MAILBOT_TEST_PW", "s3cret")

    assert isinstance(config.mailbox, ImapConfig)
    assert "s3cret" == config.mailbox.password.read()
    assert "s3cret" not in repr(config)


def test_unset_secret_variable_is_a_config_error(tmp_path: Path) -> None:
    text = MINIMAL.replace(
        '[maildir]\npath = "mail"',
        '[imap]\nhost = "127.0.0.1"\npassword_env = "MAILBOT_TEST_UNSET_PW"',
    )
    config = load_config(write(tmp_path, text))

    assert isinstance(config.mailbox, ImapConfig)
    with pytest.raises(ConfigError, match="MAILBOT_TEST_UNSET_PW"):
        config.mailbox.password.read()


def test_absurdly_large_rule_values_are_refused(tmp_path: Path) -> None:
    text = MINIMAL.replace(
        "[licenses]", "[rules]\nmin_notice_hours = 99999999999\n[licenses]"
    )

    error = error_for(tmp_path, text)

    assert "rules.min_notice_hours" == error.key


def test_absurd_timeout_is_refused(tmp_path: Path) -> None:
    text = MINIMAL.replace(
        '[maildir]\npath = "mail"',
        '[imap]\nhost = "127.0.0.1"\nread_timeout = 1e300',
    )

    error = error_for(tmp_path, text)

    assert "imap.read_timeout" == error.key


def test_file_that_is_not_utf8_is_a_config_error(tmp_path: Path) -> None:
    path = tmp_path / "mailbot.toml"
    path.write_bytes(b'[service]\naddress = "\xff\xfe"\n')

    with pytest.raises(ConfigError, match="UTF-8"):
        load_config(path)
