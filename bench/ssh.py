"""
ssh: logins per second (public key, `exec true`) and SFTP download MiB/s, portsuite's
ssh service against OpenSSH's sshd on a scratch port, same run, rounds interleaved.

    .venv/bin/python bench/ssh.py --rounds 3 --logins 40 --mib 64

Needs openssh-server and openssh-client (`apt-get install openssh-server`). Only
127.0.0.1 is used; sshd runs from a scratch folder with its own host key and config.
"""

from __future__ import annotations

import argparse
import getpass
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from benchlib import free_port, pin, terminate, wait_listening  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
VENV = ROOT / ".venv" / "bin"
SSH = ["-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null",
       "-o", "LogLevel=ERROR", "-o", "BatchMode=yes"]  # fmt: skip


def speaks_ssh(sock: socket.socket) -> bool:
    """The probe of an SSH server: its version line."""
    return sock.recv(8).startswith(b"SSH-")


def start_portsuite(folder: Path, user: str, pub: str) -> tuple[subprocess.Popen[bytes], int]:
    port = free_port()
    (folder / "portsuite.toml").write_text(
        f'[users]\n{user} = {{ keys = ["{pub}"] }}\n'
        f'[services.ssh]\ntype = "ssh"\nport = {port}\nhost_keys = "{folder / "ps-keys"}"\n'
        f'files = "{folder / "files"}"\n'
    )
    cmd = [*pin(0), str(VENV / "twistd"), "-n", "--pidfile=", "-l", str(folder / "ps.log"),
           "portsuite", "-c", str(folder / "portsuite.toml")]  # fmt: skip
    return subprocess.Popen(cmd), port


def start_sshd(folder: Path, pub: str) -> tuple[subprocess.Popen[bytes], int] | None:
    sshd = shutil.which("sshd") or "/usr/sbin/sshd"
    if not os.path.exists(sshd):
        return None
    port = free_port()
    key = folder / "sshd_host_ed25519_key"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True)
    (folder / "authorized_keys").write_text(pub + "\n")
    conf = folder / "sshd_config"
    conf.write_text(
        f"Port {port}\nListenAddress 127.0.0.1\nHostKey {key}\n"
        f"AuthorizedKeysFile {folder / 'authorized_keys'}\nPidFile {folder / 'sshd.pid'}\n"
        "StrictModes no\nUsePAM no\nPermitRootLogin prohibit-password\n"
        "PasswordAuthentication no\nSubsystem sftp internal-sftp\n"
        f"ChrootDirectory none\nForceCommand none\nPrintMotd no\n"
    )
    Path("/run/sshd").mkdir(exist_ok=True)  # privilege separation folder
    return subprocess.Popen([*pin(0), sshd, "-D", "-e", "-f", str(conf)],
                            stderr=subprocess.DEVNULL), port  # fmt: skip


def logins(port: int, key: Path, user: str, count: int, parallel: int) -> float:
    def one(_: int) -> None:
        subprocess.run([*pin(1), "ssh", *SSH, "-i", str(key), "-p", str(port),
                        f"{user}@127.0.0.1", "true"], check=True, timeout=60)  # fmt: skip

    started = time.monotonic()
    with ThreadPoolExecutor(parallel) as pool:
        list(pool.map(one, range(count)))
    return count / (time.monotonic() - started)


def download(port: int, key: Path, user: str, remote: str, local: Path, mib: int) -> float:
    local.unlink(missing_ok=True)
    started = time.monotonic()
    subprocess.run(
        [*pin(1), "sftp", *SSH, "-i", str(key), "-P", str(port), f"{user}@127.0.0.1:{remote}",
         str(local)],
        check=True, timeout=600, stdout=subprocess.DEVNULL,
    )  # fmt: skip
    elapsed = time.monotonic() - started
    assert local.stat().st_size == mib * 2**20
    return mib / elapsed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[1])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--logins", type=int, default=40, help="logins per round")
    parser.add_argument("--parallel", type=int, default=4, help="clients at once")
    parser.add_argument("--mib", type=int, default=64, help="size of the downloaded file")
    args = parser.parse_args()
    user = getpass.getuser()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        (folder / "files").mkdir()
        big = folder / "files" / "big.bin"
        with open(big, "wb") as f:
            for _ in range(args.mib):
                f.write(os.urandom(2**20))
        key = folder / "id_ed25519"
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True)
        pub = (folder / "id_ed25519.pub").read_text().strip()
        servers = {"portsuite": start_portsuite(folder, user, pub)}
        remote = {"portsuite": "big.bin", "sshd": str(big)}
        sshd = start_sshd(folder, pub)
        if sshd is None:
            print("no sshd (apt-get install openssh-server): nothing to compare with")
        else:
            servers["sshd"] = sshd
        results: dict[str, dict[str, list[float]]] = {
            n: {"logins": [], "sftp": []} for n in servers
        }
        try:
            for name, (proc, port) in servers.items():
                wait_listening(port, proc, name, probe=speaks_ssh)
            for _ in range(args.rounds):
                for name, (_, port) in servers.items():
                    results[name]["logins"].append(
                        logins(port, key, user, args.logins, args.parallel)
                    )
                    results[name]["sftp"].append(
                        download(port, key, user, remote[name], folder / "got.bin", args.mib)
                    )
        finally:
            terminate(*(proc for proc, _ in servers.values()))
        print(f"{'server':<10} {'logins/s':>10} {'SFTP MiB/s':>12}   (medians of {args.rounds})")
        med = {n: {k: statistics.median(v) for k, v in r.items()} for n, r in results.items()}
        for name, m in med.items():
            print(f"{name:<10} {m['logins']:>10.1f} {m['sftp']:>12.1f}")
        if "sshd" in med:
            summary = {
                "logins vs sshd": round(med["portsuite"]["logins"] / med["sshd"]["logins"], 2),
                "sftp vs sshd": round(med["portsuite"]["sftp"] / med["sshd"]["sftp"], 2),
            }
            print("SUMMARY " + json.dumps(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
