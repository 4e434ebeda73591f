"""portsuite.testing.wait_for and wait_listening: polling, and a peer the test started itself."""

from __future__ import annotations

import socket
import subprocess
import sys
import threading

import pytest

from portsuite.testing import free_port, wait_for, wait_listening


def _pong(sock: socket.socket) -> bool:
    sock.sendall(b"PING\r\n")
    return sock.recv(7) == b"+PONG\r\n"


def test_wait_for_gives_the_first_true_value() -> None:
    answers = iter([0, None, "", [], {"ready": True}, "never asked"])
    assert wait_for(lambda: next(answers), timeout=60) == {"ready": True}
    assert next(answers) == "never asked"


def test_wait_for_gives_the_last_false_value_once_the_time_is_up() -> None:
    assert wait_for(lambda: "", timeout=0.2) == ""  # what() said, not a False of its own


def test_returns_once_the_port_accepts() -> None:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        wait_listening(listener.getsockname()[1], timeout=30)


def test_nothing_listening_is_a_timeout_naming_the_port() -> None:
    port = free_port()
    with pytest.raises(TimeoutError, match=f"127.0.0.1:{port}"):
        wait_listening(port, timeout=0.3)


def test_a_process_that_exited_ends_the_wait_with_its_status() -> None:
    proc = subprocess.Popen([sys.executable, "-c", "raise SystemExit(3)"])
    proc.wait(30)
    with pytest.raises(RuntimeError, match="exited with 3 before listening"):
        wait_listening(free_port(), proc, timeout=60)


def test_the_probe_is_asked_again_until_the_server_answers_right() -> None:
    answers = [b"-LOADING still loading\r\n", b"", b"+PONG\r\n"]  # wrong, closed, right
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()

        def serve() -> None:
            for answer in answers:
                conn, _ = listener.accept()
                with conn:
                    conn.recv(16)
                    conn.sendall(answer)

        server = threading.Thread(target=serve, daemon=True)
        server.start()
        wait_listening(listener.getsockname()[1], probe=_pong, timeout=60)
        server.join(30)
        assert not server.is_alive()  # it took all three connections


def test_a_probe_that_raises_ends_the_wait() -> None:
    def impostor(sock: socket.socket) -> bool:
        raise SystemExit("another program answers")

    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        with pytest.raises(SystemExit, match="another program"):
            wait_listening(listener.getsockname()[1], probe=impostor, timeout=30)
