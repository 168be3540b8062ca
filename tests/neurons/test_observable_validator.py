import pytest

from .conftest import artifact_set, taxonomies

FLAVOR = "ObservableValidator"


@pytest.mark.parametrize(
    ("data_type", "value", "kind", "scope"),
    [
        ("ip", "8.8.8.8", "IPv4 address", "global"),
        ("ip", "192.168.10.4", "IPv4 address", "private"),
        ("ip", "127.0.0.1", "IPv4 address", "loopback"),
        ("ip", "100.64.3.2", "IPv4 address", "shared"),
        ("ip", "224.0.0.251", "IPv4 address", "multicast"),
        ("ip", "2001:db8::1", "IPv6 address", "documentation"),
        ("ip", "fe80::1%eth0", "IPv6 address", "link-local"),
        ("ip", "::ffff:10.1.2.3", "IPv6 address", "private"),
        ("ip", "240.1.2.3", "IPv4 address", "reserved"),
    ],
)
def test_ip_scope(make_job, data_type, value, kind, scope):
    report = make_job(FLAVOR, data_type, value).run()
    assert report["success"] is True
    tax = taxonomies(report)
    assert tax["Format"] == ("info", "valid")
    assert tax["Type"] == ("info", kind)
    assert tax["Scope"] == ("info", scope)
    assert report["full"]["details"]["scope"] == scope
    assert all(t["namespace"] == "Validator" for t in report["summary"]["taxonomies"])


def test_defanged_ip_is_refanged_and_returned_as_artifact(make_job):
    job = make_job(FLAVOR, "ip", "185.220.101[.]4", config={"auto_extract_artifacts": True})
    report = job.run()
    assert report["full"]["normalized"] == "185.220.101.4"
    assert taxonomies(report)["Normalized"] == ("info", "185.220.101.4")
    assert artifact_set(report) == {("ip", "185.220.101.4")}


def test_artifacts_follow_auto_extract_setting(make_job):
    report = make_job(FLAVOR, "ip", "185.220.101[.]4").run()  # Cortex's default: auto_extract_artifacts false
    assert report["artifacts"] == []


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        ("010.1.1.1", "does not appear to be an IPv4 or IPv6 address"),
        ("1.2.3.4:8080", "port"),
        ("evil.com", "does not appear"),
        ("", "does not appear"),
    ],
)
def test_invalid_ip_is_reported_not_failed(make_job, value, problem):
    report = make_job(FLAVOR, "ip", value).run()
    assert report["success"] is True
    assert taxonomies(report)["Format"] == ("suspicious", "invalid")
    assert report["full"]["valid"] is False
    assert any(problem in p for p in report["full"]["problems"])


def test_ip_with_port_suggests_the_address(make_job):
    report = make_job(FLAVOR, "ip", "1.2.3.4:8080", config={"auto_extract_artifacts": True}).run()
    assert report["full"]["normalized"] == "1.2.3.4"
    assert artifact_set(report) == {("ip", "1.2.3.4")}


def test_domain_is_refanged_and_lowercased(make_job):
    report = make_job(FLAVOR, "domain", "Evil-Site(dot)COM").run()
    assert report["full"]["normalized"] == "evil-site.com"
    assert taxonomies(report)["Format"] == ("info", "valid")


def test_homograph_domain_is_suspicious(make_job):
    # "аpple.com" with a Cyrillic "а".
    report = make_job(FLAVOR, "domain", "xn--pple-43d.com").run()
    tax = taxonomies(report)
    assert tax["Format"] == ("info", "valid")
    assert tax["IDN"] == ("info", "\u0430pple.com")
    assert tax["Homograph"][0] == "suspicious"


def test_unicode_domain_is_converted_to_punycode(make_job):
    report = make_job(FLAVOR, "fqdn", "www.münchen.de").run()
    assert report["full"]["normalized"] == "www.xn--mnchen-3ya.de"
    assert report["full"]["kind"] == "fully qualified domain name"


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        ("-bad-.com", "invalid label"),
        ("a..example.com", "empty label"),
        ("http://evil.com/x", "is a URL"),
        ("1.2.3.4", "is an IP address"),
        ("localhost", "no top-level domain"),
        ("x" * 64 + ".com", "invalid label"),
    ],
)
def test_invalid_domains(make_job, value, problem):
    report = make_job(FLAVOR, "domain", value).run()
    assert report["full"]["valid"] is False
    assert any(problem in p for p in report["full"]["problems"]), report["full"]["problems"]


def test_url_normalization_and_host_artifact(make_job):
    job = make_job(
        FLAVOR,
        "url",
        "hxxps[:]//Login.Evil[.]com:443/a?next=http://b.example.org/x",
        config={"auto_extract_artifacts": True},
    )
    report = job.run()
    full = report["full"]
    assert full["valid"] is True
    assert full["normalized"] == "https://login.evil.com/a?next=http://b.example.org/x"
    assert full["details"]["host"] == "login.evil.com"
    assert artifact_set(report) == {
        ("url", "https://login.evil.com/a?next=http://b.example.org/x"),
        ("fqdn", "login.evil.com"),
        ("url", "http://b.example.org/x"),
    }


def test_url_with_userinfo_is_suspicious(make_job):
    report = make_job(FLAVOR, "url", "https://paypal.com@198.51.100.7/login").run()
    tax = taxonomies(report)
    assert tax["UserInfo"] == ("suspicious", "paypal.com")
    assert tax["HostScope"] == ("info", "documentation")


def test_url_without_scheme_is_invalid_with_a_suggestion(make_job):
    report = make_job(FLAVOR, "url", "www.evil.com/payload").run()
    assert report["full"]["valid"] is False
    assert report["full"]["normalized"] == "http://www.evil.com/payload"


def test_mail_address(make_job):
    job = make_job(
        FLAVOR, "mail", "John Doe <John.Doe(at)Mail.Example(dot)org>", config={"auto_extract_artifacts": True}
    )
    report = job.run()
    assert report["full"]["normalized"] == "John.Doe@mail.example.org"
    assert report["full"]["details"]["display_name"] == "John Doe"
    assert ("fqdn", "mail.example.org") in artifact_set(report)


@pytest.mark.parametrize("value", ["no-at-sign", "a@b", "two@@example.com", "bad local@example.com"])
def test_invalid_mail(make_job, value):
    report = make_job(FLAVOR, "mail", value).run()
    assert taxonomies(report)["Format"] == ("suspicious", "invalid")


def test_hash_is_identified_and_lowercased(make_job):
    report = make_job(FLAVOR, "hash", "D41D8CD98F00B204E9800998ECF8427E").run()
    tax = taxonomies(report)
    assert tax["Type"] == ("info", "md5")
    assert tax["KnownHash"] == ("safe", "md5 of empty input")
    assert report["full"]["normalized"] == "d41d8cd98f00b204e9800998ecf8427e"


def test_filename_double_extension(make_job):
    report = make_job(FLAVOR, "filename", "C:\\Users\\bob\\Downloads\\invoice.pdf.exe").run()
    tax = taxonomies(report)
    assert tax["DoubleExtension"] == ("suspicious", ".pdf.exe")
    assert tax["Executable"] == ("info", ".exe")
    assert report["full"]["normalized"] == "invoice.pdf.exe"


def test_filename_with_right_to_left_override(make_job):
    report = make_job(FLAVOR, "filename", "photo\u202egnp.scr").run()
    assert taxonomies(report)["BidiOverride"][0] == "suspicious"


def test_uri_path_traversal(make_job):
    report = make_job(FLAVOR, "uri_path", "/cgi-bin/%2e%2e/%2e%2e/etc/passwd").run()
    assert taxonomies(report)["Traversal"] == ("suspicious", "../")
    assert report["full"]["details"]["decoded_path"] == "/cgi-bin/../../etc/passwd"


@pytest.mark.parametrize(
    ("agent", "level", "client"),
    [
        ("sqlmap/1.7.2#stable (https://sqlmap.org)", "suspicious", "scanner:sqlmap"),
        ("curl/8.4.0", "info", "script:curl"),
        ("Mozilla/5.0 (X11; Linux x86_64; rv:120.0) Gecko/20100101 Firefox/120.0", "info", "browser:firefox"),
    ],
)
def test_user_agent_family(make_job, agent, level, client):
    report = make_job(FLAVOR, "user-agent", agent).run()
    assert taxonomies(report)["Client"] == (level, client)


def test_registry_persistence_key(make_job):
    report = make_job(FLAVOR, "registry", "hklm/Software/Microsoft/Windows/CurrentVersion/RunOnce/").run()
    assert (
        report["full"]["normalized"]
        == "HKEY_LOCAL_MACHINE\\Software\\Microsoft\\Windows\\CurrentVersion\\RunOnce"
    )
    assert taxonomies(report)["Persistence"] == ("suspicious", "Run")


def test_registry_without_hive_is_invalid(make_job):
    report = make_job(FLAVOR, "registry", "Software\\Microsoft").run()
    assert taxonomies(report)["Format"] == ("suspicious", "invalid")


@pytest.mark.parametrize(
    ("value", "detected", "normalized"),
    [
        ("hxxp://evil[.]com/a", "url", "http://evil.com/a"),
        ("Evil.COM", "domain", "evil.com"),
        ("10.0.0.1", "ip", "10.0.0.1"),
        ("cve-2021-44228", "cve", "CVE-2021-44228"),
        ("payload.exe", "filename", "payload.exe"),
    ],
)
def test_other_values_are_typed(make_job, value, detected, normalized):
    report = make_job(FLAVOR, "other", value, config={"auto_extract_artifacts": True}).run()
    assert report["full"]["detectedType"] == detected
    assert (detected, normalized) in artifact_set(report)


def test_unrecognisable_other_value(make_job):
    report = make_job(FLAVOR, "other", "just some words").run()
    assert report["full"]["detectedType"] is None
    assert taxonomies(report)["Type"] == ("info", "unknown")


def test_tlp_above_maximum_fails_the_job(make_job):
    report = make_job(FLAVOR, "ip", "8.8.8.8", tlp=3).run()
    assert report == {
        "success": False,
        "input": report["input"],
        "errorMessage": "TLP is higher than allowed.",
    }


def test_missing_data_fails_with_a_clear_message(make_job):
    report = make_job(FLAVOR, "ip", None).run()
    assert report["success"] is False
    assert report["errorMessage"] == "Missing data field"
