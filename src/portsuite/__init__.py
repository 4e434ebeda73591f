"""portsuite: a pluggable multi-protocol server suite on Twisted."""

__version__ = "0.1.0"
