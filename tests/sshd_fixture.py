"""A real OpenSSH sshd on 127.0.0.1 with generated host and user keys, for the `ssh` test layer."""
from __future__ import annotations

import getpass
import os
import signal
import socket
import subprocess
import time
from pathlib import Path

import pytest

SSHD = "/usr/sbin/sshd"


def _free_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def _keygen(path: Path, comment: str) -> None:
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", comment, "-f", str(path)], check=True)


class SSHServer:
    """One sshd process; `kill()` also ends every session it serves (a dropped connection)."""

    def __init__(self, root: Path):
        self.root = root
        root.mkdir(parents=True, exist_ok=True)
        self.host, self.port, self.user = "127.0.0.1", _free_port(), getpass.getuser()
        self.host_key = root / "ssh_host_ed25519_key"
        self.user_key = root / "id_user"
        self.authorized_keys = root / "authorized_keys"
        self.log = root / "sshd.log"
        _keygen(self.host_key, "host")
        _keygen(self.user_key, "user")
        self.user_pub = (root / "id_user.pub").read_text().strip()
        self.authorized_keys.write_text(self.user_pub + "\n")
        os.chmod(self.authorized_keys, 0o600)
        self.proc: subprocess.Popen | None = None
        self.start()

    def start(self) -> None:
        if os.geteuid() == 0:
            Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)
        cmd = [SSHD, "-D", "-e", "-f", "/dev/null", "-o", f"Port={self.port}", "-o", "ListenAddress=127.0.0.1",
               "-o", f"HostKey={self.host_key}", "-o", f"AuthorizedKeysFile={self.authorized_keys}",
               "-o", "PermitRootLogin=yes", "-o", "StrictModes=no", "-o", "PasswordAuthentication=no",
               "-o", "KbdInteractiveAuthentication=no", "-o", "UsePAM=no", "-o", "PubkeyAuthentication=yes",
               "-o", f"PidFile={self.root / 'sshd.pid'}", "-o", "Subsystem=sftp internal-sftp",
               "-o", "MaxStartups=50", "-o", "MaxSessions=50", "-o", "LogLevel=ERROR"]
        self.proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=open(self.log, "ab"),
                                     start_new_session=True)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"sshd exited: {self.log.read_text()[-2000:]}")
            try:
                with socket.create_connection((self.host, self.port), timeout=0.5) as s:
                    if s.recv(4).startswith(b"SSH-"):
                        return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("sshd did not start listening")

    def _descendants(self) -> list[int]:
        if self.proc is None:
            return []
        children: dict[int, list[int]] = {}
        for d in os.listdir("/proc"):
            if not d.isdigit():
                continue
            try:
                stat = Path(f"/proc/{d}/stat").read_text()
            except OSError:
                continue
            ppid = int(stat.rsplit(")", 1)[1].split()[1])
            children.setdefault(ppid, []).append(int(d))
        out, todo = [], [self.proc.pid]
        while todo:
            pid = todo.pop()
            for c in children.get(pid, []):
                out.append(c)
                todo.append(c)
        return out

    def kill(self) -> None:
        """Stops the listener and every live session (clients see their connection drop)."""
        victims = self._descendants()
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)
        for pid in victims:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass

    def new_host_key(self) -> None:
        """Restarts on the same port with a freshly generated host key."""
        self.kill()
        for p in (self.host_key, Path(str(self.host_key) + ".pub")):
            p.unlink()
        _keygen(self.host_key, "host2")
        self.start()


def _require_sshd() -> None:
    from conftest import require
    require(os.path.exists(SSHD), "openssh-server (/usr/sbin/sshd)")
    require(subprocess.run(["which", "ssh-keygen"], capture_output=True).returncode == 0, "ssh-keygen")


@pytest.fixture(scope="session")
def sshd(tmp_path_factory):
    """A session-wide sshd (tests that kill or re-key it use `sshd_factory`)."""
    _require_sshd()
    server = SSHServer(tmp_path_factory.mktemp("sshd"))
    yield server
    server.kill()


@pytest.fixture
def sshd_factory(tmp_path):
    """Starts private sshd instances for one test; all are killed afterwards."""
    _require_sshd()
    made: list[SSHServer] = []

    def make() -> SSHServer:
        s = SSHServer(tmp_path / f"sshd{len(made)}")
        made.append(s)
        return s

    yield make
    for s in made:
        s.kill()
