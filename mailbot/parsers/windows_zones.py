"""Outlook and Exchange display names of time zones, by their city lists.

Windows shows a zone as ``(UTC+01:00) Brussels, Copenhagen, Madrid, Paris``
and writes that text, translated to the user's language, as the TZID. The
keys below are the city lists (English, Spanish, Catalan); the values are
Windows zone IDs, which icalendar's CLDR table turns into IANA names. The
order of the cities, accents, case and punctuation do not matter.
"""

from __future__ import annotations

DISPLAY_NAMES: dict[str, str] = {
    # Romance Standard Time: Madrid, Paris, Brussels, Copenhagen.
    "Brussels, Copenhagen, Madrid, Paris": "Romance Standard Time",
    "Bruselas, Copenhague, Madrid, París": "Romance Standard Time",
    "Brussel·les, Copenhaguen, Madrid, París": "Romance Standard Time",
    "Romance": "Romance Standard Time",
    # W. Europe Standard Time.
    "Amsterdam, Berlin, Bern, Rome, Stockholm, Vienna": "W. Europe Standard Time",
    "Ámsterdam, Berlín, Berna, Roma, Estocolmo, Viena": "W. Europe Standard Time",
    "Amsterdam, Berlín, Berna, Roma, Estocolm, Viena": "W. Europe Standard Time",
    # Central Europe Standard Time.
    "Belgrade, Bratislava, Budapest, Ljubljana, Prague": (
        "Central Europe Standard Time"
    ),
    "Belgrado, Bratislava, Budapest, Liubliana, Praga": (
        "Central Europe Standard Time"
    ),
    "Belgrad, Bratislava, Budapest, Ljubljana, Praga": ("Central Europe Standard Time"),
    # Central European Standard Time.
    "Sarajevo, Skopje, Warsaw, Zagreb": "Central European Standard Time",
    "Sarajevo, Skopje, Varsovia, Zagreb": "Central European Standard Time",
    "Sarajevo, Skopje, Varsòvia, Zagreb": "Central European Standard Time",
    # West Central Africa.
    "West Central Africa": "W. Central Africa Standard Time",
    "África central occidental": "W. Central Africa Standard Time",
    # GMT Standard Time: London, Lisbon, and the Canary Islands' rules.
    "Dublin, Edinburgh, Lisbon, London": "GMT Standard Time",
    "Dublín, Edimburgo, Lisboa, Londres": "GMT Standard Time",
    "Dublín, Edimburg, Lisboa, Londres": "GMT Standard Time",
    "Greenwich Mean Time : Dublin, Edinburgh, Lisbon, London": "GMT Standard Time",
    "Monrovia, Reykjavik": "Greenwich Standard Time",
    "Monrovia, Reikiavik": "Greenwich Standard Time",
    "Casablanca": "Morocco Standard Time",
    "Coordinated Universal Time": "UTC",
    "Hora universal coordinada": "UTC",
    "Tiempo universal coordinado": "UTC",
    "Temps universal coordinat": "UTC",
    "Azores": "Azores Standard Time",
    "Cabo Verde": "Cape Verde Standard Time",
    "Cape Verde Is.": "Cape Verde Standard Time",
    # Eastern Europe.
    "Helsinki, Kyiv, Riga, Sofia, Tallinn, Vilnius": "FLE Standard Time",
    "Helsinki, Kiev, Riga, Sofia, Tallinn, Vilnius": "FLE Standard Time",
    "Helsinki, Kiev, Riga, Sofía, Tallin, Vilna": "FLE Standard Time",
    "Hèlsinki, Kíiv, Riga, Sofia, Tallinn, Vílnius": "FLE Standard Time",
    "Athens, Bucharest": "GTB Standard Time",
    "Atenas, Bucarest": "GTB Standard Time",
    "Atenes, Bucarest": "GTB Standard Time",
    "Moscow, St. Petersburg": "Russian Standard Time",
    # The Americas.
    "Eastern Time (US & Canada)": "Eastern Standard Time",
    "Hora del este (EE.UU. y Canadá)": "Eastern Standard Time",
    "Central Time (US & Canada)": "Central Standard Time",
    "Hora central (EE.UU. y Canadá)": "Central Standard Time",
    "Mountain Time (US & Canada)": "Mountain Standard Time",
    "Pacific Time (US & Canada)": "Pacific Standard Time",
    "Hora del Pacífico (EE.UU. y Canadá)": "Pacific Standard Time",
    "Atlantic Time (Canada)": "Atlantic Standard Time",
    "Brasilia": "E. South America Standard Time",
    "Brasília": "E. South America Standard Time",
    # Asia and Oceania.
    "Bangkok, Hanoi, Jakarta": "SE Asia Standard Time",
    "Canberra, Melbourne, Sydney": "AUS Eastern Standard Time",
}
