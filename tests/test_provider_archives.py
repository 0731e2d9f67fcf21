"""Adapter archives from managed providers unpack safely: zstd/gzip tar or zip, one top folder stripped,
and traversal paths, links, a missing adapter_config.json or an existing target leave nothing written."""
from __future__ import annotations

import io
import tarfile
import zipfile

import pytest

from nursery_core.cloud.http_api import ProviderAPIError, unpack_archive
from nursery_core.emulators.lora_artifact import pack_tar, pack_zip


def tar_bytes(members: dict[str, bytes], link: str | None = None) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
        if link:
            info = tarfile.TarInfo(link)
            info.type, info.linkname = tarfile.SYMTYPE, "/etc/passwd"
            tar.addfile(info)
    return buf.getvalue()


def test_the_three_archive_kinds_unpack_to_the_same_files(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    (src / "adapter_config.json").write_text("{}")
    (src / "adapter_model.safetensors").write_bytes(b"\0" * 64)
    for kind, blob in (("zst", pack_tar(src, "zst")), ("gz", pack_tar(src, "gz")), ("zip", pack_zip(src))):
        names = unpack_archive(blob, tmp_path / kind, require="adapter_config.json")
        assert names == ["adapter_config.json", "adapter_model.safetensors"]
        assert (tmp_path / kind / "adapter_model.safetensors").read_bytes() == b"\0" * 64
    nested = tar_bytes({"run-7/adapter_config.json": b"{}", "run-7/sub/w.bin": b"x"})
    assert unpack_archive(nested, tmp_path / "nested") == ["adapter_config.json", "sub/w.bin"]


@pytest.mark.parametrize("blob, message", [
    (tar_bytes({"adapter_config.json": b"{}", "../evil": b"x"}), "unsafe path '../evil'"),
    (tar_bytes({"/etc/cron.d/x": b"x"}), "unsafe path"),
    (tar_bytes({"adapter_config.json": b"{}"}, link="w.bin"), "link or device 'w.bin'"),
    (tar_bytes({"weights.bin": b"x"}), "holds no adapter_config.json"),
    (b"not an archive at all", "not a tar, tar.gz, tar.zst or zip"),
])
def test_bad_archives_write_nothing(tmp_path, blob, message):
    with pytest.raises(ProviderAPIError, match=message):
        unpack_archive(blob, tmp_path / "out", require="adapter_config.json")
    assert not (tmp_path / "out").exists() and not (tmp_path / "out.partial").exists()
    assert not (tmp_path.parent / "evil").exists()


def test_an_existing_target_is_never_overwritten(tmp_path):
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "keep.txt").write_text("mine")
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("adapter_config.json", "{}")
    with pytest.raises(ProviderAPIError, match="already exists"):
        unpack_archive(buf.getvalue(), tmp_path / "out")
    assert (tmp_path / "out" / "keep.txt").read_text() == "mine"
