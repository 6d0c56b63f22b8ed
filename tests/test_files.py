"""The one way the package writes files and folders: a kill or an error at any point leaves the old version or
the new one, never neither and never a half-written file."""

import os
import subprocess
import sys

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from idae.files import partial_files, previous_of, replaced_file, replaced_folder, restore_previous

KILL_AT_SWAP = (
    "import os, sys\n"
    "from pathlib import Path\n"
    "from idae.files import replaced_folder\n"
    "replace = os.replace\n"
    "def dying(src, dst):\n"
    "    if os.path.basename(str(src)).startswith('.' + Path(sys.argv[1]).name + '.'):\n"
    "        os._exit(9)  # the swap-in, after the old folder went aside: die without clean-up, as a kill would\n"
    "    replace(src, dst)\n"
    "os.replace = dying\n"
    "with replaced_folder(sys.argv[1]) as tmp:\n"
    "    (tmp / 'a.txt').write_text('new')\n"
)  # fmt: skip


def test_a_file_is_replaced_whole(tmp_path):
    target = tmp_path / "table.csv"
    target.write_text("old")
    with replaced_file(target) as tmp:
        assert tmp.parent == tmp_path and tmp.name.startswith(".table.csv.") and tmp != target
        tmp.write_text("new")
        assert target.read_text() == "old"  # nothing reaches the target before the block ends
    assert target.read_text() == "new"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["table.csv"]


def test_an_error_while_writing_a_file_keeps_the_old_one(tmp_path):
    target = tmp_path / "table.csv"
    target.write_text("old")
    with pytest.raises(RuntimeError, match="disk"), replaced_file(target, durable=True) as tmp:
        tmp.write_text("half")
        raise RuntimeError("disk full")
    assert target.read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["table.csv"]


def test_a_kill_while_writing_a_file_keeps_the_old_one(tmp_path):
    target = tmp_path / "table.csv"
    target.write_text("old")
    script = (
        "import os, sys\nfrom idae.files import replaced_file\n"
        "with replaced_file(sys.argv[1]) as tmp:\n    tmp.write_text('half')\n    os._exit(9)\n"
    )
    assert subprocess.run([sys.executable, "-c", script, str(target)]).returncode == 9
    assert target.read_text() == "old"
    assert [p.read_text() for p in partial_files(target)] == ["half"]  # what discard_checkpoint-style cleaners find


@settings(max_examples=30, deadline=None)
@given(st.lists(st.tuples(st.binary(max_size=64), st.booleans()), min_size=1, max_size=6))
def test_the_target_always_holds_the_last_finished_write(tmp_path_factory, writes):
    folder = tmp_path_factory.mktemp("w")
    target, last = folder / "f.bin", None
    for content, fails in writes:
        try:
            with replaced_file(target) as tmp:
                tmp.write_bytes(content)
                if fails:
                    raise OSError("interrupted")
            last = content
        except OSError:
            pass
        assert (target.read_bytes() if target.exists() else None) == last
        assert partial_files(target) == []


def test_a_folder_is_swapped_in_and_the_old_one_removed(tmp_path):
    target = tmp_path / "out"
    target.mkdir()
    (target / "a.txt").write_text("old")
    with replaced_folder(target) as tmp:
        (tmp / "a.txt").write_text("new")
        assert (target / "a.txt").read_text() == "old"
    assert (target / "a.txt").read_text() == "new"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


def test_an_error_while_writing_a_folder_keeps_the_old_one(tmp_path):
    target = tmp_path / "out"
    target.mkdir()
    (target / "a.txt").write_text("old")
    with pytest.raises(RuntimeError), replaced_folder(target) as tmp:
        (tmp / "a.txt").write_text("half")
        raise RuntimeError
    assert (target / "a.txt").read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


def test_a_kill_between_the_two_renames_is_undone(tmp_path):
    target = tmp_path / "out"
    target.mkdir()
    (target / "a.txt").write_text("old")
    assert subprocess.run([sys.executable, "-c", KILL_AT_SWAP, str(target)]).returncode == 9
    assert not target.exists() and (previous_of(target) / "a.txt").read_text() == "old"
    assert restore_previous(target)
    assert (target / "a.txt").read_text() == "old" and not previous_of(target).exists()
    assert not restore_previous(target)  # nothing left to undo
    with replaced_folder(target) as tmp:  # the next write goes through as usual
        (tmp / "a.txt").write_text("new")
    assert (target / "a.txt").read_text() == "new"


def test_a_new_folder_needs_no_previous(tmp_path):
    target = tmp_path / "deeper" / "out"
    with replaced_folder(target) as tmp:
        (tmp / "a.txt").write_text("first")
    assert (target / "a.txt").read_text() == "first"
    assert os.listdir(target.parent) == ["out"]
