"""
A chat room: one server, many clients at once.

Every line a client types goes to every other connected client, prefixed by the
sender's name, which is its address: ip and the ephemeral port its OS picked. Open
three terminals, run `nc 127.0.0.1 7200` in each, and watch one server answer all.

This module declares a named service type (a drop-in plugin): a name, a
description, a default port and options with validation.

    [services.chat]
    type = "chat"
    port = 7200
    greeting = "Welcome to the class chat!"
"""

from __future__ import annotations

from typing import Any

from twisted.internet.protocol import ServerFactory
from twisted.protocols.basic import LineReceiver

from portsuite.api import Option, ServiceContext, ServiceType


class ChatClient(LineReceiver):
    """One connected person; lines end in LF (CRLF from telnet works too)."""

    delimiter = b"\n"
    factory: ChatRoom

    def connectionMade(self) -> None:
        peer = self.transport.getPeer()
        self.name = f"{peer.host}:{peer.port}"
        others = len(self.factory.clients)
        self.sendLine(
            f"{self.factory.greeting} You are {self.name}; {others} other(s) here.".encode()
        )
        self.factory.broadcast(self, f"* {self.name} joined")
        self.factory.clients.append(self)

    def connectionLost(self, reason: Any = None) -> None:
        if self in self.factory.clients:
            self.factory.clients.remove(self)
            self.factory.broadcast(self, f"* {self.name} left")

    def lineReceived(self, line: bytes) -> None:
        text = line.rstrip(b"\r").decode("utf-8", "replace")
        if len(text) > self.factory.max_line:
            self.sendLine(f"* line too long (max {self.factory.max_line} characters)".encode())
            return
        if text:
            self.factory.broadcast(self, f"<{self.name}> {text}")


class ChatRoom(ServerFactory):
    protocol = ChatClient

    def __init__(self, greeting: str, max_line: int):
        self.greeting = greeting
        self.max_line = max_line
        self.clients: list[ChatClient] = []

    def broadcast(self, sender: ChatClient, text: str) -> None:
        data = text.encode("utf-8")
        for client in self.clients:
            if client is not sender:
                client.sendLine(data)


def _room(ctx: ServiceContext) -> ChatRoom:
    return ChatRoom(ctx.options["greeting"], ctx.options["max_line"])


def _between(lo: int, hi: int):  # type: ignore[no-untyped-def]
    return lambda v: None if lo <= v <= hi else f"{v} must be between {lo} and {hi}"


CHAT = ServiceType(
    name="chat",
    description="Chat room: every line goes to every other client",
    default_port=7200,
    options=(
        Option("greeting", str, default="Welcome to the chat!", help="first line each client sees"),
        Option(
            "max_line",
            int,
            default=500,
            help="longest line, in characters",
            check=_between(1, 10000),
        ),
    ),
    tcp_factory=_room,
)
