"""Alerts that read like a sentence a PR lead would forward (issue 15): headline first,
then why, top posts with links, sentiment, then the statistic; the same structure on
the console, in e-mail (HTML and text), in Slack-style chat and in webhook JSON;
templates chosen per channel."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Mapping
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from monitor.config.loader import load_config
from monitor.config.schema import ChannelConfig
from monitor.detect.explain import tokens
from monitor.errors import ConfigError
from monitor.model import Alert
from monitor.notify.channels import AppriseNotifier, ConsoleNotifier, build_notifier
from monitor.notify.present import present
from monitor.notify.templates import TEMPLATES, render_with
from monitor.notify.webhook import WebhookNotifier
from tests.conftest import BASE_CONFIG, write_project
from tests.test_engine import burst
from tests.timeline import T0, Harness, post, steady


@pytest.fixture(scope="module")
def spike(tmp_path_factory: pytest.TempPathFactory) -> Alert:
    """A real volume-spike alert: the engine's own details."""
    h = Harness(write_project(tmp_path_factory.mktemp("spike")))
    h.feed(steady(T0, 48, 8))
    start = T0 + timedelta(hours=48, minutes=2)
    fired = [a for a in h.feed(burst(100_000, start, 120, 90)) if a.rule == "spike"]
    h.store.close()
    return fired[0]


def test_a_spike_headline_reads_as_plain_words(spike: Alert) -> None:
    d = spike.details
    assert spike.headline == d["headline"]
    assert spike.headline.startswith("Mentions of Acme are ")
    assert "\u00d7 usual: " in spike.headline and " posts from " in spike.headline
    assert spike.headline.endswith(" min") or spike.headline.endswith(" s")
    # why: ranked by posts, stopwords and the brand's own names removed
    assert d["why"] and len(d["why"]) == len(d["top_terms"])
    counts = [n for _, n in d["top_terms"]]
    assert counts == sorted(counts, reverse=True)
    terms = {t for t, _ in d["top_terms"]}
    assert not terms & {"acme", "the", "and", "again", "hey", "ugh"}
    # the top posts are the ones that show what the spike is about (its words)
    assert all(terms & set(tokens(p["text"])) for p in d["top_posts"])
    assert d["why"][0].startswith("\u201c")
    assert "more often than usual" in d["why"][0] or "new (not in the" in d["why"][0]


def _order(body: str, *parts: str) -> list[int]:
    return [body.index(p) for p in parts]


def test_every_template_keeps_the_reading_order(spike: Alert) -> None:
    message = present(spike)
    term = message.why[0]
    author = message.posts[0].author
    for name in ("text", "html", "markdown"):
        body = render_with(spike, TEMPLATES.get(name)).body
        escaped = body.replace("\\", "").replace("&ldquo;", "\u201c").replace(
            "&rdquo;", "\u201d").replace("&#x27;", "'")
        positions = _order(escaped, spike.headline.split(":")[0], term.split(" ")[0], author,
                           "Sentiment", "For analysts")
        assert positions == sorted(positions), name
    console = render_with(spike, TEMPLATES.get("console"))
    assert console.title.startswith("FIRING [WARNING] Mentions of Acme are")
    assert console.body.startswith("Why: words and hashtags far more common than usual:")


async def test_console_block_is_one_block(spike: Alert, capsys: pytest.CaptureFixture[str]
                                          ) -> None:
    await ConsoleNotifier("console").send(spike)
    out = capsys.readouterr().out
    assert sum(line.startswith("=====") for line in out.splitlines()) == 2
    assert out.count(spike.headline) == 1
    assert out.splitlines()[1].startswith("FIRING [WARNING] Mentions of Acme are")


def test_webhook_json_keeps_every_field_and_adds_the_message(spike: Alert) -> None:
    payload = json.loads(WebhookNotifier("hook", "http://127.0.0.1:1/x").body(spike))
    old = {"id", "dedup_key", "rule", "kind", "brand", "severity", "state", "title", "summary",
           "created_at", "channels", "details"}
    assert old <= set(payload)
    assert {k: payload[k] for k in old} == {
        k: v for k, v in json.loads(json.dumps(spike.to_json())).items() if k in old}
    assert payload["headline"] == spike.headline
    message = payload["message"]
    assert list(message)[:5] == ["status", "severity", "brand", "rule", "headline"]
    assert message["headline"] == spike.headline and message["why"] and message["posts"]
    assert message["posts"][0]["url"].startswith("https://")
    assert message["actions"][0]["command"].startswith("brand-monitor ack ")
    assert payload["text"].startswith(spike.headline)


# --- channels choose their template -------------------------------------------------------

@pytest.fixture
async def sink() -> AsyncIterator[tuple[int, list[tuple[str, Mapping[str, Any]]]]]:
    received: list[tuple[str, Mapping[str, Any]]] = []

    async def hook(request: web.Request) -> web.Response:
        received.append((request.path, await request.json()))
        return web.Response(text="ok")

    app = web.Application()
    app.router.add_post("/{tail:.*}", hook)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        yield int(runner.addresses[0][1]), received
    finally:
        await runner.cleanup()


async def test_slack_gets_chat_markup_with_links(
        spike: Alert, sink: tuple[int, list[tuple[str, Mapping[str, Any]]]],
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Slack is on the internet: apprise's Slack webhook base is pointed at a local
    sink; the request and its mrkdwn are apprise's real ones."""
    from apprise.plugins.slack import NotifySlack

    port, received = sink
    monkeypatch.setattr(NotifySlack, "webhook_url", f"http://127.0.0.1:{port}/services")
    notifier = build_notifier(ChannelConfig(
        name="chat", url="slack://T1JJ3T3L2/A1BRTD4JD/TIiajkdnlazkcOXrIdevi7"), tmp_path)
    assert isinstance(notifier, AppriseNotifier) and notifier.template.name == "markdown"
    await notifier.send(spike)
    [(path, payload)] = received
    assert path == "/services/T1JJ3T3L2/A1BRTD4JD/TIiajkdnlazkcOXrIdevi7"
    text = json.dumps(payload)
    assert "Mentions of Acme are" in text
    url = present(spike).posts[0].url
    assert f"<{url}|open>" in text  # Slack's own link markup
    assert text.index("Mentions of Acme") < text.index("For analysts")


async def test_channel_template_option_and_template_files(
        spike: Alert, sink: tuple[int, list[tuple[str, Mapping[str, Any]]]],
        tmp_path: Path) -> None:
    port, received = sink
    (tmp_path / "templates").mkdir()
    (tmp_path / "templates" / "pager.txt").write_text(
        "$status $brand: $headline\nTop: $posts\nack: $actions\n$$5 off\n")
    config = write_project(tmp_path, BASE_CONFIG.replace("""channels:
  - name: file
    url: jsonl://state/alerts.jsonl""", f"""channels:
  - name: file
    url: jsonl://state/alerts.jsonl
  - name: json-md
    url: json://127.0.0.1:{port}/md
    template: markdown
  - name: json-file
    url: json://127.0.0.1:{port}/file
    template: templates/pager.txt"""))
    loaded = load_config(config)
    notifiers = {c.name: build_notifier(c, config.parent) for c in loaded.channels}
    await notifiers["json-md"].send(spike)
    await notifiers["json-file"].send(spike)
    by_path = dict(received)
    assert by_path["/md"]["message"].startswith(f"**{spike.headline.split('.')[0]}")
    body = by_path["/file"]["message"]
    assert body.startswith(f"FIRING Acme: {spike.headline}\nTop: - @")
    assert "ack: Acknowledge: brand-monitor ack " in body and body.endswith("$5 off")


@pytest.mark.parametrize(("channel", "expected"), [
    ("{{name: x, url: 'console://', template: fancy}}",
     "config.yaml:11: channels[1].template: unknown template 'fancy' (built in: console, "
     "html, markdown, short, text; or a file such as templates/alert.txt)"),
    ("{{name: x, url: 'console://', template: missing/alert.txt}}",
     "config.yaml:11: channels[1].template: cannot read template file "),
    ("{{name: x, url: 'console://', template: bad.txt}}",
     "config.yaml:11: channels[1].template: template file "),
    ("{{name: x, url: 'jsonl://a.jsonl', template: text}}",
     "config.yaml:11: channels[1].template: a jsonl:// channel writes each alert's JSON: it "
     "takes no template"),
])
def test_bad_templates_are_config_errors_naming_file_line_and_key(
        tmp_path: Path, channel: str, expected: str) -> None:
    (tmp_path / "bad.txt").write_text("$headline and $nope\n")
    config = write_project(tmp_path, BASE_CONFIG.replace(
        "    url: jsonl://state/alerts.jsonl", f"    url: jsonl://state/alerts.jsonl\n  - "
        f"{channel}"))
    with pytest.raises(ConfigError) as caught:
        load_config(config)
    [problem] = caught.value.problems
    assert str(problem).replace(f"{tmp_path}/", "").startswith(expected)
    if "bad.txt" in channel:
        assert "unknown placeholder(s) $nope" in str(problem)


def test_rotation_takes_no_template(tmp_path: Path) -> None:
    config = write_project(tmp_path, BASE_CONFIG.replace(
        "    url: jsonl://state/alerts.jsonl", "    url: jsonl://state/alerts.jsonl\n"
        "  - name: oncall\n    template: text\n    rotation: {{members: [file]}}"))
    with pytest.raises(ConfigError) as caught:
        load_config(config)
    assert "channels[1].template: not allowed on a rotation channel" in str(caught.value)


def test_digest_and_influencer_and_silence_headlines(tmp_path: Path) -> None:
    from tests.test_digest import DIGEST_RULES, leaving

    rules = DIGEST_RULES + ("  - name: vip\n    signal: influencer\n    channels: [file]\n"
                            "    cooldown: 0s\n    params: {min_followers: 10000}\n")
    h = Harness(write_project(tmp_path, rules=rules))
    start = T0 + timedelta(hours=2)
    fired = h.feed(leaving(0, start, 3, timedelta(minutes=1)))
    fired += h.feed([post(9, start + timedelta(minutes=5), "@acme is awful, terrible, horrible "
                          "service", author="star", followers=20_000)])
    by_rule = {a.rule: a for a in fired}
    assert by_rule["churn"].headline == ("3 customers said they are leaving Acme in the last "
                                         "2 min")
    assert by_rule["vip"].headline == "@star, with 20,000 followers, posted negatively " \
        "about Acme"
    body = render_with(by_rule["churn"], TEMPLATES.get("text")).body
    assert body.splitlines()[2] == "What they said:"
    assert "Top posts by reach:" in body
