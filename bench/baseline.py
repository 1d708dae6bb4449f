"""The mailbox's own speed: fetch every message of a folder and parse its calendar.

Run as ``python -m bench.baseline HOST PORT USERNAME FOLDER`` with the password
in ``BENCH_IMAP_PASSWORD``; prints the number of messages and of calendars.
No rules, no database, no replies: the floor mailbot's throughput is set against.
"""

from __future__ import annotations

import email
import os
import sys

import imapclient
from icalendar import Calendar

BATCH = 50  # as mailbot's default imap.batch_size
CALENDAR_TYPES = ("text/calendar", "application/ics")


def read_folder(
    host: str, port: int, username: str, password: str, folder: str
) -> tuple[int, int]:
    """Fetch and parse every message of ``folder``; return (messages, calendars)."""
    messages = calendars = 0
    with imapclient.IMAPClient(host, port=port, ssl=False, timeout=30) as client:
        client.login(username, password)
        client.select_folder(folder, readonly=True)
        uids = sorted(client.search("ALL"))
        for start in range(0, len(uids), BATCH):
            batch = uids[start : start + BATCH]
            fetched = client.fetch(batch, ["BODY.PEEK[]", "INTERNALDATE"])
            for uid in batch:
                message = email.message_from_bytes(fetched[uid][b"BODY[]"])
                messages += 1
                for part in message.walk():
                    if part.get_content_type() in CALENDAR_TYPES:
                        payload = part.get_payload(decode=True)
                        assert isinstance(payload, bytes)
                        Calendar.from_ical(payload)
                        calendars += 1
                        break
    return messages, calendars


def main(argv: list[str]) -> int:
    host, port, username, folder = argv
    password = os.environ["BENCH_IMAP_PASSWORD"]
    messages, calendars = read_folder(host, int(port), username, password, folder)
    print(f"{messages} {calendars}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
