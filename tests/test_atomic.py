"""deltalora.atomic: the one atomic-write helper that records, proxy data, tables and plots go through."""

from __future__ import annotations

import os
import stat

import pytest

from deltalora.atomic import atomic_path, atomic_write_bytes, atomic_write_text


def test_write_creates_folders_and_leaves_only_the_target(tmp_path):
    target = tmp_path / "a" / "b" / "out.txt"
    atomic_write_text(target, "héllo\n")
    assert target.read_bytes() == "héllo\n".encode()
    assert os.listdir(target.parent) == ["out.txt"]


def test_a_failed_write_keeps_the_old_file_and_leaves_no_temporary(tmp_path):
    target = tmp_path / "out.bin"
    atomic_write_bytes(target, b"old")
    with pytest.raises(RuntimeError), atomic_path(target) as tmp:
        tmp.write_bytes(b"half of the ne")
        raise RuntimeError("killed mid-write")
    assert target.read_bytes() == b"old"
    assert os.listdir(tmp_path) == ["out.bin"]


def test_written_files_get_normal_permissions_not_mkstemps_0600(tmp_path):
    old = os.umask(0o022)
    try:
        atomic_write_text(tmp_path / "shared.csv", "x\n")
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "shared.csv").stat().st_mode) == 0o644


def test_the_temporary_keeps_the_suffix_a_writer_may_need(tmp_path):
    with atomic_path(tmp_path / "plot.png", suffix=".png") as tmp:
        assert tmp.suffix == ".png" and tmp.parent == tmp_path
        tmp.write_bytes(b"png")
    assert (tmp_path / "plot.png").read_bytes() == b"png"
