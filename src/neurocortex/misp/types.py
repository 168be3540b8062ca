"""MISP attribute types and how they map to Cortex data types, both ways (spec/cortex-api.md §3.8).

The type names are MISP's (its describeTypes list, MISP 2.5); a type missing from `TO_DATA_TYPE` is `other`.
The mapping is Cortex's `typeLookup`, widened where Cortex sent a value to `other` although a data type
fits it (more hash kinds, `email`, `AS` → `autonomous-system`).
"""

from __future__ import annotations

_TYPE_NAMES = """
    md5 sha1 sha256 filename pdb filename|md5 filename|sha1 filename|sha256 ip-src ip-dst hostname domain
    domain|ip email email-src eppn email-dst email-subject email-attachment email-body float git-commit-id
    url http-method user-agent ja3-fingerprint-md5 jarm-fingerprint favicon-mmh3 hassh-md5 hasshserver-md5
    regkey regkey|value AS snort suricata bro zeek community-id dom-hash pattern-in-file pattern-in-traffic
    pattern-in-memory filename-pattern pgp-public-key pgp-private-key ssh-fingerprint yara stix2-pattern
    sigma gene kusto-query mime-type identity-card-number cookie vulnerability cpe weakness attachment
    malware-sample link comment text hex other mutex process-state target-user target-email
    target-machine target-org target-location target-external btc dash xmr iban bic bank-account-nr aba-rtn
    bin cc-number prtn phone-number threat-actor campaign-name campaign-id malware-type uri authentihash
    vhash ssdeep imphash telfhash pehash impfuzzy sha224 sha384 sha512 sha512/224 sha512/256 sha3-224
    sha3-256 sha3-384 sha3-512 tlsh cdhash filename|authentihash filename|vhash filename|ssdeep
    filename|imphash filename|impfuzzy filename|pehash filename|sha224 filename|sha384 filename|sha512
    filename|sha512/224 filename|sha512/256 filename|sha3-224 filename|sha3-256 filename|sha3-384
    filename|sha3-512 filename|tlsh windows-scheduled-task windows-service-name windows-service-displayname
    whois-registrant-email whois-registrant-phone whois-registrant-name whois-registrant-org whois-registrar
    whois-creation-date x509-fingerprint-sha1 x509-fingerprint-md5 x509-fingerprint-sha256 dns-soa-email
    size-in-bytes counter integer datetime port ip-dst|port ip-src|port hostname|port mac-address mac-eui-64
    email-dst-display-name email-src-display-name email-header email-reply-to email-x-mailer
    email-mime-boundary email-thread-index email-message-id github-username github-repository
    github-organisation jabber-id twitter-id dkim dkim-signature first-name middle-name last-name full-name
    date-of-birth place-of-birth gender passport-number passport-country passport-expiration redress-number
    nationality visa-number issue-date-of-the-visa primary-residence country-of-residence
    special-service-request frequent-flyer-number travel-details payment-details
    place-port-of-original-embarkation place-port-of-clearance place-port-of-onward-foreign-destination
    passenger-name-record-locator-number mobile-application-id azure-application-id chrome-extension-id
    edge-extension-id cortex boolean uuid anonymised onion-address
"""
ATTRIBUTE_TYPES: frozenset[str] = frozenset(_TYPE_NAMES.split()) | {"named pipe"}  # the one with a space

_MAPPED = {
    "hash": (
        "md5 sha1 sha256 sha224 sha384 sha512 sha512/224 sha512/256 sha3-224 sha3-256 sha3-384 sha3-512 "
        "ssdeep imphash pehash impfuzzy authentihash vhash telfhash tlsh cdhash"
    ),
    "filename": "filename",
    "ip": "ip-src ip-dst",
    "fqdn": "hostname target-machine",
    "domain": "domain",
    "mail": "email email-src email-dst target-email whois-registrant-email",
    "mail_subject": "email-subject",
    "url": "url",
    "uri_path": "uri",
    "user-agent": "user-agent",
    "registry": "regkey regkey|value",
    "file": "attachment malware-sample",
    "autonomous-system": "AS",
}
TO_DATA_TYPE: dict[str, str] = {misp: data for data, names in _MAPPED.items() for misp in names.split()}
assert set(TO_DATA_TYPE) <= ATTRIBUTE_TYPES

# the reverse table, computed once: /modules renders it for every analyzer of every call
_FROM_DATA_TYPE: dict[str, tuple[str, ...]] = {}
for _misp in sorted(ATTRIBUTE_TYPES):
    _FROM_DATA_TYPE.setdefault(TO_DATA_TYPE.get(_misp, "other"), ())
    _FROM_DATA_TYPE[TO_DATA_TYPE.get(_misp, "other")] += (_misp,)
# the natural order (ip-src before ip-dst, md5 before sha1...): MISP offers the first one by default
for _data, _names in _MAPPED.items():
    _FROM_DATA_TYPE[_data] = tuple(_names.split())
_FROM_DATA_TYPE["other"] = ("text", "other", "comment") + tuple(
    name for name in _FROM_DATA_TYPE["other"] if name not in ("text", "other", "comment")
)

# hex digest length → the hash type it is, to send a hash observable as the type a module expects
HASH_LENGTHS = {32: "md5", 40: "sha1", 56: "sha224", 64: "sha256", 96: "sha384", 128: "sha512"}


def data_type(misp_type: str) -> str:
    return TO_DATA_TYPE.get(misp_type, "other")


def misp_types(data_type_: str) -> tuple[str, ...]:
    """Every MISP type of a data type; `("other",)` for a data type MISP has no type for."""
    return _FROM_DATA_TYPE.get(data_type_) or ("other",)


def pick_misp_type(data_type_: str, data: str | None, accepted: list[str]) -> str | None:
    """The type, among those a module accepts, to send an observable of this data type as: for a hash the
    type of its length when the module takes it, else the first accepted type of the data type."""
    candidates = [name for name in accepted if data_type(name) == data_type_]
    if data_type_ == "hash" and data:
        by_length = HASH_LENGTHS.get(len(data.strip()))
        if by_length in candidates:
            return by_length
    return candidates[0] if candidates else None
