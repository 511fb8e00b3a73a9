"""Notification channels: console, a JSONL file, a webhook, or anything apprise can reach.

A notifier delivers one alert or raises ``DeliveryError``: ``retryable=True``
when trying again later may help (service down, timeout), ``False`` when it
cannot (the channel is misconfigured).
"""

from __future__ import annotations

import asyncio
import contextlib
import difflib
import functools
import hashlib
import json
import logging
import os
import re
import sys
import threading
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import parse_qsl, urlsplit

import apprise

from monitor.config.schema import ChannelConfig
from monitor.errors import DeliveryError
from monitor.model import Alert
from monitor.notify.templates import Template, default_for, load_template, render_with
from monitor.notify.webhook import WEBHOOK_SCHEMES, WebhookNotifier, is_webhook_url

log = logging.getLogger(__name__)

CONSOLE_SCHEME = "console://"
TAIL_BYTES = 256 * 1024  # how far back a jsonl channel looks for an already written alert
JSONL_SCHEME = "jsonl://"
TITLE_CONSOLE = 400  # the console shows the whole headline

#: channels that attach a chart image to volume alerts
EMAIL_SCHEMES = ("mailto", "mailtos")
#: ``(alert) -> PNG bytes or None`` (monitor.notify.chartimg.AlertCharts)
ChartSource = Callable[[Alert], bytes | None]

# apprise's notify type drives colours/icons on chat services
_NOTIFY_TYPES = {"info": apprise.NotifyType.INFO, "warning": apprise.NotifyType.WARNING,
                 "critical": apprise.NotifyType.FAILURE}
_FORMATS = {"text": apprise.NotifyFormat.TEXT, "html": apprise.NotifyFormat.HTML,
            "markdown": apprise.NotifyFormat.MARKDOWN}


class Notifier(Protocol):
    name: str

    async def send(self, alert: Alert) -> None:
        """Deliver ``alert`` or raise DeliveryError."""
        ...


class ConsoleNotifier:
    """``console://``: one readable block on standard output (the ``text`` template)."""

    def __init__(self, name: str, template: Template | None = None) -> None:
        self.name = name
        self.template = template or default_for("console")

    async def send(self, alert: Alert) -> None:
        rendered = render_with(alert, self.template, title_max=TITLE_CONSOLE)
        rule = "=" * min(max(len(rendered.title), 20), 80)
        block = f"{rule}\n{rendered.title}\n{rule}\n{rendered.body}\n\n"
        try:
            sys.stdout.write(block)
            sys.stdout.flush()
        except (OSError, ValueError) as exc:
            raise DeliveryError(f"channel {self.name!r}: cannot write to stdout: {exc}",
                                retryable=True) from exc


class JsonlNotifier:
    """``jsonl://PATH``: append ``alert.to_json()`` as one line (fsync'd) to PATH.

    A relative PATH is taken relative to ``base_dir``; parent directories are
    created as needed.
    """

    def __init__(self, name: str, path: Path) -> None:
        self.name = name
        self.path = path

    @classmethod
    def from_url(cls, name: str, url: str, base_dir: Path) -> JsonlNotifier:
        raw = url[len(JSONL_SCHEME):]
        if not raw.strip():
            raise DeliveryError(f"channel {name!r}: jsonl:// needs a file path, e.g. "
                                "jsonl://state/alerts.jsonl", retryable=False)
        return cls(name, base_dir / raw)

    async def send(self, alert: Alert) -> None:
        line = json.dumps(alert.to_json(), ensure_ascii=False, separators=(",", ":"),
                          default=str) + "\n"
        try:
            await asyncio.to_thread(self._append_once, alert.id, line.encode("utf-8"))
        except OSError as exc:
            raise DeliveryError(f"channel {self.name!r}: cannot append to {self.path}: {exc}",
                                retryable=True) from exc

    def _append_once(self, alert_id: str, data: bytes) -> None:
        """Append unless the alert is already among the last lines.

        The outbox delivers at least once: a crash between this write and the
        outbox's "sent" mark re-sends the alert. Alert ids are stable, and a
        re-send lands right after the first write, so the file's tail tells.
        """
        marker = ('{"id":' + json.dumps(alert_id)).encode("utf-8")
        try:
            with self.path.open("rb") as handle:
                handle.seek(max(0, handle.seek(0, os.SEEK_END) - TAIL_BYTES))
                if any(line.startswith(marker) for line in handle.read().splitlines()):
                    return
        except FileNotFoundError:
            pass
        self._append(data)

    def _append(self, data: bytes) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o640)
        try:
            view = memoryview(data)
            while view:
                written = os.write(fd, view)
                view = view[written:]
            os.fsync(fd)
        finally:
            os.close(fd)


class AppriseNotifier:
    """Any apprise URL (mailto://, json://, slack://, ntfy://, ...).

    The URL is parsed once, here: an URL apprise does not accept is a
    configuration error (``DeliveryError(retryable=False)``) whose message names
    the channel and the URL scheme only, since URLs usually carry secrets.
    """

    def __init__(self, name: str, url: str, template: Template | None = None,
                 charts: ChartSource | None = None) -> None:
        self.name = name
        self.scheme = url.split("://", 1)[0].lower() if "://" in url else ""
        self.template = template or default_for(self.scheme)
        # email channels attach a chart of a volume alert (monitor.notify.chartimg)
        self.charts = charts if self.scheme in EMAIL_SCHEMES else None
        if not _URL_SHAPE.match(url):
            raise DeliveryError(
                f"channel {name!r}: not a notification URL: expected scheme://... with no "
                "spaces, e.g. console://, jsonl://state/alerts.jsonl, "
                "webhooks://hooks.example.com/path or an apprise URL such as "
                "ntfy://ntfy.sh/my-topic", retryable=False)
        known = _known_schemes()
        if self.scheme not in known:
            close = difflib.get_close_matches(self.scheme, sorted(known), n=1)
            hint = f" (did you mean {close[0]}://?)" if close else ""
            raise DeliveryError(f"channel {name!r}: unknown notification scheme "
                                f"{self.scheme}://{hint}", retryable=False)
        self._apprise = apprise.Apprise()
        with _quiet_apprise():  # its parse errors (which quote the URL) are ours to report
            try:
                accepted = bool(self._apprise.add(url))
            except Exception as exc:
                log.debug("apprise could not parse channel %r: %s", name, exc)  # masked by logs
                accepted = False
        if not accepted or len(self._apprise) != 1:
            raise DeliveryError(
                f"channel {name!r}: invalid {self.scheme}:// URL: apprise does not accept it "
                "(a missing or invalid part; see https://github.com/caronc/apprise/wiki for "
                "this service's URL format; the full URL is not shown because it may contain "
                "secrets)", retryable=False)

        self._pagerduty = _PagerDutyKeys.attach(self._apprise, url)

    @property
    def apprise(self) -> apprise.Apprise:
        """The underlying apprise object (one service)."""
        return self._apprise

    async def send(self, alert: Alert) -> None:
        rendered = render_with(alert, self.template)
        notify_type = (apprise.NotifyType.SUCCESS if alert.state == "resolved"
                       else _NOTIFY_TYPES.get(alert.severity, apprise.NotifyType.INFO))
        if self._pagerduty is not None:
            self._pagerduty.prepare(alert)
        attach = self._chart(alert)
        try:
            result: Any = await self._apprise.async_notify(
                title=rendered.title, body=rendered.body, notify_type=notify_type,
                body_format=_FORMATS[rendered.format], attach=attach)
        except Exception as exc:
            raise DeliveryError(
                f"channel {self.name!r}: apprise raised {type(exc).__name__}: {exc}",
                retryable=True) from exc
        try:
            _check(self.name, self.scheme, result)
        finally:
            close = getattr(result, "close", None)
            if callable(close):
                close()


    def _chart(self, alert: Alert) -> Any:
        """The alert's chart as an attachment, or None (no chart for this alert, or it
        could not be drawn: the alert goes out all the same)."""
        if self.charts is None:
            return None
        try:
            data = self.charts(alert)
        except Exception as exc:
            log.warning("channel %r: no chart attached to alert %s: %s", self.name, alert.id,
                        exc)
            return None
        if not data:
            return None
        from apprise.attachment.memory import AttachMemory

        attachment: Any = apprise.AppriseAttachment()
        attachment.add(AttachMemory(  # type: ignore[no-untyped-call]
            content=data, name=f"{alert.rule}-{alert.brand}.png", mimetype="image/png"))
        return attachment


_URL_SHAPE = re.compile(r"^[a-z][a-z0-9+.-]*://\S*$", re.IGNORECASE)


@functools.cache
def _known_schemes() -> frozenset[str]:
    """Every scheme a channel URL may have: ours and each apprise plugin's."""
    from apprise import manager_plugins

    manager: Any = manager_plugins.NotificationManager()  # type: ignore[no-untyped-call]
    ours = {CONSOLE_SCHEME, JSONL_SCHEME, *(f"{s}://" for s in WEBHOOK_SCHEMES)}
    return frozenset({s.split(":", 1)[0] for s in ours} | set(manager.schemas()))


class _DropRecords(logging.Filter):
    def __init__(self, thread: int) -> None:
        super().__init__()
        self.thread = thread

    def filter(self, record: logging.LogRecord) -> bool:
        return record.thread != self.thread


@contextlib.contextmanager
def _quiet_apprise() -> Iterator[None]:
    """Drop apprise's log records from this thread while it parses a URL."""
    logger = logging.getLogger("apprise")
    dropper = _DropRecords(threading.get_ident())
    logger.addFilter(dropper)
    try:
        yield
    finally:
        logger.removeFilter(dropper)


class _PagerDutyKeys:
    """PagerDuty (``pagerduty://``): one incident per alert episode.

    Every event of an episode -- the firing alert, its reminders, a resend after a
    crash, the "all clear" -- carries the same ``dedup_key`` (derived from the alert's
    dedup key), so PagerDuty keeps one incident and a repeat never opens a second;
    with ``action=map`` (the default here unless the URL sets ``action=``) the
    "all clear" resolves that incident.  A ``dedup=`` written in the URL wins.  The
    plugin's attributes are set before each send; one channel's sends are sequential
    (the outbox delivers a channel in order), so this does not race.
    """

    def __init__(self, plugin: Any) -> None:
        self.plugin = plugin

    @classmethod
    def attach(cls, service: apprise.Apprise, url: str) -> _PagerDutyKeys | None:
        if url.split("://", 1)[0].lower() != "pagerduty" or len(service) != 1:
            return None
        plugin = service[0]
        if not hasattr(plugin, "dedup") or not hasattr(plugin, "action"):
            return None  # an apprise without per-incident keys: plain notifications
        if plugin.dedup:
            return None  # the admin fixed the key in the URL
        if not any(key.lower() == "action" for key, _ in parse_qsl(urlsplit(url).query,
                                                               keep_blank_values=True)):
            plugin.action = "map"
        return cls(plugin)

    def prepare(self, alert: Alert) -> None:
        digest = hashlib.sha256(alert.dedup_key.encode("utf-8")).hexdigest()[:40]
        self.plugin.dedup = f"brand-monitor-{digest}"


def _check(name: str, scheme: str, result: Any) -> None:
    """Map apprise's outcome (AppriseResult in 2.x; True/False/None in 1.x) to errors."""
    status = getattr(result, "status", None)
    status_name = getattr(status, "name", None)
    if result is None or status_name == "NOMATCH":
        raise DeliveryError(f"channel {name!r}: no apprise service matched ({scheme}://)",
                            retryable=False)
    if bool(result):
        return
    detail = _failure_detail(result)
    what = status_name.lower() if isinstance(status_name, str) else "failure"
    raise DeliveryError(f"channel {name!r}: {scheme}:// delivery failed ({what})"
                        + (f": {detail}" if detail else ""), retryable=True)


def _failure_detail(result: Any) -> str:
    """The last warning/error apprise captured for this call, if any (DeliveryError
    masks it)."""
    logs = getattr(result, "logs", None)
    if not callable(logs):
        return ""
    last = ""
    try:  # apprise captures WARNING and above by default
        for entry in logs():
            message = getattr(entry, "message", None)
            if isinstance(message, str) and message.strip():
                last = message
    except Exception:  # diagnostics only: never let them hide the failure itself
        return last
    return " ".join(last.split())[:300]


def channel_template(channel: ChannelConfig, base_dir: Path) -> Template | None:
    """The template a channel's ``template:`` option names (None: the default for its
    URL scheme); ValueError naming the problem (``jsonl://`` writes JSON: no template)."""
    if channel.template is None:
        return None
    if channel.url.strip().lower().startswith(JSONL_SCHEME):
        raise ValueError("a jsonl:// channel writes each alert's JSON: it takes no template")
    return load_template(channel.template, base_dir)


def build_notifier(channel: ChannelConfig, base_dir: Path,
                   charts: ChartSource | None = None) -> Notifier:
    """The notifier for one configured channel (DeliveryError(retryable=False) if invalid);
    ``charts`` draws the PNG that email channels attach to a volume alert."""
    url = channel.url.strip()
    try:
        template = channel_template(channel, base_dir)
    except ValueError as exc:
        raise DeliveryError(f"channel {channel.name!r}: template: {exc}",
                            retryable=False) from None
    if url.lower().startswith(CONSOLE_SCHEME):
        return ConsoleNotifier(channel.name, template)
    if url.lower().startswith(JSONL_SCHEME):
        return JsonlNotifier.from_url(channel.name, url, base_dir)
    if is_webhook_url(url):  # webhook:// and webhooks://, see monitor.notify.webhook
        return WebhookNotifier.from_url(channel.name, url, template=template)
    return AppriseNotifier(channel.name, url, template, charts)


def build_notifiers(channels: Iterable[ChannelConfig], base_dir: Path,
                    charts: ChartSource | None = None) -> dict[str, Notifier]:
    """Notifiers by channel name; the first invalid channel raises DeliveryError."""
    return {channel.name: build_notifier(channel, base_dir, charts) for channel in channels}


__all__ = ["AppriseNotifier", "ConsoleNotifier", "JsonlNotifier", "Notifier", "WebhookNotifier",
           "build_notifier", "build_notifiers", "channel_template"]
