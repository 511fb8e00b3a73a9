"""Load and cross-check config.yaml and the rule files."""

from __future__ import annotations

import dataclasses
import difflib
import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from monitor.config.schema import Config, Rule, RuleSet
from monitor.config.strict import Context, build, build_lenient
from monitor.config.yamlload import LocDict, LocList, load_yaml
from monitor.errors import ConfigError, DeliveryError, Problem
from monitor.plugins import detector_class, detector_mode, signals_with_modes, source_options

log = logging.getLogger(__name__)
BUILTIN_CHANNEL_SCHEMES = ("console://", "jsonl://")


def load_config(path: Path, environ: Mapping[str, str] | None = None) -> Config:
    """Load config.yaml; relative paths in it are resolved against its folder."""
    path = Path(path)
    ctx = Context(str(path), environ)
    raw = load_yaml(path)
    if not isinstance(raw, LocDict):
        raise ConfigError([Problem(str(path), 1, "", "the file must hold a mapping of settings")])
    config = build_lenient(Config, raw, ctx, "", raw.line)
    if config is None:
        ctx.raise_if_problems()
        raise AssertionError("unreachable")
    config = _build_source_options(config, raw, ctx)
    _cross_check(config, raw, ctx)
    base = path.resolve().parent
    _check_packs(config, raw, ctx, base)
    if not ctx.problems:  # the notifiers are built from a valid config only
        _check_channels(config, raw, ctx, base)
    ctx.raise_if_problems()
    _deprecations(raw, ctx)
    return dataclasses.replace(
        config,
        state_dir=str(base / config.state_dir),
        rules_dir=str(base / config.rules_dir),
        sentiment=dataclasses.replace(
            config.sentiment, lexicon_dir=str(base / config.sentiment.lexicon_dir)),
    )


def _check_channels(config: Config, raw: LocDict, ctx: Context, base: Path) -> None:
    """Build every channel's notifier as ``run`` does (the same function): a URL that
    ``run`` would refuse is a problem at its line."""
    from monitor.notify.channels import build_notifier, channel_template

    for index, (line, item) in enumerate(_items(raw, "channels")):
        channel = config.channels[index]
        if channel.rotation is not None:
            continue
        try:
            channel_template(channel, base)
        except ValueError as exc:
            template_line = item.line_of("template") if isinstance(item, LocDict) else line
            ctx.problem(template_line, f"channels[{index}].template", str(exc))
            continue
        try:
            build_notifier(channel, base)
        except DeliveryError as exc:
            url_line = item.line_of("url") if isinstance(item, LocDict) else line
            message = str(exc).removeprefix(f"channel {channel.name!r}: ")
            ctx.problem(url_line, f"channels[{index}].url", message)


def _check_packs(config: Config, raw: LocDict, ctx: Context, base: Path) -> None:
    """Each sentiment pack written in the file names a file ``<lexicon_dir>/<name>.yaml``
    (the default pack, not written, is reported when the analyser is built)."""
    folder = base / config.sentiment.lexicon_dir
    section = raw.get("sentiment")
    if not isinstance(section, LocDict) or "packs" not in section:
        return
    packs = section.get("packs")
    lines = getattr(packs, "item_lines", None)
    for index, name in enumerate(config.sentiment.packs):
        if (folder / f"{name}.yaml").is_file():
            continue
        known = sorted(p.stem for p in folder.glob("*.yaml")) if folder.is_dir() else []
        line = lines[index] if lines and index < len(lines) else section.line_of("packs")
        where = (f"known in {folder}: {', '.join(known)}" if known
                 else f"{folder} has no packs")
        close = difflib.get_close_matches(name, known, n=1)
        hint = f"did you mean {close[0]!r}? " if close else ""
        ctx.problem(line, f"sentiment.packs[{index}]",
                    f"unknown lexicon pack {name!r}: {hint}({where})")


def _deprecations(raw: LocDict, ctx: Context) -> None:
    """Keys still accepted but ignored: logged as warnings (``check`` shows them)."""
    for index, (_, item) in enumerate(_items(raw, "channels")):
        if isinstance(item, LocDict) and "max_attempts" in item:
            log.warning("%s", Problem(
                ctx.file, item.line_of("max_attempts"), f"channels[{index}].max_attempts",
                "deprecated and ignored: a failed delivery is retried for retry_for (default "
                "24h) from its first failure, then goes to the fallback channel or becomes a "
                "dead letter; remove max_attempts (set retry_for to change the horizon)"))


def _items(raw: LocDict, key: str) -> list[tuple[int | None, Any]]:
    value = raw.get(key)
    if not isinstance(value, LocList):
        return []
    return list(zip(value.item_lines, value, strict=True))


def _build_source_options(config: Config, raw: LocDict, ctx: Context) -> Config:
    sources = []
    for index, (source, (line, item)) in enumerate(
            zip(config.sources, _items(raw, "sources"), strict=True)):
        key = f"sources[{index}]"
        try:
            options_cls = source_options(source.type)
        except KeyError as exc:
            ctx.problem(item.line_of("type") if isinstance(item, LocDict) else line,
                        f"{key}.type", str(exc.args[0]))
            sources.append(source)
            continue
        opt_line = item.line_of("options") if isinstance(item, LocDict) else line
        options = build_lenient(options_cls, source.options, ctx, f"{key}.options", opt_line)
        sources.append(dataclasses.replace(source, options=options))
    return dataclasses.replace(config, sources=tuple(sources))


def _unique(names: list[tuple[str, int | None, str]], what: str, ctx: Context) -> None:
    seen: set[str] = set()
    for name, line, key in names:
        if name in seen:
            ctx.problem(line, key, f"duplicate {what} name {name!r}")
        seen.add(name)


def _cross_check(config: Config, raw: LocDict, ctx: Context) -> None:
    def located(section: str, field: str) -> list[tuple[str, int | None, str]]:
        out = []
        for index, (line, item) in enumerate(_items(raw, section)):
            field_line = item.line_of(field) if isinstance(item, LocDict) else line
            out.append((str(item.get(field, "")) if isinstance(item, dict) else "",
                        field_line, f"{section}[{index}].{field}"))
        return out

    _unique(located("brands", "name"), "brand", ctx)
    _unique(located("sources", "name"), "source", ctx)
    _unique(located("channels", "name"), "channel", ctx)
    channel_names = {c.name for c in config.channels}
    for (_, line, key), channel in zip(located("channels", "fallback"), config.channels,
                                       strict=False):
        if channel.fallback is not None and channel.fallback not in channel_names:
            ctx.problem(line, key, f"unknown channel {channel.fallback!r}")
        if channel.fallback == channel.name:
            ctx.problem(line, key, "a channel cannot be its own fallback")
    for (_, line, key), channel in zip(located("channels", "fallback"), config.channels,
                                       strict=False):
        target = config.channel(channel.fallback) if channel.fallback else None
        if target is not None and target.rotation is not None:
            ctx.problem(line, key, f"{channel.fallback!r} is a rotation: name a real channel")
    _check_rotations(config, raw, ctx)
    admin = raw.get("admin_channels")
    for index, name in enumerate(config.admin_channels):
        if name not in channel_names:
            lines = getattr(admin, "item_lines", None)
            line = lines[index] if lines else raw.line_of("admin_channels")
            ctx.problem(line, f"admin_channels[{index}]", f"unknown channel {name!r}")
    brand_names = {b.name for b in config.brands}
    for (_, line, key), source in zip(located("sources", "brand"), config.sources, strict=False):
        if source.brand is not None and source.brand not in brand_names:
            ctx.problem(line, key, f"unknown brand {source.brand!r}")
    if not config.brands:
        ctx.problem(raw.line_of("brands"), "brands", "configure at least one brand")


def _check_rotations(config: Config, raw: LocDict, ctx: Context) -> None:
    """Rotation members (and override members) must be other, non-rotation channels."""
    def problem(name: str, line: int | None, key: str) -> None:
        target = config.channel(name)
        if target is None:
            ctx.problem(line, key, f"unknown channel {name!r}")
        elif target.rotation is not None:
            ctx.problem(line, key, f"{name!r} is itself a rotation: name real channels")

    for index, (line, item) in enumerate(_items(raw, "channels")):
        channel = config.channels[index] if index < len(config.channels) else None
        rotation = channel.rotation if channel is not None else None
        if rotation is None or not isinstance(item, LocDict):
            continue
        raw_rotation = item.get("rotation")
        base = f"channels[{index}].rotation"
        rot = raw_rotation if isinstance(raw_rotation, LocDict) else LocDict()
        members = rot.get("members")
        member_lines = getattr(members, "item_lines", None)
        for m, name in enumerate(rotation.members):
            m_line = (member_lines[m] if member_lines and m < len(member_lines)
                      else rot.line_of("members") or line)
            problem(name, m_line, f"{base}.members[{m}]")
        overrides = rot.get("overrides")
        override_lines = getattr(overrides, "item_lines", None)
        for o, override in enumerate(rotation.overrides):
            raw_override = overrides[o] if isinstance(overrides, LocList) else None
            o_line = (raw_override.line_of("member") if isinstance(raw_override, LocDict)
                      else override_lines[o] if override_lines else line)
            problem(override.member, o_line, f"{base}.overrides[{o}].member")


def load_rules(rules_dir: Path, config: Config) -> RuleSet:
    """Load every rules/*.yaml file (sorted by name) into one RuleSet."""
    rules_dir = Path(rules_dir)
    if not rules_dir.is_dir():
        raise ConfigError([Problem(str(rules_dir), None, "", "rules folder does not exist")])
    problems: list[Problem] = []
    rules: list[Rule] = []
    seen: dict[str, str] = {}
    for path in sorted(rules_dir.glob("*.yaml")) + sorted(rules_dir.glob("*.yml")):
        try:
            loaded = load_rule_file(path, config)
        except ConfigError as exc:
            problems.extend(exc.problems)
            continue
        for rule, line in loaded:
            if rule.name in seen:
                problems.append(Problem(
                    str(path), line, "name",
                    f"rule {rule.name!r} is already defined in {seen[rule.name]}"))
            seen[rule.name] = str(path)
            rules.append(rule)
    if problems:
        raise ConfigError(problems)
    return RuleSet(tuple(rules))


def load_rule_file(path: Path, config: Config) -> list[tuple[Rule, int | None]]:
    ctx = Context(str(path))
    raw = load_yaml(path)
    if raw is None or (isinstance(raw, LocDict) and raw.get("rules", []) is None):
        # an empty file is most likely a truncated or half-written one: refusing it
        # keeps the rules it had (a reload keeps the running set) instead of dropping them
        line, key = (raw.line_of("rules"), "rules") if isinstance(raw, LocDict) else (1, "")
        raise ConfigError([Problem(str(path), line, key,
                                   "no rules in this file: list them under 'rules:' (write "
                                   "'rules: []' to keep an empty file), or delete the file")])
    if not isinstance(raw, LocDict) or set(raw) - {"rules"}:
        raise ConfigError([Problem(str(path), getattr(raw, "line", 1), "",
                                   "a rules file holds one key, 'rules:', with a list of rules")])
    out: list[tuple[Rule, int | None]] = []
    for index, (line, item) in enumerate(_items(raw, "rules")):
        key = f"rules[{index}]"
        rule = build_lenient(Rule, item, ctx, key, line)
        if rule is None or not isinstance(item, LocDict):
            continue
        if "file" in item:
            ctx.problem(item.line_of("file"), f"{key}.file", "unknown key")
            continue
        try:
            detector = detector_class(rule.signal)
        except KeyError as exc:
            ctx.problem(item.line_of("signal"), f"{key}.signal", str(exc.args[0]))
            continue
        params = build_lenient(detector.Params, rule.params, ctx, f"{key}.params",
                               item.line_of("params"))
        rule = _with_mode(rule, detector.modes, item, key, ctx)
        for name in rule.channels:
            if config.channel(name) is None:
                ctx.problem(item.line_of("channels"), f"{key}.channels",
                            f"unknown channel {name!r}")
        for name in rule.escalate_to:
            if config.channel(name) is None:
                ctx.problem(item.line_of("escalate_to"), f"{key}.escalate_to",
                            f"unknown channel {name!r}")
        if bool(rule.escalate_to) != bool(rule.escalate_after):
            ctx.problem(item.line_of("escalate_to") or item.line_of("escalate_after"),
                        f"{key}.escalate_to", "escalation needs both escalate_after (> 0) "
                        "and escalate_to")
        for name in rule.brands:
            if config.brand(name) is None:
                ctx.problem(item.line_of("brands"), f"{key}.brands", f"unknown brand {name!r}")
        if not rule.channels:
            ctx.problem(item.line_of("channels"), f"{key}.channels", "name at least one channel")
        out.append((dataclasses.replace(rule, params=params, file=str(path)), line))
    ctx.raise_if_problems()
    return out


def _with_mode(rule: Rule, modes: tuple[str, ...], item: LocDict, key: str,
               ctx: Context) -> Rule:
    """The rule with its effective ``mode`` and that mode's parameters built (e.g.
    ``digest:`` into DigestParams); problems at the lines of ``mode`` and ``digest``."""
    mode = rule.mode
    if mode is not None:
        try:
            detector_mode(mode)
        except KeyError as exc:
            ctx.problem(item.line_of("mode"), f"{key}.mode", str(exc.args[0]))
            return rule
        if mode not in modes:
            if modes:
                why = f"mode must be one of {', '.join(modes)}"
            else:
                why = ("remove mode: modes are for signals about single posts: "
                       f"{', '.join(signals_with_modes())}")
            ctx.problem(item.line_of("mode"), f"{key}.mode",
                        f"signal {rule.signal!r} takes no mode {mode!r} ({why})")
            return rule
    effective = mode or (modes[0] if modes else None)
    found = detector_mode(effective) if effective is not None else None
    if rule.digest is not None and effective != "digest":
        ctx.problem(item.line_of("digest"), f"{key}.digest",
                    "only for mode: digest" + (f" (this rule's mode is {effective})"
                                               if effective else
                                               f" (signal {rule.signal!r} has no modes)"))
        return rule
    if found is None or found.Params is None or effective is None:
        return dataclasses.replace(rule, mode=effective)
    params = build_lenient(found.Params, getattr(rule, effective, None), ctx,
                           f"{key}.{effective}",
                           item.line_of(effective) if effective in item else
                           item.line_of("mode"))
    extra: dict[str, Any] = {effective: params}
    return dataclasses.replace(rule, mode=effective, **extra)


def load_all(config_path: Path, environ: Mapping[str, str] | None = None) -> tuple[Config, RuleSet]:
    """config.yaml and its rules, every problem of both reported together."""
    config = load_config(config_path, environ)
    return config, load_rules(Path(config.rules_dir), config)


def check(config_path: Path) -> list[Problem]:
    """Every problem in config.yaml and the rules (empty when all is well)."""
    try:
        load_all(config_path)
    except ConfigError as exc:
        return list(exc.problems)
    return []


def build_options(cls: type[Any], data: object, file: str = "<options>") -> Any:
    return build(cls, data, Context(file))
