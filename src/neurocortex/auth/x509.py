"""Logins from X.509 client certificates checked by a trusted reverse proxy (mutual TLS there).

The proxy verifies the certificate against its CA and passes it on in a header (nginx:
`$ssl_client_escaped_cert`, URL-escaped PEM) with the verification result (`$ssl_client_verify`). Both are
believed only from NEUROCORTEX_TRUSTED_PROXIES; the login is taken from the certificate's subject common
name, its e-mail address (SAN, else the subject's emailAddress) or its subject UID.
"""

from __future__ import annotations

from urllib.parse import unquote

from cryptography import x509
from cryptography.x509.oid import NameOID

ATTRIBUTES = ("cn", "email", "uid")


def certificate_login(escaped_pem: str, attribute: str) -> str | None:
    """The login the certificate names, or None (unreadable, or no such attribute)."""
    try:
        certificate = x509.load_pem_x509_certificate(unquote(escaped_pem).encode())
    except ValueError:
        return None
    values: list[str] = []
    if attribute == "email":
        try:
            san = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
            values = san.get_values_for_type(x509.RFC822Name)
        except x509.ExtensionNotFound:
            pass
        values = values or _subject(certificate, NameOID.EMAIL_ADDRESS)
    elif attribute == "uid":
        values = _subject(certificate, NameOID.USER_ID)
    else:
        values = _subject(certificate, NameOID.COMMON_NAME)
    login = values[0].strip().lower() if values else ""
    return login or None


def _subject(certificate: x509.Certificate, oid: x509.ObjectIdentifier) -> list[str]:
    return [str(a.value) for a in certificate.subject.get_attributes_for_oid(oid)]
