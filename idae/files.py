"""Writing files and folders so that a kill at any moment leaves the old version or the new one in place, never
neither and never a half-written one. Every writer in the package goes through `replaced_file` or
`replaced_folder`; readers of a folder call `restore_previous` first."""

from __future__ import annotations

import glob
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


def previous_of(target: Path) -> Path:
    """`<target>.previous`: where the last version of a folder waits while the new one is renamed in."""
    return target.with_name(target.name + ".previous")


def restore_previous(target: Path) -> bool:
    """Undo a swap killed between its two renames: `target` is gone and its last version is beside it. Returns
    whether it was put back."""
    previous = previous_of(target)
    if target.exists() or not previous.is_dir():
        return False
    os.replace(previous, target)
    return True


def swap_in(new: Path, target: Path) -> None:
    """Rename the folder `new` to `target`. An existing `target` is renamed aside to `previous_of(target)` first
    and deleted only once `new` is in place, so a kill between the two renames leaves it for `restore_previous`."""
    previous = previous_of(target)
    shutil.rmtree(previous, ignore_errors=True)
    if target.exists():
        os.replace(target, previous)
    try:
        os.replace(new, target)
    except BaseException:
        restore_previous(target)
        raise
    shutil.rmtree(previous, ignore_errors=True)


def _sync_folder(folder: Path) -> None:
    """Make a rename inside `folder` durable (where the platform allows opening a folder)."""
    if hasattr(os, "O_DIRECTORY"):
        fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


@contextmanager
def replaced_folder(target: str | Path) -> Iterator[Path]:
    """Yield an empty temporary folder beside `target`; write into it. On a normal exit it replaces `target`
    (`swap_in`); on an error or a kill `target` is left as it was and the temporary folder is removed."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    restore_previous(target)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    try:
        yield tmp
        swap_in(tmp, target)
        _sync_folder(target.parent)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


@contextmanager
def replaced_file(target: str | Path, durable: bool = False, suffix: str = ".tmp") -> Iterator[Path]:
    """Yield a temporary path beside `target` (hidden, ending in `suffix`); write the file there. On a normal exit it
    replaces `target` in one rename; on an error or a kill `target` is left as it was and the partial file removed.
    With `durable`, the file and the rename are flushed to disk before returning (for checkpoints)."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=suffix, dir=target.parent)
    os.close(fd)
    tmp = Path(name)
    try:
        yield tmp
        if durable:
            with open(tmp, "rb+") as f:
                os.fsync(f.fileno())
        os.replace(tmp, target)
        if durable:
            _sync_folder(target.parent)
    finally:
        tmp.unlink(missing_ok=True)


def partial_files(target: Path) -> list[Path]:
    """What killed `replaced_file` writes of `target` (default suffix) left beside it."""
    return sorted(target.parent.glob(f".{glob.escape(target.name)}.*.tmp"))
