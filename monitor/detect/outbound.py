"""Outbound screen: the brand's own posts checked for off-message or suspicious content.

Each check is independent and returns reasons with a weight; the weights add
up to a score that maps to a severity (>= 1.0 critical, >= 0.5 warning, else
info). ``screen`` is pure, so the CLI, the daemon and the benchmark share it.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from urllib.parse import urlsplit

from monitor.config.schema import BrandConfig, Rule
from monitor.detect.base import DETECTORS, Detector, EnrichedPost
from monitor.detect.explain import post_summary
from monitor.model import Severity, Signal

# A short built-in list; admins extend it with ``blocked_terms`` in the rule.
PROFANITY = (
    "fuck", "fucking", "fucked", "fucker", "motherfucker", "shit", "shitty", "bullshit",
    "bitch", "bastard", "asshole", "dickhead", "cunt", "wanker", "prick", "twat", "douche",
    "crap", "damn", "goddamn", "piss", "pissed", "bollocks", "slut", "whore", "retard",
    "retarded", "fag", "faggot", "nigger", "spic", "kike", "chink",
)
_LEET = str.maketrans({"0": "o", "1": "i", "3": "e", "4": "a", "5": "s", "7": "t", "@": "a",
                       "$": "s", "!": "i", "*": "u"})
_URL_RE = re.compile(r"\bhttps?://[^\s<>\"')]+|\bwww\.[^\s<>\"')]+", re.IGNORECASE)
_WORD_RE = re.compile(r"[\w@$!*]+")


@dataclass(frozen=True, slots=True)
class OutboundParams:
    blocked_terms: tuple[str, ...] = ()
    blocked_patterns: tuple[str, ...] = ()
    profanity: bool = True
    check_links: bool = True
    allowed_domains: tuple[str, ...] = ()

    def problems(self) -> list[tuple[str, str]]:
        for pattern in self.blocked_patterns:
            try:
                re.compile(pattern)
            except re.error as exc:
                return [("blocked_patterns", f"invalid regex {pattern!r}: {exc}")]
        return []


@dataclass(frozen=True, slots=True)
class Finding:
    check: str
    reason: str
    weight: float


@dataclass(frozen=True, slots=True)
class ScreenResult:
    findings: tuple[Finding, ...]

    @property
    def score(self) -> float:
        return sum(f.weight for f in self.findings)

    @property
    def flagged(self) -> bool:
        return bool(self.findings)

    @property
    def severity(self) -> Severity:
        if self.score >= 1.0:
            return "critical"
        return "warning" if self.score >= 0.5 else "info"

    @property
    def reasons(self) -> list[str]:
        return [f.reason for f in self.findings]


def _normalise_words(text: str) -> list[str]:
    return [w.lower().translate(_LEET).strip("_") for w in _WORD_RE.findall(text)]


def _domain_allowed(host: str, allowed: Iterable[str]) -> bool:
    host = host.lower().rstrip(".")
    return any(host == d or host.endswith("." + d) for d in (a.lower().lstrip(".")
                                                             for a in allowed))


class OutboundScreen:
    def __init__(self, params: OutboundParams, allowed_domains: Iterable[str] = ()) -> None:
        self.params = params
        self.allowed = tuple(params.allowed_domains) + tuple(allowed_domains)
        self._profanity = frozenset(PROFANITY) if params.profanity else frozenset()
        self._blocked = [re.compile(r"(?<!\w)" + re.escape(t) + r"(?!\w)", re.IGNORECASE)
                         for t in params.blocked_terms]
        self._patterns = [re.compile(p, re.IGNORECASE) for p in params.blocked_patterns]

    def screen(self, text: str) -> ScreenResult:
        findings: list[Finding] = []
        words = _normalise_words(text)
        swear = sorted({w for w in words if w in self._profanity})
        if swear:
            findings.append(Finding("profanity", f"profanity: {', '.join(swear)}", 1.0))
        for term, regex in zip(self.params.blocked_terms, self._blocked, strict=True):
            if regex.search(text):
                findings.append(Finding("blocked_term", f"blocked term: {term}", 1.0))
        for pattern in self._patterns:
            if pattern.search(text[:5000]):
                findings.append(Finding("blocked_pattern", f"matches blocked pattern "
                                        f"{pattern.pattern!r}", 1.0))
        if self.params.check_links and self.allowed:
            for url in _URL_RE.findall(text):
                full = url if "://" in url else "http://" + url
                host = urlsplit(full).hostname or ""
                if host and not _domain_allowed(host, self.allowed):
                    findings.append(Finding("link", f"link outside allowed domains: {host}",
                                            0.6))
        return ScreenResult(tuple(findings))


@DETECTORS.register("outbound")
class OutboundDetector(Detector):
    """Screens each outbound post; one signal per flagged post, at once."""

    Params = OutboundParams
    kinds = ("outbound",)

    def __init__(self, rule: Rule, brand: BrandConfig) -> None:
        super().__init__(rule, brand)
        self.screener = OutboundScreen(rule.params, brand.allowed_domains)

    def observe(self, item: EnrichedPost, now: datetime) -> list[Signal]:
        result = self.screener.screen(item.post.text)
        if not result.flagged:
            return []
        post = item.post
        summary = (f"{self.brand.name}: outbound post by @{post.author.handle.lstrip('@')} "
                   f"flagged ({'; '.join(result.reasons)}): {post.text[:140]}")
        return [self.signal(post.created_at, "firing", summary, key=post.key,
                            severity=result.severity,
                            details={"post": post_summary(item), "reasons": result.reasons,
                                     "score": round(result.score, 2)})]
