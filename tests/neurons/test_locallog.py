import fcntl
import json
import subprocess
import sys
import time

import pytest

from .conftest import clean_env

FLAVOR = "LocalLog"
ALERT = {"_id": "~8192", "_type": "alert", "title": "Suspicious login", "source": "siem", "sourceRef": "A-1"}


def job_for(make_job, path, data_type="thehive:alert", data=ALERT, **config):
    return make_job(
        FLAVOR, data_type, data, config={"path": str(path), **config}, message="m", responder=True
    )


def test_appends_one_json_line_and_tags(make_job, tmp_path):
    log = tmp_path / "deep" / "er" / "actions.jsonl"  # parent directories do not exist yet
    report = job_for(make_job, log).run()
    assert report["success"] is True, report
    assert report["operations"] == [{"type": "AddTagToAlert", "tag": "neurocortex:logged"}]
    assert report["full"]["path"] == str(log)

    report = job_for(
        make_job, log, data_type="thehive:case_artifact", data={"_id": "~1", "data": "8.8.8.8"}, tag="logged"
    ).run()
    assert report["operations"] == [{"type": "AddTagToArtifact", "tag": "logged"}]

    first, second = (json.loads(line) for line in log.read_text(encoding="utf-8").splitlines())
    assert first["dataType"] == "thehive:alert"
    assert first["id"] == "~8192"
    assert first["data"] == ALERT
    assert first["message"] == "m"
    assert first["tlp"] == 2 and first["pap"] == 2
    assert first["timestamp"].endswith("Z")
    assert second["data"] == {"_id": "~1", "data": "8.8.8.8"}


def test_case_operation(make_job, tmp_path):
    report = job_for(make_job, tmp_path / "a.log", data_type="thehive:case", data={"_id": "~1"}).run()
    assert report["operations"] == [{"type": "AddTagToCase", "tag": "neurocortex:logged"}]


def test_concurrent_jobs_write_whole_lines(make_job, tmp_path):
    log = tmp_path / "concurrent.jsonl"
    jobs = []
    for index in range(12):
        # Large entries, so that an unsynchronised writer would have to split them.
        data = {"_id": f"~{index}", "description": chr(ord("a") + index) * 300_000}
        jobs.append(job_for(make_job, log, data_type="thehive:case", data=data))
    processes = [
        subprocess.Popen(
            [sys.executable, str(job.root / job.command), str(job.directory)], cwd=job.root, env=clean_env()
        )
        for job in jobs
    ]
    assert [p.wait(timeout=60) for p in processes] == [0] * len(processes)

    lines = log.read_bytes().split(b"\n")
    assert lines[-1] == b""
    entries = [json.loads(line) for line in lines[:-1]]
    assert sorted(e["id"] for e in entries) == sorted(f"~{i}" for i in range(12))
    for entry in entries:
        index = int(entry["id"][1:])
        assert entry["data"]["description"] == chr(ord("a") + index) * 300_000


def test_waits_for_the_file_lock(make_job, tmp_path):
    log = tmp_path / "locked.jsonl"
    job = job_for(make_job, log)
    with open(log, "ab") as holder:
        fcntl.flock(holder, fcntl.LOCK_EX)
        process = subprocess.Popen(
            [sys.executable, str(job.root / job.command), str(job.directory)], cwd=job.root, env=clean_env()
        )
        time.sleep(0.8)
        assert process.poll() is None, "the responder did not wait for the lock"
        assert log.read_bytes() == b""
        fcntl.flock(holder, fcntl.LOCK_UN)
    assert process.wait(timeout=30) == 0
    assert json.loads(log.read_text())["id"] == "~8192"


@pytest.mark.parametrize(
    ("path", "message"),
    [
        ("relative/actions.log", "path must be an absolute file path"),
        (None, "The log file path is not configured."),
    ],
)
def test_bad_path(make_job, path, message):
    report = make_job(FLAVOR, "thehive:case", {"_id": "~1"}, config={"path": path}, responder=True).run()
    assert report["success"] is False
    assert message in report["errorMessage"]


def test_directory_as_path(make_job, tmp_path):
    report = job_for(make_job, tmp_path).run()
    assert report["success"] is False
    assert report["errorMessage"] == f"path {tmp_path} is a directory, not a file."


def test_unwritable_file_reports_the_os_error(make_job, tmp_path):
    # A path below a regular file fails for everyone, root included.
    blocker = tmp_path / "file"
    blocker.write_text("x")
    report = job_for(make_job, blocker / "x.log").run()
    assert report["success"] is False
    assert report["errorMessage"] == f"Cannot write to {blocker / 'x.log'}: File exists"
