"""TheHive 3's and TheHive 4's parse rules for what Cortex answers (spec/clients.md §2.1–§2.2).

Each validator raises `ContractError` naming the first rule a JSON value breaks, so a test can run every
worker, job and report the server emits through both clients' readers. Only what the clients *require*
is checked: extra keys are always fine.
"""

from __future__ import annotations

from typing import Any


class ContractError(AssertionError):
    pass


JOB_STATUSES_TH4 = ("InProgress", "Success", "Failure", "Waiting", "Deleted")
JOB_STATUSES_TH3 = ("InProgress", "Success", "Failure", "Waiting")
WORKER_TYPES = ("analyzer", "responder")
TAXONOMY_LEVELS = ("info", "safe", "suspicious", "malicious")

# TheHive 4's ActionOperation (models/ActionOperation.scala): type → (required fields, optional fields)
OPERATIONS: dict[str, tuple[dict[str, type | tuple[type, ...]], dict[str, type | tuple[type, ...]]]] = {
    "AddTagToCase": ({"tag": str}, {}),
    "AddTagToArtifact": ({"tag": str}, {}),
    "AddTagToAlert": ({"tag": str}, {}),
    "CreateTask": ({"title": str, "description": str}, {}),
    "AddCustomFields": ({"name": str, "tpe": str, "value": object}, {}),
    "CloseTask": ({}, {}),
    "MarkAlertAsRead": ({}, {}),
    "AddLogToTask": ({"content": str}, {"owner": str}),
    "AddArtifactToCase": (
        {"data": str, "dataType": str, "message": str},
        {"tlp": int, "ioc": bool, "sighted": bool, "ignoreSimilarity": bool, "tags": list},
    ),
    "AssignCase": ({"owner": str}, {}),
}


def _fail(client: str, what: str, rule: str, value: Any) -> None:
    raise ContractError(f"{client} cannot parse this {what}: {rule}\n{value!r}")


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_epoch_ms(value: Any) -> bool:
    # Play's Date reads take a JSON number of milliseconds; anything before 2001 is certainly seconds
    return _is_int(value) and value > 1_000_000_000_000


def _is_strings(value: Any) -> bool:
    return isinstance(value, list) and all(isinstance(v, str) for v in value)


def _require_strings(client: str, what: str, obj: dict, keys: tuple[str, ...]) -> None:
    for key in keys:
        if not isinstance(obj.get(key), str):
            _fail(client, what, f"`{key}` must be a string", obj)


# -- workers (OutputWorker) --


def thehive4_worker(worker: Any) -> None:
    """TheHive 4 `OutputWorker`: id, name, version, description strings; dataTypeList, maxTlp, maxPap optional."""
    client, what = "TheHive 4", "worker"
    if not isinstance(worker, dict):
        _fail(client, what, "a worker is a JSON object", worker)
    _require_strings(client, what, worker, ("id", "name", "version", "description"))
    if "dataTypeList" in worker and not _is_strings(worker["dataTypeList"]):
        _fail(client, what, "`dataTypeList` must be an array of strings", worker)
    for key in ("maxTlp", "maxPap"):
        if key in worker and worker[key] is not None and not _is_int(worker[key]):
            _fail(client, what, f"`{key}` must be an integer when present", worker)


def thehive3_worker(worker: Any) -> None:
    """TheHive 3: name, version, description and dataTypeList (array) required; id optional (string)."""
    client, what = "TheHive 3", "worker"
    if not isinstance(worker, dict):
        _fail(client, what, "a worker is a JSON object", worker)
    _require_strings(client, what, worker, ("name", "version", "description"))
    if not _is_strings(worker.get("dataTypeList")):
        _fail(client, what, "`dataTypeList` must be an array of strings", worker)
    if "id" in worker and not isinstance(worker["id"], str):
        _fail(client, what, "`id` must be a string", worker)
    for key in ("maxTlp", "maxPap"):
        if key in worker and worker[key] is not None and not _is_int(worker[key]):
            _fail(client, what, f"`{key}` must be an integer when present", worker)


def check_worker(worker: Any) -> None:
    thehive4_worker(worker)
    thehive3_worker(worker)


def check_workers(workers: Any) -> None:
    """One malformed worker makes TheHive drop the whole list, so every element must pass."""
    if not isinstance(workers, list):
        raise ContractError(f"a worker list must be a JSON array: {workers!r}")
    for worker in workers:
        check_worker(worker)


# -- jobs (OutputJob) --


def _job_common(client: str, job: Any, statuses: tuple[str, ...]) -> None:
    what = "job"
    if not isinstance(job, dict):
        _fail(client, what, "a job is a JSON object", job)
    if not isinstance(job.get("id"), str):
        _fail(client, what, "`id` must be a string", job)
    worker_id = job.get("workerId", job.get("analyzerId"))
    if not isinstance(worker_id, str):
        _fail(client, what, "`workerId` (or `analyzerId`) must be a string", job)
    if not _is_epoch_ms(job.get("date")):
        _fail(client, what, "`date` must be an epoch-millisecond number", job)
    if job.get("status") not in statuses:
        _fail(client, what, f"`status` must be one of {statuses}", job)
    for key in ("startDate", "endDate", "createdAt", "updatedAt"):
        if key in job and not _is_epoch_ms(job[key]):
            _fail(client, what, f"`{key}` must be an epoch-millisecond number when present", job)
    for key in ("workerName", "analyzerName", "workerDefinitionId", "analyzerDefinitionId"):
        if key in job and not isinstance(job[key], str):
            _fail(client, what, f"`{key}` must be a string when present", job)
    if "attachment" in job and not isinstance(job["attachment"], dict):
        _fail(client, what, "`attachment` must be an object when present", job)


def thehive4_job(job: Any) -> None:
    """TheHive 4 `OutputJob.reads`: id, workerId|analyzerId, date, status, organization, dataType, type."""
    client, what = "TheHive 4", "job"
    _job_common(client, job, JOB_STATUSES_TH4)
    _require_strings(client, what, job, ("organization", "dataType"))
    if job.get("type") not in WORKER_TYPES:
        _fail(client, what, "`type` must be analyzer or responder", job)
    if job["type"] == "analyzer" and "data" in job and not isinstance(job["data"], str):
        # responders' data is the TheHive object; TheHive reads `data` as an optional string and ignores others
        _fail(client, what, "an analyzer job's `data` must be a string when present", job)
    if "report" in job:
        thehive4_report(job["report"], job["status"])


def thehive3_job(job: Any) -> None:
    """TheHive 3: id, workerId|analyzerId, date, status (no Deleted); on waitreport a report object."""
    client = "TheHive 3"
    _job_common(client, job, JOB_STATUSES_TH3)
    if "report" in job:
        thehive3_report(job["report"], job["status"])


def check_job(job: Any, deleted_ok: bool = False) -> None:
    """Both clients. A Deleted job is valid for TheHive 4 only (TheHive 3 never sees one: it polls its own)."""
    thehive4_job(job)
    if not (deleted_ok and job.get("status") == "Deleted"):
        thehive3_job(job)


def check_jobs(jobs: Any, deleted_ok: bool = False) -> None:
    if not isinstance(jobs, list):
        raise ContractError(f"a job list must be a JSON array: {jobs!r}")
    for job in jobs:
        check_job(job, deleted_ok)


# -- reports --


def _taxonomies(client: str, summary: Any) -> None:
    what = "report summary"
    if not isinstance(summary, dict):
        _fail(client, what, "`summary` must be an object", summary)
    taxonomies = summary.get("taxonomies", [])
    if not isinstance(taxonomies, list):
        _fail(client, what, "`taxonomies` must be an array", summary)
    for taxonomy in taxonomies:
        if not isinstance(taxonomy, dict):
            _fail(client, what, "a taxonomy is an object", taxonomy)
        for key in ("level", "namespace", "predicate", "value"):
            if key not in taxonomy:
                _fail(client, what, f"a taxonomy needs `{key}` (else the whole array is dropped)", taxonomy)
        if taxonomy["level"] not in TAXONOMY_LEVELS:
            _fail(client, what, f"taxonomy level must be one of {TAXONOMY_LEVELS}", taxonomy)
        if not isinstance(taxonomy["namespace"], str) or not isinstance(taxonomy["predicate"], str):
            _fail(client, what, "taxonomy namespace and predicate are strings", taxonomy)


def _artifacts(client: str, artifacts: Any) -> None:
    what = "report artifact"
    if not isinstance(artifacts, list):
        _fail(client, what, "`artifacts` must be an array", artifacts)
    for artifact in artifacts:
        if not isinstance(artifact, dict):
            _fail(client, what, "an artifact is an object", artifact)
        if not isinstance(artifact.get("dataType"), str):
            _fail(client, what, "`dataType` must be a string", artifact)
        if not _is_int(artifact.get("tlp")):
            _fail(client, what, "`tlp` must be an integer (else all artifacts are dropped)", artifact)
        if not _is_strings(artifact.get("tags")):
            _fail(
                client, what, "`tags` must be an array of strings (else all artifacts are dropped)", artifact
            )
        if "data" in artifact and artifact["data"] is not None and not isinstance(artifact["data"], str):
            _fail(client, what, "`data` must be a string when present", artifact)
        if (
            "message" in artifact
            and artifact["message"] is not None
            and not isinstance(artifact["message"], str)
        ):
            _fail(client, what, "`message` must be a string when present", artifact)
        attachment = artifact.get("attachment")
        if attachment is not None:
            if not isinstance(attachment, dict) or not isinstance(attachment.get("id"), str):
                _fail(client, what, "`attachment` must be an object with a string `id`", artifact)
            for key in ("name", "contentType"):
                if key in attachment and not isinstance(attachment[key], str):
                    _fail(client, what, f"`attachment.{key}` must be a string when present", artifact)
        elif artifact["dataType"] == "file":
            _fail(client, what, "a file artifact needs an `attachment` to download", artifact)
        elif not isinstance(artifact.get("data"), str):
            _fail(client, what, "an artifact needs `data` or an `attachment`", artifact)


def _operations(client: str, operations: Any) -> None:
    what = "operation"
    if not isinstance(operations, list):
        _fail(client, what, "`operations` must be an array", operations)
    for operation in operations:
        if not isinstance(operation, dict):
            _fail(client, what, "an operation is an object", operation)
        kind = operation.get("type")
        if kind not in OPERATIONS:
            _fail(client, what, f"unknown operation type {kind!r} (ActionOperation throws)", operation)
        required, optional = OPERATIONS[kind]
        for key, expected in required.items():
            if key not in operation or not isinstance(operation[key], expected):
                _fail(client, what, f"{kind} needs `{key}`", operation)
        for key, expected in optional.items():
            if key in operation and operation[key] is not None and not isinstance(operation[key], expected):
                _fail(client, what, f"{kind}'s `{key}` has the wrong type", operation)


def _failure(client: str, report: dict) -> None:
    if report.get("success") is not False:
        _fail(client, "report", "a failure report has `success: false`", report)
    if "errorMessage" in report and not isinstance(report["errorMessage"], str):
        _fail(client, "report", "`errorMessage` must be a string", report)
    if "input" in report and report["input"] is not None and not isinstance(report["input"], str):
        _fail(client, "report", "`input` must be a string (raw text) or null", report)


def thehive4_report(report: Any, status: str) -> None:
    """Lenient reader, but what it keeps must parse: taxonomies, full object, artifacts, operations."""
    client = "TheHive 4"
    if status in ("Waiting", "InProgress", "Deleted"):
        if not isinstance(report, str | dict):
            _fail(client, "report", "an unfinished job's report is a string", report)
        return
    if not isinstance(report, dict):
        _fail(client, "report", "a finished job's report is an object", report)
    if status == "Failure":
        _failure(client, report)
        return
    if report.get("success") is not True:
        _fail(client, "report", "a Success report has `success: true`", report)
    _taxonomies(client, report.get("summary"))
    if not isinstance(report.get("full"), dict):
        _fail(client, "report", "`full` must be an object", report)
    _artifacts(client, report.get("artifacts"))
    _operations(client, report.get("operations"))


def thehive3_report(report: Any, status: str) -> None:
    """TheHive 3 needs `report` to be an object once the job is finished; Success needs a summary object."""
    client = "TheHive 3"
    if status in ("Waiting", "InProgress"):
        return  # it polls again
    if not isinstance(report, dict):
        _fail(client, "report", "a finished job's report must be an object", report)
    if status == "Failure":
        _failure(client, report)
        return
    if not isinstance(report.get("summary"), dict):
        _fail(client, "report", "`summary` must be an object", report)
    _taxonomies(client, report["summary"])
    if not isinstance(report.get("full"), dict):
        _fail(client, "report", "`full` must be an object", report)
    _artifacts(client, report.get("artifacts"))
    _operations(client, report.get("operations"))


# -- health checks --


def version_tuple(version: str) -> tuple[int, ...]:
    numbers = []
    for part in version.replace("-", ".").split("."):
        if not part.isdigit():
            break
        numbers.append(int(part))
    return tuple(numbers)


def check_status(status: Any) -> None:
    """`GET /api/status`: `versions.Cortex` is a string; TheHive 5.5+ wants Cortex ≥ 3.1.6."""
    if not isinstance(status, dict) or not isinstance(status.get("versions"), dict):
        raise ContractError(f"/api/status must carry `versions`: {status!r}")
    version = status["versions"].get("Cortex")
    if not isinstance(version, str):
        raise ContractError(f"`versions.Cortex` must be a string: {status!r}")
    if version_tuple(version) < (3, 1, 6):
        raise ContractError(f"`versions.Cortex` {version} is below 3.1.6, which TheHive 5.5+ refuses")


def check_current_user(user: Any) -> None:
    if not isinstance(user, dict) or not isinstance(user.get("id"), str):
        raise ContractError(f"/api/user/current must carry a string `id`: {user!r}")
