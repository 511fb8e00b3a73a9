"""FastVader returns exactly vaderSentiment 3.3.2's scores (its speed is in bench/sentiment.py)."""

from __future__ import annotations

import csv
import random
from pathlib import Path

import pytest
from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

from monitor.enrich.vader_fast import FastVader

ROOT = Path(__file__).resolve().parents[1]
DEV = ROOT.parent / "shared" / "data" / "airline-dev" / "tweets_dev.csv"

TRICKY = [
    "",
    "   ",
    "!!!",
    "?",
    "good",
    "GOOD",
    "GOOD GREAT",
    "The book was GOOD.",
    "VADER is VERY SMART, uber handsome, and FRIGGIN FUNNY!!!",
    "VADER is not smart, handsome, nor funny.",
    "At least it isn't a horrible book.",
    "The book was only kind of good.",
    "The plot was good, but the characters are uncompelling and the dialog is not great.",
    "Today SUX!",
    "Today only kinda sux! But I'll get by, lol",
    "Make sure you :) or :D today!",
    "Catch utf-8 emoji such as 💘 and 💋 and 😁",
    "Not bad at all",
    "Sentiment analysis has never been good.",
    "Sentiment analysis has never been this good!",
    "Most automated sentiment analysis tools are shit.",
    "With VADER, sentiment analysis is the shit!",
    "Other sentiment analysis tools can be quite bad.",
    "On the other hand, VADER is quite bad ass",
    "VADER is such a badass!",
    "Without a doubt, excellent idea.",
    "Without a doubt, an excellent idea.",
    "Roger Dodger is one of the most compelling variations on this theme.",
    "Roger Dodger is at least compelling as a variation on the theme.",
    "Roger Dodger is one of the least compelling variations on this theme.",
    "least good",
    "the least good",
    "very least good",
    "Not such a badass after all.",
    "never so good", "never this bad", "it was so good", "this so good",
    "no good", "no no good", "no", "NO", "no problem at all", "no or bad", "no or nor bad",
    "good but bad but good", "good good but good good", "BUT good", "but",
    "bad bad but bad", "great hmm ok but great nice great",
    "kind of good", "KIND OF GOOD", "kind of", "kind", "sort of nice", "just enough fun",
    "the bomb", "bus stop", "yeah right", "kiss of death", "to die for this",
    "beating heart wow", "the shit is good", "bad ass stuff", "a kiss of death to it",
    "I can't wait", "don't love it", "didn't hate it", "isn’t good", "aint bad",
    "not NOT good", "NOT good", "extremely GOOD", "EXTREMELY good", "EXTREMELY GOOD day",
    "hardly good", "HARDLY bad", "somewhat :)", ":( :) :D", "good :-(", "(good)",
    "a... good ...idea", "ok?? fine??? good????", "really?! wow!!!!!", "good!!!!!!!!",
    "good? bad?", "😁😁😁", "no😁", "😁good", "good 😁 bad 😡", "I ❤ it", "✈️ delayed 3 hours",
    "Late Flight again!!", "Cancelled Flightled. Thanks a lot.", "#fail #worst",
    "@united thanks", "\tgood\nbad\r\n", "x" * 300, "good " * 50,
]


def assert_same(vader: SentimentIntensityAnalyzer, fast: FastVader, text: str) -> None:
    expected = vader.polarity_scores(text)
    actual = fast.polarity_scores(text)
    # repr: same floats, same signs of zero, same key order
    assert repr(actual) == repr(expected), text


@pytest.fixture(scope="module")
def pair() -> tuple[SentimentIntensityAnalyzer, FastVader]:
    return SentimentIntensityAnalyzer(), FastVader()


def dev_texts() -> list[str]:
    if not DEV.is_file():
        pytest.skip(f"needs {DEV}")
    with DEV.open(encoding="utf-8", newline="") as handle:
        return [row["text"] for row in csv.DictReader(handle)]


@pytest.mark.parametrize("text", TRICKY)
def test_tricky_strings_score_exactly_as_vader(
        pair: tuple[SentimentIntensityAnalyzer, FastVader], text: str) -> None:
    assert_same(*pair, text)


@pytest.mark.shared
def test_every_dev_text_scores_exactly_as_vader(
        pair: tuple[SentimentIntensityAnalyzer, FastVader]) -> None:
    vader, fast = pair
    texts = dev_texts()
    mismatched = [t for t in texts if repr(fast.polarity_scores(t)) != repr(
        vader.polarity_scores(t))]
    assert not mismatched, mismatched[:5]
    assert len(texts) == 9494


def test_random_word_soup_scores_exactly_as_vader(
        pair: tuple[SentimentIntensityAnalyzer, FastVader]) -> None:
    """Rule words in every order: negations, boosters, idioms, caps, "but", emoji."""
    vocabulary = [
        "but", "BUT", "no", "NO", "not", "never", "so", "this", "without", "doubt", "least",
        "at", "very", "VERY", "kind", "of", "sort", "the", "shit", "bomb", "bad", "ass",
        "yeah", "right", "kiss", "death", "to", "die", "for", "just", "enough", "good",
        "GOOD", "great", "GREAT", "BAD", "!!!", "??", "😁", "💘🙂", "nor", "or", "isn't",
        "KIND", "OF", "Not", ":)", ":(", "really", "kinda", "hardly", "LEAST", "love",
        "hate", "okay", "fine", "wait", "can't", "flight", "delayed", "help", "thanks",
        "1.9", "x", "I", "a", "lol", "sux", "funny", "uber", "friggin", "barely",
    ]
    rng = random.Random(20240607)
    vader, fast = pair
    for _ in range(20_000):
        text = " ".join(rng.choice(vocabulary) for _ in range(rng.randint(0, 14)))
        assert_same(vader, fast, text)


def test_lexicon_overrides_match_an_edited_vader() -> None:
    overrides = {"flight": -1.5, "thanks": 0.5, "delayed": -2.5, "so": 1.0, "no": 0.0}
    removals = ["good", "help", "least"]
    vader = SentimentIntensityAnalyzer()
    vader.lexicon = dict(vader.lexicon)
    for word in removals:
        vader.lexicon.pop(word, None)
    vader.lexicon.update(overrides)
    fast = FastVader(overrides, removals)
    for text in [*TRICKY, "my flight was delayed, so no thanks", "no flight help least good"]:
        assert_same(vader, fast, text)


def test_valences_then_score_is_polarity_scores(
        pair: tuple[SentimentIntensityAnalyzer, FastVader]) -> None:
    _, fast = pair
    for text in TRICKY:
        words, sentiments, clean = fast.valences(text)
        assert len(words) == len(sentiments)
        assert fast.score_valences(sentiments, clean) == fast.polarity_scores(text)
