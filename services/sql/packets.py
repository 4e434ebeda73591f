"""
The MySQL client/server protocol's wire format: packets, length-encoded integers and
strings, capability and status flags, column types, and the OK/EOF/ERR packets.

Reference: the MySQL Client/Server Protocol (dev.mysql.com/doc/dev/mysql-server/latest/
PAGE_PROTOCOL.html); MariaDB's documentation of the same protocol agrees on all of it.
"""

from __future__ import annotations

import struct

# capability flags (Protocol::CapabilityFlags)
CLIENT_LONG_PASSWORD = 1
CLIENT_FOUND_ROWS = 2
CLIENT_LONG_FLAG = 4
CLIENT_CONNECT_WITH_DB = 8
CLIENT_NO_SCHEMA = 16
CLIENT_COMPRESS = 32
CLIENT_ODBC = 64
CLIENT_LOCAL_FILES = 128
CLIENT_IGNORE_SPACE = 256
CLIENT_PROTOCOL_41 = 512
CLIENT_INTERACTIVE = 1024
CLIENT_SSL = 2048
CLIENT_IGNORE_SIGPIPE = 4096
CLIENT_TRANSACTIONS = 8192
CLIENT_RESERVED = 16384
CLIENT_SECURE_CONNECTION = 32768
CLIENT_MULTI_STATEMENTS = 1 << 16
CLIENT_MULTI_RESULTS = 1 << 17
CLIENT_PS_MULTI_RESULTS = 1 << 18
CLIENT_PLUGIN_AUTH = 1 << 19
CLIENT_CONNECT_ATTRS = 1 << 20
CLIENT_PLUGIN_AUTH_LENENC_CLIENT_DATA = 1 << 21
CLIENT_CAN_HANDLE_EXPIRED_PASSWORDS = 1 << 22
CLIENT_SESSION_TRACK = 1 << 23
CLIENT_DEPRECATE_EOF = 1 << 24

SERVER_CAPABILITIES = (
    CLIENT_LONG_PASSWORD
    | CLIENT_FOUND_ROWS
    | CLIENT_LONG_FLAG
    | CLIENT_CONNECT_WITH_DB
    | CLIENT_NO_SCHEMA
    | CLIENT_ODBC
    | CLIENT_IGNORE_SPACE
    | CLIENT_PROTOCOL_41
    | CLIENT_INTERACTIVE
    | CLIENT_IGNORE_SIGPIPE
    | CLIENT_TRANSACTIONS
    | CLIENT_RESERVED
    | CLIENT_SECURE_CONNECTION
    | CLIENT_MULTI_STATEMENTS
    | CLIENT_MULTI_RESULTS
    | CLIENT_PS_MULTI_RESULTS
    | CLIENT_PLUGIN_AUTH
    | CLIENT_CONNECT_ATTRS
    | CLIENT_PLUGIN_AUTH_LENENC_CLIENT_DATA
    | CLIENT_DEPRECATE_EOF
)

# status flags
SERVER_STATUS_IN_TRANS = 1
SERVER_STATUS_AUTOCOMMIT = 2
SERVER_MORE_RESULTS_EXISTS = 8
SERVER_STATUS_NO_INDEX_USED = 32
SERVER_STATUS_CURSOR_EXISTS = 64
SERVER_STATUS_LAST_ROW_SENT = 128

# commands
COM_QUIT = 0x01
COM_INIT_DB = 0x02
COM_QUERY = 0x03
COM_FIELD_LIST = 0x04
COM_STATISTICS = 0x09
COM_PING = 0x0E
COM_CHANGE_USER = 0x11
COM_STMT_PREPARE = 0x16
COM_STMT_EXECUTE = 0x17
COM_STMT_SEND_LONG_DATA = 0x18
COM_STMT_CLOSE = 0x19
COM_STMT_RESET = 0x1A
COM_SET_OPTION = 0x1B
COM_STMT_FETCH = 0x1C
COM_RESET_CONNECTION = 0x1F

# column types
T_DECIMAL = 0x00
T_TINY = 0x01
T_SHORT = 0x02
T_LONG = 0x03
T_FLOAT = 0x04
T_DOUBLE = 0x05
T_NULL = 0x06
T_TIMESTAMP = 0x07
T_LONGLONG = 0x08
T_INT24 = 0x09
T_DATE = 0x0A
T_TIME = 0x0B
T_DATETIME = 0x0C
T_YEAR = 0x0D
T_VARCHAR = 0x0F
T_BIT = 0x10
T_JSON = 0xF5
T_NEWDECIMAL = 0xF6
T_ENUM = 0xF7
T_BLOB = 0xFC
T_VAR_STRING = 0xFD
T_STRING = 0xFE

# column flags
NOT_NULL_FLAG = 1
PRI_KEY_FLAG = 2
UNIQUE_KEY_FLAG = 4
MULTIPLE_KEY_FLAG = 8
BLOB_FLAG = 16
UNSIGNED_FLAG = 32
BINARY_FLAG = 128
AUTO_INCREMENT_FLAG = 512
NUM_FLAG = 32768

CHARSET_UTF8MB4 = 45  # utf8mb4_general_ci
CHARSET_BINARY = 63

MAX_PACKET = 0xFFFFFF


def lenenc_int(n: int) -> bytes:
    if n < 251:
        return bytes((n,))
    if n < 1 << 16:
        return b"\xfc" + struct.pack("<H", n)
    if n < 1 << 24:
        return b"\xfd" + struct.pack("<I", n)[:3]
    return b"\xfe" + struct.pack("<Q", n)


def lenenc_str(b: bytes) -> bytes:
    return lenenc_int(len(b)) + b


class Reader:
    """Reads the fields of one packet's payload; raises ValueError past its end."""

    def __init__(self, data: bytes, pos: int = 0):
        self.data = data
        self.pos = pos

    def remaining(self) -> int:
        return len(self.data) - self.pos

    def take(self, n: int) -> bytes:
        if n < 0 or self.pos + n > len(self.data):
            raise ValueError("packet too short")
        out = self.data[self.pos : self.pos + n]
        self.pos += n
        return out

    def int1(self) -> int:
        return self.take(1)[0]

    def int2(self) -> int:
        return int.from_bytes(self.take(2), "little")

    def int4(self) -> int:
        return int.from_bytes(self.take(4), "little")

    def lenenc(self) -> int | None:
        first = self.int1()
        if first < 251:
            return first
        if first == 0xFB:
            return None
        if first == 0xFC:
            return self.int2()
        if first == 0xFD:
            return int.from_bytes(self.take(3), "little")
        if first == 0xFE:
            return int.from_bytes(self.take(8), "little")
        raise ValueError("bad length-encoded integer")

    def lenenc_bytes(self) -> bytes:
        n = self.lenenc()
        return self.take(n or 0)

    def nul_str(self) -> bytes:
        end = self.data.find(b"\0", self.pos)
        if end < 0:
            raise ValueError("unterminated string")
        out = self.data[self.pos : end]
        self.pos = end + 1
        return out

    def rest(self) -> bytes:
        out = self.data[self.pos :]
        self.pos = len(self.data)
        return out


def ok_packet(
    affected: int = 0, last_id: int = 0, status: int = 0, warnings: int = 0, info: bytes = b""
) -> bytes:
    return (
        b"\x00"
        + lenenc_int(affected)
        + lenenc_int(last_id)
        + struct.pack("<HH", status, warnings)
        + (lenenc_str(info) if info else b"")
    )


def eof_packet(status: int = 0, warnings: int = 0) -> bytes:
    return b"\xfe" + struct.pack("<HH", warnings, status)


def ok_as_eof(status: int = 0, warnings: int = 0) -> bytes:
    """The OK packet that ends a result set when the client set CLIENT_DEPRECATE_EOF."""
    return b"\xfe" + lenenc_int(0) + lenenc_int(0) + struct.pack("<HH", status, warnings)


def err_packet(code: int, state: str, message: str) -> bytes:
    return (
        b"\xff"
        + struct.pack("<H", code)
        + b"#"
        + state.encode("ascii")[:5].ljust(5, b"0")
        + message.encode("utf-8", "replace")[:4000]
    )
