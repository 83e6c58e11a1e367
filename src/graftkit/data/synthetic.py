"""Two text-classification tasks that graftkit writes itself, so demos need no downloads.

Both are generated from templates with a fixed seed: product-review sentiment
(negations, "but"-contrasts, other people's opinions and off-topic filler as
distractors) and the topic of short news-like sentences (4 topics that share
ambiguous words such as "record", "launch", "court" and "deal", plus a trailing
clause from another topic). A small share of labels is flipped so that a perfect
score is impossible and merged models can differ from their parents.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from pathlib import Path

from graftkit.data.types import Dataset, Split

SIZES = {"train": 3000, "validation": 500, "test": 1000}
LABEL_NOISE = 0.04
SEED = 1234

# ---------------------------------------------------------------- sentiment
PRODUCTS = [
    "headphones", "blender", "laptop bag", "coffee grinder", "desk lamp", "phone case", "backpack", "kettle",
    "keyboard", "mouse", "air fryer", "water bottle", "tent", "rain jacket", "smartwatch", "speaker", "vacuum",
    "monitor", "office chair", "toaster", "hiking boots", "charger", "camera strap", "yoga mat", "frying pan",
    "electric toothbrush", "router", "printer", "sleeping bag", "bike light", "microwave", "humidifier",
]
ASPECTS = ["battery", "sound", "build quality", "price", "design", "fit", "screen", "motor", "zipper", "cable",
           "instructions", "packaging", "handle", "material", "buttons", "lid", "app", "noise level"]
POS = ["great", "excellent", "fantastic", "reliable", "sturdy", "comfortable", "impressive", "solid", "lovely",
       "superb", "handy", "well made", "worth every penny", "a joy to use", "brilliant", "dependable", "decent",
       "pleasant", "wonderful", "outstanding"]
NEG = ["terrible", "awful", "flimsy", "disappointing", "useless", "cheap", "noisy", "unreliable", "poor",
       "a waste of money", "frustrating", "broken", "mediocre", "horrible", "clunky", "defective", "overpriced",
       "annoying", "shoddy", "underwhelming"]
POS_VERBS = ["love", "adore", "enjoy", "really like", "am happy with", "am impressed by"]
NEG_VERBS = ["hate", "regret buying", "dislike", "am unhappy with", "am disappointed by", "gave up on"]
INTENS = ["", "", "really ", "very ", "quite ", "absolutely ", "pretty ", "genuinely "]
OTHERS = ["my brother", "my neighbour", "a coworker", "the salesman", "my wife", "my husband", "a friend",
          "some reviewers", "the magazine", "my roommate"]
FILLER = [
    "I bought it {t} ago.", "It arrived on a {d}.", "The box was {c}.", "I use it mostly in the {p}.",
    "I ordered it for my {r}.", "Delivery took {n} days.", "I compared it with two other models.",
    "It came in {c} and grey.", "I read the manual once.", "It replaced an older one.",
]
TIMES = ["a week", "two weeks", "a month", "three months", "a year", "six weeks"]
DAYS = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"]
COLOURS = ["red", "blue", "black", "white", "green", "silver"]
PLACES = ["kitchen", "office", "garage", "car", "bedroom", "garden"]
RELATIVES = ["son", "daughter", "mother", "father", "sister", "partner"]


def _fill(rng: random.Random, template: str) -> str:
    return template.format(t=rng.choice(TIMES), d=rng.choice(DAYS), c=rng.choice(COLOURS), p=rng.choice(PLACES),
                           r=rng.choice(RELATIVES), n=rng.randint(2, 9))


def _adj(rng: random.Random, positive: bool) -> str:
    return rng.choice(POS if positive else NEG)


def _verdict(rng: random.Random, positive: bool) -> str:
    """One sentence whose polarity is ``positive``; several forms hide it behind negation or contrast."""
    p = rng.choice(PRODUCTS)
    form = rng.randrange(8)
    if form == 0:
        return f"The {p} is {rng.choice(INTENS)}{_adj(rng, positive)}."
    if form == 1:  # negation flips the adjective
        neg = rng.choice(["not", "not at all", "far from", "hardly", "never"])
        return f"The {p} is {neg} {_adj(rng, not positive)}."
    if form == 2:  # contrast: the clause after "but" decides
        a = rng.choice(ASPECTS)
        return f"The {a} seemed {_adj(rng, not positive)} at first, but overall the {p} is {_adj(rng, positive)}."
    if form == 3:
        return f"Although the {rng.choice(ASPECTS)} is {_adj(rng, not positive)}, I {rng.choice(POS_VERBS if positive else NEG_VERBS)} this {p}."
    if form == 4:  # someone else's opinion is a distractor
        return (f"{rng.choice(OTHERS).capitalize()} said the {p} was {_adj(rng, not positive)}, "
                f"but I {rng.choice(POS_VERBS if positive else NEG_VERBS)} it.")
    if form == 5:  # a recommendation, or its refusal
        if positive:
            return f"I {rng.choice(['would recommend', 'would happily buy', 'will reorder'])} this {p}."
        return f"I {rng.choice(['would never recommend', 'would not buy', 'will not reorder'])} this {p}."
    if form == 6:
        return f"I {rng.choice(POS_VERBS if positive else NEG_VERBS)} this {p}, the {rng.choice(ASPECTS)} is {_adj(rng, positive)}."
    return f"I expected it to be {_adj(rng, not positive)}, yet the {p} turned out {rng.choice(INTENS)}{_adj(rng, positive)}."


def _review(rng: random.Random, positive: bool) -> str:
    parts = [_verdict(rng, positive)]
    for _ in range(rng.choice([0, 1, 1, 2])):
        parts.insert(rng.randrange(len(parts) + 1), _fill(rng, rng.choice(FILLER)))
    if rng.random() < 0.3:  # a minor point of the other polarity, marked as minor
        minor = rng.choice(["The only downside is that the {a} is a bit {x}.", "The {a} is {x}, though.",
                            "Admittedly the {a} is {x}."])
        parts.append(minor.format(a=rng.choice(ASPECTS), x=_adj(rng, not positive)))
    return " ".join(parts)


# ---------------------------------------------------------------- topic
TOPICS = ["politics", "sports", "business", "science"]
SUBJECTS = {
    "politics": ["The prime minister", "The senate", "Opposition leaders", "The foreign minister", "Parliament",
                 "The governor", "Election officials", "The coalition", "Diplomats", "The president", "The ruling party"],
    "sports": ["The striker", "The home team", "The coach", "The goalkeeper", "The champions", "The sprinter",
               "The rookie quarterback", "The tennis star", "The league leaders", "The captain", "The cyclist"],
    "business": ["The bank", "Shareholders", "The retailer", "The airline", "Investors", "The carmaker",
                 "The chief executive", "The startup", "The central bank", "Analysts", "The insurer"],
    "science": ["Researchers", "The space agency", "Astronomers", "The lab", "Engineers", "Biologists",
                "The telescope team", "Physicists", "The software company", "Climate scientists", "Chemists"],
}
EVENTS = {
    "politics": ["passed a bill on {o}", "called a snap vote over {o}", "signed a treaty on {o}",
                 "faced a court ruling about {o}", "announced sanctions over {o}", "won the election after a debate on {o}",
                 "proposed a reform of {o}", "held talks on {o}"],
    "sports": ["won the match against {o}", "set a new record against {o}", "lost the final to {o}",
               "signed a deal with {o}", "scored twice against {o}", "launched a comeback against {o}",
               "was knocked out of the cup by {o}", "drew with {o} on a wet court"],
    "business": ["reported record profits from {o}", "signed a deal to buy {o}", "cut jobs in {o}",
                 "launched a bond sale to fund {o}", "saw shares fall after {o}", "raised prices for {o}",
                 "agreed a merger with {o}", "lost a court case over {o}"],
    "science": ["launched a probe to study {o}", "published a study of {o}", "discovered a new kind of {o}",
                "set a record for measuring {o}", "released an open model of {o}", "built a prototype for {o}",
                "observed {o} for the first time", "mapped the genome of {o}"],
}
OBJECTS = {
    "politics": ["immigration", "the border", "pension rules", "the budget deficit", "voting rights", "defence spending",
                 "the neighbouring state", "tax policy", "the constitution", "trade tariffs"],
    "sports": ["the visiting side", "their rivals", "the defending champions", "a team from the north",
               "the favourites", "last year's finalists", "the underdogs", "the Olympic holders"],
    "business": ["its retail arm", "a rival chain", "the euro bond market", "quarterly earnings",
                 "a logistics firm", "its overseas factories", "online sales", "a struggling supplier"],
    "science": ["dark matter", "a distant comet", "bacteria in deep oceans", "quantum sensors", "protein folding",
                "coral reefs", "exoplanet atmospheres", "battery chemistry", "a rare butterfly"],
}
WHERE = ["in Berlin", "in Tokyo", "in the capital", "on Tuesday", "late on Friday", "this week", "in Brazil",
         "overnight", "in London", "on Sunday", "in a statement", "after months of delay"]


def _news(rng: random.Random, topic: str) -> str:
    subj = rng.choice(SUBJECTS[topic])
    event = rng.choice(EVENTS[topic]).format(o=rng.choice(OBJECTS[topic]))
    sentence = f"{subj} {event} {rng.choice(WHERE)}"
    roll = rng.random()
    if roll < 0.35:  # a trailing clause from another topic: the main clause decides
        other = rng.choice([t for t in TOPICS if t != topic])
        side = rng.choice(EVENTS[other]).format(o=rng.choice(OBJECTS[other]))
        link = rng.choice(["while", "even as", "a day after", "as"])
        sentence += f", {link} {rng.choice(SUBJECTS[other]).lower()} {side}"
    elif roll < 0.55:
        sentence += rng.choice([", officials said", ", reports said", ", according to local media", ", sources said"])
    return sentence + "."


# ---------------------------------------------------------------- assembly
def _generate(name: str, label_names: list[str], make: Callable[[random.Random, int], str], seed: int,
              description: str) -> Dataset:
    """Unique examples with balanced labels, a fixed share of them flipped, split train/validation/test."""
    rng = random.Random(seed)
    total = sum(SIZES.values())
    seen: set[str] = set()
    texts: list[str] = []
    labels: list[int] = []
    k = len(label_names)
    while len(texts) < total:
        label = len(texts) % k
        text = make(rng, label)
        if text in seen:
            continue
        seen.add(text)
        if rng.random() < LABEL_NOISE:
            label = rng.choice([c for c in range(k) if c != label])
        texts.append(text)
        labels.append(label)
    order = list(range(total))
    rng.shuffle(order)
    splits, start = {}, 0
    for split_name, size in SIZES.items():
        idx = order[start : start + size]
        splits[split_name] = Split(split_name, texts=[texts[i] for i in idx], labels=[labels[i] for i in idx])
        start += size
    notes = [f"generated from templates, seed {seed}; {LABEL_NOISE:.0%} of labels flipped on purpose"]
    return Dataset(name, "text-classification", label_names, splits, description, notes)


def sentiment_dataset(root: Path | None = None, seed: int = SEED) -> Dataset:
    """Synthetic product-review sentiment (negative / positive); ``root`` is ignored."""
    return _generate("synthetic-sentiment", ["negative", "positive"], lambda rng, y: _review(rng, bool(y)), seed,
                     "generated product reviews: negations, contrasts, other people's opinions, filler")


def topic_dataset(root: Path | None = None, seed: int = SEED + 1) -> Dataset:
    """Synthetic news-sentence topic (politics / sports / business / science); ``root`` is ignored."""
    return _generate("synthetic-topic", list(TOPICS), lambda rng, y: _news(rng, TOPICS[y]), seed,
                     "generated news sentences: shared ambiguous words, a clause from another topic")
