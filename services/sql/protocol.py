"""
MySQL's client/server protocol on Twisted: handshake v10, capabilities, the
in-protocol SSL upgrade, mysql_native_password and caching_sha2_password (fast auth;
full auth over TLS or with the server's RSA key), then the commands: COM_QUERY (text
result sets), COM_INIT_DB, COM_PING, COM_QUIT, COM_FIELD_LIST, COM_STMT_PREPARE /
EXECUTE / CLOSE / RESET / SEND_LONG_DATA (the binary protocol), COM_SET_OPTION,
COM_RESET_CONNECTION, COM_STATISTICS.

One command at a time per client: while a statement runs on a worker thread the
connection stops reading, so a client cannot queue more than one packet's worth of
work; packets are bounded by C{max_allowed_packet}.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import struct
from typing import Any

from twisted.internet.protocol import Protocol
from twisted.logger import Logger
from twisted.protocols.policies import TimeoutMixin

from portsuite_services.sql import errors as E
from portsuite_services.sql import packets as P
from portsuite_services.sql.engine import VERSION, Result, Session, _split
from portsuite_services.sql.errors import MySQLError
from portsuite_services.sql.types import Column, binary_row, column_for, text_value

log = Logger(namespace="portsuite.sql")

NATIVE = "mysql_native_password"
SHA2 = "caching_sha2_password"
CLEAR = "mysql_clear_password"
MAX_STATEMENTS = 1024  # prepared statements per connection
HANDSHAKE_TIMEOUT = 30
MALFORMED = MySQLError(1835, "HY000", "Malformed communication packet.")


def _xor(a: bytes, b: bytes) -> bytes:
    return bytes(x ^ y for x, y in zip(a, b, strict=False))


def native_token(password: bytes, nonce: bytes) -> bytes:
    h1 = hashlib.sha1(password).digest()
    h2 = hashlib.sha1(h1).digest()
    return _xor(h1, hashlib.sha1(nonce + h2).digest())


def sha2_token(password: bytes, nonce: bytes) -> bytes:
    h1 = hashlib.sha256(password).digest()
    h2 = hashlib.sha256(h1).digest()
    return _xor(h1, hashlib.sha256(h2 + nonce).digest())


class Statement:
    def __init__(self, sql: str, nparams: int, columns: list[Column]):
        self.sql = sql
        self.nparams = nparams
        self.columns = columns
        self.types: list[tuple[int, bool]] = []
        self.long_data: dict[int, bytes] = {}


class MySQLProtocol(Protocol, TimeoutMixin):
    """One client of the sql service (MySQL's client/server protocol)."""

    transport: Any

    def __init__(self, server: Any):
        self.server = server
        self.buffer = bytearray()
        self.seq = 0
        self.state = "greeting"
        self.capabilities = 0
        self.session: Session | None = None
        self.user = ""
        self.busy = False
        self.paused = False
        self.running: Any = None
        self.closed = False
        self.tls = False
        self.plugin = server.default_auth
        self.nonce = b""
        self.pending_db: str | None = None
        self.statements: dict[int, Statement] = {}
        self.next_stmt = 1
        self.multi = False
        self.conn_id = 0
        self.account: Any = None

    # -- framing -----------------------------------------------------------------------

    def connectionMade(self) -> None:
        self.conn_id = self.server.next_id()
        self.setTimeout(HANDSHAKE_TIMEOUT)
        self.nonce = bytes(b % 94 + 33 for b in os.urandom(20))  # printable, no NUL
        self.seq = 0
        caps = P.SERVER_CAPABILITIES | (P.CLIENT_SSL if self.server.tls_options is not None else 0)
        self.server_caps = caps
        greeting = (
            b"\x0a"
            + VERSION.encode()
            + b"\0"
            + struct.pack("<I", self.conn_id)
            + self.nonce[:8]
            + b"\0"
            + struct.pack("<H", caps & 0xFFFF)
            + bytes((P.CHARSET_UTF8MB4,))
            + struct.pack("<H", P.SERVER_STATUS_AUTOCOMMIT)
            + struct.pack("<H", caps >> 16)
            + bytes((21,))
            + b"\0" * 10
            + self.nonce[8:]
            + b"\0"
            + self.plugin.encode()
            + b"\0"
        )
        self.send(greeting)
        self.state = "handshake"

    def timeoutConnection(self) -> None:
        if self.state != "command":
            self.closed = True
            self.transport.loseConnection()

    def send(self, payload: bytes) -> None:
        while True:
            chunk = payload[: P.MAX_PACKET]
            self.transport.write(
                struct.pack("<I", len(chunk))[:3] + bytes((self.seq & 0xFF,)) + chunk
            )
            self.seq += 1
            payload = payload[P.MAX_PACKET :]
            if len(chunk) < P.MAX_PACKET:
                return

    def send_many(self, payloads: list[bytes]) -> None:
        out = []
        seq = self.seq
        for payload in payloads:
            while True:
                chunk = payload[: P.MAX_PACKET]
                out.append(struct.pack("<I", len(chunk))[:3] + bytes((seq & 0xFF,)) + chunk)
                seq += 1
                payload = payload[P.MAX_PACKET :]
                if len(chunk) < P.MAX_PACKET:
                    break
        self.seq = seq
        self.transport.write(b"".join(out))

    def error(self, e: MySQLError) -> None:
        self.send(P.err_packet(e.code, e.state, e.message))

    def dataReceived(self, data: bytes) -> None:
        self.buffer += data
        if self.busy:
            # one command runs at a time; past one packet's worth queued, stop reading
            if not self.paused and len(self.buffer) > self.server.max_allowed_packet:
                self.paused = True
                self.transport.pauseProducing()
            return
        self._drain()

    def _drain(self) -> None:
        limit = self.server.max_allowed_packet
        while not self.busy and not self.closed:
            payload = bytearray()
            pos = 0
            seq = 0
            while True:
                if len(self.buffer) < pos + 4:
                    if len(self.buffer) - pos > limit:
                        return self._too_big()
                    return
                n = int.from_bytes(self.buffer[pos : pos + 3], "little")
                seq = self.buffer[pos + 3]
                if len(payload) + n > limit:
                    return self._too_big()
                if len(self.buffer) < pos + 4 + n:
                    return
                payload += self.buffer[pos + 4 : pos + 4 + n]
                pos += 4 + n
                if n < P.MAX_PACKET:
                    break
            del self.buffer[:pos]
            self.seq = seq + 1
            try:
                self.packet(bytes(payload))
            except MySQLError as e:
                self.error(e)
            except ValueError:
                self.error(MALFORMED)

    def _too_big(self) -> None:
        self.error(MySQLError(1153, "08S01", "Got a packet bigger than 'max_allowed_packet' bytes"))
        self.closed = True
        self.transport.loseConnection()

    def connectionLost(self, reason: Any = None) -> None:
        self.closed = True
        self.setTimeout(None)
        session, self.session = self.session, None
        if session is not None:
            session.deadline = 1.0  # interrupt a statement still running
            running = self.running
            if running is not None and self.busy:
                # close its SQLite connection only once the statement has let go of it
                running.addBoth(lambda _: self.server.run(session.close))
            else:
                self.server.run(session.close)

    # -- handshake and authentication ----------------------------------------------------

    def packet(self, payload: bytes) -> None:
        if self.state == "command":
            self.command(payload)
        elif self.state == "handshake":
            self.handshake(payload)
        elif self.state == "auth-switch":
            self.auth_data(payload)
        elif self.state == "sha2-full":
            self.sha2_full(payload)
        else:
            self.transport.loseConnection()

    def handshake(self, payload: bytes) -> None:
        r = P.Reader(payload)
        caps = r.int4()
        if not caps & P.CLIENT_PROTOCOL_41:
            self.error(
                MySQLError(
                    1251,
                    "08004",
                    "Client does not support authentication protocol requested by server; consider upgrading MySQL client",
                )
            )
            self.transport.loseConnection()
            return
        r.int4()  # max packet
        r.int1()  # charset
        r.take(23)
        if caps & P.CLIENT_SSL and r.remaining() == 0:
            if self.server.tls_options is None or self.tls:
                self.transport.loseConnection()
                return
            self.tls = True
            self.transport.startTLS(self.server.tls_options)
            # the client does not wait for a reply: its TLS hello may have come in the
            # same read as the SSL request; it belongs to the TLS layer now
            leftover = bytes(self.buffer)
            self.buffer.clear()
            tls_layer = getattr(self.transport, "protocol", None)
            if leftover and tls_layer is not None:
                tls_layer.dataReceived(leftover)
            return
        self.capabilities = caps & self.server_caps
        self.multi = bool(caps & P.CLIENT_MULTI_STATEMENTS)
        self.user = r.nul_str().decode("utf-8", "replace")
        if caps & P.CLIENT_PLUGIN_AUTH_LENENC_CLIENT_DATA:
            auth = r.lenenc_bytes()
        elif caps & P.CLIENT_SECURE_CONNECTION:
            auth = r.take(r.int1())
        else:
            auth = r.nul_str()
        if caps & P.CLIENT_CONNECT_WITH_DB and r.remaining():
            self.pending_db = r.nul_str().decode("utf-8", "replace") or None
        plugin = NATIVE
        if caps & P.CLIENT_PLUGIN_AUTH and r.remaining():
            plugin = r.nul_str().decode("ascii", "replace")
        if self.server.require_secure_transport and not self.tls:
            self.error(
                MySQLError(
                    3159,
                    "08004",
                    "Connections using insecure transport are prohibited while --require_secure_transport=ON.",
                )
            )
            self.transport.loseConnection()
            return
        self.account = self.server.account(self.user)
        if plugin not in (NATIVE, SHA2) or (
            plugin == NATIVE and self.account is not None and self.account.hashed
        ):
            # the client's plugin cannot check this account: switch to caching_sha2
            self.plugin = SHA2
            self.nonce = bytes(b % 94 + 33 for b in os.urandom(20))
            self.state = "auth-switch"
            self.send(b"\xfe" + SHA2.encode() + b"\0" + self.nonce + b"\0")
            return
        if not auth and plugin != self.plugin:
            # the client answered for another plugin than the greeting's, with no data
            # (libmariadb's --default-auth): ask again, with that plugin and a new nonce
            self.plugin = plugin
            self.nonce = bytes(b % 94 + 33 for b in os.urandom(20))
            self.state = "auth-switch"
            self.send(b"\xfe" + plugin.encode() + b"\0" + self.nonce + b"\0")
            return
        self.plugin = plugin
        self.auth_data(auth)

    def auth_data(self, auth: bytes) -> None:
        self.state = "auth"
        account = self.account
        if self.server.open_access:
            if self.plugin == SHA2 and auth:
                self.send(b"\x01\x03")  # fast auth success: what caching_sha2 clients wait for
            return self.accept()
        if account is None or account.secret is None:
            self.server.burn(lambda: self.deny(bool(auth)))
            return
        if self.plugin == NATIVE:
            ok = (
                not account.hashed
                and hmac.compare_digest(
                    native_token(account.secret.encode(), self.nonce[:20]), auth
                )
                if auth
                else account.secret == ""
            )
            return self.accept() if ok else self.deny(bool(auth))
        # caching_sha2_password
        if not auth:
            return self.accept() if account.secret == "" else self.deny(False)
        if not account.hashed and hmac.compare_digest(
            sha2_token(account.secret.encode(), self.nonce[:20]), auth
        ):
            self.send(b"\x01\x03")  # fast auth success
            return self.accept()
        if not account.hashed:
            return self.deny(True)
        self.state = "sha2-full"
        self.send(b"\x01\x04")  # perform full authentication

    def sha2_full(self, payload: bytes) -> None:
        if self.tls:
            password = payload.rstrip(b"\0")
        elif payload == b"\x02":
            self.send(b"\x01" + self.server.rsa_public_pem)
            return
        else:
            try:
                from cryptography.hazmat.primitives import hashes
                from cryptography.hazmat.primitives.asymmetric import padding

                plain = self.server.rsa_key.decrypt(
                    payload,
                    padding.OAEP(
                        mgf=padding.MGF1(hashes.SHA1()), algorithm=hashes.SHA1(), label=None
                    ),
                )
            except Exception:
                return self.deny(True)
            nonce = self.nonce[:20]
            password = bytes(c ^ nonce[i % len(nonce)] for i, c in enumerate(plain)).rstrip(b"\0")
        self.state = "auth"
        d = self.server.check_password(self.account, password)
        d.addCallback(lambda ok: self.accept() if ok else self.deny(True))

    def deny(self, using_password: bool) -> None:
        if self.closed:
            return
        host = self.server.peer_host(self.transport)
        self.error(E.access_denied(self.user, host, using_password))
        log.info("{service}: access denied for {user}", service=self.server.name, user=self.user)
        self.closed = True
        self.transport.loseConnection()

    def accept(self) -> None:
        if self.closed:
            return
        self.setTimeout(None)
        self.session = Session(
            self.server.catalog,
            self.server.settings,
            self.conn_id,
            self.user,
            self.server.peer_host(self.transport),
        )
        self.state = "command"
        if self.pending_db:
            db = self.pending_db
            self.busy = True
            d = self.server.run(self.session.use, db)
            d.addCallbacks(
                lambda _: self.send(P.ok_packet(status=self._status())), self._failed_login
            )
            d.addBoth(self._done)
            self.running = d
            return
        self.send(P.ok_packet(status=self._status()))

    def _failed_login(self, failure: Any) -> None:
        if failure.check(MySQLError):
            self.error(failure.value)
        else:
            self.error(MySQLError(1105, "HY000", "internal error"))
        self.closed = True
        self.transport.loseConnection()

    def _status(self) -> int:
        return self.session.status if self.session is not None else P.SERVER_STATUS_AUTOCOMMIT

    # -- commands ----------------------------------------------------------------------------

    def command(self, payload: bytes) -> None:
        if not payload:
            raise MySQLError(1047, "08S01", "Unknown command")
        cmd = payload[0]
        body = payload[1:]
        if cmd == P.COM_QUIT:
            self.closed = True
            self.transport.loseConnection()
        elif cmd == P.COM_PING:
            self.send(P.ok_packet(status=self._status()))
        elif cmd == P.COM_QUERY:
            sql = body.decode("utf-8", "replace")
            self.work(self._query, sql)
        elif cmd == P.COM_INIT_DB:
            db = body.decode("utf-8", "replace")
            self.work(self._init_db, db)
        elif cmd == P.COM_FIELD_LIST:
            table = body.split(b"\0", 1)[0].decode("utf-8", "replace")
            self.work(self._field_list, table)
        elif cmd == P.COM_STMT_PREPARE:
            if len(self.statements) >= MAX_STATEMENTS:
                raise MySQLError(
                    1461,
                    "42000",
                    f"Can't create more than max_prepared_stmt_count statements (current value: {MAX_STATEMENTS})",
                )
            self.work(self._prepare, body.decode("utf-8", "replace"))
        elif cmd == P.COM_STMT_EXECUTE:
            self.work(self._execute, body)
        elif cmd == P.COM_STMT_CLOSE:
            r = P.Reader(body)
            self.statements.pop(r.int4(), None)  # no reply
        elif cmd == P.COM_STMT_RESET:
            stmt = self._stmt(P.Reader(body).int4())
            stmt.long_data.clear()
            self.send(P.ok_packet(status=self._status()))
        elif cmd == P.COM_STMT_SEND_LONG_DATA:
            r = P.Reader(body)
            target = self.statements.get(r.int4())
            index = r.int2()
            if target is not None and index < target.nparams:
                data = target.long_data.get(index, b"") + r.rest()
                if len(data) <= self.server.max_allowed_packet:
                    target.long_data[index] = data
        elif cmd == P.COM_SET_OPTION:
            option = P.Reader(body).int2()
            if option not in (0, 1):
                raise MySQLError(1047, "08S01", "Unknown command")
            self.multi = option == 0
            self.send(P.eof_packet(self._status()))
        elif cmd == P.COM_RESET_CONNECTION:
            self.statements.clear()
            self.work(self._reset, None)
        elif cmd == P.COM_STATISTICS:
            self.send(
                b"Uptime: 1  Threads: 1  Questions: 1  Slow queries: 0  Opens: 0  Open tables: 0  Queries per second avg: 0.000"
            )
        else:
            raise MySQLError(1047, "08S01", "Unknown command")

    def work(self, f: Any, arg: Any) -> None:
        """Run f(arg) on a worker thread; it returns the reply's packets."""
        self.busy = True
        d = self.server.run(f, arg)
        d.addCallbacks(self._reply, self._failed)
        d.addBoth(self._done)
        self.running = d

    def _reply(self, payloads: list[bytes]) -> None:
        if not self.closed:
            self.send_many(payloads)

    def _failed(self, failure: Any) -> None:
        if self.closed:
            return
        if failure.check(MySQLError):
            self.error(failure.value)
        elif failure.check(ValueError):
            self.error(MALFORMED)
        else:
            log.failure("{service}: statement failed", failure, service=self.server.name)
            self.error(
                MySQLError(1105, "HY000", f"internal error: {failure.getErrorMessage()[:200]}")
            )

    def _done(self, _: Any) -> None:
        self.busy = False
        if not self.closed:
            if self.paused:
                self.paused = False
                self.transport.resumeProducing()
            if self.buffer:
                self._drain()

    # -- on the worker thread ----------------------------------------------------------------

    def _query(self, sql: str) -> list[bytes]:
        session = self.session
        if session is None:
            return []
        session.warnings = []
        out: list[bytes] = []
        statements = _split(sql) if self.multi else [sql]
        if not self.multi and len(statements) == 1 and len(_split(sql)) > 1:
            raise E.syntax(_split(sql)[1])
        for i, text in enumerate(statements):
            more = P.SERVER_MORE_RESULTS_EXISTS if i < len(statements) - 1 else 0
            try:
                result = session.statement(text)
            except MySQLError as e:
                out.append(P.err_packet(e.code, e.state, e.message))
                return out
            out.extend(self._encode(result, more, binary=False))
        return out

    def _encode(self, result: Result, more: int, binary: bool) -> list[bytes]:
        session = self.session
        status = (session.status if session else 0) | more
        warnings = result.warnings
        if result.columns is None:
            return [
                P.ok_packet(result.affected, result.last_id, status, warnings, result.info.encode())
            ]
        deprecate_eof = self.capabilities & P.CLIENT_DEPRECATE_EOF
        cols = result.columns
        out = [P.lenenc_int(len(cols))]
        out.extend(c.packet() for c in cols)
        if not deprecate_eof:
            out.append(P.eof_packet(status, warnings))
        if binary:
            out.extend(binary_row(cols, row) for row in result.rows)
        else:
            for row in result.rows:
                out.append(
                    b"".join(
                        b"\xfb" if v is None else P.lenenc_str(text_value(c, v))
                        for c, v in zip(cols, row, strict=False)
                    )
                )
        out.append(
            P.ok_as_eof(status, warnings) if deprecate_eof else P.eof_packet(status, warnings)
        )
        return out

    def _init_db(self, db: str) -> list[bytes]:
        assert self.session is not None
        self.session.use(db)
        return [P.ok_packet(status=self.session.status)]

    def _reset(self, _: Any) -> list[bytes]:
        assert self.session is not None
        session = self.session
        db = session.db
        session.close()
        self.session = Session(
            self.server.catalog, self.server.settings, self.conn_id, self.user, session.host
        )
        if db:
            try:
                self.session.use(db)
            except MySQLError:
                pass
        return [P.ok_packet(status=self.session.status)]

    def _field_list(self, table: str) -> list[bytes]:
        assert self.session is not None
        session = self.session
        session._need_db()
        t = session.table(table)
        if t is None:
            raise E.unknown_table(session.db or "", table)
        out = []
        for name, dtype, _ in t.columns:
            col = column_for(
                name, dtype, table=t.name, org_table=t.name, org_name=name, db=session.db or ""
            )
            out.append(col.packet() + b"\xfb")
        out.append(P.eof_packet(session.status))
        return out

    def _prepare(self, sql: str) -> list[bytes]:
        assert self.session is not None
        nparams, columns = self.session.prepare(sql)
        stmt_id = self.next_stmt
        self.next_stmt += 1
        self.statements[stmt_id] = Statement(sql, nparams, columns)
        out = [b"\x00" + struct.pack("<IHHBH", stmt_id, len(columns), nparams, 0, 0)]
        deprecate_eof = self.capabilities & P.CLIENT_DEPRECATE_EOF
        if nparams:
            out.extend(
                Column("?", type=P.T_VAR_STRING, length=0, decimals=0).packet()
                for _ in range(nparams)
            )
            if not deprecate_eof:
                out.append(P.eof_packet(self.session.status))
        if columns:
            out.extend(c.packet() for c in columns)
            if not deprecate_eof:
                out.append(P.eof_packet(self.session.status))
        return out

    def _stmt(self, stmt_id: int) -> Statement:
        stmt = self.statements.get(stmt_id)
        if stmt is None:
            raise MySQLError(
                1243,
                "HY000",
                f"Unknown prepared statement handler ({stmt_id}) given to mysqld_stmt_execute",
            )
        return stmt

    def _execute(self, body: bytes) -> list[bytes]:
        assert self.session is not None
        r = P.Reader(body)
        stmt = self._stmt(r.int4())
        r.int1()  # cursor flags
        r.int4()  # iteration count
        values: list[Any] = []
        if stmt.nparams:
            nulls = r.take((stmt.nparams + 7) // 8)
            if r.remaining() and r.int1() == 1:
                stmt.types = []
                for _ in range(stmt.nparams):
                    t = r.int1()
                    flag = r.int1()
                    stmt.types.append((t, bool(flag & 0x80)))
            if len(stmt.types) != stmt.nparams:
                raise MySQLError(1210, "HY000", "Incorrect arguments to mysqld_stmt_execute")
            for i, (t, unsigned) in enumerate(stmt.types):
                if i in stmt.long_data:
                    values.append(stmt.long_data[i].decode("utf-8", "surrogateescape"))
                elif nulls[i // 8] & (1 << (i % 8)):
                    values.append(None)
                else:
                    values.append(_binary_value(r, t, unsigned))
            stmt.long_data.clear()
        self.session.warnings = []
        result = self.session.statement(stmt.sql, tuple(values))
        return self._encode(result, 0, binary=True)


def _binary_value(r: P.Reader, t: int, unsigned: bool) -> Any:
    if t == P.T_TINY:
        return r.int1() if unsigned else struct.unpack("<b", r.take(1))[0]
    if t in (P.T_SHORT, P.T_YEAR):
        return struct.unpack("<H" if unsigned else "<h", r.take(2))[0]
    if t in (P.T_LONG, P.T_INT24):
        return struct.unpack("<I" if unsigned else "<i", r.take(4))[0]
    if t == P.T_LONGLONG:
        return struct.unpack("<Q" if unsigned else "<q", r.take(8))[0]
    if t == P.T_FLOAT:
        return struct.unpack("<f", r.take(4))[0]
    if t == P.T_DOUBLE:
        return struct.unpack("<d", r.take(8))[0]
    if t == P.T_NULL:
        return None
    if t in (P.T_DATE, P.T_DATETIME, P.T_TIMESTAMP):
        n = r.int1()
        raw = r.take(n)
        if n == 0:
            return "0000-00-00" if t == P.T_DATE else "0000-00-00 00:00:00"
        year, month, day = struct.unpack("<HBB", raw[:4])
        if t == P.T_DATE and n == 4:
            return f"{year:04d}-{month:02d}-{day:02d}"
        h = mi = s = us = 0
        if n >= 7:
            h, mi, s = raw[4], raw[5], raw[6]
        if n >= 11:
            us = struct.unpack("<I", raw[7:11])[0]
        text = f"{year:04d}-{month:02d}-{day:02d} {h:02d}:{mi:02d}:{s:02d}"
        return text + (f".{us:06d}" if us else "")
    if t == P.T_TIME:
        n = r.int1()
        raw = r.take(n)
        if n == 0:
            return "00:00:00"
        neg, days, h, mi, s = struct.unpack("<BIBBB", raw[:8])
        hours = days * 24 + h
        return f"{'-' if neg else ''}{hours:02d}:{mi:02d}:{s:02d}"
    data = r.lenenc_bytes()
    if t in (P.T_BLOB, 0xF9, 0xFA, 0xFB) and not _utf8(data):
        return data
    return data.decode("utf-8", "surrogateescape")


def _utf8(data: bytes) -> bool:
    try:
        data.decode("utf-8")
        return True
    except UnicodeDecodeError:
        return False
