"""The entity directory CSV: what is read, and errors that name the file and line."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from mailbot.directory import DirectoryError, ImportReport, import_csv, read_csv
from mailbot.models import Entity
from mailbot.store import Store

NOW = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
HEADER = "nif,name,email,senders,youtube_channel,channel_agreement,language\n"
BARCELONA = (
    "P0801900B,Ajuntament de Barcelona,Secretaria@AJBCN.example,"
    "@ajbcn.example alcaldia@ajbcn.example,https://www.youtube.com/@ajbcn,no,ca\n"
)
COMARCA = "P2500000A,Consell Comarcal de la Demo,tecnic@ccdemo.example,,,yes,es\n"


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "entities.csv"
    path.write_text(text, encoding="utf-8")
    return path


def error_for(tmp_path: Path, text: str) -> str:
    with pytest.raises(DirectoryError) as caught:
        read_csv(write(tmp_path, text))
    return str(caught.value)


def test_a_row_becomes_an_active_entity_with_its_senders(tmp_path: Path) -> None:
    entities = read_csv(write(tmp_path, HEADER + BARCELONA))

    expected = Entity(
        nif="P0801900B",
        name="Ajuntament de Barcelona",
        email="secretaria@ajbcn.example",
        language="ca",
        youtube_channel="https://www.youtube.com/@ajbcn",
        channel_agreement=False,
        status="active",
        senders=("@ajbcn.example", "alcaldia@ajbcn.example"),
        timezone="Europe/Madrid",
    )
    assert [expected] == entities


def test_only_nif_name_and_email_are_required(tmp_path: Path) -> None:
    entities = read_csv(write(tmp_path, "NIF,Name,Email\nP2500000A,Comarca,a@b.cat\n"))

    assert [("P2500000A", "ca", False, "")] == [
        (e.nif, e.language, e.channel_agreement, e.youtube_channel) for e in entities
    ]


def test_an_optional_timezone_column_is_read(tmp_path: Path) -> None:
    text = "nif,name,email,timezone\nP2500000A,Comarca,a@b.cat,Atlantic/Canary\n"

    entities = read_csv(write(tmp_path, text))

    assert ["Atlantic/Canary"] == [e.timezone for e in entities]


def test_a_header_without_email_is_refused(tmp_path: Path) -> None:
    message = error_for(tmp_path, "nif,name\nP2500000A,Comarca\n")

    assert message.endswith("entities.csv: the header lacks email")


def test_an_unknown_column_names_line_1(tmp_path: Path) -> None:
    message = error_for(tmp_path, "nif,name,email,fax\nP2500000A,C,a@b.cat,93\n")

    assert message.endswith("entities.csv, line 1: unknown column 'fax'")


def test_a_row_with_more_cells_than_columns_is_refused(tmp_path: Path) -> None:
    message = error_for(tmp_path, "nif,name,email\nP2500000A,Comarca,a@b.cat,93\n")

    assert message.endswith(
        "entities.csv, line 2: more cells than the header has columns"
    )


def test_a_row_with_fewer_cells_than_columns_is_refused(tmp_path: Path) -> None:
    message = error_for(tmp_path, HEADER + COMARCA + "P0801900B,Barcelona,a@b.cat\n")

    assert message.endswith(
        "entities.csv, line 3: 3 cells where the header has 7 columns"
        " (leave an optional one empty as an empty cell)"
    )


def test_a_row_lacking_only_its_last_optional_cell_is_refused(
    tmp_path: Path,
) -> None:
    message = error_for(tmp_path, HEADER + "P2500000A,Comarca,a@b.cat,,,yes\n")

    assert "entities.csv, line 2: 6 cells where the header has 7 columns" in message


def test_trailing_optional_columns_may_be_empty_cells(tmp_path: Path) -> None:
    entities = read_csv(write(tmp_path, HEADER + "P2500000A,Comarca,a@b.cat,,,,\n"))

    expected = Entity(nif="P2500000A", name="Comarca", email="a@b.cat")
    assert [expected] == entities


def test_line_numbers_count_blank_lines(tmp_path: Path) -> None:
    message = error_for(
        tmp_path, HEADER + "\n" + BARCELONA + "\nX1,Bad,a@b.cat,,,no,ca\n"
    )

    assert "entities.csv, line 5: nif 'X1' is not a valid NIF" in message


@pytest.mark.parametrize(
    ("row", "complaint"),
    [
        ("P0801900X,Girona,a@girona.cat,,,no,ca", "nif 'P0801900X' is not a valid NIF"),
        ("P0801900B,,a@ajbcn.example,,,no,ca", "name is empty"),
        ("P0801900B,Barcelona,ajbcn.example,,,no,ca", "email: 'ajbcn.example'"),
        (
            "P0801900B,Barcelona,a@ajbcn.example,@localhost,,no,ca",
            "senders: '@localhost'",
        ),
        ("P0801900B,Barcelona,a@ajbcn.example,,,maybe,ca", "channel_agreement"),
        ("P0801900B,Barcelona,a@ajbcn.example,,,no,fr", "language must be ca or es"),
    ],
    ids=["nif", "name", "email", "senders", "agreement", "language"],
)
def test_a_bad_cell_names_the_file_and_line(
    tmp_path: Path, row: str, complaint: str
) -> None:
    message = error_for(tmp_path, HEADER + COMARCA + row + "\n")

    assert "entities.csv, line 3: " in message
    assert complaint in message


@pytest.mark.parametrize(
    "channel",
    [
        "javascript:alert(1)",
        "https://www.youtube.com/watch?v=dQw4w9WgXcQ",
        "https://youtu.be/dQw4w9WgXcQ",
        "https://evil.example/@ajbcn",
        "ajbcn",
    ],
)
def test_a_youtube_channel_that_is_not_a_channel_address_is_refused(
    tmp_path: Path, channel: str
) -> None:
    row = f"P0801900B,Barcelona,a@ajbcn.example,,{channel},no,ca\n"

    message = error_for(tmp_path, HEADER + row)

    assert message.endswith(
        f"entities.csv, line 2: youtube_channel: {channel!r} is not"
        " a YouTube channel address (https://www.youtube.com/@name)"
    )


@pytest.mark.parametrize(
    ("channel", "stored"),
    [
        ("youtube.com/@ajbcn", "https://www.youtube.com/@ajbcn"),
        ("https://www.youtube.com/@ajbcn/videos", "https://www.youtube.com/@ajbcn"),
        ("http://m.youtube.com/c/AjBcn?sub=1", "https://www.youtube.com/c/AjBcn"),
    ],
)
def test_a_youtube_channel_is_stored_in_its_normal_form(
    tmp_path: Path, channel: str, stored: str
) -> None:
    row = f"P0801900B,Barcelona,a@ajbcn.example,,{channel},no,ca\n"

    entities = read_csv(write(tmp_path, HEADER + row))

    assert [stored] == [e.youtube_channel for e in entities]


def test_an_empty_youtube_channel_cell_means_no_channel(tmp_path: Path) -> None:
    entities = read_csv(write(tmp_path, HEADER + COMARCA))

    assert [""] == [e.youtube_channel for e in entities]


def test_importing_a_channel_not_in_its_normal_form_twice_changes_nothing(
    tmp_path: Path,
) -> None:
    store = Store(tmp_path / "db.sqlite3")
    row = "P0801900B,Barcelona,a@ajbcn.example,,youtube.com/@ajbcn/live,no,ca\n"
    import_csv(store, write(tmp_path, HEADER + row), now=NOW)

    report = import_csv(store, write(tmp_path, HEADER + row), now=NOW)

    assert ImportReport(created=0, updated=0, unchanged=1) == report
    store.close()


def test_the_same_nif_twice_is_refused(tmp_path: Path) -> None:
    message = error_for(tmp_path, HEADER + COMARCA + COMARCA)

    assert message.endswith("line 3: NIF P2500000A appears twice")


def test_one_address_cannot_book_for_two_entities(tmp_path: Path) -> None:
    other = "P0801900B,Barcelona,tecnic@ccdemo.example,,,no,ca\n"

    message = error_for(tmp_path, HEADER + COMARCA + other)

    assert message.endswith("line 3: tecnic@ccdemo.example already books for P2500000A")


def test_a_missing_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(DirectoryError) as caught:
        read_csv(tmp_path / "absent.csv")

    assert str(caught.value).endswith("absent.csv: file not found")


def test_a_file_that_is_not_utf8_is_named(tmp_path: Path) -> None:
    path = tmp_path / "latin1.csv"
    path.write_bytes(
        (HEADER + "P2500000A,Consell d'Àger,a@b.cat,,,no,ca\n").encode("latin-1")
    )

    with pytest.raises(DirectoryError) as caught:
        read_csv(path)

    assert "latin1.csv: cannot be read" in str(caught.value)


def test_import_counts_created_updated_and_unchanged(tmp_path: Path) -> None:
    store = Store(tmp_path / "db.sqlite3")
    import_csv(store, write(tmp_path, HEADER + BARCELONA + COMARCA), now=NOW)
    renamed = COMARCA.replace("Consell Comarcal", "Consell")

    report = import_csv(store, write(tmp_path, HEADER + BARCELONA + renamed), now=NOW)

    assert ImportReport(created=0, updated=1, unchanged=1) == report
    store.close()


def test_a_bad_line_leaves_the_directory_as_it_was(tmp_path: Path) -> None:
    store = Store(tmp_path / "db.sqlite3")

    with pytest.raises(DirectoryError):
        import_csv(
            store, write(tmp_path, HEADER + COMARCA + "X,Bad,a@b.cat\n"), now=NOW
        )

    assert [] == store.entities()
    store.close()
