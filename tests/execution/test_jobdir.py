"""The job directory: input.json as Cortex writes it, and output.json read back from real (and hostile) workers."""

from __future__ import annotations

import copy
import json
import logging
import os
import re
import shutil
import stat
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from neurocortex.execution.jobdir import JobDirectory, WorkerOutput, build_config, redact

# -- build_config ---------------------------------------------------------------------------------------


def test_build_config_deep_merges_definition_then_configuration():
    definition = {"service": "get", "limits": {"a": 1, "b": 2}, "max_tlp": 3, "url": "https://x"}
    configuration = {"limits": {"b": 20, "c": 30}, "max_tlp": 2, "key": "k", "url": None, "proxy_http": None}
    before = copy.deepcopy((definition, configuration))

    config = build_config(definition, configuration)

    assert config == {
        "service": "get",
        "limits": {"a": 1, "b": 20, "c": 30},
        "max_tlp": 2,
        "key": "k",
        "url": None,  # an explicit null on the right wins, as play-json's deepMerge
        "proxy_http": None,
    }
    assert (definition, configuration) == before
    config["limits"]["a"] = 99
    assert definition["limits"]["a"] == 1


def test_build_config_without_definition_config():
    assert build_config(None, {"check_tlp": True}) == {"check_tlp": True}


def test_build_config_adds_proxy_object_from_proxy_items():
    definition = {"proxy": {"no": "localhost"}}
    configuration = {"proxy_http": "http://p:3128", "proxy_https": "http://s:3129", "proxy": {"http": "old"}}

    config = build_config(definition, configuration)

    assert config["proxy"] == {"no": "localhost", "http": "http://p:3128", "https": "http://s:3129"}
    assert config["proxy_http"] == "http://p:3128"


def test_build_config_adds_only_the_proxies_that_are_strings():
    assert build_config({}, {"proxy_http": None, "proxy_https": "http://s"})["proxy"] == {"https": "http://s"}
    assert "proxy" not in build_config({}, {"proxy_http": None, "proxy_https": 3})


def test_redact_replaces_secret_looking_config_values_like_cortexutils():
    document = {
        "data": "key",
        "config": {
            "api_key": "a",
            "Password": "b",
            "apiSecret": "c",
            "tsig_keyval": None,
            "Token": "t",
            "nested": {"key": "kept"},
        },
    }
    original = copy.deepcopy(document)

    redacted = redact(document)

    assert redacted == {
        "data": "key",
        "config": {
            "api_key": "REMOVED",
            "Password": "REMOVED",
            "apiSecret": "REMOVED",
            "tsig_keyval": "REMOVED",
            "Token": "t",
            "nested": {"key": "kept"},
        },
    }
    assert document == original


# -- preparing --------------------------------------------------------------------------------------------


def test_create_makes_a_private_folder_with_input_and_output(jobs_root: Path):
    job = JobDirectory.create(jobs_root, "AYx_1/../z")

    assert job.path.parent == jobs_root
    assert job.path.name.startswith("cortex-job-AYx_1_.._z-")
    assert stat.S_IMODE(job.path.stat().st_mode) == 0o700
    assert job.input_dir.is_dir() and job.output_dir.is_dir()
    assert job.output_file == job.path / "output" / "output.json"
    assert JobDirectory.create(jobs_root, "AYx_1/../z").path != job.path


def read_input(job: JobDirectory) -> bytes:
    return (job.input_dir / "input.json").read_bytes()


def test_write_input_for_an_analyzer_writes_compact_utf8_json(jobs_root: Path, make_input):
    job = JobDirectory.create(jobs_root, "j")
    config = {"service": "get", "api_key": "s3cret", "check_tlp": True, "max_tlp": 2}

    document = job.write_input(
        make_input(data="évil.example", data_type="domain", parameters={"p": 1}, config=config, tlp=1, pap=3)
    )

    raw = read_input(job)
    assert document == {
        "data": "évil.example",
        "dataType": "domain",
        "tlp": 1,
        "pap": 3,
        "message": "case 42",
        "parameters": {"p": 1},
        "config": config,
    }
    assert json.loads(raw) == document
    assert "évil".encode() in raw
    assert b": " not in raw and b", " not in raw
    assert list(document) == ["data", "dataType", "tlp", "pap", "message", "parameters", "config"]
    assert job.cacerts is None


def test_write_input_for_a_file_job_links_the_attachment(tmp_path: Path, jobs_root: Path, make_input):
    stored = tmp_path / "store" / "abc"
    stored.parent.mkdir()
    stored.write_bytes(b"MZ\x90\x00 sample")
    job = JobDirectory.create(jobs_root, "j")

    document = job.write_input(
        make_input(
            data=None,
            data_type="file",
            attachment_path=stored,
            attachment_name="invoice.pdf",
            attachment_content_type="application/pdf",
        )
    )

    assert "data" not in document
    assert re.fullmatch(r"attachment\d+", document["file"])
    assert document["filename"] == "invoice.pdf"
    assert document["contentType"] == "application/pdf"
    assert list(document)[:4] == ["file", "filename", "contentType", "dataType"]
    attachment = job.input_dir / document["file"]
    assert attachment.read_bytes() == b"MZ\x90\x00 sample"
    assert attachment.stat().st_ino == stored.stat().st_ino  # same filesystem: a hard link, no copy
    assert json.loads(read_input(job)) == document


def test_write_input_copies_the_attachment_across_filesystems(tmp_path: Path, jobs_root: Path, make_input):
    shm = Path("/dev/shm")
    if not shm.is_dir() or shm.stat().st_dev == tmp_path.stat().st_dev:
        pytest.skip("needs /dev/shm on another filesystem")
    stored = Path(shutil.copy(Path(__file__), shm / f"neurocortex-test-{os.getpid()}"))
    try:
        job = JobDirectory.create(jobs_root, "j")
        document = job.write_input(
            make_input(
                data_type="file", attachment_path=stored, attachment_name="t.py", attachment_content_type="x"
            )
        )
        attachment = job.input_dir / document["file"]
        assert attachment.read_bytes() == stored.read_bytes()
        assert attachment.stat().st_dev != stored.stat().st_dev
    finally:
        stored.unlink()


def test_write_input_for_a_responder_writes_the_object(jobs_root: Path, make_input):
    job = JobDirectory.create(jobs_root, "j")
    case = {"_id": "~4104", "_type": "case", "title": "Phishing", "tags": ["mail:soc@x"], "caseId": 42}

    document = job.write_input(make_input(data=case, data_type="thehive:case", parameters={"user": "user"}))

    assert json.loads(read_input(job)) == document
    assert document["data"] == case
    assert document["dataType"] == "thehive:case"


def test_write_input_writes_cacerts_when_set(jobs_root: Path, make_input):
    pem = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"
    job = JobDirectory.create(jobs_root, "j")
    job.write_input(make_input(config={"cacerts": pem}))
    assert job.cacerts == job.input_dir / "cacerts"
    assert job.cacerts.read_text() == pem

    for blank in ("", "  \n", None):
        other = JobDirectory.create(jobs_root, "j")
        other.write_input(make_input(config={"cacerts": blank}))
        assert other.cacerts is None


# -- real analyzers written against cortexutils ------------------------------------------------------------

FULL_ANALYZER = """
    #!/usr/bin/env python3
    import os
    from cortexutils.analyzer import Analyzer


    class Tiny(Analyzer):
        def summary(self, raw):
            return {"taxonomies": [
                self.build_taxonomy("malicious", "Tiny", "Score", 42),
                self.build_taxonomy("bogus-level", "Tiny", "Seen", "yes"),
            ]}

        def operations(self, raw):
            return [self.build_operation("AddTagToArtifact", tag="tiny:seen")]

        def artifacts(self, raw):
            sample = os.path.join(self.job_directory, "dropped.exe")
            with open(sample, "wb") as f:
                f.write(b"MZ dropped")
            return super().artifacts(raw) + [
                self.build_artifact("domain", "evil.example", tlp=3, tags=["c2"], message="seen"),
                self.build_artifact("file", sample, tlp=1),
            ]

        def run(self):
            self.report({
                "observable": self.get_data(),
                "resolved": ["1.2.3.4", "8.8.8.8"],
                "links": {"first": "http://evil.example/payload"},
            })


    if __name__ == "__main__":
        Tiny().run()
"""


async def test_analyzer_report_is_collected_exactly(jobs_root: Path, catalog, make_input, execute):
    command = catalog.add("Tiny/tiny.py", FULL_ANALYZER)
    job = JobDirectory.create(jobs_root, "j")
    job.write_input(make_input(config={"auto_extract_artifacts": True, "api_key": "k"}))

    outcome, output = await execute(job, catalog, command)

    assert outcome.exit_code == 0, outcome.output
    assert output.success is True
    assert output.error_message is None
    assert output.full == {
        "observable": "8.8.8.8",
        "resolved": ["1.2.3.4", "8.8.8.8"],
        "links": {"first": "http://evil.example/payload"},
    }
    assert output.summary == {
        "taxonomies": [
            {"level": "malicious", "namespace": "Tiny", "predicate": "Score", "value": 42},
            {"level": "info", "namespace": "Tiny", "predicate": "Seen", "value": "yes"},
        ]
    }
    assert output.operations == [{"type": "AddTagToArtifact", "tag": "tiny:seen"}]
    *data_artifacts, file_artifact = output.artifacts
    assert data_artifacts == [
        {"dataType": "ip", "data": "1.2.3.4"},  # auto-extracted; the observable itself is not
        {"dataType": "url", "data": "http://evil.example/payload"},
        {"dataType": "domain", "data": "evil.example", "tlp": 3, "tags": ["c2"], "message": "seen"},
    ]
    path = file_artifact.pop("path")
    assert file_artifact == {
        "dataType": "file",
        "filename": "dropped.exe",
        "contentType": "application/octet-stream",
        "tlp": 1,
    }
    assert path.parent == job.output_dir
    assert path.read_bytes() == b"MZ dropped"
    assert stat.S_IMODE(path.stat().st_mode) == 0o444  # cortexutils makes artifacts read-only
    job.remove()
    assert not job.path.exists()


async def test_a_file_job_reaches_the_analyzer(tmp_path: Path, jobs_root: Path, catalog, make_input, execute):
    command = catalog.add(
        "Hash/hash.py",
        """
        import hashlib
        from cortexutils.analyzer import Analyzer

        class Hash(Analyzer):
            def run(self):
                with open(self.get_param("file"), "rb") as f:
                    digest = hashlib.sha256(f.read()).hexdigest()
                self.report({"name": self.get_data(), "sha256": digest})

        Hash().run()
        """,
    )
    sample = tmp_path / "sample.bin"
    sample.write_bytes(b"hello")
    job = JobDirectory.create(jobs_root, "j")
    job.write_input(
        make_input(
            data_type="file", attachment_path=sample, attachment_name="hello.txt", attachment_content_type="t"
        )
    )

    _, output = await execute(job, catalog, command)

    assert output.success, output.error_message
    assert output.full == {
        "name": "hello.txt",
        "sha256": "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824",
    }


async def test_tlp_above_the_maximum_is_refused_by_cortexutils(jobs_root: Path, catalog, make_input, execute):
    command = catalog.add("Tiny/tiny.py", FULL_ANALYZER)
    job = JobDirectory.create(jobs_root, "j")
    job.write_input(
        make_input(
            tlp=3, config={"check_tlp": True, "max_tlp": 2, "api_key": "k", "password": "p", "Token": "t"}
        )
    )

    outcome, output = await execute(job, catalog, command)

    assert outcome.exit_code == 1
    assert output.success is False
    assert output.error_message == "TLP is higher than allowed."
    echoed = json.loads(output.input)
    assert echoed["config"] == {
        "check_tlp": True,
        "max_tlp": 2,
        "api_key": "REMOVED",
        "password": "REMOVED",
        "Token": "t",
    }
    assert echoed["data"] == "8.8.8.8"
    assert (output.full, output.summary, output.operations, output.artifacts) == ({}, {}, [], [])


async def test_responder_report_has_operations(jobs_root: Path, catalog, make_input, execute):
    command = catalog.add(
        "Tagger/tagger.py",
        """
        from cortexutils.responder import Responder

        class Tagger(Responder):
            def run(self):
                case = self.get_data()
                self.report({"message": "tagged " + case["title"]})

            def operations(self, raw):
                return [self.build_operation("AddTagToCase", tag="done"),
                        self.build_operation("AddCustomFields", name="f", tpe="string", value="v")]

        Tagger().run()
        """,
    )
    job = JobDirectory.create(jobs_root, "j")
    job.write_input(make_input(data={"title": "Phishing"}, data_type="thehive:case"))

    _, output = await execute(job, catalog, command)

    assert output == WorkerOutput(
        success=True,
        error_message=None,
        input=None,
        full={"message": "tagged Phishing"},
        summary={},
        operations=[
            {"type": "AddTagToCase", "tag": "done"},
            {"type": "AddCustomFields", "name": "f", "tpe": "string", "value": "v"},
        ],
        artifacts=[],
    )


def tree(top: Path, skip: Path) -> dict[str, int]:
    found = {}
    for dirpath, dirnames, filenames in os.walk(top):
        if Path(dirpath) == skip:
            dirnames.clear()
            continue
        for name in dirnames + filenames:
            path = Path(dirpath, name)
            if path != skip:
                found[str(path)] = path.lstat().st_mtime_ns
    return found


async def test_a_worker_writes_nothing_outside_its_job_directory(
    tmp_path: Path, jobs_root: Path, catalog, make_input, execute
):
    command = catalog.add("Tiny/tiny.py", FULL_ANALYZER)
    job = JobDirectory.create(jobs_root, "j")
    job.write_input(make_input(config={"auto_extract_artifacts": True}))
    before = tree(tmp_path, job.path)

    _, output = await execute(job, catalog, command)

    assert output.success
    assert tree(tmp_path, job.path) == before
    for artifact in output.artifacts:
        if "path" in artifact:
            assert artifact["path"].resolve().is_relative_to(job.path.resolve())


# -- hostile or broken workers: each one a clean Failure -------------------------------------------------


def writes_output(catalog, body: str) -> str:
    """A worker that writes `body` (Python code producing bytes in `out`) as its output.json."""
    source = "import os, sys\njob = sys.argv[1]\n" + textwrap.dedent(body)
    source += "\nopen(os.path.join(job, 'output', 'output.json'), 'wb').write(out)\n"
    return catalog.add("Bad/bad.py", source)


async def test_a_crash_becomes_a_failure_with_the_traceback(jobs_root: Path, catalog, make_input, execute):
    command = catalog.add(
        "Crash/crash.py",
        """
        from cortexutils.analyzer import Analyzer

        class Crash(Analyzer):
            def run(self):
                print("starting")
                1 / 0

        Crash().run()
        """,
    )
    job = JobDirectory.create(jobs_root, "j")
    job.write_input(make_input())

    outcome, output = await execute(job, catalog, command)

    assert outcome.exit_code == 1
    assert output.success is False
    assert output.error_message.startswith("starting\nTraceback (most recent call last):")
    assert "ZeroDivisionError: division by zero" in output.error_message
    assert output.input is None


async def test_a_worker_that_cannot_start_is_a_failure(jobs_root: Path, catalog, make_input, execute):
    command = catalog.add("Gone/run.sh", "#!/nonexistent/interpreter\n", mode=0o755)
    job = JobDirectory.create(jobs_root, "j")
    job.write_input(make_input())

    outcome, output = await execute(job, catalog, command)

    assert outcome.error.startswith("Process execution error: ")
    assert output.success is False and output.error_message == outcome.error


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("out = b'{not json'", "Invalid output: Expecting property name enclosed in double quotes"),
        ("out = b'[1, 2]'", "Invalid output: expected a JSON object, got an array"),
        ("out = b'\"text\"'", "Invalid output: expected a JSON object, got a string"),
        (
            'out = b\'{"success": true, "full": [1]}\'',
            "Invalid output: a successful report needs a JSON object",
        ),
        (
            "out = b'{\"success\": true}'",
            "Invalid output: a successful report needs a JSON object in 'full', got null",
        ),
        ("out = b'\\xff\\xfe{'", "Invalid output: "),
        ("out = b'[' * 100000 + b']' * 100000", "Invalid output: "),
    ],
)
async def test_invalid_output_is_a_failure(
    jobs_root: Path, catalog, body: str, message: str, make_input, execute
):
    command = writes_output(catalog, body)
    job = JobDirectory.create(jobs_root, "j")
    job.write_input(make_input())

    _, output = await execute(job, catalog, command)

    assert output.success is False
    assert output.error_message.startswith(message), output.error_message


async def test_failure_output_is_normalised_and_redacted(jobs_root: Path, catalog, make_input, execute):
    command = writes_output(
        catalog,
        """
        import json
        out = json.dumps({"success": "yes", "errorMessage": 42,
                          "input": {"data": "x", "config": {"apikey": "leak", "url": "u"}}}).encode()
        """,
    )
    job = JobDirectory.create(jobs_root, "j")
    job.write_input(make_input())

    _, output = await execute(job, catalog, command)

    assert output.success is False
    assert output.error_message == "42"
    assert json.loads(output.input) == {"data": "x", "config": {"apikey": "REMOVED", "url": "u"}}


async def test_optional_parts_of_a_success_are_defaulted(jobs_root: Path, catalog, make_input, execute):
    command = writes_output(
        catalog,
        """
        out = (b'{"success": true, "full": {"ratio": NaN, "big": 12345678901234567890}, "summary": [1],'
               b' "operations": [{"type": "A"}, 3, "x"], "artifacts": {"dataType": "ip"}}')
        """,
    )
    job = JobDirectory.create(jobs_root, "j")
    job.write_input(make_input())

    _, output = await execute(job, catalog, command)

    assert output.success is True
    assert output.full == {"ratio": None, "big": 12345678901234567890}
    assert output.summary == {}
    assert output.operations == [{"type": "A"}]
    assert output.artifacts == []


async def test_an_output_larger_than_the_limit_is_refused_without_reading_it(
    jobs_root: Path, catalog, make_input, execute
):
    # A sparse 20 GB file: reading it into memory would take minutes and all the machine's memory.
    command = writes_output(
        catalog,
        """
        out = b'{"success": true, "full": {}}'
        path = os.path.join(job, 'output', 'big.json')
        with open(path, 'wb') as f:
            f.truncate(20 * 1024**3)
        os.rename(path, os.path.join(job, 'output', 'output.json'))
        sys.exit(0)
        """,
    )
    job = JobDirectory.create(jobs_root, "j")
    job.write_input(make_input())

    _, output = await execute(job, catalog, command, max_output=1024 * 1024)

    assert output.success is False
    assert output.error_message == (
        f"Invalid output: output.json is {20 * 1024**3} bytes, more than the limit of 1048576 bytes"
    )


def test_output_exactly_at_the_limit_is_read(jobs_root: Path):
    job = JobDirectory.create(jobs_root, "j")
    body = b'{"success": true, "full": {"x": "' + b"a" * 100 + b'"}}'
    job.output_file.write_bytes(body)
    assert job.read_output(len(body)).success is True
    assert job.read_output(len(body) - 1).success is False


async def test_unsafe_artifacts_are_skipped(
    tmp_path: Path, jobs_root: Path, catalog, caplog, make_input, execute
):
    (tmp_path / "x").write_text("outside")
    command = writes_output(
        catalog,
        """
        import json
        output = os.path.join(job, 'output')
        open(os.path.join(output, 'good.bin'), 'wb').write(b'good')
        os.symlink('/etc/passwd', os.path.join(output, 'passwd'))
        os.mkdir(os.path.join(output, 'adir'))
        os.mkfifo(os.path.join(output, 'fifo'))
        def file(name, **extra):
            return {'dataType': 'file', 'file': name, 'filename': 'f', **extra}
        out = json.dumps({"success": True, "full": {}, "artifacts": [
            file('../../x'), file('/etc/passwd'), file('passwd'), file('adir'), file('fifo'), file('missing'),
            file('..'), file(''), file(None), file('good.bin', filename='../../evil.exe', contentType='text/x',
                                                   tlp=9, tags='notalist', message=7, ioc=True),
            file('good.bin', filename='a/..', tlp=True, tags=['a', 1, None, 'b']),
            {"data": "no type"}, {"type": "ip", "value": "1.2.3.4"}, "notanobject",
            {"dataType": "ip", "data": ["1.2.3.4"]}, {"dataType": "ip"},
            {"dataType": "port", "data": 443, "tlp": 0, "sighted": True},
        ]}).encode()
        """,
    )
    job = JobDirectory.create(jobs_root, "j")
    job.write_input(make_input())

    with caplog.at_level(logging.WARNING, logger="neurocortex.execution.jobdir"):
        _, output = await execute(job, catalog, command)

    assert output.success is True
    good = job.output_dir / "good.bin"
    assert output.artifacts == [
        {"dataType": "file", "path": good, "filename": "evil.exe", "contentType": "text/x"},
        {"dataType": "file", "path": good, "filename": "good.bin", "contentType": "application/octet-stream",
         "tags": ["a", "b"]},
        {"dataType": "port", "data": "443", "tlp": 0},
    ]  # fmt: skip
    reasons = "\n".join(record.getMessage() for record in caplog.records)
    assert "'../../x' skipped: the name is not a plain file name" in reasons
    assert "'/etc/passwd' skipped: the name is not a plain file name" in reasons
    assert "'passwd' skipped: the file is a symbolic link" in reasons
    assert "'adir' skipped: not a regular file" in reasons
    assert "'fifo' skipped: not a regular file" in reasons
    assert "'missing' skipped: the file does not exist" in reasons
    assert "artifact without dataType skipped" in reasons
    assert "ip artifact without string data skipped" in reasons


@pytest.mark.parametrize("kind", ["empty", "directory", "fifo", "symlink", "dir-symlink"])
def test_unusable_output_files_are_replaced_by_the_synthetic_failure(tmp_path: Path, jobs_root: Path, kind):
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "output.json").write_text('{"success": true, "full": {"from": "outside"}}')
    job = JobDirectory.create(jobs_root, "j")
    if kind == "empty":
        job.output_file.touch()
    elif kind == "directory":
        (job.output_file / "sub").mkdir(parents=True)
    elif kind == "fifo":
        os.mkfifo(job.output_file)
    elif kind == "symlink":
        job.output_file.symlink_to(outside / "output.json")
    else:
        job.output_dir.rmdir()
        job.output_dir.symlink_to(outside)

    assert job.has_output() is False
    assert job.read_output(1024).error_message == "no output"
    job.write_failure("worker said: boom")

    assert job.has_output() is True
    assert job.read_output(1024) == WorkerOutput.failure("worker said: boom")
    assert (outside / "output.json").read_text() == '{"success": true, "full": {"from": "outside"}}'


def test_read_output_without_output_directory(jobs_root: Path):
    job = JobDirectory.create(jobs_root, "j")
    shutil.rmtree(job.output_dir)
    assert job.read_output(1024) == WorkerOutput.failure("no output")
    job.write_failure("gone")
    assert job.read_output(1024).error_message == "gone"


# -- cleanup ----------------------------------------------------------------------------------------------

REMOVE_SCENARIO = """
import os, stat, sys
from pathlib import Path
from neurocortex.execution.jobdir import JobDirectory

root = Path(sys.argv[1])
job = JobDirectory.create(root / "jobs", "j")
artifact = job.output_dir / "artifact"
artifact.write_bytes(b"x")
artifact.chmod(0o444)  # as cortexutils' build_artifact
locked = job.path / "locked"
(locked / "deeper").mkdir(parents=True)
(locked / "deeper" / "f").write_text("x")
(locked / "deeper").chmod(0o500)
locked.chmod(0o000)
job.input_dir.chmod(0o500)
outside = root / "outside"
outside.mkdir()
(outside / "keep").write_text("x")
outside.chmod(0o500)
(job.path / "link").symlink_to(outside)
job.output_dir.chmod(0o555)

job.remove()

assert not job.path.exists(), list(job.path.rglob("*"))
assert stat.S_IMODE(outside.stat().st_mode) == 0o500
assert (outside / "keep").exists()
print("removed")
"""


def test_remove_copes_with_read_only_files_and_locked_directories(tmp_path: Path):
    command = [sys.executable, "-c", REMOVE_SCENARIO, str(tmp_path)]
    if os.geteuid() == 0:
        # Root ignores permissions; without these capabilities it is held to them like any user.
        if not shutil.which("setpriv"):
            pytest.skip("needs setpriv to drop root's permission override")
        command = ["setpriv", "--bounding-set", "-dac_override,-dac_read_search,-fowner", *command]

    result = subprocess.run(command, capture_output=True, text=True, timeout=60)

    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "removed"
    (tmp_path / "outside").chmod(0o700)


def test_remove_is_idempotent(jobs_root: Path):
    job = JobDirectory.create(jobs_root, "j")
    job.remove()
    job.remove()
    assert not job.path.exists()
