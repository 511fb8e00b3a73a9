"""Brand-safety categories of the outbound findings, aligned with GARM's framework.

Every check declares the category its findings fall in (a hit may name another:
a sensitive-event hit about an attack is ``terrorism``, one about a flood is
``death_injury_military_conflict``). The category is part of each reason, is listed
in the ``screen`` output and the alert details, and outbound rules route by it
(``categories`` / ``exclude_categories`` in the rule's params).

Signs of a hijacked account (phishing links, lookalike domains, posting from an
unknown app, off hours, bursts, posts outside the approved ledger) are GARM's
``spam_harmful``; unverified claims about the company and staff leaks are
``misinformation``; personal data in a public post is ``crime_harmful_acts``.
"""

from __future__ import annotations

CATEGORIES: dict[str, str] = {
    "adult_sexual": "Adult & explicit sexual content",
    "arms_ammunition": "Arms & ammunition",
    "crime_harmful_acts": "Crime & harmful acts to individuals and society",
    "death_injury_military_conflict": "Death, injury or military conflict",
    "online_piracy": "Online piracy",
    "hate_speech_aggression": "Hate speech & acts of aggression",
    "obscenity_profanity": "Obscenity & profanity",
    "drugs_tobacco_alcohol": "Illegal drugs, tobacco, e-cigarettes, vaping & alcohol",
    "spam_harmful": "Spam or harmful content (incl. phishing, account takeover)",
    "terrorism": "Terrorism",
    "sensitive_social_issues": "Debated sensitive social issues",
    "misinformation": "Misinformation",
}


def check_category(name: str) -> str:
    if name not in CATEGORIES:
        raise ValueError(f"unknown category {name!r} (known: {', '.join(CATEGORIES)})")
    return name
