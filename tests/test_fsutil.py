import os
import stat

import pytest

from cnnspec.errors import UsageError
from cnnspec.fsutil import atomic_write_bytes


def test_atomic_write_follows_umask_and_leaves_no_temp(tmp_path):
    old = os.umask(0o022)
    try:
        atomic_write_bytes(tmp_path / "a.bin", b"x")
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "a.bin").stat().st_mode) == 0o644
    assert [p.name for p in tmp_path.iterdir()] == ["a.bin"]


def test_output_under_a_file_is_a_usage_error(tmp_path):
    (tmp_path / "f").write_text("")
    with pytest.raises(UsageError, match="not a directory"):
        atomic_write_bytes(tmp_path / "f" / "x.bin", b"x")
