"""A real OpenSSH server on a free loopback port, with a generated host key and user key,
and a home folder for the client (``~/.ssh/known_hosts`` and ``~/.ssh/id_ed25519``)."""

from __future__ import annotations

import getpass
import os
import shutil
import socket
import subprocess
import time
from pathlib import Path

from tests.conftest import missing_service

SSHD = "/usr/sbin/sshd"


class Sshd:
    """``sshd -D`` with a config of its own; ``home`` is the client's HOME."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.home = folder / "home"
        self.port = _free_port()
        self.user = getpass.getuser()
        self.host = f"{self.user}@127.0.0.1:{self.port}"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        if not os.path.exists(SSHD) or shutil.which("ssh-keygen") is None:
            missing_service("no OpenSSH server", "apt-get install openssh-server")
        keys = self.folder / "keys"
        ssh = self.home / ".ssh"
        keys.mkdir(parents=True)
        ssh.mkdir(parents=True, mode=0o700)
        _keygen(keys / "host")
        _keygen(ssh / "id_ed25519")
        (keys / "authorized_keys").write_text((ssh / "id_ed25519.pub").read_text())
        host_key = (keys / "host.pub").read_text().split()
        (ssh / "known_hosts").write_text(f"[127.0.0.1]:{self.port} {host_key[0]} {host_key[1]}\n")
        config = self.folder / "sshd_config"
        config.write_text(
            f"Port {self.port}\nListenAddress 127.0.0.1\nHostKey {keys / 'host'}\n"
            f"AuthorizedKeysFile {keys / 'authorized_keys'}\nPidFile {self.folder / 'sshd.pid'}\n"
            "PasswordAuthentication no\nKbdInteractiveAuthentication no\nUsePAM no\n"
            "StrictModes no\nPermitRootLogin prohibit-password\nMaxSessions 50\n"
            "Subsystem sftp internal-sftp\n"
        )
        Path("/run/sshd").mkdir(exist_ok=True)  # its privilege separation folder
        log = self.folder / "sshd.log"
        self.process = subprocess.Popen([SSHD, "-D", "-f", str(config), "-E", str(log)])
        deadline = time.monotonic() + 20
        while True:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                return
            except OSError:
                assert self.process.poll() is None, log.read_text() if log.exists() else "sshd"
                assert time.monotonic() < deadline, "sshd did not start in 20 s"
                time.sleep(0.05)

    def connections(self) -> list[int]:
        """The pids of the sshd processes serving connections now."""
        assert self.process is not None
        found = subprocess.run(
            ["pgrep", "-P", str(self.process.pid)], capture_output=True, text=True, check=False
        )
        return [int(pid) for pid in found.stdout.split()]

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            self.process.wait(timeout=10)


def _keygen(path: Path) -> None:
    subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(path)],
        check=True,
        capture_output=True,
    )


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port
