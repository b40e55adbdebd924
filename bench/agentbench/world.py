"""A small synthetic world the tools answer from: made-up countries, cities, people, sensors and
handbook passages, all drawn from one seeded generator so every process builds the same world.
Made-up names keep any real model's memory (and any tokenizer's luck with common words) out of it.
"""

from __future__ import annotations

import random
import re
from collections import defaultdict

SEED = 20240611
COUNTRIES = 48
SENSORS = 64
SYSTEMS = 24

_rng = random.Random(SEED)
_ONSETS = ["b", "br", "c", "d", "dr", "f", "g", "h", "k", "l", "m", "n", "p", "r", "s", "st", "t", "tr", "v", "z"]
_VOWELS = ["a", "e", "i", "o", "u", "ai", "ei", "ou"]
_CODAS = ["", "", "n", "r", "l", "s", "th", "nd", "sk", "m"]


def _names(count: int, used: set[str]) -> list[str]:
    names = []
    while len(names) < count:
        syllables = _rng.choice((2, 2, 3))
        name = "".join(_rng.choice(_ONSETS) + _rng.choice(_VOWELS) + _rng.choice(_CODAS)
                       for _ in range(syllables)).capitalize()
        if name not in used and 5 <= len(name) <= 11:
            used.add(name)
            names.append(name)
    return names


_used: set[str] = set()
COUNTRY_NAMES = _names(COUNTRIES, _used)
CITY_NAMES = _names(COUNTRIES, _used)
GIVEN_NAMES = _names(COUNTRIES, _used)
FAMILY_NAMES = _names(COUNTRIES, _used)
SYSTEM_NAMES = _names(SYSTEMS, _used)
COMPONENTS = ["gateway", "broker", "scheduler", "ledger", "archive", "relay"]

FACTS: dict[str, str] = {}  # lower-cased query -> value
READINGS: dict[str, str] = {}


def _fact(query: str, value: object) -> None:
    FACTS[query.lower()] = str(value)


for i, country in enumerate(COUNTRY_NAMES):
    city, person = CITY_NAMES[i], f"{GIVEN_NAMES[i]} {FAMILY_NAMES[i]}"
    _fact(f"capital of {country}", city)
    _fact(f"population of {country}", _rng.randrange(400_000, 90_000_000))
    _fact(f"area of {country}", _rng.randrange(2_000, 900_000))
    _fact(f"population of {city}", _rng.randrange(50_000, 9_000_000))
    _fact(f"mayor of {city}", person)
    _fact(f"birth year of {person}", _rng.randrange(1948, 1992))
    running = i % 2 == 0  # alternate, so both branches of the branch-dependent tasks occur
    _fact(f"status of the {country} railway", "running" if running else "suspended")
    _fact(f"next departure of the {country} railway", f"{_rng.randrange(5, 23):02d}:{_rng.randrange(0, 60):02d}")
    _fact(f"reopening date of the {country} railway", f"2026-{_rng.randrange(1, 13):02d}-{_rng.randrange(1, 29):02d}")
    _fact(f"status of the {country} stock exchange", "open" if i % 3 else "closed")
    _fact(f"index level of the {country} stock exchange", _rng.randrange(1_000, 40_000))
    _fact(f"days until the {country} stock exchange reopens", _rng.randrange(1, 30))
    _fact(f"status of the {country} airport", "open" if i % 4 < 2 else "closed")
    _fact(f"arrivals at the {country} airport", _rng.randrange(40, 900))
    _fact(f"departures from the {country} airport", _rng.randrange(40, 900))
    _fact(f"alternate airport for {country}", f"{CITY_NAMES[(i + 7) % COUNTRIES]} International")

for n in range(SENSORS):
    READINGS[f"sensor-{n}"] = str(_rng.randrange(10, 5_000))


class Corpus:
    """Handbook passages and a keyword index (word overlap, rarer words weigh more)."""

    WORD = re.compile(r"[a-z0-9]+")

    def __init__(self, passages: dict[str, str]):
        self.passages = passages
        self.index: dict[str, set[str]] = defaultdict(set)
        for doc_id, text in passages.items():
            for word in set(self.WORD.findall(text.lower())):
                self.index[word].add(doc_id)

    def best(self, query: str) -> str:
        scores: dict[str, float] = defaultdict(float)
        for word in set(self.WORD.findall(query.lower())):
            docs = self.index.get(word, ())
            for doc_id in docs:
                scores[doc_id] += 1.0 / len(docs)
        if not scores:
            return "No passage matches that query."
        return min(scores, key=lambda d: (-scores[d], d))

    def text(self, doc_id: str) -> str:
        return self.passages.get(doc_id, f"There is no passage {doc_id!r}.")


def _passages() -> dict[str, str]:
    texts = []
    for system in SYSTEM_NAMES:
        for component in COMPONENTS:
            texts.append(f"The {system} {component} listens on port {_rng.randrange(1024, 65000)}.")
            texts.append(f"The {system} {component} was last audited in {_rng.randrange(2015, 2026)}.")
            texts.append(f"The {system} {component} is owned by the {_rng.choice(FAMILY_NAMES)} team.")
    _rng.shuffle(texts)
    return {f"doc-{n:04d}": text for n, text in enumerate(texts)}


CORPUS = Corpus(_passages())
