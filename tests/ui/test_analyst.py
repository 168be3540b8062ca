"""The analyst's flows in Chromium: New Analysis (observables pasted and typed, a file, analyzers chosen,
TLP/PAP/message), the jobs history (live statuses, filters, paging), the job page (verdict badges, report
tree, artifacts, "analyze this", file download, a failed job's error and input, re-run, delete)."""

from __future__ import annotations

import re
from collections.abc import Iterator

import httpx
import orjson
import pytest
from playwright.sync_api import Browser, BrowserContext, Page, expect

from tests.conftest import Server, Tenant, enable, new_tenant, run_and_wait
from tests.ui.conftest import LAPTOP, PHONE, set_password, shoot, sign_in

PASSWORD = "analyst pass"
FILE_CONTENT = b"hello from the browser test\n"
MALICIOUS_RED = "rgb(194, 31, 47)"
SAFE_GREEN = "rgb(30, 125, 58)"


@pytest.fixture(scope="module")
def tenant(superadmin: httpx.Client) -> Tenant:
    tenant = new_tenant(superadmin)
    # Echo reports its level from its configuration: "malicious" here, so both colours show
    enable(
        tenant.admin,
        "analyzer",
        "Echo_1_0",
        configuration={"level": "malicious", "auto_extract_artifacts": True},
    )
    # PAP RED observables fail before it runs, with the input it would have had (its secret redacted)
    enable(tenant.admin, "analyzer", "Hostile_Crash_1_0", configuration={"check_pap": True, "max_pap": 2})
    set_password(superadmin, f"{tenant.org}-analyst", PASSWORD)
    return tenant


@pytest.fixture(scope="module")
def context(browser: Browser) -> Iterator[BrowserContext]:
    ctx = browser.new_context(viewport=LAPTOP, accept_downloads=True)
    yield ctx
    ctx.close()


@pytest.fixture(scope="module")
def page(context: BrowserContext, server: Server, tenant: Tenant) -> Page:
    page = context.new_page()
    page.on("dialog", lambda dialog: dialog.accept())  # "Delete this job?" and the like
    sign_in(page, server, f"{tenant.org}-analyst", PASSWORD)
    return page


def _row(page: Page, text: str):
    return page.locator("#jobs tbody tr").filter(has_text=text)


def test_new_analysis_of_many_observables_and_a_file(server: Server, page: Page, tmp_path) -> None:
    page.get_by_role("link", name="New analysis").click()
    expect(page.get_by_role("heading", name="New analysis")).to_be_visible()
    page.get_by_label("Observables, one per line").fill(
        "203.0.113.9\nevil.example\nwww.evil.example\n44d88612fea8a8f36de82e1278abb02f\n"
    )
    # each observable gets a guessed, editable data type
    expect(page.get_by_label("Data type of 203.0.113.9")).to_have_value("ip")
    expect(page.get_by_label("Data type of evil.example")).to_have_value("domain")
    expect(page.get_by_label("Data type of www.evil.example")).to_have_value("fqdn")
    expect(page.get_by_label("Data type of 44d88612fea8a8f36de82e1278abb02f")).to_have_value("hash")
    page.get_by_label("Data type of www.evil.example").select_option("domain")
    expect(page.get_by_label("Data type of www.evil.example")).to_have_value("domain")
    # typing more keeps the type chosen by hand
    page.get_by_label("Observables, one per line").press("End")
    page.get_by_label("Observables, one per line").type("mail@evil.example")
    expect(page.get_by_label("Data type of mail@evil.example")).to_have_value("mail")
    expect(page.get_by_label("Data type of www.evil.example")).to_have_value("domain")

    sample = tmp_path / "sample.txt"
    sample.write_bytes(FILE_CONTENT)
    page.get_by_label("Files").set_input_files(sample)
    expect(page.locator("#draft")).to_contain_text("sample.txt")
    # the analyzers offered are those of the organization accepting these types
    expect(page.get_by_label("Echo_1_0")).to_be_visible()
    expect(page.get_by_label("Hostile_Crash_1_0")).to_be_visible()
    page.get_by_label("Echo_1_0").check()
    page.get_by_label("Hostile_Crash_1_0").check()
    page.get_by_label("TLP").select_option("GREEN")
    page.get_by_label("PAP").select_option("RED")
    page.get_by_label("Message").fill("from the browser")
    shoot(page, "analyst/new-analysis")
    page.get_by_role("button", name="Run the analyzers").click()

    # Echo takes all six (ip, 2 domains, hash, mail, file); Hostile_Crash the ip and the two domains
    expect(page.get_by_role("heading", name="9 jobs submitted")).to_be_visible()
    expect(page.get_by_role("alert")).to_have_count(0)
    shoot(page, "analyst/analysis-submitted")


def test_jobs_history_updates_live_and_filters(server: Server, page: Page) -> None:
    page.get_by_role("link", name="Jobs", exact=True).click()
    expect(page.get_by_role("heading", name="Jobs")).to_be_visible()
    expect(page.locator("#jobs tbody tr")).to_have_count(9)
    # the statuses change on the page without reloading it
    url = page.url
    expect(page.locator("#jobs .status-Success")).to_have_count(6, timeout=60_000)
    expect(page.locator("#jobs .status-Failure")).to_have_count(3, timeout=60_000)
    assert page.url == url
    shoot(page, "analyst/jobs")

    page.get_by_label("Status").select_option("Failure")
    expect(page.locator("#jobs tbody tr")).to_have_count(3)
    expect(page).to_have_url(re.compile(r"status=Failure"))
    page.get_by_label("Analyzer").select_option(label="Echo_1_0")
    expect(page.locator("#jobs")).to_contain_text("No job matches.")
    page.get_by_label("Status").select_option("")
    expect(page.locator("#jobs tbody tr")).to_have_count(6)
    page.get_by_label("Data type").select_option("domain")
    expect(page.locator("#jobs tbody tr")).to_have_count(2)
    page.get_by_label("Data type").select_option("")
    page.get_by_label("Analyzer").select_option("")
    page.get_by_label("Text").fill("sample")
    expect(page.locator("#jobs tbody tr")).to_have_count(1)
    expect(_row(page, "sample.txt")).to_contain_text("file")
    page.get_by_label("Text").fill("")
    expect(page.locator("#jobs tbody tr")).to_have_count(9)


def test_jobs_history_pages(server: Server, page: Page, tenant: Tenant) -> None:
    echo = tenant.analyst.get("/api/analyzer", params={"range": "all"}).json()
    echo_id = next(w["id"] for w in echo if w["name"] == "Echo_1_0")
    for n in range(20):
        answer = tenant.analyst.post(
            f"/api/analyzer/{echo_id}/run", json={"data": f"paged-{n}", "dataType": "other"}
        )
        assert answer.status_code == 200, answer.text
    page.goto(f"{server.url}/ui/jobs")
    expect(page.get_by_role("status").first).to_contain_text("29 jobs, page 1 of 2")
    expect(page.locator("#jobs tbody tr")).to_have_count(25)
    expect(_row(page, "paged-19")).to_have_count(1)  # newest first
    page.get_by_role("link", name="Next page").click()
    expect(page.locator("#jobs tbody tr")).to_have_count(4)
    expect(page.get_by_role("link", name="Previous page")).to_be_visible()
    expect(_row(page, "203.0.113.9").first).to_be_visible()


def _open_job(page: Page, server: Server, text: str, analyzer: str) -> None:
    page.goto(f"{server.url}/ui/jobs?q={text}")
    _row(page, analyzer).get_by_role("link").first.click()
    expect(page.get_by_role("heading", name=re.compile(analyzer))).to_be_visible()


def test_job_page_shows_verdict_report_and_artifacts(server: Server, page: Page) -> None:
    _open_job(page, server, "203.0.113.9", "Echo_1_0")
    malicious = page.locator(".badge", has_text='Echo:Type="ip"')
    safe = page.locator(".badge", has_text='Echo:Length="11"')
    expect(malicious).to_have_css("background-color", MALICIOUS_RED)
    expect(safe).to_have_css("background-color", SAFE_GREEN)
    facts = page.locator("dl.facts")
    expect(facts).to_contain_text("GREEN")  # TLP
    expect(facts).to_contain_text("RED")  # PAP
    expect(facts).to_contain_text("from the browser")

    # the full report as a tree whose branches fold
    tree = page.locator(".tree")
    expect(tree).to_contain_text("has_api_key")
    config = tree.locator("details", has=page.locator("summary", has_text="config")).first
    service = config.locator("li", has_text="service").first
    expect(service).to_be_visible()  # the first level is open
    config.locator("summary").first.click()
    expect(service).to_be_hidden()
    config.locator("summary").first.press("Enter")  # and by keyboard
    expect(service).to_be_visible()
    shoot(page, "analyst/job-success")

    # an artifact, analyzed in one click
    artifacts = page.get_by_role("region", name=re.compile("Artifacts"))
    expect(artifacts).to_contain_text("evil@bad.example")
    page.get_by_role("link", name="Analyze 203.0.113.7").click()
    expect(page.get_by_label("Observables, one per line")).to_have_value("203.0.113.7")
    expect(page.get_by_label("Data type of 203.0.113.7")).to_have_value("ip")
    expect(page.get_by_label("Echo_1_0")).to_be_visible()


def test_file_job_and_artifact_download(server: Server, page: Page) -> None:
    _open_job(page, server, "sample", "Echo_1_0")
    # the analyzed file itself
    with page.expect_download() as download:
        page.locator("dl.facts").get_by_role("link", name="sample.txt").click()
    assert download.value.suggested_filename == "sample.txt"
    assert download.value.path().read_bytes() == FILE_CONTENT
    # Echo gives the file back as an artifact (tagged "copy")
    artifact = page.get_by_role("region", name=re.compile("Artifacts")).locator("tr", has_text="copy")
    with page.expect_download() as download:
        artifact.get_by_role("link", name=re.compile("^Download")).click()
    assert download.value.path().read_bytes() == FILE_CONTENT
    shoot(page, "analyst/job-file")


def test_forms_need_the_csrf_token(server: Server, page: Page, context: BrowserContext) -> None:
    """The session cookie alone (what another site's form would send) changes nothing."""
    _open_job(page, server, "203.0.113.9", "Echo_1_0")
    cookies = {c["name"]: c["value"] for c in context.cookies()}
    forged = httpx.post(f"{page.url}/delete", cookies={"CORTEX_SESSION": cookies["CORTEX_SESSION"]})
    assert forged.status_code == 403 and "CSRF" in forged.text
    wrong = httpx.post(f"{page.url}/delete", cookies=cookies, data={"_xsrf": "guess"})
    assert wrong.status_code == 403
    page.reload()
    expect(page.get_by_role("status").first).to_have_text("Success")


def test_failed_job_rerun_and_delete(server: Server, page: Page) -> None:
    _open_job(page, server, "evil.example", "Hostile_Crash_1_0")
    expect(page.get_by_role("status").first).to_have_text("Failure")
    error = page.get_by_role("region", name="Error")
    expect(error.locator("pre.error")).not_to_be_empty()
    error.get_by_text("Input given to the analyzer").click()
    expect(error.locator("pre.error")).to_contain_text("PAP")
    expect(error).to_contain_text('"dataType": "domain"')
    shoot(page, "analyst/job-failure")

    first = page.url
    page.get_by_role("button", name="Run again (skip the cache)").click()
    expect(page).not_to_have_url(first)
    expect(page.get_by_role("status").first).to_have_text("Failure", timeout=60_000)  # live, no reload
    rerun = page.url

    page.get_by_role("button", name="Delete").click()
    expect(page.get_by_role("status").first).to_have_text("The job was deleted.")
    page.goto(rerun)
    expect(page.get_by_role("alert")).to_contain_text("deleted")


def test_dashboard_charts(server: Server, page: Page, tenant: Tenant) -> None:
    # an analysis, then the same one twice more: both answered from the cache, without a job
    echo = next(w for w in tenant.analyst.get("/api/analyzer").json() if w["name"] == "Echo_1_0")
    body = {"data": "cached.example", "dataType": "domain", "tlp": 2}
    first = run_and_wait(tenant.analyst, echo["id"], body)
    for _ in range(2):
        again = tenant.analyst.post(f"/api/analyzer/{echo['id']}/run", json=body)
        assert again.status_code == 200 and again.json()["id"] == first["id"], again.text
    page.get_by_role("link", name="Dashboard").click()
    expect(page.get_by_role("heading", name=f"Dashboard of {tenant.org}")).to_be_visible()
    # the figures behind the charts, as the API counts them
    jobs = tenant.analyst.post("/api/job/_search", json={"query": {}, "range": "all"}).json()
    by_status = {s: sum(1 for j in jobs if j["status"] == s) for s in ("Success", "Failure")}
    for status, count in by_status.items():
        expect(page.locator(f"#total-{status}")).to_have_text(str(count))
    analyzers = page.locator("#analyzers-table")
    expect(analyzers.locator("tr", has_text="Echo_1_0")).to_contain_text(
        str(sum(j["analyzerName"] == "Echo_1_0" for j in jobs))
    )
    domains = sum(j["dataType"] == "domain" for j in jobs)
    expect(page.locator("#datatypes-table tr", has_text="domain")).to_have_text(f"domain{domains}")
    # Echo is configured to say "malicious": every Echo report counts there
    expect(page.locator("#verdicts-table tr", has_text="malicious")).to_contain_text(
        str(by_status["Success"])
    )
    expect(page.locator("#cache-hits")).to_have_text("2")
    created = sum(j["status"] != "Deleted" for j in jobs)
    expect(page.locator("#cache-jobs")).to_have_text(str(created))
    expect(page.locator("#cache-ratio")).to_have_text(f"{200 / (2 + created):.0f} %")
    # every chart was drawn by Chart.js
    for chart in ("timeline", "verdicts", "cache", "analyzers", "datatypes"):
        assert page.evaluate(f"!!Chart.getChart(document.getElementById('chart-{chart}'))"), chart
    expect(page.locator("#queue-empty")).to_be_visible()
    shoot(page, "analyst/dashboard")


def test_pages_fit_a_phone(server: Server, page: Page) -> None:
    page.set_viewport_size(PHONE)
    try:
        page.goto(f"{server.url}/ui/jobs?q=203.0.113.9")
        job = page.locator("#jobs tbody a").first.get_attribute("href")
        for name, path in (("jobs", "/ui/jobs"), ("job", job), ("new-analysis", "/ui/analyze?data=evil.example"),
                           ("dashboard", "/ui/dashboard")):  # fmt: skip
            page.goto(f"{server.url}{path}")
            expect(page.get_by_role("heading", level=1)).to_be_visible()
            width = page.evaluate("document.documentElement.scrollWidth")
            assert width <= PHONE["width"], f"{path} is {width} px wide on a {PHONE['width']} px phone"
            shoot(page, f"analyst/{name}-phone")
    finally:
        page.set_viewport_size(LAPTOP)


def test_run_a_responder_on_the_observable_of_a_job(
    server: Server, page: Page, tenant: Tenant, tmp_path
) -> None:
    log = tmp_path / "responses.jsonl"
    enable(tenant.admin, "responder", "LocalLog_1_0", configuration={"path": str(log), "tag": "seen"})
    echo = next(w for w in tenant.analyst.get("/api/analyzer").json() if w["name"] == "Echo_1_0")
    job = run_and_wait(
        tenant.analyst, echo["id"], {"data": "respond.example", "dataType": "domain", "tlp": 1}
    )
    page.goto(f"{server.url}/ui/jobs/{job['id']}")
    respond = page.get_by_role("form", name="Respond")
    respond.get_by_label("Responder").select_option(label="LocalLog_1_0")
    expect(respond.get_by_label("Observable")).to_have_value("job")
    respond.get_by_label("Message").fill("blocked at the proxy")
    shoot(page, "analyst/respond")
    respond.get_by_role("button", name="Run the responder").click()
    expect(page.get_by_role("heading", name=re.compile(r"^LocalLog_1_0 on "))).to_be_visible()
    expect(page.locator(".status").first).to_have_text("Success", timeout=30_000)

    # the responder was given the observable as TheHive gives one, and said to tag it
    line = orjson.loads(log.read_text().splitlines()[-1])
    assert line["dataType"] == "thehive:case_artifact" and line["message"] == "blocked at the proxy"
    assert line["data"]["_type"] == "case_artifact" and line["data"]["id"] == job["id"]
    assert (line["data"]["dataType"], line["data"]["data"], line["tlp"]) == ("domain", "respond.example", 1)
    responder_job = tenant.analyst.get(f"/api/job/{page.url.rsplit('/', 1)[1]}/report").json()
    assert responder_job["report"]["operations"] == [{"type": "AddTagToArtifact", "tag": "seen"}]
    shoot(page, "analyst/responder-job")

    # or on one of the job's artifacts
    artifact = tenant.analyst.get(f"/api/job/{job['id']}/artifacts").json()[0]
    page.goto(f"{server.url}/ui/jobs/{job['id']}")
    respond.get_by_label("Observable").select_option(artifact["id"])
    respond.get_by_role("button", name="Run the responder").click()
    expect(page.locator(".status").first).to_have_text("Success", timeout=30_000)
    line = orjson.loads(log.read_text().splitlines()[-1])
    assert line["data"]["id"] == artifact["id"]
    assert (line["data"]["dataType"], line["data"]["data"]) == (artifact["dataType"], artifact["data"])
