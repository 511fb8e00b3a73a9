"""Notification templates: one :class:`~monitor.notify.present.Message`, rendered for a
channel's medium.

Built-in templates register themselves in :data:`TEMPLATES`:

- ``text``: plain text (anything without a template of its own);
- ``console``: the text without the headline, which the console block's title shows;
- ``html``: e-mail (apprise sends it as HTML with a plain-text part);
- ``markdown``: Slack-style chat (Slack, Discord, Mattermost, Teams, Matrix...);
- ``short``: the title and the headline only (pagers, SMS).

A channel uses the template registered as the default for its URL scheme, or the one
its ``template:`` option names: a built-in name, or a file (relative to the config
folder) holding a :class:`string.Template` with these placeholders (HTML-escaped in a
``.html`` file): ``$title $headline $status $severity $brand $rule $why $posts
$sentiment $statistic $notes $actions $alert_id $time $text``. The file's suffix gives
its format: ``.html`` HTML, ``.md`` Markdown, anything else text.

``render`` never raises: a template that fails costs the reader the detail, never the
notification (a minimal one is sent and the failure logged).
"""

from __future__ import annotations

import html
import logging
import string
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from monitor.model import Alert
from monitor.notify.present import Message, clip, present, status_of
from monitor.registry import Registry

log = logging.getLogger(__name__)

TITLE_MAX = 120
BODY_MAX = 4000
FILE_MAX = 64 * 1024
FORMATS = ("text", "html", "markdown")
PLACEHOLDERS = frozenset({"title", "headline", "status", "severity", "brand", "rule", "why",
                          "posts", "sentiment", "statistic", "notes", "actions", "alert_id",
                          "time", "text"})


@dataclass(frozen=True, slots=True)
class Template:
    """``render(message) -> body`` in ``format``; the default of channels whose URL has
    one of the ``schemes``."""

    render: Callable[[Message], str]
    format: str = "text"
    schemes: tuple[str, ...] = ()
    name: str = ""


TEMPLATES: Registry[Template] = Registry("template")


def register(name: str, fmt: str, schemes: tuple[str, ...] = ()
             ) -> Callable[[Callable[[Message], str]], Callable[[Message], str]]:
    def decorate(func: Callable[[Message], str]) -> Callable[[Message], str]:
        TEMPLATES.register(name)(Template(func, fmt, schemes, name))
        return func
    return decorate


# -- text ---------------------------------------------------------------------------------
@register("text", "text")
def text_body(m: Message) -> str:
    return "\n".join(_squeeze([m.headline, "", *_text_sections(m)]))


@register("console", "text", ("console",))
def console_body(m: Message) -> str:
    """The text template without the headline, which the console block's title shows."""
    return "\n".join(_squeeze(_text_sections(m)))


def _text_sections(m: Message) -> list[str]:
    lines: list[str] = []
    if m.why:
        lines.append(f"{_why_heading(m)}:")
        lines += [f"  {i}. {w}" for i, w in enumerate(m.why, 1)]
    if m.posts:
        lines.append(f"{m.posts_title}:")
        for p in m.posts:
            lines.append(f"  - {_who(p.author, p.followers)}: \"{p.text}\"")
            if p.url:
                lines.append(f"    {p.url}")
    if m.sentiment_line:
        lines.append(f"Sentiment: {m.sentiment_line}")
    lines += m.notes
    if m.statistic:
        lines.append(f"For analysts: {m.statistic}")
    lines += ["", _footer(m)]
    lines += [f"{what}: {command}" for what, command in m.actions]
    return lines


@register("short", "text", ("sms", "twilio", "sns", "vonage", "nexmo", "clicksend", "bulksms",
                            "plivo", "msg91", "d7sms", "pagerduty", "opsgenie"))
def short_body(m: Message) -> str:
    parts = [m.headline]
    if m.posts and m.posts[0].url:
        parts.append(m.posts[0].url)
    if m.actions:
        parts.append(m.actions[0][1])
    return " \u2014 ".join(parts)


# -- markdown (Slack-style chat) -------------------------------------------------------------
@register("markdown", "markdown", ("slack", "discord", "mmost", "mmosts", "msteams", "matrix",
                                   "matrixs", "rocket", "rockets", "zulip", "gchat", "tgram",
                                   "revolt", "ryver", "guilded"))
def markdown_body(m: Message) -> str:
    """CommonMark (apprise turns it into each chat's own markup, e.g. Slack mrkdwn)."""
    lines = [f"**{_md(m.headline)}**", f"_{_md(m.meta)}_", ""]
    if m.why:
        lines.append(f"**{_md(_why_heading(m))}**")
        lines += [f"- {_md(w)}" for w in m.why]
        lines.append("")
    if m.posts:
        lines.append(f"**{_md(m.posts_title)}**")
        for p in m.posts:
            who = _md(_who(p.author, p.followers))
            link = f" [open]({p.url})" if p.url else ""
            lines.append(f"- {who}: \u201c{_md(p.text)}\u201d{link}")
        lines.append("")
    if m.sentiment_line:
        lines.append(f"**Sentiment:** {_md(m.sentiment_line)}")
    lines += [_md(n) for n in m.notes]
    if m.statistic:
        lines.append(f"_For analysts: {_md(m.statistic)}_")
    lines += ["", f"_{_md(_footer(m))}_"]
    lines += [f"{what}: `{command}`" for what, command in m.actions]
    return "\n".join(_squeeze(lines))


# -- html (e-mail) -------------------------------------------------------------------------
@register("html", "html", ("mailto", "mailtos"))
def html_body(m: Message) -> str:
    """E-mail: apprise also derives the plain-text part from this HTML, so the items of
    a list are written without whitespace between tags (it would become blank lines)."""
    e = html.escape
    out = [f"<h2>{e(m.headline)}</h2>", f"<p style=\"color:#555\">{e(m.meta)}</p>"]
    if m.why:
        out.append(f"<h3>{e(_why_heading(m))}</h3><ol>"
                   + "".join(f"<li>{e(w)}</li>" for w in m.why) + "</ol>")
    if m.posts:
        items = []
        for p in m.posts:
            link = f" <a href=\"{e(p.url)}\">{e(p.url)}</a>" if p.url else ""
            items.append(f"<li><b>{e(_who(p.author, p.followers))}</b>: "
                         f"&ldquo;{e(p.text)}&rdquo;{link}</li>")
        out.append(f"<h3>{e(m.posts_title)}</h3><ul>" + "".join(items) + "</ul>")
    if m.sentiment_line:
        out.append(f"<p><b>Sentiment:</b> {e(m.sentiment_line)}</p>")
    out += [f"<p>{e(n)}</p>" for n in m.notes]
    if m.statistic:
        out.append(f"<p style=\"color:#555\"><i>For analysts:</i> {e(m.statistic)}</p>")
    out.append(f"<p style=\"color:#555\">{e(_footer(m))}</p>")
    if m.actions:
        out.append("<p>" + "<br/>".join(
            f"{e(what)}: <tt>{e(cmd)}</tt>" for what, cmd in m.actions) + "</p>")
    return "\n".join(out)  # between sections: a blank line in the text part


# -- files --------------------------------------------------------------------------------
def load_template(value: str, base_dir: Path) -> Template:
    """The template a channel's ``template:`` option names: a built-in name or a
    ``string.Template`` file; ValueError with what is wrong."""
    if value in TEMPLATES:
        return TEMPLATES.get(value)
    path = Path(value)
    if not path.is_absolute():
        path = base_dir / path
    if path.suffix == "" and "/" not in value:
        raise ValueError(f"unknown template {value!r} (built in: {', '.join(TEMPLATES)}; or "
                         "a file such as templates/alert.txt)")
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise ValueError(f"cannot read template file {path}: {exc.strerror or exc}") from None
    if len(raw) > FILE_MAX:
        raise ValueError(f"template file {path} is larger than {FILE_MAX // 1024} KB")
    try:
        source = string.Template(raw.decode("utf-8"))
    except UnicodeDecodeError:
        raise ValueError(f"template file {path} is not UTF-8 text") from None
    if not source.is_valid():
        raise ValueError(f"template file {path}: a '$' that starts no placeholder (write $$ "
                         "for a dollar sign)")
    unknown = sorted(set(source.get_identifiers()) - PLACEHOLDERS)
    if unknown:
        raise ValueError(f"template file {path}: unknown placeholder(s) "
                         f"{', '.join('$' + u for u in unknown)} (known: "
                         f"{', '.join('$' + k for k in sorted(PLACEHOLDERS))})")
    fmt = {".html": "html", ".htm": "html", ".md": "markdown"}.get(path.suffix.lower(), "text")
    return Template(lambda m: _fill(source, m, fmt), fmt, (), str(path))


def _fill(source: string.Template, m: Message, fmt: str) -> str:
    text = text_body(m)
    values = {
        "title": m.title, "headline": m.headline, "status": m.status, "severity": m.severity,
        "brand": m.brand, "rule": m.rule,
        "why": "\n".join(f"- {w}" for w in m.why),
        "posts": "\n".join(f"- {_who(p.author, p.followers)}: \"{p.text}\""
                           + (f" {p.url}" if p.url else "") for p in m.posts),
        "sentiment": m.sentiment_line, "statistic": m.statistic, "notes": "\n".join(m.notes),
        "actions": "\n".join(f"{what}: {cmd}" for what, cmd in m.actions),
        "alert_id": m.alert_id, "time": m.time, "text": text,
    }
    if fmt == "html":
        values = {k: html.escape(v) for k, v in values.items()}
    return source.safe_substitute(values)


def default_for(scheme: str) -> Template:
    """The template a channel with this URL scheme uses unless it names one."""
    scheme = scheme.lower()
    for name in TEMPLATES:
        found = TEMPLATES.get(name)
        if scheme in found.schemes:
            return found
    return TEMPLATES.get("text")


# -- rendering ----------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Rendered:
    title: str
    body: str
    format: str = "text"


def render_with(alert: Alert, template: Template, title_max: int = TITLE_MAX) -> Rendered:
    """``alert`` through ``template``; a minimal text message if anything fails. The
    title is clipped to ``title_max`` (SMS and pager screens; the console shows it all)."""
    try:
        message = present(alert)
        body = template.render(message)
        return Rendered(clip(message.title, title_max), clip(body, BODY_MAX), template.format)
    except Exception:
        log.exception("could not render alert %s; sending a minimal notification",
                      _safe(lambda: alert.id))
        title, body = _fallback(alert)
        return Rendered(title, body, "text")


def render(alert: Alert) -> tuple[str, str]:
    """``(title, body)`` of the plain-text template."""
    rendered = render_with(alert, TEMPLATES.get("text"))
    return rendered.title, rendered.body


def state_label(alert: Alert) -> str:
    """FIRING, UPDATED, STILL FIRING, ESCALATED or RESOLVED."""
    return status_of(alert)


def _why_heading(m: Message) -> str:
    """``Why: words and hashtags far more common than usual``; a title that says why
    by itself (``Why it was flagged``, ``What they said``) stays as it is."""
    title = m.why_title or "Why"
    if title.lower().startswith(("why", "what")):
        return title
    return f"Why: {title[:1].lower()}{title[1:]}"


def _footer(m: Message) -> str:
    parts = [m.meta]
    if m.alert_id:
        parts.append(f"alert {m.alert_id}")
    if m.time:
        parts.append(m.time)
    return " \u00b7 ".join(parts)


def _who(author: str, followers: int | None) -> str:
    return f"{author} ({followers:,} followers)" if followers is not None else author


def _md(text: str) -> str:
    """Keep chat markup from reading text as formatting (CommonMark escapes)."""
    for ch in ("\\", "*", "_", "`", "[", "]", "<", ">"):
        text = text.replace(ch, "\\" + ch)
    return text


def _squeeze(lines: list[str]) -> list[str]:
    """No leading, trailing or doubled blank lines."""
    out: list[str] = []
    for line in lines:
        if line or (out and out[-1]):
            out.append(line)
    while out and not out[-1]:
        out.pop()
    return out


def _fallback(alert: Alert) -> tuple[str, str]:
    severity = _safe(lambda: str(alert.severity).upper())
    brand = _safe(lambda: str(alert.brand))
    state = _safe(lambda: "RESOLVED" if alert.state == "resolved" else "FIRING")
    summary = _safe(lambda: str(alert.summary))
    alert_id = _safe(lambda: str(alert.id))
    title = clip(f"{state} [{severity}] {brand}", TITLE_MAX)
    body = clip(f"{summary}\n\n(alert {alert_id}; details could not be shown)", BODY_MAX)
    return title, body


def _safe(get: Callable[[], object]) -> str:
    try:
        return str(get())
    except Exception:
        return "?"


__all__ = ["BODY_MAX", "TEMPLATES", "TITLE_MAX", "Rendered", "Template", "default_for",
           "load_template", "render", "render_with", "state_label"]
