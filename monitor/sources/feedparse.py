"""RSS 2.0, RSS 1.0 / RDF and Atom parsing with the standard library only.

``parse_feed`` builds the element tree with expat directly so it can refuse what
makes XML dangerous: a DTD internal subset, any entity declaration, and external
entity references (billion laughs, XXE). A bare ``<!DOCTYPE rss PUBLIC ..>`` (RSS
0.91) is allowed: expat never fetches the external DTD, and entities it would have
defined are skipped. Text is normalised here (HTML stripped, entities unescaped);
the RSS source turns ``Entry`` values into posts.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from datetime import datetime
from email.utils import parsedate_to_datetime
from html.parser import HTMLParser
from typing import Any
from urllib.parse import parse_qs, urljoin, urlsplit
from xml.parsers import expat

from monitor.clock import utc

ATOM = "{http://www.w3.org/2005/Atom}"
ATOM03 = "{http://purl.org/atom/ns#}"
RDF = "{http://www.w3.org/1999/02/22-rdf-syntax-ns#}"
RSS1 = "{http://purl.org/rss/1.0/}"
RSS090 = "{http://my.netscape.com/rdf/simple/0.9/}"
DC = "{http://purl.org/dc/elements/1.1/}"
CONTENT = "{http://purl.org/rss/1.0/modules/content/}"
XML_LANG = "{http://www.w3.org/XML/1998/namespace}lang"
_ISO_START = re.compile(r"^\d{4}-?\d{2}")
_SPACES = re.compile(r"[ \t\r\f\v\u00a0\u200b]+")
_WHITESPACE = re.compile(r"\s+")  # in HTML a newline in the source is just a space
_RSS_AUTHOR = re.compile(r"^\s*\S+@\S+\s*\((?P<name>[^)]+)\)\s*$")  # "a@b.c (Jane Doe)"
_BLOCK = frozenset({"p", "div", "br", "li", "ul", "ol", "tr", "table", "h1", "h2", "h3", "h4",
                    "h5", "h6", "blockquote", "pre", "section", "article", "hr", "dd", "dt"})
_SKIP = frozenset({"script", "style", "template", "noscript"})


class FeedError(Exception):
    """Not XML, refused (DTD / entities), or not an RSS, RDF or Atom document."""


@dataclass(frozen=True, slots=True)
class Entry:
    key: str  # guid / id / rdf:about / link, or a digest of the content
    title: str
    summary: str
    link: str | None
    published: datetime | None
    author: str | None
    lang: str | None


@dataclass(frozen=True, slots=True)
class Feed:
    title: str
    entries: tuple[Entry, ...]
    malformed: tuple[str, ...]  # one message per entry skipped


# safe XML ---------------------------------------------------------------------
def safe_fromstring(data: bytes) -> ET.Element:
    """Parse ``data`` into an Element, refusing DTD subsets and entity declarations."""
    builder = ET.TreeBuilder()
    parser = expat.ParserCreate(namespace_separator="}")
    parser.buffer_text = True

    def start(tag: str, attrs: dict[str, str]) -> None:
        builder.start(_fix(tag), {_fix(k): v for k, v in attrs.items()})

    def doctype(name: str, system_id: str | None, public_id: str | None,
                has_internal_subset: int) -> None:
        if has_internal_subset:
            raise FeedError("refused: the document declares a DTD internal subset")

    def entity(*_: Any) -> None:
        raise FeedError("refused: the document declares entities")

    def external(*_: Any) -> int:
        raise FeedError("refused: the document references an external entity")

    parser.StartElementHandler = start
    parser.EndElementHandler = lambda tag: builder.end(_fix(tag))
    parser.CharacterDataHandler = builder.data
    parser.StartDoctypeDeclHandler = doctype
    parser.EntityDeclHandler = entity
    parser.UnparsedEntityDeclHandler = entity
    parser.ExternalEntityRefHandler = external
    if data[:1].isspace():  # some servers put blank lines before the XML declaration
        data = data.lstrip()
    try:
        parser.Parse(data, True)
    except expat.ExpatError as exc:
        raise FeedError(f"not well-formed XML: {exc}") from None
    except (ValueError, LookupError) as exc:  # e.g. an encoding Python cannot decode
        raise FeedError(f"unreadable XML: {exc}") from None
    return builder.close()


def _fix(name: str) -> str:
    return "{" + name if "}" in name else name


# text -------------------------------------------------------------------------
class _Stripper(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self._skip = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in _SKIP:
            self._skip += 1
        elif tag in _BLOCK:
            self.parts.append("\n")

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in _BLOCK:
            self.parts.append("\n")

    def handle_endtag(self, tag: str) -> None:
        if tag in _SKIP:
            self._skip = max(0, self._skip - 1)
        elif tag in _BLOCK:
            self.parts.append("\n")

    def handle_data(self, data: str) -> None:
        if not self._skip:
            self.parts.append(_WHITESPACE.sub(" ", data))


def strip_html(markup: str) -> str:
    """Visible text of an HTML fragment: tags dropped, entities unescaped, spaces tidied."""
    if "<" not in markup and "&" not in markup:
        return _WHITESPACE.sub(" ", markup).strip()
    stripper = _Stripper()
    stripper.feed(markup)
    stripper.close()
    return tidy("".join(stripper.parts))


def tidy(text: str) -> str:
    """Collapse runs of spaces, drop blank lines."""
    lines = (_SPACES.sub(" ", line).strip() for line in text.splitlines())
    return "\n".join(line for line in lines if line)


def parse_date(text: str | None) -> datetime | None:
    """RFC 822 (RSS) or ISO 8601 / W3CDTF (Atom, dc:date) -> aware UTC, else None."""
    value = (text or "").strip()
    if not value:
        return None
    try:
        if _ISO_START.match(value):
            when = datetime.fromisoformat(value.replace("z", "Z"))
        else:
            when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    return utc(when)


def unwrap_link(link: str) -> str:
    """Google Alerts wraps links as google.com/url?...&url=<target>: return the target."""
    parts = urlsplit(link)
    if parts.path == "/url" and parts.hostname in ("google.com", "www.google.com"):
        query = parse_qs(parts.query)
        for key in ("url", "q"):
            target = query.get(key, [""])[0]
            if target.startswith(("http://", "https://")):
                return target
    return link


# feeds ------------------------------------------------------------------------
def parse_feed(data: bytes, base_url: str) -> Feed:
    """Parse an RSS 2.0 / 0.9x, RSS 1.0 / RDF or Atom (1.0, 0.3) document."""
    root = safe_fromstring(data)
    tag = root.tag
    if tag == "rss":
        return _rss(root, base_url)
    if tag == RDF + "RDF":
        return _rdf(root, base_url)
    if tag in (ATOM + "feed", ATOM03 + "feed"):
        return _atom(root, base_url, tag[: -len("feed")])
    raise FeedError(f"not an RSS, RDF or Atom document (root element {_local(tag)!r})")


def _rss(root: ET.Element, base: str) -> Feed:
    channel = root.find("channel")
    if channel is None:
        raise FeedError("RSS document without a <channel>")
    title = _plain(channel.find("title"))
    lang = _lang(_text(channel.find("language")) or _text(channel.find(DC + "language")))
    items = channel.findall("item") or root.findall("item")
    entries: list[Entry] = []
    bad: list[str] = []
    for index, item in enumerate(items):
        guid = _text(item.find("guid"))
        link = _text(item.find("link")) or _atom_link(item)
        guid_el = item.find("guid")
        if not link and guid and guid_el is not None and guid_el.get("isPermaLink") != "false":
            link = guid if guid.startswith(("http://", "https://")) else None
        author = (_text(item.find(DC + "creator")) or _rss_author(_text(item.find("author")))
                  or _text(item.find(ATOM + "author/" + ATOM + "name")))
        summary = (_text(item.find("description")) or _text(item.find(CONTENT + "encoded"))
                   or _text(item.find(ATOM + "summary")))
        date = (_text(item.find("pubDate")) or _text(item.find(DC + "date"))
                or _text(item.find(ATOM + "published")) or _text(item.find(ATOM + "updated")))
        _add(entries, bad, index, guid, _plain(item.find("title")), strip_html(summary), link,
             date, author, _lang(_text(item.find(DC + "language"))) or lang, base)
    return Feed(title=title, entries=tuple(entries), malformed=tuple(bad))


def _rdf(root: ET.Element, base: str) -> Feed:
    channel = next((c for c in root if _local(c.tag) == "channel"), None)
    title = _plain(_child(channel, "title")) if channel is not None else ""
    lang = _lang(_text(channel.find(DC + "language"))) if channel is not None else None
    entries: list[Entry] = []
    bad: list[str] = []
    for index, item in enumerate(c for c in root if _local(c.tag) == "item"):
        key = item.get(RDF + "about", "").strip()
        summary = _text(_child(item, "description")) or _text(item.find(CONTENT + "encoded"))
        _add(entries, bad, index, key, _plain(_child(item, "title")), strip_html(summary),
             _text(_child(item, "link")), _text(item.find(DC + "date")),
             _text(item.find(DC + "creator")), _lang(_text(item.find(DC + "language"))) or lang,
             base)
    return Feed(title=title, entries=tuple(entries), malformed=tuple(bad))


def _atom(root: ET.Element, base: str, ns: str) -> Feed:
    title = _atom_text(root.find(ns + "title"))
    feed_author = _text(root.find(f"{ns}author/{ns}name"))
    feed_lang = _lang(root.get(XML_LANG))
    entries: list[Entry] = []
    bad: list[str] = []
    for index, entry in enumerate(root.findall(ns + "entry")):
        summary = _atom_text(entry.find(ns + "summary")) or _atom_text(entry.find(ns + "content"))
        date = next((d for d in (_text(entry.find(ns + name)) for name in
                                 ("published", "updated", "issued", "modified", "created")) if d),
                    None)
        author = _text(entry.find(f"{ns}author/{ns}name")) or _text(entry.find(DC + "creator"))
        _add(entries, bad, index, _text(entry.find(ns + "id")),
             _atom_text(entry.find(ns + "title")), summary, _atom_link(entry, ns), date,
             author or feed_author, _lang(entry.get(XML_LANG)) or feed_lang, base)
    return Feed(title=title, entries=tuple(entries), malformed=tuple(bad))


def _add(entries: list[Entry], bad: list[str], index: int, key: str | None, title: str,
         summary: str, link: str | None, date: str | None, author: str | None,
         lang: str | None, base: str) -> None:
    url = unwrap_link(urljoin(base, link.strip())) if link and link.strip() else None
    if summary == title:
        summary = ""
    if not key:
        key = url or (f"text:{title}\n{summary}\n{date or ''}" if title or summary else None)
    if key is None:
        bad.append(f"entry {index + 1} has no id, link, title or summary")
        return
    entries.append(Entry(key=key, title=title, summary=summary, link=url,
                         published=parse_date(date), author=author or None, lang=lang))


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def _child(el: ET.Element | None, name: str) -> ET.Element | None:
    """The first child named ``name`` in RSS 1.0, RSS 0.90 or no namespace."""
    if el is None:
        return None
    for ns in (RSS1, RSS090, ""):
        found = el.find(ns + name)
        if found is not None:
            return found
    return None


def _text(el: ET.Element | None) -> str:
    return "".join(el.itertext()).strip() if el is not None else ""


def _plain(el: ET.Element | None) -> str:
    """RSS titles are often HTML-escaped (``&amp;amp;``) or carry markup."""
    return strip_html(_text(el)).replace("\n", " ")


def _atom_text(el: ET.Element | None) -> str:
    if el is None:
        return ""
    kind = el.get("type", "text")
    if kind in ("html", "text/html"):
        return strip_html(_text(el))
    if kind in ("xhtml", "application/xhtml+xml"):
        parts: list[str] = []
        _xhtml(el, parts)
        return tidy("".join(parts))
    return tidy(_text(el))


def _xhtml(el: ET.Element, parts: list[str]) -> None:
    """Text of inline XHTML content, a line break around each block element."""
    block = _local(el.tag) in _BLOCK
    if block:
        parts.append("\n")
    if _local(el.tag) not in _SKIP:
        parts.append(_WHITESPACE.sub(" ", el.text or ""))
        for child in el:
            _xhtml(child, parts)
    if block:
        parts.append("\n")
    parts.append(_WHITESPACE.sub(" ", el.tail or ""))


def _atom_link(entry: ET.Element, ns: str = ATOM) -> str | None:
    fallback = None
    for link in entry.findall(ns + "link"):
        href = link.get("href", "").strip()
        if not href:
            continue
        if link.get("rel", "alternate") == "alternate":
            return href
        fallback = fallback or (href if link.get("rel") in ("self", "related") else None)
    return fallback


def _rss_author(value: str) -> str:
    match = _RSS_AUTHOR.match(value)
    return match.group("name").strip() if match else value


def _lang(value: str | None) -> str | None:
    """``en-US`` -> ``en``."""
    primary = (value or "").strip().replace("_", "-").split("-")[0].lower()
    return primary if primary.isalpha() and 2 <= len(primary) <= 3 else None
