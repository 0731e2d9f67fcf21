"""SSH helpers against a real OpenSSH sshd: host keys pinned per job (TOFU), commands, streaming, SFTP."""
from __future__ import annotations

import os
from pathlib import Path

import paramiko
import pytest

from nursery_core.cloud.ssh import (HostKeyChanged, SSHDropped, SSHError, SSHSession, generate_keypair,
                                    host_key_name, q)

pytestmark = pytest.mark.ssh


def session(server, tmp_path, key=None, known_hosts=None):
    return SSHSession(server.host, server.port, server.user, key or server.user_key,
                      known_hosts or tmp_path / "job" / "known_hosts", timeout=10)


def test_generated_ed25519_key_authenticates_and_is_private(sshd, tmp_path):
    path, public = generate_keypair(tmp_path / "keys", comment="nursery-j1")
    assert public.startswith("ssh-ed25519 ") and public.endswith(" nursery-j1")
    assert os.stat(path).st_mode & 0o777 == 0o600
    assert os.stat(path.parent).st_mode & 0o777 == 0o700
    with open(sshd.authorized_keys, "a") as fh:
        fh.write(public + "\n")
    with session(sshd, tmp_path, key=path) as s:
        code, out = s.run("echo hello; id -un")
    assert code == 0 and out.split() == ["hello", sshd.user]


def test_tofu_first_connect_pins_reconnect_accepts_changed_key_rejected(sshd_factory, tmp_path):
    server = sshd_factory()
    known = tmp_path / "job" / "known_hosts"
    home_known = Path.home() / ".ssh" / "known_hosts"
    before = home_known.read_text() if home_known.exists() else None
    with session(server, tmp_path, known_hosts=known) as s:       # first contact: accepted and pinned
        assert s.run("true")[0] == 0
    pinned = paramiko.HostKeys(str(known))
    name = host_key_name(server.host, server.port)
    assert name.startswith("[127.0.0.1]:") and pinned.lookup(name)
    pub = (server.host_key.parent / (server.host_key.name + ".pub")).read_text().split()[1]
    assert pinned.lookup(name)["ssh-ed25519"].get_base64() == pub
    with session(server, tmp_path, known_hosts=known) as s:       # same key again: accepted
        assert s.run("true")[0] == 0
    server.new_host_key()
    with pytest.raises(HostKeyChanged, match="changed"):          # another key for this job: rejected
        session(server, tmp_path, known_hosts=known).connect()
    with pytest.raises(HostKeyChanged):
        session(server, tmp_path, known_hosts=known).connect_retrying(attempts=3, wait=0.01)
    # a different job (its own known_hosts) trusts the new key on first use
    with session(server, tmp_path, known_hosts=tmp_path / "job2" / "known_hosts") as s:
        assert s.run("true")[0] == 0
    # the user's own known_hosts is never touched
    assert (home_known.read_text() if home_known.exists() else None) == before


def test_unknown_key_and_closed_port_are_clear_errors(sshd, tmp_path):
    other, _ = generate_keypair(tmp_path / "other")
    with pytest.raises(SSHError, match="authentication"):
        session(sshd, tmp_path, key=other).connect()
    with pytest.raises(SSHError, match="cannot connect"):
        SSHSession("127.0.0.1", 1, sshd.user, sshd.user_key, tmp_path / "kh", timeout=2).connect()
    with pytest.raises(SSHError, match="does not exist"):
        SSHSession("127.0.0.1", sshd.port, sshd.user, tmp_path / "nope", tmp_path / "kh").connect()


def test_streams_lines_exit_codes_and_quotes_arguments(sshd, tmp_path):
    weird = tmp_path / "it's a $dir; rm -rf x"
    with session(sshd, tmp_path) as s:
        lines = []
        code = s.stream(q("sh", "-c", 'for i in 1 2 3; do echo line$i; sleep 0.05; done; exit 7'), lines.append)
        assert code == 7 and lines == ["line1", "line2", "line3"]
        s.run(q("mkdir", "-p", str(weird)))
        code, out = s.run(q("ls", "-d", str(weird)))
        assert out.strip() == str(weird) and weird.is_dir()
        with pytest.raises(SSHError, match="exit code 3"):
            s.run("echo boom >&2; exit 3")
        stopped = s.stream("sleep 30", lambda _l: None, should_stop=lambda: True)
        assert stopped == -1


def test_sftp_directory_round_trip(sshd, tmp_path):
    src = tmp_path / "src"
    (src / "data" / "deep").mkdir(parents=True)
    (src / "config.json").write_text('{"a": 1}')
    (src / "data" / "train.jsonl").write_text("x\n" * 1000)
    (src / "data" / "deep" / "b.bin").write_bytes(os.urandom(70000))
    (src / "ssh").mkdir()
    (src / "ssh" / "id_ed25519").write_text("secret")
    remote = str(tmp_path / "remote dir")
    with session(sshd, tmp_path) as s:
        sent = s.put_dir(src, remote, exclude={"ssh"})
        assert sent == 8 + 2000 + 70000
        assert not (Path(remote) / "ssh").exists()
        assert s.exists(remote + "/config.json") and not s.exists(remote + "/nope")
        assert s.read_text(remote + "/config.json") == '{"a": 1}'
        n = s.get_dir(remote, tmp_path / "back")
    assert n == 3
    assert (tmp_path / "back" / "data" / "deep" / "b.bin").read_bytes() == (src / "data" / "deep" / "b.bin").read_bytes()


def test_dropped_connection_is_reported(sshd_factory, tmp_path):
    server = sshd_factory()
    s = session(server, tmp_path).connect()
    seen = []

    def on_line(line):
        seen.append(line)
        if len(seen) == 1:
            server.kill()

    with pytest.raises(SSHDropped, match="dropped"):
        s.stream("echo start; sleep 20; echo never", on_line, timeout=30)
    assert seen == ["start"]
    s.close()


def test_remote_installs_only_what_the_image_lacks(sshd, tmp_path):
    from types import SimpleNamespace

    from nursery_core.cloud.remote import RemoteTarget
    from nursery_core.jobs.backends.remote import Limits, RemoteRun

    calls = tmp_path / "calls.txt"
    fake_py = tmp_path / "fake python"   # a space in the path: every remote command quotes it
    fake_py.write_text(f"""#!/bin/sh
echo "$@" >> '{calls}'
case "$1" in
  -c) echo "peft accelerate" ;;
  -m) exit 0 ;;
esac
""")
    fake_py.chmod(0o755)
    logs = []
    ctx = SimpleNamespace(job_id="jx", job_dir=tmp_path, should_stop=lambda: False, log=logs.append)
    target = RemoteTarget(sshd.host, sshd.port, sshd.user, str(sshd.user_key), str(tmp_path / "kh"),
                          python=str(fake_py), remote_root=str(tmp_path / "root"))
    run = RemoteRun(ctx, target, Limits())
    run.connect()
    try:
        run.ensure_packages()
    finally:
        run.close()
    lines = calls.read_text().splitlines()
    assert lines[0].startswith("-c import importlib.util")
    pip = lines[1].split()
    assert pip[:3] == ["-m", "pip", "install"]
    assert [a for a in pip if a.startswith(("peft", "accelerate", "torch"))] == ["peft>=0.21,<0.22",
                                                                                 "accelerate>=1.10,<2"]
    assert any("installing" in m for m in logs)
