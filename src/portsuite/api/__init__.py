"""
The plugin API: the one module plugins and built-in service types import.

Everything a service type needs is here: the contract (L{ServiceType}, L{Option},
L{ServiceContext}), the validated config it receives (L{ServiceConfig},
L{TLSConfig}), the errors it may raise (L{ConfigError}, L{StartupError}), the
refusal helpers (and L{RefusingProtocol}), the stats view, and how peers are
named and judged (L{format_peer}, L{is_loopback}), and the hint a service building a
huge container gives the garbage-collection policy (L{freeze_young}). These are leaf modules: they import nothing of
the suite's runtime, so a plugin never pulls in (or depends on) the core's insides.
"""

from portsuite.api.accounts import Account, Accounts, Clock, FailedLogins, hash_password
from portsuite.api.collector import freeze_young
from portsuite.api.contract import (
    TRANSPORTS,
    Option,
    ServiceContext,
    ServiceType,
    line_refusal,
    no_refusal,
)
from portsuite.api.errors import ConfigError, StartupError
from portsuite.api.peers import (
    RefusingProtocol,
    format_peer,
    ip_of,
    is_loopback,
    is_loopback_host,
    peer_host,
)
from portsuite.api.settings import DEFAULT_HOST, ServiceConfig, TLSConfig
from portsuite.api.stats import ClientInfo, Listener, ServiceStats, port_class

__all__ = [
    "Account",
    "Accounts",
    "Clock",
    "FailedLogins",
    "hash_password",
    "freeze_young",
    "DEFAULT_HOST",
    "TRANSPORTS",
    "ClientInfo",
    "ConfigError",
    "Listener",
    "Option",
    "ServiceConfig",
    "ServiceContext",
    "ServiceStats",
    "ServiceType",
    "StartupError",
    "TLSConfig",
    "line_refusal",
    "no_refusal",
    "RefusingProtocol",
    "format_peer",
    "ip_of",
    "is_loopback",
    "is_loopback_host",
    "peer_host",
    "port_class",
]
