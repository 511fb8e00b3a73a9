"""Text corpus of the demo source: what simulated customers and the brand post.

Pure data plus small renderers; every choice comes from the ``random.Random``
the caller passes in, so the demo stays deterministic for a given seed. Texts
are brand-agnostic: ``{b}`` is the brand as written by a customer (``@handle``
or its name), ``{h}`` the ``@handle``, ``{name}`` the name, ``{tag}`` the name
as a hashtag stem (``AcmeCo``).
"""

from __future__ import annotations

import functools
import math
import random
from dataclasses import dataclass

from monitor.model import Author

QUESTIONS = (
    "{b} what time does customer support open on weekends?",
    "{b} how do I change the email address on my account?",
    "Does anyone know if {name} is available in {city}?",
    "{b} can I pause my subscription instead of cancelling?",
    "{b} is there a student discount?",
    "Quick question for {b}: do gift cards expire?",
    "{b} where can I find my invoice for last month?",
    "Has anyone tried the new {name} premium plan? Worth it?",
    "{b} do you price match?",
    "{b} how long does a refund usually take to show up?",
    "{b} when does the new loyalty programme start?",
    "Any {name} folks here know how to turn on two-factor login?",
    "{b} can I change the name on a booking?",
    "{b} do you have an office in {city}?",
    "Is the {name} app available on tablets?",
    "{b} are you open on the bank holiday?",
)
PRAISE = (
    "Shoutout to {b} support, sorted my issue in {mins} minutes 🙌",
    "Loving the new {name} update, everything feels so much faster",
    "{b} you are the best, thank you for the quick help today!",
    "Honestly {name} customer service is excellent. Great experience.",
    "{b} sorted my booking change in {mins} minutes. Impressed!",
    "{b} thanks {agent}! Super friendly and helpful 💙",
    "Switched to {name} last month and I love it so far",
    "Big thanks to {b} for the refund, painless process",
    "The {name} redesign is clean, nice work {b}",
    "{b} great service as always, happy customer here 😊",
    "Can't believe how easy {name} made this. Brilliant.",
    "{agent} at {b} went above and beyond today, thank you!",
)
NEUTRAL = (
    "Just booked with {name} for the first time, let's see how it goes",
    "{name} has a sale on this weekend apparently",
    "Reading about {name} opening a new store in {city}",
    "Waiting for my {name} confirmation email like 👀",
    "{b} new logo spotted on the high street",
    "Watching the {name} keynote stream now",
    "My sister works at {name} in {city}",
    "Paid with {name} at lunch today",
    "{name} vs the competition, thread below 🧵",
    "Setting up my new {name} account this evening",
    "Saw a {name} ad on the train this morning",
    "{b} just followed you for the deals",
    "Using my {name} points for the first time",
)
COMPLAINTS = (
    "{b} still no reply to my email from {days} days ago, any update?",
    "Been on hold with {name} for {dur}. Not great.",
    "{b} the latest update moved the settings menu and I hate it",
    "Still waiting on my refund from {b}, it has been {days} weeks",
    "{b} my complaint was closed without an answer. Disappointed.",
    "{b} your chat bot is useless, I need a human",
    "Why is {name} so expensive now? Prices keep going up",
    "{b} a fee nobody mentioned at checkout, this is annoying",
    "{b} the confirmation email never arrived, {days} days now",
    "Not impressed with {name} lately, quality has dropped",
)
_MENTION_TEMPLATES = (QUESTIONS, PRAISE, NEUTRAL, COMPLAINTS)
_MENTION_WEIGHTS = (0.30, 0.25, 0.27, 0.18)

# The storm: one systemic fault (app outage + double charges), many voices.
STORM_OPENERS = ("", "", "", "Not again.", "Seriously {h}?", "Hey {h},", "{h}", "{h}", "Ugh.",
                 "Come on {h}.", "What a mess {h}.", "{h} 😡", "Sick of this {h}.")
STORM_CORES = (
    "your app has been down for {dur} and logging in is impossible",
    "the app keeps crashing the second I open it",
    "I just got charged twice for the same order",
    "charged twice AGAIN and the app is down so there is no way to check",
    "double charged on my card and nobody is answering",
    "the app is down, the website is down and nobody replies",
    "I was charged twice and now my account is overdrawn",
    "app still down after {dur}, what is going on",
    "got charged twice for one payment, where is my money",
    "app won't load, error 503 every single time",
    "payment went through twice but the app says it failed",
    "login broken, app down, and I got charged twice for my order",
    "why is the {name} app down AGAIN",
    "my bank shows a double charge from {name} for {amt}",
    "this outage has lasted {dur} and I was charged twice",
    "login broken, app down, card charged twice. total shambles",
    "your app outage means there is no way to dispute the double charge",
    "the app crashed mid-payment and I was charged twice",
)
STORM_CLOSERS = ("Fix this mess!", "Absolutely unacceptable.", "Worst service ever.",
                 "I want my money back. Awful.", "Ridiculous.", "So frustrated.", "Terrible.",
                 "Cancelling my account, so angry.", "This is a disaster.", "Furious right now.",
                 "Pathetic.", "Awful experience.", "Sort it out, this is ridiculous!",
                 "Not good enough.", "Hopeless.", "Shocking.", "Useless.", "Disgusting service.",
                 "Appalling.",
                 # customers threatening to leave: the churn-risk digest's material
                 "Switching to another airline.", "Never flying with you again.",
                 "Done with you, closing my account.")
STORM_TAGS = ("#{tag}Down", "#{tag}Down", "#{tag}Outage", "#chargedtwice", "#outage",
              "#doublecharged", "", "", "")
STORM_QUESTIONS = (
    "Is the {name} app down for anyone else? Keeps crashing, so annoying",
    "{h} is the app down? Errors everywhere and I was charged twice",
    "Anyone else charged twice by {name} today? Terrible",
    "{h} any ETA on the app outage? This is awful",
    "{h} are the double charges going to be refunded or not? Worried",
    "Is {name} down or is it just me? Can't log in at all",
    "{h} is there an ETA for the fix? The app is still down",
)
INFLUENCER_TEXT = (
    "Just got charged twice by {h} and the app has been down for {dur}. Zero communication. "
    "A lot of you use {name}: check your statements and avoid them until this is fixed. "
    "Unacceptable. #{tag}Down")
INFLUENCER = ("techwithtara", 250_000)
# Organic reach is log-normal (median ~180) but capped below common influencer
# thresholds (50k), so the scripted influencer is the one such alert of the demo.
MAX_ORGANIC_FOLLOWERS = 40_000

OUTBOUND = (
    "Fresh deals just dropped! See what's new at {name} this week.",
    "We're here 24/7: send us a DM if you need a hand with anything.",
    "Thanks to everyone who joined our community event 💙",
    "Tip: you can now manage your subscription right from the {name} app.",
    "Something new is coming next week. Any guesses? 👀",
    "Have a great day, from all of us at {name}!",
    "We've made checkout faster: fewer steps, same great service.",
    "Reminder: our support team is online until 10pm tonight.",
)
OUTBOUND_LINK_PATHS = ("/deals", "/help", "/blog/whats-new", "/app")
OFFMESSAGE_TEXT = ("Honestly who gives a shit what the haters say 🙄 the {name} app is fine. "
                   "50% off today only, click fast 👉 https://{domain}/{code}")
OFFMESSAGE_DOMAINS = ("bit.ly", "tinyurl.com", "deals-4-u.example")
OFFMESSAGE_WORD = "shit"

CITIES = ("Leeds", "Austin", "Toronto", "Dublin", "Denver", "Glasgow", "Perth", "Boston",
          "Manchester", "Seattle", "Cork", "Auckland", "Bristol", "Phoenix")
AGENTS = ("Sam", "Priya", "Jordan", "Alex", "Mia", "Tom", "Aisha", "Luis", "Grace", "Ben")
DURATIONS = ("an hour", "2 hours", "3 hours", "45 minutes", "90 minutes", "all morning",
             "half the day", "over an hour")

_CHOICES = {"city": CITIES, "agent": AGENTS, "dur": DURATIONS}

_FIRST = ("sarah", "mike", "jess", "tom", "priya", "dan", "emma", "chris", "aisha", "josh",
          "lucy", "omar", "kate", "ryan", "nina", "ben", "zoe", "liam", "maya", "sam", "leo",
          "chloe", "raj", "amy", "jake", "ella", "noah", "grace", "luis", "hannah", "kev",
          "fatima", "matt", "ivy", "sean", "rosa", "eli", "tara", "dev", "anna", "marco", "jade",
          "kai", "beth", "yusuf", "mei", "callum", "nora", "tyler", "isla")
_LAST = ("smith", "jones", "patel", "brown", "nguyen", "kim", "garcia", "walsh", "khan", "lee",
         "murphy", "chen", "rossi", "okafor", "silva", "evans", "cohen", "ali", "wood", "reid",
         "hughes", "park", "moore", "ward", "fox")
_WORDS = ("coffee", "pixel", "runs", "travels", "codes", "bakes", "daily", "films", "fit", "reads",
          "gamer", "music", "cooks", "plants", "design", "writes", "hikes", "vibes", "tech",
          "art", "photo", "dad", "mum", "nerd", "eats")


@dataclass(frozen=True, slots=True)
class BrandVoice:
    """How people refer to one brand in text."""

    name: str
    handle: str  # without '@'
    words: tuple[str, ...]  # name and keywords

    @property
    def tag(self) -> str:
        return "".join(part[:1].upper() + part[1:] for part in self.name.split())

    def slots(self, rng: random.Random) -> _Slots:
        return _Slots(self, rng)


class _Slots(dict[str, str]):
    """Template values, each drawn from the RNG only when a template uses it."""

    def __init__(self, voice: BrandVoice, rng: random.Random) -> None:
        super().__init__(h=f"@{voice.handle}", tag=voice.tag)
        self.voice = voice
        self.rng = rng

    def __missing__(self, key: str) -> str:
        rng, voice = self.rng, self.voice
        if key == "name":
            value = rng.choice(voice.words)
        elif key == "b":
            value = f"@{voice.handle}" if rng.random() < 0.6 else self["name"]
        elif key in _CHOICES:
            value = rng.choice(_CHOICES[key])
        elif key == "mins":
            value = str(rng.randint(3, 20))
        elif key == "days":
            value = str(rng.randint(2, 9))
        elif key == "amt":
            value = f"${rng.randint(9, 240)}.{rng.randint(0, 99):02d}"
        else:
            raise KeyError(key)
        self[key] = value
        return value


def make_handle(rng: random.Random) -> str:
    """A plausible social-media handle (letters, digits, underscores)."""
    first, last, word = rng.choice(_FIRST), rng.choice(_LAST), rng.choice(_WORDS)
    pattern = rng.randrange(7)
    if pattern == 0:
        handle = f"{first}{last}"
    elif pattern == 1:
        handle = f"{first}_{last}"
    elif pattern == 2:
        handle = f"{first}{rng.randint(1, 99)}"
    elif pattern == 3:
        handle = f"{first}{rng.choice(('19', '20'))}{rng.randint(70, 99) % 100:02d}"
    elif pattern == 4:
        handle = f"{first}{word}"
    elif pattern == 5:
        handle = f"{word}_{first}"
    else:
        handle = f"{first}_{last[0]}{rng.randint(1, 999)}"
    if rng.random() < 0.2:
        handle = handle[:1].upper() + handle[1:]
    return handle[:15]


@functools.lru_cache(maxsize=4)
def author_pool(seed: int, size: int) -> tuple[Author, ...]:
    """A fixed population of customers; follower counts are heavy-tailed (log-normal, capped)."""
    rng = random.Random(f"{seed}/authors")
    seen: set[str] = {INFLUENCER[0].lower()}
    pool = []
    for i in range(size):
        handle = make_handle(rng)
        if handle.lower() in seen:
            handle = f"{handle[:11]}{i}"
        seen.add(handle.lower())
        if rng.random() < 0.06:
            followers = rng.randint(0, 30)
        else:
            followers = min(MAX_ORGANIC_FOLLOWERS, int(rng.lognormvariate(math.log(180), 1.7)))
        pool.append(Author(id=f"demo-u{i}", handle=handle, followers=followers))
    return tuple(pool)


def mention_text(voice: BrandVoice, rng: random.Random) -> str:
    """An ordinary customer post: a question, praise, chatter or a complaint."""
    templates = rng.choices(_MENTION_TEMPLATES, weights=_MENTION_WEIGHTS)[0]
    text = rng.choice(templates).format_map(voice.slots(rng))
    if rng.random() < 0.08:
        text += f" #{voice.tag}"
    return text


def storm_text(voice: BrandVoice, rng: random.Random) -> str:
    """A storm post: mostly angry complaints about the outage and double charges."""
    slots = voice.slots(rng)
    if rng.random() < 0.15:
        return rng.choice(STORM_QUESTIONS).format_map(slots)
    opener = rng.choice(STORM_OPENERS).format_map(slots)
    core = rng.choice(STORM_CORES).format_map(slots)
    if slots["h"] not in opener and slots["name"] not in core:  # the brand must be named
        opener = f"{opener} {slots['b']}".strip()
    if not opener or opener[-1] in ".?!😡":
        core = core[:1].upper() + core[1:]
    parts = [opener, core]
    parts[-1] += rng.choice((".", "!", "!!", "...", "", " 😤"))
    parts.append(rng.choice(STORM_CLOSERS))
    tag = rng.choice(STORM_TAGS).format_map(slots)
    if tag:
        parts.append(tag)
    return " ".join(p for p in parts if p)


def influencer_text(voice: BrandVoice, rng: random.Random) -> str:
    return INFLUENCER_TEXT.format_map(voice.slots(rng))


def outbound_text(voice: BrandVoice, rng: random.Random, domain: str | None) -> str:
    """An ordinary, on-message post by the brand (a link only to an allowed domain)."""
    text = rng.choice(OUTBOUND).format_map(voice.slots(rng))
    if domain and rng.random() < 0.5:
        text += f" https://{domain}{rng.choice(OUTBOUND_LINK_PATHS)}"
    return text


def offmessage_text(voice: BrandVoice, allowed_domains: tuple[str, ...]) -> str:
    """The one post an outbound screen must flag: profanity and a non-allowed link."""
    allowed = {d.lower().lstrip(".") for d in allowed_domains}
    domain = next((d for d in OFFMESSAGE_DOMAINS if d not in allowed), OFFMESSAGE_DOMAINS[-1])
    return OFFMESSAGE_TEXT.format(name=voice.words[0], domain=domain, code="x7Demo")
