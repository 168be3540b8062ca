"""NEUROCORTEX_JOB_DIRECTORY_GROUP: a helper daemon's group (clamd runs as its own user) reads the job
directories; another local user does not. Processes of other uids are started with setpriv, as root."""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import tempfile
from pathlib import Path

import pytest

from neurocortex.execution.jobdir import JobDirectory, group_id
from tests.execution.conftest import job_input

pytestmark = pytest.mark.skipif(
    os.geteuid() != 0 or shutil.which("setpriv") is None,
    reason="needs root and setpriv to act as other users",
)

DAEMON_UID, HELPER_GID = 64001, 64002
"""A uid and a group that exist nowhere else: no account needs to be created."""
OTHER_UID, OTHER_GID = 64003, 64004


def read_as(uid: int, gid: int, groups: list[int], path: Path) -> subprocess.CompletedProcess:
    group_flags = ["--groups", ",".join(map(str, groups))] if groups else ["--clear-groups"]
    return subprocess.run(
        ["setpriv", "--reuid", str(uid), "--regid", str(gid), *group_flags, "cat", str(path)],
        capture_output=True, text=True, check=False,
    )  # fmt: skip


@pytest.fixture
def open_tmp():
    """A folder other users may pass through (pytest's own are closed to them), as a data directory's parents
    are on a server; the job folders inside are what the test is about."""
    path = Path(tempfile.mkdtemp(prefix="nc-group-"))
    path.chmod(0o711)
    yield path
    shutil.rmtree(path)


def file_job(tmp_path: Path, group: int | None, umask: int = 0o022) -> tuple[JobDirectory, Path]:
    sample = tmp_path / "sample.exe"
    sample.write_bytes(b"MZ pretend malware")
    sample.chmod(0o444)  # as the datastore keeps its files
    previous = os.umask(umask)
    try:
        job = JobDirectory.create(tmp_path / "jobs", "job1", group)
        job.write_input(job_input(data=None, data_type="file", attachment_path=sample,
                                  attachment_name="sample.exe", attachment_content_type="x"))  # fmt: skip
    finally:
        os.umask(previous)
    attachment = next(job.input_dir.glob("attachment*"))
    return job, attachment


@pytest.mark.parametrize("umask", [0o022, 0o077])
def test_the_group_reads_the_attachment_and_others_do_not(open_tmp: Path, umask: int) -> None:
    job, attachment = file_job(open_tmp, HELPER_GID, umask)
    daemon = read_as(DAEMON_UID, DAEMON_UID, [HELPER_GID], attachment)
    assert daemon.returncode == 0, daemon.stderr
    assert daemon.stdout == "MZ pretend malware"
    assert read_as(DAEMON_UID, DAEMON_UID, [HELPER_GID], job.input_dir / "input.json").returncode == 0
    other = read_as(OTHER_UID, OTHER_GID, [], attachment)
    assert other.returncode != 0 and "Permission denied" in other.stderr
    # the group reads and traverses but writes nothing; others get nothing at all
    for directory in (job.path, job.input_dir, job.output_dir):
        info = os.stat(directory)
        assert info.st_gid == HELPER_GID and stat.S_IMODE(info.st_mode) == 0o2750
    root = os.stat(job.path.parent)
    assert root.st_gid == HELPER_GID and stat.S_IMODE(root.st_mode) & 0o077 == 0o010
    # what the worker makes inside inherits the group
    (job.output_dir / "report.txt").write_text("x")
    assert os.stat(job.output_dir / "report.txt").st_gid == HELPER_GID


def test_without_the_setting_the_folder_is_private(open_tmp: Path) -> None:
    job, attachment = file_job(open_tmp, None)
    assert read_as(DAEMON_UID, DAEMON_UID, [HELPER_GID], attachment).returncode != 0
    assert stat.S_IMODE(os.stat(job.path).st_mode) == 0o700


def test_group_by_name_or_number() -> None:
    assert group_id("64002") == 64002 and group_id(None) is None
    assert group_id("root") == 0
    with pytest.raises(KeyError):
        group_id("no-such-group-here")
