"""
The ten-line protocol: every line a client sends comes back in capitals.

    [services.shout]
    type = "upper:Upper"     # module:Class, found in plugin_dirs
    port = 7100

Try it: nc 127.0.0.1 7100, type a line, press Enter.
"""

from twisted.protocols.basic import LineReceiver


class Upper(LineReceiver):
    """Answers each line in capitals: the client and server agree on lines ending in CRLF."""

    delimiter = b"\n"

    def lineReceived(self, line: bytes) -> None:
        self.sendLine(line.rstrip(b"\r").upper())
