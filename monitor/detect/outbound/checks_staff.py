"""Rogue-staff signals and misinformation: someone speaking for themselves on the brand account.

``staff_voice`` is first-person talk about the workplace (layoffs, the boss, HR, pay,
internal memos) in a grievance, sarcastic or leaking tone: an ordinary staff
spotlight ("meet Priya from our support team") is warm and does not count.
``misinformation`` is the shape of a conspiracy or a debunked claim ("... is a
hoax", "the election was stolen", "vaccines cause ..."); a personal stance on a
divisive topic adds to ``divisive`` when it is voiced as an opinion.
"""

from __future__ import annotations

import re

from monitor.detect.outbound import lexicon as lx
from monitor.detect.outbound.context import ScreenContext
from monitor.detect.outbound.core import Hit, check
from monitor.detect.outbound.text import PhraseSet

JOB_LOSS = PhraseSet([
    "being fired", "been fired", "getting fired", "got fired", "all fired", "fired us",
    "let go", "being let go", "laid off", "lay offs", "layoffs", "layoff", "made redundant",
    "being made redundant", "redundancies", "redundancy", "sacked", "getting sacked",
    "out of a job", "lose our jobs", "lose my job", "losing our jobs", "lost our jobs",
    "lost my job", "job cuts", "jobs cut", "cut jobs", "got cut", "just got cut", "axed",
    "mass execution", "escorted out", "my last day", "our last day", "last day here",
    "restructure", "restructuring", "closing our branch", "closing the store",
    "store is closing", "closing down", "cutting our hours", "cut our hours", "pay cut",
    "pay cuts", "walked out", "on strike", "going on strike"])
WORKPLACE = PhraseSet([
    "boss", "bosses", "my boss", "our boss", "manager", "my manager", "our manager",
    "managers", "management", "supervisor", "my supervisor", "hr", "human resources",
    "head office", "ceo", "the ceo", "new ceo", "all hands", "internal memo", "memo",
    "rota", "rotas", "overtime", "pay rise", "payroll", "our pay", "my pay", "wages",
    "union", "union meeting", "strike", "understaffed", "short staffed", "colleagues",
    "my colleagues", "team meeting", "meeting", "the meeting", "my shift", "our shifts",
    "shifts", "kitchen staff", "it department", "leaked", "leak", "internal",
    "confidential", "nda", "data breach", "the building", "this place", "work here",
    "working here", "anyone here", "in charge", "my job", "our jobs"])
LEAKING = PhraseSet([
    "dont tell anyone", "do not tell anyone", "you didnt hear it from me",
    "you did not hear it from me", "been told not to", "not supposed to", "we were told not",
    "off the record", "between you and me", "leaked from", "oops", "lol", "lmao", "smh",
    "thanks for nothing", "fun times", "great way to start", "guess who", "send help",
    "kill me now", "good luck running", "no clue", "no idea what", "pointless", "idiot",
    "joke", "shambles", "still hasnt paid", "still has not paid", "nobody will tell us",
    "nobody is covering", "nobodys covering", "apparently", "🙄", "🤦", "exciting",
    "guess whos", "dont tell", "do not tell", "no clue", "has no idea", "have no idea",
    "#shambles", "#fail", "sick of", "fed up", "unbelievable", "ridiculous"])
FIRST_PERSON = frozenset({"i", "im", "ive", "me", "my", "we", "were", "weve", "us", "our",
                          "ours", "myself"})
EMPLOYEES = frozenset({"employees", "staff", "workers", "colleagues", "team", "jobs",
                       "employee", "workforce", "people"})
_MISINFO = re.compile("|".join([
    r"\b(?:is|was|are|were|its) (?:all )?(?:a )?(?:hoax|scam|lie|fake|faked|made up|staged|"
    r"a psyop|fraud)\b",
    r"\bhoax\b", r"\bfake news\b", r"\bplandemic\b", r"\bscamdemic\b", r"\bsheeple\b",
    r"\b(?:vaccines?|jabs?|vaxx?) (?:cause|causes|caused|give you|gives you) \w+",
    r"\b(?:election|vote|votes) (?:was|were|is|got) (?:stolen|rigged)\b",
    r"\b(?:stolen|rigged) election\b",
    r"\b(?:moon landing|holocaust|covid|climate change|global warming|the virus)\b.{0,30}"
    r"\b(?:faked|fake|hoax|lie|made up|never happened|exaggerated)\b",
    r"\bflat earth\b", r"\bchemtrails?\b", r"\b5g (?:causes|spreads|caused)\b",
    r"\bdo (?:your|ur) (?:own )?research\b", r"\bwake up people\b",
    r"\bthey dont want you to know\b", r"\bgreat replacement\b", r"\bcrisis actors?\b",
    r"\bfalse flag\b", r"\bmainstream media (?:is|are) lying\b"]))
_CONSPIRACY = re.compile(r"\b(?:vaccin\w*|vaxx?\w*|jabs?|covid\w*|virus|pandemic|climate|"
                         r"global warming|election|vote|votes|moon landing|holocaust|5g|"
                         r"chemtrails?|flat earth|fluoride|government|media|elites?|"
                         r"globalists?|deep state|mainstream|replacement)\b")
_OWN_SHAPE = re.compile(r"plandemic|scamdemic|sheeple|chemtrail|flat earth|great replacement|"
                        r"crisis actor|false flag|do (?:your|ur) (?:own )?research|"
                        r"they dont want you to know|wake up people")
_MISINFO_WORDS = frozenset({"hoax", "scam", "lie", "fake", "faked", "made", "staged", "psyop",
                            "fraud", "news", "plandemic", "scamdemic", "sheeple", "cause",
                            "causes", "caused", "give", "gives", "stolen", "rigged", "never",
                            "exaggerated", "flat", "chemtrail", "chemtrails", "5g", "research",
                            "wake", "know", "replacement", "actors", "actor", "flag", "lying"})
OPINION = PhraseSet(["personally", "i think", "i believe", "in my opinion", "imo", "honestly",
                     "simple as that", "its time someone said it", "everyone knows",
                     "im sorry but", "i am sorry but", "unfollow us", "do your research",
                     "all of them", "if you still support", "come and take them"])


def _first_person(ctx: ScreenContext) -> bool:
    return bool(ctx.view.token_set & FIRST_PERSON)


@check("staff_voice", category="misinformation", weight=0.6,
       reason="staff talking about the workplace from the brand account", cap=1.5)
def staff_voice(ctx: ScreenContext) -> list[Hit]:
    insiders = _first_person(ctx) or bool(ctx.view.token_set & EMPLOYEES)
    hits: list[Hit] = []
    lost = JOB_LOSS.find(ctx.view)
    if lost and insiders:
        hits.append(Hit(f"job losses ({lost[0]})", 1.0))
    work = WORKPLACE.find(ctx.view)
    if work:
        tone = LEAKING.find(ctx.view)
        compound = ctx.compound
        if tone:
            hits.append(Hit(f"{work[0]} + {tone[0]}", 1.0))
        elif insiders and compound is not None and compound <= -0.3:
            hits.append(Hit(f"{work[0]}, in a grievance ({compound:+.2f})", 1.0))
    return hits


@check("misinformation", category="misinformation", weight=0.7,
       reason="conspiracy or debunked claim", cap=1.0)
def misinformation(ctx: ScreenContext) -> list[Hit]:
    if ctx.view.token_set.isdisjoint(_MISINFO_WORDS):
        return []
    found = [m.group(0).strip() for m in _MISINFO.finditer(ctx.view.norm)]
    if found and not _CONSPIRACY.search(ctx.view.norm):
        # "this email is fake": a fake needs a topic that conspiracies are about
        found = [f for f in found if _OWN_SHAPE.search(f)]
    return [Hit(f) for f in found[:2]]


@check("personal_opinion", category="sensitive_social_issues", weight=0.5,
       reason="personal opinion on a divisive topic")
def personal_opinion(ctx: ScreenContext) -> list[Hit]:
    if not ctx.find("divisive", lx.DIVISIVE):
        return []
    found = OPINION.find(ctx.view)
    return [Hit(f"'{found[0]}'")] if found else []
