"""Guess which algorithm produced a hash from its shape alone (length, alphabet, prefixes).

A 32-hex-digit string may be MD5, NTLM or an imphash: shape cannot tell them apart, so every
candidate is returned, most common first, and the caller picks the first as "most likely".
"""

import base64
import binascii
import hashlib
import re

# (id, label) per hex length, most frequently seen in incident data first.
_HEX_CANDIDATES = {
    8: [("crc32", "CRC-32"), ("adler32", "Adler-32"), ("fnv1a32", "FNV-1a 32-bit")],
    16: [
        ("xxhash64", "xxHash64"),
        ("crc64", "CRC-64"),
        ("mysql323", "MySQL 3.x password"),
        ("halfmd5", "half MD5"),
    ],
    32: [
        ("md5", "MD5"),
        ("ntlm", "NTLM (NT password hash)"),
        ("imphash", "imphash (MD5 of a PE import table)"),
        ("ja3", "JA3/JA3S TLS fingerprint (MD5)"),
        ("md4", "MD4"),
        ("lm", "LM password hash"),
        ("ripemd128", "RIPEMD-128"),
    ],
    40: [("sha1", "SHA-1"), ("ripemd160", "RIPEMD-160"), ("mysql5", "MySQL 4.1+ password (without '*')")],
    56: [("sha224", "SHA-224"), ("sha3_224", "SHA3-224"), ("sha512_224", "SHA-512/224")],
    64: [
        ("sha256", "SHA-256"),
        ("authentihash", "Authenticode hash (SHA-256)"),
        ("sha3_256", "SHA3-256"),
        ("blake2s", "BLAKE2s-256"),
        ("blake3", "BLAKE3"),
        ("sha512_256", "SHA-512/256"),
    ],
    70: [("tlsh", "TLSH (without the T1 version prefix)")],
    96: [("sha384", "SHA-384"), ("sha3_384", "SHA3-384")],
    128: [
        ("sha512", "SHA-512"),
        ("sha3_512", "SHA3-512"),
        ("blake2b", "BLAKE2b-512"),
        ("whirlpool", "Whirlpool"),
    ],
}

# Digest sizes (bytes) of the algorithms whose base64 form shows up in SRI attributes and LDAP.
_DIGEST_BY_SIZE = {16: "md5", 20: "sha1", 32: "sha256", 48: "sha384", 64: "sha512"}

_CRYPT_PREFIXES = {
    "1": ("md5crypt", "MD5-crypt (Unix)"),
    "apr1": ("apr1", "Apache MD5-crypt"),
    "2a": ("bcrypt", "bcrypt"),
    "2b": ("bcrypt", "bcrypt"),
    "2y": ("bcrypt", "bcrypt"),
    "5": ("sha256crypt", "SHA-256-crypt (Unix)"),
    "6": ("sha512crypt", "SHA-512-crypt (Unix)"),
    "y": ("yescrypt", "yescrypt (Unix)"),
    "gy": ("gost-yescrypt", "gost-yescrypt (Unix)"),
    "7": ("scrypt", "scrypt (Unix)"),
    "argon2i": ("argon2", "Argon2i"),
    "argon2d": ("argon2", "Argon2d"),
    "argon2id": ("argon2", "Argon2id"),
    "pbkdf2-sha256": ("pbkdf2", "PBKDF2-SHA256 (passlib)"),
    "pbkdf2-sha512": ("pbkdf2", "PBKDF2-SHA512 (passlib)"),
}

_LDAP_SCHEMES = {
    "SHA": ("ldap_sha", "LDAP {SHA} (base64 SHA-1)"),
    "SSHA": ("ldap_ssha", "LDAP {SSHA} (salted SHA-1)"),
    "SHA256": ("ldap_sha256", "LDAP {SHA256}"),
    "SSHA256": ("ldap_ssha256", "LDAP {SSHA256}"),
    "SSHA512": ("ldap_ssha512", "LDAP {SSHA512}"),
    "MD5": ("ldap_md5", "LDAP {MD5}"),
    "SMD5": ("ldap_smd5", "LDAP {SMD5}"),
    "CRYPT": ("ldap_crypt", "LDAP {CRYPT}"),
}

HEX = re.compile(r"^[0-9a-f]+$")
SSDEEP = re.compile(r"^(\d+):([A-Za-z0-9/+]+):([A-Za-z0-9/+]+)(?:,\"[^\"]*\")?$")
TLSH = re.compile(r"^t1[0-9a-f]{70}$")
JA4 = re.compile(r"^[tqd]\d{2}[di]\d{4}[a-z0-9]{2}_[0-9a-f]{12}_[0-9a-f]{12}$")
PWDUMP = re.compile(r"^([0-9a-f]{32}):([0-9a-f]{32})$")
LABELLED = re.compile(r"^(md5|sha1|sha224|sha256|sha384|sha512)[:=]([0-9a-f]+)$")
SRI = re.compile(r"^(sha256|sha384|sha512)-([A-Za-z0-9+/]+={0,2})$")
CRYPT = re.compile(r"^\$([a-z0-9-]+)\$")
LDAP = re.compile(r"^\{([A-Za-z0-9]+)\}(.+)$")

_TEXT_SHAPES = (
    (TLSH, "tlsh", "TLSH"),
    (JA4, "ja4", "JA4 TLS client fingerprint"),
    (PWDUMP, "lm_ntlm", "LM:NTLM pair (pwdump)"),
)


def _empty_digests() -> dict[str, str]:
    known = {
        hashlib.new(name, b"").hexdigest(): f"{name} of empty input"
        for name in ("md5", "sha1", "sha256", "sha512")
    }
    # hashlib may lack MD4 (OpenSSL 3), so the two empty-password Windows hashes are spelt out.
    known["31d6cfe0d16ae931b73c59d7e0c089c0"] = "NTLM of an empty password"
    known["aad3b435b51404eeaad3b435b51404ee"] = "LM of an empty password (LM disabled)"
    return known


KNOWN_VALUES = _empty_digests()


def _candidate(ident: str, label: str) -> dict:
    return {"id": ident, "label": label}


def identify(value: str) -> dict:
    """Return {"normalized", "candidates": [{"id","label"}...], "known": str|None, "encoding"}.

    `candidates` is empty when the value has no known hash shape.
    """
    text = value.strip()
    lowered = text.lower()
    result = {"normalized": text, "candidates": [], "known": None, "encoding": None}

    if HEX.match(lowered):
        result["normalized"] = lowered
        result["encoding"] = "hex"
        result["candidates"] = [_candidate(*c) for c in _HEX_CANDIDATES.get(len(lowered), [])]
        result["known"] = KNOWN_VALUES.get(lowered)
        return result

    for pattern, ident, label in _TEXT_SHAPES:
        if pattern.match(lowered):
            result.update(normalized=lowered, candidates=[_candidate(ident, label)], encoding="text")
            return result

    labelled = LABELLED.match(lowered)
    if labelled:
        algo, digest = labelled.groups()
        if len(digest) == hashlib.new(algo).digest_size * 2:
            result.update(
                normalized=lowered, candidates=[_candidate(algo, f"{algo} (labelled)")], encoding="hex"
            )
            result["known"] = KNOWN_VALUES.get(digest)
        return result

    ssdeep = SSDEEP.match(text)
    if ssdeep and int(ssdeep.group(1)) >= 3:
        result.update(candidates=[_candidate("ssdeep", "ssdeep fuzzy hash")], encoding="text")
        return result

    crypt = CRYPT.match(text)
    if crypt and crypt.group(1) in _CRYPT_PREFIXES:
        result.update(candidates=[_candidate(*_CRYPT_PREFIXES[crypt.group(1)])], encoding="crypt")
        return result

    ldap = LDAP.match(text)
    if ldap and ldap.group(1).upper() in _LDAP_SCHEMES:
        result.update(candidates=[_candidate(*_LDAP_SCHEMES[ldap.group(1).upper()])], encoding="ldap")
        return result

    sri = SRI.match(text)
    if sri:
        digest = _b64(sri.group(2))
        if digest is not None and _DIGEST_BY_SIZE.get(len(digest)) == sri.group(1):
            result.update(candidates=[_candidate(sri.group(1), f"{sri.group(1)} (subresource integrity)")])
            result["encoding"] = "base64"
            result["known"] = KNOWN_VALUES.get(digest.hex())
        return result

    # A bare base64 digest: only trust it when it has the padding a digest of that size needs.
    if len(text) in (24, 28, 44, 88) and text.endswith("="):
        digest = _b64(text)
        if digest is not None and len(digest) in _DIGEST_BY_SIZE:
            algo = _DIGEST_BY_SIZE[len(digest)]
            result.update(candidates=[_candidate(algo, f"{algo} (base64-encoded digest)")], encoding="base64")
            result["known"] = KNOWN_VALUES.get(digest.hex())
    return result


def _b64(text: str) -> bytes | None:
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        return None
