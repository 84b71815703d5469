"""Bot behaviour as plugins: the protocol, the host that supervises them, and the built-ins."""

from daz.plugins.base import Plugin, PluginContext, PluginSettings, SendApi, SqlApi, parse_settings
from daz.plugins.host import PluginHost
from daz.plugins.states import PluginState, PluginStatus

__all__ = [
    "Plugin",
    "PluginContext",
    "PluginHost",
    "PluginSettings",
    "PluginState",
    "PluginStatus",
    "SendApi",
    "SqlApi",
    "parse_settings",
]
