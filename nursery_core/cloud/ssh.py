"""SSH and SFTP for remote training (paramiko): per-job keys, a host key pinned per job, quoted commands.

Host keys: trust on first use, scoped to one job. The first key a (host, port) presents is recorded in the
job's own known_hosts file; any other key later in that job is rejected. The user's ~/.ssh/known_hosts and
SSH agent are never used (look_for_keys=False, allow_agent=False).
"""
from __future__ import annotations

import base64
import hashlib
import logging
import os
import posixpath
import shlex
import stat
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

import paramiko

from ..errors import BackendError
from .errors import StopRequested

log = logging.getLogger(__name__)


class SSHError(BackendError):
    """Connecting, authenticating or running something over SSH failed."""


class SSHDropped(SSHError):
    """The connection went away while a command was running."""


class HostKeyChanged(SSHError):
    """The host presented a different key than the one pinned for this job."""


def q(*parts: object) -> str:
    """A shell command line from parts, each quoted for the remote shell."""
    return " ".join(shlex.quote(str(p)) for p in parts)


def generate_keypair(directory: Path | str, comment: str = "nursery") -> tuple[Path, str]:
    """A fresh ed25519 key pair in `directory` (private key 0600, OpenSSH format); returns (path, public line)."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    os.chmod(directory, 0o700)
    key = Ed25519PrivateKey.generate()
    private = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH,
                                serialization.NoEncryption())
    public = key.public_key().public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH)
    path = directory / "id_ed25519"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(private)
    line = public.decode() + " " + comment.replace(" ", "-")
    (directory / "id_ed25519.pub").write_text(line + "\n")
    return path, line


def fingerprint(key: paramiko.PKey) -> str:
    """SHA256 fingerprint as OpenSSH prints it."""
    digest = hashlib.sha256(key.asbytes()).digest()
    return "SHA256:" + base64.b64encode(digest).decode().rstrip("=")


def host_key_name(host: str, port: int) -> str:
    return host if int(port) == 22 else f"[{host}]:{int(port)}"


class PinnedHostKeyPolicy(paramiko.MissingHostKeyPolicy):
    """Trust on first use into a per-job known_hosts file; a host that already has a pinned key of any type
    is rejected when it presents another (paramiko itself rejects a changed key of the same type)."""

    def __init__(self, known_hosts: Path | str):
        self.path = Path(known_hosts)

    def missing_host_key(self, client: paramiko.SSHClient, hostname: str, key: paramiko.PKey) -> None:
        pinned = paramiko.HostKeys()
        if self.path.exists():
            pinned.load(str(self.path))
        if pinned.lookup(hostname):
            raise HostKeyChanged(f"the host key of {hostname} changed during this job ({key.get_name()} "
                                 f"{fingerprint(key)}); refusing to connect")
        pinned.add(hostname, key.get_name(), key)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        pinned.save(str(self.path))
        os.chmod(self.path, 0o600)
        client.get_host_keys().add(hostname, key.get_name(), key)
        log.info("pinned host key for %s: %s %s", hostname, key.get_name(), fingerprint(key))


class SSHSession:
    """One authenticated connection: commands (streamed or captured) and SFTP transfers."""

    def __init__(self, host: str, port: int, user: str, key_path: Path | str, known_hosts: Path | str, *,
                 timeout: float = 20.0, keepalive: int = 15):
        self.host, self.port, self.user = host, int(port), user
        self.key_path, self.known_hosts = Path(key_path), Path(known_hosts)
        self.timeout, self.keepalive = timeout, keepalive
        self.client: paramiko.SSHClient | None = None
        self._sftp: paramiko.SFTPClient | None = None
        self._lock = threading.Lock()

    @property
    def address(self) -> str:
        return f"{self.user}@{self.host}:{self.port}"

    # -------------------------------------------------------------------------------- connection
    def connect(self) -> SSHSession:
        pkey = _load_key(self.key_path)
        client = paramiko.SSHClient()
        if self.known_hosts.exists():
            client.load_host_keys(str(self.known_hosts))
        client.set_missing_host_key_policy(PinnedHostKeyPolicy(self.known_hosts))
        try:
            client.connect(self.host, port=self.port, username=self.user, pkey=pkey, look_for_keys=False,
                           allow_agent=False, timeout=self.timeout, banner_timeout=self.timeout,
                           auth_timeout=self.timeout)
        except HostKeyChanged:
            client.close()
            raise
        except paramiko.BadHostKeyException as e:
            client.close()
            raise HostKeyChanged(f"the host key of {self.address} changed during this job (got "
                                 f"{fingerprint(e.key)}, pinned {fingerprint(e.expected_key)}); refusing "
                                 "to connect") from None
        except paramiko.AuthenticationException as e:
            client.close()
            raise SSHError(f"SSH authentication to {self.address} failed ({e}): is the key authorised there?") \
                from None
        except (TimeoutError, OSError, paramiko.SSHException, EOFError) as e:
            client.close()
            raise SSHError(f"cannot connect to {self.address}: {type(e).__name__}: {e}") from None
        transport = client.get_transport()
        if transport is not None and self.keepalive:
            transport.set_keepalive(self.keepalive)
        self.client = client
        return self

    def connect_retrying(self, attempts: int = 10, wait: float = 3.0,
                         should_stop: Callable[[], bool] | None = None) -> SSHSession:
        """Connects, retrying while sshd comes up (a fresh instance refuses for a while); key changes fail at once.
        Raises StopRequested when should_stop() says so between attempts."""
        last: Exception | None = None
        for i in range(max(1, attempts)):
            if should_stop is not None and should_stop():
                raise StopRequested("cancelled while connecting over SSH")
            try:
                return self.connect()
            except HostKeyChanged:
                raise
            except SSHError as e:
                last = e
                if i + 1 < attempts:
                    time.sleep(wait)
        raise SSHError(f"{last} (gave up after {attempts} attempts)")

    @property
    def alive(self) -> bool:
        t = self.client.get_transport() if self.client else None
        return bool(t and t.is_active())

    def close(self) -> None:
        with self._lock:
            if self._sftp is not None:
                try:
                    self._sftp.close()
                except Exception:  # noqa: BLE001 — closing a dead channel may raise anything
                    pass
                self._sftp = None
            if self.client is not None:
                self.client.close()
                self.client = None

    def __enter__(self) -> SSHSession:
        return self if self.client else self.connect()

    def __exit__(self, *exc) -> None:
        self.close()

    def _transport(self) -> paramiko.Transport:
        t = self.client.get_transport() if self.client else None
        if t is None or not t.is_active():
            raise SSHDropped(f"the SSH connection to {self.address} is closed")
        return t

    # ---------------------------------------------------------------------------------- commands
    def run(self, command: str, *, timeout: float = 600.0, check: bool = True) -> tuple[int, str]:
        """Runs a command; returns (exit code, stdout+stderr). check=True raises on a non-zero exit."""
        lines: list[str] = []
        code = self.stream(command, lines.append, timeout=timeout)
        out = "\n".join(lines)
        if check and code != 0:
            tail = "\n".join(lines[-15:])
            raise SSHError(f"remote command failed with exit code {code} on {self.address}: {tail}")
        return code, out

    def stream(self, command: str, on_line: Callable[[str], None], *, timeout: float | None = None,
               should_stop: Callable[[], bool] | None = None, on_idle: Callable[[], None] | None = None,
               poll: float = 0.2) -> int:
        """Runs a command, calling on_line for each output line as it arrives; returns its exit code.

        should_stop() returning True closes the channel and returns -1; on_idle runs between reads."""
        try:
            chan = self._transport().open_session()
            chan.set_combine_stderr(True)
            chan.settimeout(poll)
            chan.exec_command(command)
        except (paramiko.SSHException, OSError, EOFError) as e:
            raise SSHDropped(f"the SSH connection to {self.address} dropped: {e}") from None
        deadline = None if timeout is None else time.monotonic() + timeout
        buf = b""
        try:
            while True:
                try:
                    data = chan.recv(65536)
                except TimeoutError:
                    data = None
                except (OSError, EOFError, paramiko.SSHException) as e:
                    raise SSHDropped(f"the SSH connection to {self.address} dropped: {e}") from None
                if data:
                    buf += data
                    *complete, buf = buf.split(b"\n")
                    for raw in complete:
                        on_line(raw.decode("utf-8", "replace").rstrip("\r"))
                    continue
                if data == b"":  # EOF on the channel
                    if buf:
                        on_line(buf.decode("utf-8", "replace"))
                        buf = b""
                    # paramiko also sets the status event (status -1) when the transport dies, so a
                    # missing exit status on a dead transport means the connection dropped
                    chan.status_event.wait(5.0)
                    if chan.exit_status == -1:
                        time.sleep(0.05)
                        if not self.alive or not chan.status_event.is_set():
                            raise SSHDropped(f"the SSH connection to {self.address} dropped while "
                                             "a command was running")
                    return chan.exit_status
                if not self.alive:
                    raise SSHDropped(f"the SSH connection to {self.address} dropped while a command was running")
                if should_stop is not None and should_stop():
                    return -1
                if on_idle is not None:
                    on_idle()
                if deadline is not None and time.monotonic() > deadline:
                    raise SSHError(f"remote command on {self.address} did not finish within {timeout:.0f} s")
        finally:
            try:
                chan.close()
            except Exception:  # noqa: BLE001 — closing a channel of a dropped connection may raise anything;
                pass           # the command's own outcome (or SSHDropped) is what the caller needs

    # -------------------------------------------------------------------------------------- SFTP
    def sftp(self) -> paramiko.SFTPClient:
        with self._lock:
            if self._sftp is None:
                try:
                    self._sftp = self._transport().open_sftp_client()
                except (paramiko.SSHException, OSError, EOFError) as e:
                    raise SSHDropped(f"cannot open SFTP on {self.address}: {e}") from None
            return self._sftp

    def mkdirs(self, remote: str) -> None:
        self.run(q("mkdir", "-p", remote))

    def put_file(self, local: Path | str, remote: str) -> None:
        try:
            self.sftp().put(str(local), remote)
        except (OSError, paramiko.SSHException, EOFError) as e:
            raise SSHDropped(f"upload of {Path(local).name} to {self.address} failed: {e}") from None

    def put_dir(self, local: Path | str, remote: str, *, exclude: Iterable[str] = (),
                should_stop: Callable[[], bool] | None = None) -> int:
        """Uploads a directory tree (skipping names in exclude); checks should_stop between files (StopRequested).
        Returns the bytes sent."""
        local = Path(local)
        skip = set(exclude)
        dirs, files = [remote], []
        for root, dnames, fnames in os.walk(local):
            dnames[:] = sorted(d for d in dnames if d not in skip and d != "__pycache__")
            rel = Path(root).relative_to(local)
            for d in dnames:
                dirs.append(posixpath.join(remote, *(rel / d).parts))
            for f in sorted(fnames):
                if f not in skip:
                    files.append((Path(root) / f, posixpath.join(remote, *(rel / f).parts)))
        self.run(q("mkdir", "-p", *dirs))
        sent = 0
        for src, dst in files:
            if should_stop is not None and should_stop():
                raise StopRequested("cancelled during upload")
            self.put_file(src, dst)
            sent += src.stat().st_size
        return sent

    def get_dir(self, remote: str, local: Path | str) -> int:
        """Downloads a remote directory tree into `local`; returns the number of files."""
        local = Path(local)
        sftp = self.sftp()
        count = 0
        try:
            for entry in sftp.listdir_attr(remote):
                src = posixpath.join(remote, entry.filename)
                dst = local / entry.filename
                if stat.S_ISDIR(entry.st_mode or 0):
                    count += self.get_dir(src, dst)
                else:
                    local.mkdir(parents=True, exist_ok=True)
                    sftp.get(src, str(dst))
                    count += 1
        except FileNotFoundError:
            raise SSHError(f"{remote} does not exist on {self.address}") from None
        except (OSError, paramiko.SSHException, EOFError) as e:
            raise SSHDropped(f"download of {remote} from {self.address} failed: {e}") from None
        return count

    def exists(self, remote: str) -> bool:
        try:
            self.sftp().stat(remote)
            return True
        except FileNotFoundError:
            return False
        except (OSError, paramiko.SSHException, EOFError) as e:
            raise SSHDropped(f"cannot reach {self.address}: {e}") from None

    def read_text(self, remote: str, max_bytes: int = 200_000) -> str:
        try:
            with self.sftp().open(remote, "r") as fh:
                size = fh.stat().st_size or 0
                if size > max_bytes:
                    fh.seek(size - max_bytes)
                return fh.read(max_bytes).decode("utf-8", "replace")
        except FileNotFoundError:
            return ""
        except (OSError, paramiko.SSHException, EOFError) as e:
            raise SSHDropped(f"cannot read {remote} on {self.address}: {e}") from None


def _load_key(path: Path) -> paramiko.PKey:
    if not path.is_file():
        raise SSHError(f"SSH key file {path} does not exist")
    errors = []
    for cls in (paramiko.Ed25519Key, paramiko.ECDSAKey, paramiko.RSAKey):
        try:
            return cls.from_private_key_file(str(path))
        except paramiko.PasswordRequiredException:
            raise SSHError(f"SSH key {path} is encrypted: use a key without a passphrase for training "
                           "servers") from None
        except (paramiko.SSHException, ValueError) as e:
            errors.append(str(e))
    raise SSHError(f"cannot read SSH private key {path} (ed25519, ecdsa or rsa expected)")


def iter_json_lines(lines: Iterable[str]) -> Iterator[dict]:
    """The JSON objects among output lines (other output is skipped)."""
    import json
    for line in lines:
        line = line.strip()
        if line.startswith("{"):
            try:
                obj = json.loads(line)
            except ValueError:
                continue
            if isinstance(obj, dict):
                yield obj
