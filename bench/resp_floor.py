"""
The floors kv is measured against in C{bench/kv.py --floors}: the least a Python RESP
server can do per request on each event loop. SET/GET/PING/CONFIG GET on one dict,
requests read by hiredis's C reader, the replies of one read joined and written once.

    python bench/resp_floor.py twisted PORT          # transport.write (queued until writable)
    python bench/resp_floor.py twisted-direct PORT   # socket.send at once when nothing is queued
    python bench/resp_floor.py asyncio PORT          # stdlib asyncio (sends at once)

Nothing else: no limits, no backpressure, no persistence, no stats. kv does all of
those; what it spends past these floors is its own.
"""

from __future__ import annotations

import sys

import hiredis

OK = b"+OK\r\n"
NIL = b"$-1\r\n"


class Floor:
    """The protocol logic both event loops share."""

    def __init__(self, db: dict[bytes, bytes]):
        self.db = db
        self.reader = hiredis.Reader()

    def replies(self, data: bytes) -> bytes:
        if data[:1] != b"*":  # an inline command (the bench's readiness PING)
            return self.run([data.split()]) if data.strip() else b""
        reader = self.reader
        reader.feed(data)
        cmds = []
        while True:
            argv = reader.gets()
            if argv is False:
                break
            cmds.append(argv)
        return self.run(cmds)

    def run(self, cmds: list[list[bytes]]) -> bytes:
        db = self.db
        out = []
        for argv in cmds:
            name = argv[0].upper()
            if name == b"GET":
                v = db.get(argv[1])
                out.append(NIL if v is None else b"$%d\r\n%s\r\n" % (len(v), v))
            elif name == b"SET":
                db[argv[1]] = argv[2]
                out.append(OK)
            elif name == b"PING":
                out.append(b"+PONG\r\n")
            elif name == b"CONFIG":
                out.append(b"*0\r\n")
            else:
                out.append(b"-ERR unknown command\r\n")
        return b"".join(out)


def twisted(port: int, direct: bool) -> None:
    from twisted.internet import protocol, reactor

    db: dict[bytes, bytes] = {}

    class RESP(protocol.Protocol):
        def connectionMade(self) -> None:
            self.floor = Floor(db)
            self.transport.setTcpNoDelay(True)
            t = self.transport
            if direct:  # what portsuite.internals.writer does, without its checks
                send = t.socket.send

                def write(data: bytes) -> None:
                    if t._tempDataLen or t.offset != len(t.dataBuffer):
                        t.write(data)
                        return
                    try:
                        n = send(data)
                    except OSError:
                        n = 0
                    if n < len(data):
                        t.write(data[n:])

                self.write = write
            else:
                self.write = t.write

        def dataReceived(self, data: bytes) -> None:
            out = self.floor.replies(data)
            if out:
                self.write(out)

    f = protocol.Factory.forProtocol(RESP)
    f.noisy = False
    reactor.listenTCP(port, f, backlog=1024, interface="127.0.0.1")  # type: ignore[attr-defined]
    reactor.run()  # type: ignore[attr-defined]


def asyncio_floor(port: int) -> None:
    import asyncio

    db: dict[bytes, bytes] = {}

    class RESP(asyncio.Protocol):
        def connection_made(self, transport: asyncio.BaseTransport) -> None:
            self.transport = transport
            self.floor = Floor(db)

        def data_received(self, data: bytes) -> None:
            out = self.floor.replies(data)
            if out:
                self.transport.write(out)  # type: ignore[attr-defined]

    async def serve() -> None:
        loop = asyncio.get_running_loop()
        server = await loop.create_server(RESP, "127.0.0.1", port, backlog=1024)
        async with server:
            await server.serve_forever()

    asyncio.run(serve())


if __name__ == "__main__":
    kind, port = sys.argv[1], int(sys.argv[2])
    if kind == "asyncio":
        asyncio_floor(port)
    else:
        twisted(port, direct=kind == "twisted-direct")
