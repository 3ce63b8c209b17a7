"""The corpus phone set (ARPAbet, lower case, festival's `radio` names) and the map from espeak-ng."""

from __future__ import annotations

VOWELS = frozenset("aa ae ah ao aw ax axr ay eh er ey ih iy ow oy uh uw".split())
CONSONANTS = frozenset("b ch d dh f g hh jh k l m n ng p r s sh t th v w y z zh".split())
PHONES = tuple(sorted(VOWELS | CONSONANTS)) + ("pau",)
OPEN_VOWELS = frozenset("aa ae ao aw ay".split())
BILABIALS = frozenset("p b m".split())
LABIODENTALS = frozenset("f v".split())

# espeak-ng English phoneme mnemonics -> ARPAbet.
_ESPEAK = {
    "a": "ae", "a#": "ax", "A:": "aa", "A@": "aa", "aa": "ae", "0": "aa", "O": "ao", "O:": "ao", "O@": "ao",
    "o@": "ao", "@": "ax", "@-": "ax", "@2": "ax", "@5": "ax", "@L": "ax", "3": "axr", "3:": "er", "e@": "eh",
    "E": "eh", "eI": "ey", "i": "iy", "i:": "iy", "I": "ih", "I#": "ih", "I2": "ih", "i@": "ih", "i@3": "ih",
    "OI": "oy", "aI": "ay", "aI@": "ay", "aI3": "ay", "aU": "aw", "aU@": "aw", "oU": "ow", "oU#": "ow",
    "U": "uh", "u:": "uw", "U@": "uh", "V": "ah", "p": "p", "b": "b", "t": "t", "d": "d", "k": "k", "g": "g",
    "f": "f", "v": "v", "T": "th", "D": "dh", "s": "s", "z": "z", "S": "sh", "Z": "zh", "tS": "ch", "dZ": "jh",
    "h": "hh", "m": "m", "n": "n", "N": "ng", "l": "l", "r": "r", "w": "w", "j": "y", "t#": "t", "d#": "d",
    "n-": "n", "l/": "l", "l/2": "l", "r-": "r", "z#": "z", "?": "t", "x": "k", "_": "pau", "_:": "pau", "_!": "pau",
}


def from_espeak(name: str) -> str:
    """Map an espeak-ng phoneme mnemonic to the corpus phone set (pauses and unknowns handled)."""
    name = name.strip()
    if name in _ESPEAK:
        return _ESPEAK[name]
    stripped = name.rstrip("#0123456789/-;")
    if stripped in _ESPEAK:
        return _ESPEAK[stripped]
    if not stripped or stripped.startswith("_"):
        return "pau"
    return _ESPEAK.get(stripped[0], "ax")


def normalise(name: str) -> str:
    """Festival/flite phone names -> the corpus set (they already use it; silences become pau)."""
    name = name.lower()
    if name in ("sil", "h#", "#", "ssil", "pau"):
        return "pau"
    return name if name in VOWELS or name in CONSONANTS else "ax"
