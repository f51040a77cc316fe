"""FLORES-200 topic labels in the SIB-200 manner: the ~170 free-form topics of
`metadata_dev.tsv` mapped to 7 documented categories, with article ids for splitting.

SIB-200 (Adelani et al. 2024) kept 7 categories (science/technology, travel, politics, sports,
health, entertainment, geography) and dropped sentences that fit none; we do the same with the
explicit table below (a topic string is lower-cased and stripped first; a topic not in the table
is dropped). Article id = the URL column (several consecutive sentences share one).
"""
from __future__ import annotations

import csv
import os
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from babelmap.engine.errors import CorpusError

CATEGORIES = ("science/technology", "travel", "politics", "sports", "health", "entertainment",
              "geography")

_SCI, _TRA, _POL, _SPO, _HEA, _ENT, _GEO = CATEGORIES

#: lower-cased topic -> category; every topic of FLORES dev not listed here is dropped (None).
TOPIC_TO_CATEGORY: dict[str, str] = {
    # science/technology: wikinews science, wikibooks science/biology/physics/computing/psychology
    "science": _SCI, "science and technology": _SCI, "discovery": _SCI, "environment": _SCI,
    "climate": _SCI, "weather": _SCI,
    "science/animal behavior": _SCI, "science/earth science": _SCI, "science/radiography": _SCI,
    "science/general biology": _SCI, "science/peak oil": _SCI, "science experiments, floating needle": _SCI,
    "biology/cells": _SCI, "biology/kingdoms/animals": _SCI, "the_elements/matter_is_the_stuff_around_you": _SCI,
    "elements, hydrogen": _SCI, "how_things_work/time": _SCI, "how_things_work/computer": _SCI,
    "how things work, laser": _SCI, "how things work, lightbulb": _SCI, "how things work, ice skates": _SCI,
    "solar system, sun": _SCI, "solar system, venus": _SCI, "solar system, jupiter, io": _SCI,
    "solar_system/space_exploration": _SCI, "dinosaurs, triceratops": _SCI, "paleoanthropology/bones": _SCI,
    "cognitive psycology and neuroscience/convergent thinking": _SCI,
    "cognitive psycology and neuroscience/social cognition": _SCI,
    "cognitive psycology and neuroscience/mri": _SCI,
    "american education/technology (social media)": _SCI, "advanced interactive media": _SCI,
    "communication": _SCI, "communication, applications": _SCI, "communication, internet": _SCI,
    "internet, communication": _SCI, "modern photography/lenses": _SCI, "video/dvd": _SCI,
    # travel: wikivoyage travel advice
    "travel": _TRA, "travel, accomodation": _TRA, "travel, safety": _TRA, "travel, tourism": _TRA,
    "travel, culture": _TRA, "travel, camping": _TRA, "travel, archaeology": _TRA, "travel, events": _TRA,
    "travel, wildlife, photography": _TRA, "travel, language": _TRA, "travel, food": _TRA,
    "travel, children": _TRA, "travel, art": _TRA, "travel, commute": _TRA, "travel, history": _TRA,
    "travel, religion": _TRA, "travel, internet": _TRA, "travel, cuisine": _TRA, "travel, writing": _TRA,
    "antartica, travel": _TRA, "snow, travel": _TRA, "work, travel": _TRA, "work": _TRA, "study": _TRA,
    "introductory_tourism": _TRA, "reason to travel/funeral travel": _TRA, "sailing": _TRA,
    "food": _TRA, "food, beverages": _TRA, "photography": _TRA, "glasses": _TRA,
    # politics: wikinews politics
    "politics": _POL, "politics and conflicts": _POL,
    # sports
    "sports": _SPO, "sport": _SPO, "golf": _SPO, "wiki/fencing": _SPO, "sports, organizations": _SPO,
    "science/distance runner": _SPO, "travel, sports": _SPO,
    # health
    "health": _HEA, "disease": _HEA, "health, travel": _HEA, "travel, health": _HEA, "alchohol": _HEA,
    "science/first aid": _HEA, "science/disease": _HEA, "science/sensory systems": _HEA,
    "science/the organ systems": _HEA, "biology, circulatory system": _HEA, "roman culture/medicine": _HEA,
    "american education/special needs add": _HEA, "lucid dreaming/introduction": _HEA,
    # entertainment
    "entertainment": _ENT, "entertrainment": _ENT, "culture and entertainment": _ENT, "television": _ENT,
    "accordion/right hand": _ENT, "origami/pureland origami": _ENT,
    # geography: country sketches, natural wonders, world heritage sites
    "geography, turkey": _GEO, "geography, luxembourg": _GEO, "geography, bhutan": _GEO,
    "geography, cambodia": _GEO, "geography, venezuela": _GEO,
    "natural wonders/desert": _GEO, "natural wonders/birdwatching": _GEO, "natural wonders/glaciers": _GEO,
    "natural wonders/hiking in norway": _GEO, "natural wonders/hill stations in india": _GEO,
    "natural wonders/rainforest": _GEO, "world heritage, serengeti": _GEO,
    "world heritage, botanic gardens": _GEO, "animals": _GEO,
}


def category_of(topic: str) -> str | None:
    """The category of one free-form FLORES topic, or None (dropped: crime/law, disasters,
    history, business, languages, religion, education, ...)."""
    return TOPIC_TO_CATEGORY.get(topic.strip().lower())


@dataclass
class TopicLabels:
    """Per FLORES sentence: its sentence id (`dev:N`), article id (URL), raw topic and category
    (None = dropped). `labelled()` keeps the sentences that have a category."""
    sentence_ids: list[str]
    articles: list[str]
    topics: list[str]
    categories: list[str | None]
    source: str = ""
    categories_order: tuple[str, ...] = field(default=CATEGORIES)

    def labelled(self) -> "TopicLabels":
        keep = [i for i, c in enumerate(self.categories) if c is not None]
        return TopicLabels([self.sentence_ids[i] for i in keep], [self.articles[i] for i in keep],
                           [self.topics[i] for i in keep], [self.categories[i] for i in keep],
                           self.source, self.categories_order)

    def counts(self) -> dict[str, int]:
        c = Counter(x for x in self.categories if x is not None)
        return {k: c.get(k, 0) for k in self.categories_order}

    def article_counts(self) -> dict[str, int]:
        """Articles per category, an article counted under its majority category."""
        c = Counter(article_category(self).values())
        return {k: c.get(k, 0) for k in self.categories_order}

    def by_sentence(self) -> dict[str, tuple[str, str | None]]:
        return {s: (a, c) for s, a, c in zip(self.sentence_ids, self.articles, self.categories)}


def article_category(labels: TopicLabels) -> dict[str, str]:
    """Each article's majority category among its labelled sentences (ties: category order)."""
    per: dict[str, Counter] = {}
    for a, c in zip(labels.articles, labels.categories):
        if c is not None:
            per.setdefault(a, Counter())[c] += 1
    order = {c: i for i, c in enumerate(labels.categories_order)}
    return {a: min(cnt, key=lambda c: (-cnt[c], order[c])) for a, cnt in per.items()}


def read_flores_topics(path: str | os.PathLike, split: str = "dev") -> TopicLabels:
    """Read FLORES `metadata_<split>.tsv` (a file, or the release folder holding it): one row per
    sentence, in sentence order; sentence ids `<split>:<line>` as the FLORES reader makes them."""
    p = Path(path)
    if p.is_dir():
        p = p / f"metadata_{split}.tsv"
    if not p.is_file():
        raise CorpusError("no FLORES metadata file here", file=str(p),
                          hint="point at the FLORES-200 folder holding metadata_dev.tsv")
    with open(p, encoding="utf-8", newline="") as f:
        reader = csv.reader(f, delimiter="\t", quoting=csv.QUOTE_NONE)
        header = next(reader, None)
        if header is None or "URL" not in header or "topic" not in header:
            raise CorpusError("metadata header lacks URL/topic columns", file=str(p), line=1)
        iu, it = header.index("URL"), header.index("topic")
        sids, arts, tops = [], [], []
        for n, row in enumerate(reader, start=2):
            if len(row) != len(header):
                raise CorpusError(f"{len(row)} columns, expected {len(header)}", file=str(p), line=n)
            sids.append(f"{split}:{n - 1}")
            arts.append(row[iu])
            tops.append(row[it])
    return TopicLabels(sids, arts, tops, [category_of(t) for t in tops], source=str(p))


def mapping_table(labels: TopicLabels) -> list[tuple[str, str, int]]:
    """(category or 'dropped', lower-cased topic, sentences) for every topic present: the
    documented table in docs/probe.md."""
    c = Counter(t.strip().lower() for t in labels.topics)
    rows = [(TOPIC_TO_CATEGORY.get(t) or "dropped", t, n) for t, n in c.items()]
    order = {k: i for i, k in enumerate(CATEGORIES + ("dropped",))}
    return sorted(rows, key=lambda r: (order[r[0]], -r[2], r[1]))


def sample_articles(labels: TopicLabels, per_category: int, seed: int = 0) -> list[str]:
    """Sentence ids of a category-balanced subset of whole articles: per category (an article
    under its majority category), articles in a seeded random order are taken while the
    category holds fewer than `per_category` labelled sentences. Returned in corpus order."""
    import numpy as np
    lab = labels.labelled()
    cat_of = article_category(lab)
    size = Counter(lab.articles)
    rng = np.random.default_rng(seed)
    chosen: set[str] = set()
    for cat in lab.categories_order:
        arts = sorted(a for a, c in cat_of.items() if c == cat)
        total = 0
        for i in rng.permutation(len(arts)):
            if total >= per_category:
                break
            chosen.add(arts[i])
            total += size[arts[i]]
    return [s for s, a in zip(lab.sentence_ids, lab.articles) if a in chosen]
