"""Strict loading of config.yaml and rules/*.yaml into immutable typed objects."""

from monitor.config.loader import load_config, load_rules
from monitor.config.schema import (
    BrandConfig,
    ChannelConfig,
    Config,
    HttpConfig,
    Rule,
    RuleSet,
    SourceConfig,
)

__all__ = [
    "BrandConfig",
    "ChannelConfig",
    "Config",
    "HttpConfig",
    "Rule",
    "RuleSet",
    "SourceConfig",
    "load_config",
    "load_rules",
]
