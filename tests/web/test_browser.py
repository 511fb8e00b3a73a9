"""The dashboard end to end in a real headless Chromium, against the real daemon
process fed through POST /ingest: the pulse chart's points, an alert marker opening
its alert, ack, silence and outbound approval from the page (checked through the
HTTP API), and the sign-in and CSRF refusals."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from tests.daemon import DaemonProcess, wait_for
from tests.web import env

pytestmark = pytest.mark.e2e


class World:
    def __init__(self, daemon: DaemonProcess, t0: datetime, acme_mentions: int) -> None:
        self.daemon = daemon
        self.t0 = t0
        self.acme_mentions = acme_mentions
        self.base = f"http://127.0.0.1:{daemon.port}"
        self.db = daemon.config.parent / "state" / "brand-monitor.db"

    def alert(self, rule: str) -> dict[str, Any]:
        """The first alert of ``rule`` (the API lists newest first)."""
        return [a for a in env.alerts(self.daemon) if a["rule"] == rule][-1]

    def stored(self, sql: str, *params: Any) -> list[tuple[Any, ...]]:
        con = sqlite3.connect(f"file:{self.db}?mode=ro", uri=True)
        try:
            return list(con.execute(sql, params))
        finally:
            con.close()


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory, chromium: str) -> Iterator[World]:
    tmp: Path = tmp_path_factory.mktemp("dashboard")
    daemon = env.start(tmp)
    try:
        now = env.now()
        posts = env.history(now) + env.storm(now)
        assert max(p.created_at for p in posts) < now  # all in buckets the pages draw
        env.ingest(daemon, posts)
        env.ingest(daemon, [env.vip(1, now), env.outbound(1, now), env.outbound(2, now)])
        for rule in ("spike", "vip"):
            env.wait_alert(daemon, rule)
        env.wait_alert(daemon, "off-message", 2)
        acme = sum(1 for p in posts if "acme" in p.text.lower()) + 1  # + the VIP complaint
        world = World(daemon, now, acme)
        wait_for(lambda: world.stored("SELECT sum(posts) FROM aggregates WHERE brand='Acme'")
                 [0][0] == acme, 20, "the aggregates to be checkpointed")
        yield world
        assert daemon.stop() == 0
    finally:
        if daemon.proc is not None and daemon.proc.poll() is None:
            daemon.kill()


def login(browser: Any, world: World, token: str, name: str = "Ann") -> None:
    from selenium.webdriver.common.by import By

    browser.delete_all_cookies()
    browser.get(world.base + "/ui/pulse")
    assert "/ui/login" in browser.current_url  # asked once...
    browser.find_element(By.NAME, "token").send_keys(token)
    browser.find_element(By.NAME, "name").send_keys(name)
    browser.find_element(By.CSS_SELECTOR, "form.login button[type=submit]").click()
    # the path, not the URL's end: the sign-in page's own URL ends with ?next=/ui/pulse,
    # and a navigation started before the queued form submission is overtaken by it
    wait_for(lambda: urlsplit(browser.current_url).path == "/ui/pulse", 10, "the pulse page")


def chart_ready(browser: Any, figure: str) -> None:
    try:
        wait_for(lambda: browser.execute_script(
            f"var f = document.getElementById('{figure}'); return f && f.dataset.ready"), 10,
            f"chart {figure} to render")
    except AssertionError as exc:  # say what the page was, so a CI failure can be read
        raise AssertionError(f"{exc}: {page_report(browser, figure)}") from None


def page_report(browser: Any, figure: str) -> str:
    """The page's URL, state and console (best effort: the browser may be what broke)."""
    try:
        state = browser.execute_script(
            f"var f = document.getElementById('{figure}'), e = document.querySelector('.error');"
            "return {url: location.href, title: document.title, state: document.readyState,"
            " figure: !!f, uplot: typeof uPlot, charts: typeof bmCharts,"
            " error: e ? e.textContent : null,"
            " text: document.body ? document.body.innerText.slice(0, 300) : null};")
        logs = [f"{e.get('level')} {e.get('message')}" for e in browser.get_log("browser")]
    except Exception as exc:  # a report, never the failure itself
        return f"no page report ({exc!r})"
    return f"page {state}, console {logs}"


def flash(browser: Any) -> str:
    from selenium.webdriver.common.by import By

    return str(browser.find_element(By.CSS_SELECTOR, "p.flash[role=status]").text)


def test_pulse_chart_renders_every_stored_bucket(browser: Any, world: World) -> None:
    from selenium.webdriver.common.by import By

    login(browser, world, env.API)
    chart_ready(browser, "chart-b1")  # the overview: one chart per brand
    assert browser.execute_script("return document.body.dataset.chartsReady") == "2"
    def consistent() -> tuple[dict[str, Any], tuple[Any, ...]] | None:
        # the daemon runs on the wall clock: a checkpoint may store the new bucket's
        # expected count between the page and the query, so compare the page with the
        # store over the page's own buckets, and read both again until they agree
        browser.get(world.base + "/ui/pulse/Acme?range=24h")
        chart_ready(browser, "chart-mentions")
        read = browser.execute_script(
            "var u = bmCharts['chart-mentions'], y = u.data[4];"
            "return {buckets: u.data[0].length, first: u.data[0][0],"
            "        last: u.data[0][u.data[0].length - 1],"
            "        points: y.filter(function (v) { return v !== null; }).length,"
            "        total: y.reduce(function (s, v) { return s + (v || 0); }, 0),"
            "        expected: u.data[3].filter(function (v) { return v !== null; }).length,"
            "        drawn: u.ctx.canvas.width > 0};")
        rows = world.stored("SELECT count(*), sum(posts), count(expected) FROM aggregates "
                            "WHERE brand='Acme' AND start>=? AND start<=?", read["first"],
                            read["last"])[0]
        same = (read["points"], read["total"], read["expected"]) == tuple(rows)
        return (read, rows) if same else None

    read, rows = wait_for(consistent, 20, "a page and the store that agree")
    assert read["buckets"] == 288 and read["drawn"]
    assert read["points"] == rows[0] > 30  # every stored bucket, and only those
    assert read["total"] == rows[1] == world.acme_mentions
    assert read["expected"] == rows[2] > 0  # the learned band is there
    assert browser.find_element(By.ID, "chart-mentions").get_attribute("data-points") == \
        str(read["points"])
    # the text alternative: the same numbers in a table
    browser.find_element(By.CSS_SELECTOR, "#chart-mentions details.numbers summary").click()
    table = "#chart-mentions table.numbers-table"
    wait_for(lambda: browser.find_elements(By.CSS_SELECTOR, table), 5, "the table")
    cells = browser.execute_script(
        f"return Array.from(document.querySelectorAll('{table} tbody tr'))"
        ".map(function (r) { return r.children[1].textContent; });")
    assert sum(int(c) for c in cells if c != "-") == world.acme_mentions
    # zoom with the keyboard-operable buttons
    before = browser.execute_script("var s = bmCharts['chart-mentions'].scales.x;"
                                    "return s.max - s.min;")
    browser.find_element(By.CSS_SELECTOR, ".zoom button[data-zoom=in]").click()
    after = browser.execute_script("var s = bmCharts['chart-mentions'].scales.x;"
                                   "return s.max - s.min;")
    assert after == pytest.approx(before / 2, rel=0.01)


def test_the_pulse_chart_updates_live(browser: Any, world: World) -> None:
    browser.get(world.base + "/ui/pulse/Acme?range=24h")
    chart_ready(browser, "chart-mentions")
    total = ("return bmCharts['chart-mentions'].data[4]"
             ".reduce(function (s, v) { return s + (v || 0); }, 0);")
    before = browser.execute_script(total)
    stored = world.stored("SELECT sum(posts) FROM aggregates WHERE brand='Acme'")[0][0]
    now = env.now()
    fresh = [env.post(600_000 + i, now - timedelta(seconds=5), "flying with @acme again",
                      author=f"live{i}") for i in range(7)]
    env.ingest(world.daemon, fresh)
    wait_for(lambda: world.stored("SELECT sum(posts) FROM aggregates WHERE brand='Acme'")
             [0][0] == stored + 7, 20, "the new posts in the aggregates")
    assert browser.execute_async_script(
        "var done = arguments[arguments.length - 1]; bmPoll().then(done);") is True
    assert browser.execute_script(total) == before + 7
    world.acme_mentions += 7


def test_an_alert_marker_opens_the_alert(browser: Any, world: World) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    spike = world.alert("spike")
    browser.get(world.base + "/ui/pulse/Acme?range=24h")
    chart_ready(browser, "chart-mentions")
    marker = browser.find_element(By.CSS_SELECTOR,
                                  f"#chart-mentions a.marker[data-alert-id='{spike['id']}']")
    assert "Alert at" in marker.get_attribute("aria-label")
    marker.send_keys(Keys.ENTER)  # keyboard: the marker is a focusable link
    wait_for(lambda: f"/ui/alerts/{spike['id']}" in browser.current_url, 10, "the alert page")
    assert browser.find_element(By.ID, "alert-id").text == spike["id"]
    assert browser.find_element(By.ID, "alert-title").text == spike["title"]
    timeline = browser.find_element(By.CSS_SELECTOR, "ol.timeline").text
    assert "fired" in timeline


def test_ack_from_the_page_shows_up_in_the_api(browser: Any, world: World) -> None:
    from selenium.webdriver.common.by import By

    spike = world.alert("spike")
    browser.get(f"{world.base}/ui/alerts/{spike['id']}")
    browser.find_element(By.CSS_SELECTOR, ".ack-form input[name=comment]").send_keys(
        "looking into the login outage")
    browser.find_element(By.CSS_SELECTOR, ".ack-form button[type=submit]").click()
    wait_for(lambda: browser.find_elements(By.CSS_SELECTOR, "p.flash"), 10, "the confirmation")
    assert flash(browser) == "Acknowledged."
    acked = env.alerts(world.daemon, state="acknowledged")
    found = next(a for a in acked if a["id"] == spike["id"])
    assert found["ack"]["by"] == "Ann"
    assert found["ack"]["comment"] == "looking into the login outage"
    timeline = browser.find_element(By.CSS_SELECTOR, "ol.timeline").text
    assert "acknowledged by Ann: looking into the login outage" in timeline


def test_a_silence_created_in_the_page_suppresses_the_next_alert(browser: Any,
                                                                 world: World) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    vip = world.alert("vip")
    browser.get(f"{world.base}/ui/alerts/{vip['id']}")
    form = browser.find_element(By.CSS_SELECTOR, "form.silence-form")
    assert form.find_element(By.NAME, "rule").get_attribute("value") == "vip"
    assert form.find_element(By.NAME, "brand").get_attribute("value") == "Acme"
    def preview() -> str:
        return str(browser.execute_script(
            "return document.querySelector('form.silence-form .preview').textContent"
            ".replace(/\\s+/g, ' ').trim();"))

    assert preview() == "This would have silenced 1 alert in the last 24 h."
    rule = form.find_element(By.NAME, "rule")  # the preview follows the matchers
    rule.clear()
    rule.send_keys("nothing-like-this")
    wait_for(lambda: preview() == "This would have silenced 0 alerts in the last 24 h.", 10,
             "the preview to update")
    rule.clear()
    rule.send_keys("vip")
    wait_for(lambda: preview() == "This would have silenced 1 alert in the last 24 h.", 10,
             "the preview to update back")
    Select(form.find_element(By.NAME, "for")).select_by_value("1h")
    form.find_element(By.NAME, "comment").send_keys("known influencer, handled")
    form.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
    wait_for(lambda: browser.find_elements(By.CSS_SELECTOR, "p.flash"), 10, "the confirmation")
    assert flash(browser) == "Silence created."
    status, silences = world.daemon.request("GET", "/silences", token=env.API)
    assert status == 200 and [(s["rule"], s["brand"]) for s in silences] == [("vip", "Acme")]
    # the next matching signal is recorded as silenced, not notified
    env.ingest(world.daemon, [env.vip(2, env.now())])
    wait_for(lambda: env.alerts(world.daemon, state="silenced"), 20, "the silenced alert")
    [silenced] = env.alerts(world.daemon, state="silenced")
    assert silenced["rule"] == "vip" and silenced["channels"] == []
    sent = (world.daemon.config.parent / "state" / "alerts.jsonl").read_text()
    assert silenced["id"] not in sent


def test_approving_an_outbound_post_adds_it_to_the_ledger(browser: Any, world: World) -> None:
    from selenium.webdriver.common.by import By

    flagged = [a for a in env.alerts(world.daemon) if a["rule"] == "off-message"]
    first, second = flagged[-1], flagged[-2]
    browser.get(world.base + "/ui/outbound")
    card = browser.find_element(By.CSS_SELECTOR, f"article[data-alert-id='{first['id']}']")
    assert "profanity" in card.text.lower() or "reasons" in card.text.lower()
    card.find_element(By.CSS_SELECTOR, "button.approve").click()
    wait_for(lambda: browser.find_elements(By.CSS_SELECTOR, "p.flash"), 10, "the confirmation")
    assert flash(browser).startswith("Approved as sanctioned")
    status, ledger = world.daemon.request("GET", "/approved-posts", token=env.API)
    assert status == 200
    assert [(a["text"], a["brand"], a["source"]) for a in ledger] == [
        ("shit, these f*cking delays are not our fault", "Acme", "dashboard")]
    assert not browser.find_elements(By.CSS_SELECTOR,
                                     f"article[data-alert-id='{first['id']}']")
    # the other one is dismissed with a reason, which stays on record
    card = browser.find_element(By.CSS_SELECTOR, f"article[data-alert-id='{second['id']}']")
    card.find_element(By.NAME, "reason").send_keys("duplicate of the approved post")
    card.find_element(By.CSS_SELECTOR, "form[action$='/dismiss'] button").click()
    wait_for(lambda: browser.find_elements(By.CSS_SELECTOR, "p.flash"), 10, "the confirmation")
    assert flash(browser) == "Dismissed."
    browser.get(world.base + "/ui/outbound?show=all")
    assert "Dismissed by Ann" in browser.find_element(
        By.CSS_SELECTOR, f"article[data-alert-id='{second['id']}']").text


def test_sign_in_and_csrf_refusals(browser: Any, world: World) -> None:
    from selenium.webdriver.common.by import By

    vip = world.alert("vip")
    # a wrong token is refused, with a message a screen reader announces
    browser.delete_all_cookies()
    browser.get(world.base + "/ui/login")
    browser.find_element(By.NAME, "token").send_keys("not-the-token-0123456789")
    browser.find_element(By.CSS_SELECTOR, "form.login button[type=submit]").click()
    # the click queues the form's submission: the answer page may not be there yet
    error = wait_for(lambda: browser.find_elements(By.CSS_SELECTOR, ".error[role=alert]"), 10,
                     "the refusal")[0]
    assert error.text == "that token is not valid"
    assert not browser.get_cookies()
    # the read token: pages, but no action
    login(browser, world, env.READ, "Rita")
    browser.get(f"{world.base}/ui/alerts/{vip['id']}")
    assert "read-only" in browser.find_element(By.CSS_SELECTOR, "header .who").text
    assert not browser.find_elements(By.CSS_SELECTOR, "form.silence-form")
    # an admin session: a POST without the CSRF token, or from another site, changes nothing
    login(browser, world, env.API)
    browser.get(f"{world.base}/ui/alerts/{vip['id']}")
    csrf = browser.find_element(By.CSS_SELECTOR, "meta[name=csrf-token]").get_attribute(
        "content")
    status = browser.execute_script(
        "return fetch(arguments[0], {method: 'POST', body: new URLSearchParams({comment: 'x'})})"
        ".then(function (r) { return r.status; });", f"/ui/alerts/{vip['id']}/ack")
    assert status == 403
    forged = (f"data:text/html,<form method=post action='{world.base}/ui/alerts/{vip['id']}"
              f"/ack'><input name=csrf_token value='{csrf}'><input name=comment value=evil>"
              "</form><script>document.forms[0].submit()</script>")
    browser.get(forged)
    wait_for(lambda: browser.current_url.startswith(world.base), 10, "the forged POST")
    refusal = wait_for(lambda: browser.find_elements(By.CSS_SELECTOR, ".error"), 10,
                       "the refusal page")[0]
    assert "refused" in refusal.text
    firing = [a["id"] for a in env.alerts(world.daemon, state="firing")]
    assert vip["id"] in firing  # still firing: not acknowledged by either request


def test_the_whatif_backtest_charts_the_stored_history(browser: Any, world: World) -> None:
    from selenium.webdriver.common.by import By

    login(browser, world, env.API)
    browser.get(world.base + "/ui/whatif?rule=spike&brand=Acme&sensitivity=0.2&days=7")
    chart_ready(browser, "chart-whatif")
    read = browser.execute_script(
        "var u = bmCharts['chart-whatif'];"
        "return {n: u.data[0].length, total: u.data[1].reduce(function (s, v) {"
        " return s + v; }, 0), min: u.scales.x.min, max: u.scales.x.max};")
    stored = world.stored("SELECT count(*), sum(posts) FROM aggregates WHERE brand='Acme'")[0]
    assert read["min"] is not None and read["max"] > read["min"]  # drawn over its range
    assert read["total"] == stored[1]
    summary = browser.find_element(By.ID, "whatif-summary").text
    assert "at medium the rule would have fired" in summary.lower()
    # the table behind the chart marks the same buckets as the counts above it
    browser.find_element(By.CSS_SELECTOR, "#chart-whatif details.numbers summary").click()
    # the table is built by the details' toggle event, a task queued by the click: the
    # next WebDriver command may run before it
    table = "#chart-whatif table.numbers-table"
    wait_for(lambda: browser.find_elements(By.CSS_SELECTOR, table), 5, "the table")
    columns = browser.execute_script(
        f"return Array.from(document.querySelectorAll('{table} tbody tr'))"
        ".map(function (r) { return [r.children[2].textContent, r.children[3].textContent]; });")
    now_fires = sum(1 for c in columns if c[0] == "fires")
    new_fires = sum(1 for c in columns if c[1] == "fires")
    assert now_fires == int(browser.find_element(By.CSS_SELECTOR, ".count-current").text)
    assert new_fires == int(browser.find_element(By.CSS_SELECTOR, ".count-proposed").text)
    assert new_fires >= now_fires and new_fires >= 1  # 0.2 is far looser than medium
