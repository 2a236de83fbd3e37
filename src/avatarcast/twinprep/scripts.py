"""The script the host reads for a twin recording: phonetically rich, in the stream's language.

Every viseme class appears several times in stressed and unstressed positions (lip closures,
lip-teeth, rounded and spread vowels, wide-open vowels), so each gets a patch cut from a clear
instance. The recording starts with five seconds of silence, mouth closed and relaxed: that is
where the idle loop comes from.
"""

from __future__ import annotations

from avatarcast.errors import UnknownNameError

__all__ = ["SCRIPTS", "reading_script"]

SCRIPTS: dict[str, str] = {
    "en": (
        "Hello and welcome, my name is on the screen. "
        "Big bright boxes of fresh papaya may be for you. "
        "Five very fine voices offer seven fair vases. "
        "Think of the thousand things they gathered there. "
        "Look at the cool blue shoes we chose for you today. "
        "She shares cheap cheese and jam in June. "
        "Our red rugs are really rather nice. "
        "Father saw a large calm car on the farm. "
        "See the sea breeze, it is easy, eat and sleep. "
        "Go slowly over the old stone road, oh no. "
        "Quick: get a good coat, the cat caught a goose. "
        "Yes, every bed and every pet gets ten fresh eggs. "
        "Thank you for watching, see you soon."
    ),
    "nl": (
        "Hallo en welkom, mijn naam staat in beeld. "
        "Mooie bruine pakken passen bij elke maat. "
        "Vijf vrolijke vissers varen vlak voor de wind. "
        "De koele blauwe schoenen zijn voor u gekozen. "
        "Zij zoekt zes zachte sokken en zeep. "
        "Rode rozen ruiken heerlijk in de regen. "
        "Vader maakt graag lange wandelingen langs het water. "
        "Zie de zee, het is heel fijn, eet en slaap. "
        "Oom Joop woont op de oude boot bij de boom. "
        "Kijk, goede koffie kost geen geld vandaag. "
        "Elke week leest Eva tien nieuwe teksten. "
        "Uw duif zit nu op het dak van de hut. "
        "Dank u wel voor het kijken, tot snel."
    ),
}


def reading_script(lang: str) -> str:
    """The text to read for ``lang`` (``en`` or ``nl``)."""
    text = SCRIPTS.get(lang.split("-")[0].lower())
    if text is None:
        raise UnknownNameError("script language", lang, list(SCRIPTS), field="script_lang")
    return text
