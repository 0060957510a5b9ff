"""labelaudit.io (a new file, tests/test_io.py): the temporary is made beside the target, and a new file gets
the permissions any new file would."""

from __future__ import annotations

import os
import stat
from pathlib import Path

from labelaudit.io import write_atomic, write_text_atomic


def test_the_temporary_is_written_beside_the_target(tmp_path: Path) -> None:
    seen: list[Path] = []
    write_atomic(tmp_path / "out" / "report.csv", lambda tmp: (seen.append(tmp), tmp.write_text("a\n")))
    assert seen[0].parent == tmp_path / "out"  # the rename then never crosses a filesystem
    assert (tmp_path / "out" / "report.csv").read_text() == "a\n"


def test_a_new_file_gets_the_permissions_the_umask_gives(tmp_path: Path) -> None:
    old = os.umask(0o022)
    try:
        write_text_atomic(tmp_path / "report.html", "<html></html>")
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "report.html").stat().st_mode) == 0o644
