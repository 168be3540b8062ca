#!/usr/bin/env python3
"""Webhook: POST the TheHive object a responder runs on, as JSON, to an HTTP(S) endpoint."""

import http.client
import json
import os
import ssl
import urllib.error
import urllib.parse
import urllib.request

from cortexutils.responder import Responder
from cortexutils.worker import DEFAULT_SECRET_PHRASES

DEFAULT_TAG = "neurocortex:webhook"
MAX_RESPONSE = 4096  # characters of the endpoint's answer kept in the report
TAG_OPERATIONS = {
    "thehive:case": "AddTagToCase",
    "thehive:case_artifact": "AddTagToArtifact",
    "thehive:alert": "AddTagToAlert",
    # Tasks and task logs have no tags; TheHive applies AddTagToCase to the case they belong to.
    "thehive:case_task": "AddTagToCase",
    "thehive:case_task_log": "AddTagToCase",
}


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    # urllib would turn a redirected POST into a GET without a body; a moved webhook must fail loudly.
    def redirect_request(self, req, fp, code, msg, headers, newurl):
        return None


class Webhook(Responder):
    def __init__(self):
        # Hook URLs and headers often carry credentials (Slack/Teams URLs, Authorization headers):
        # keep them out of the input that cortexutils echoes back in error reports.
        super().__init__(secret_phrases=(*DEFAULT_SECRET_PHRASES, "url", "header", "token", "auth"))

    def run(self):
        url = self.get_param("config.url", None, "The webhook url is not configured.")
        parts = urllib.parse.urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            self.error("The webhook url must be an http:// or https:// URL with a host.")
        # Only the origin is ever reported: the path of a hook URL is frequently its secret.
        self.origin = f"{parts.scheme}://{parts.netloc.rsplit('@', 1)[-1]}"
        timeout = self.get_param("config.timeout", 10)
        if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or timeout <= 0:
            self.error(f"timeout must be a positive number of seconds, got {timeout!r}.")

        document = {
            "dataType": self.data_type,
            "data": self.get_data(),
            "message": self.get_param("message", ""),
            "parameters": self.get_param("parameters", {}),
            "tlp": self.tlp,
            "pap": self.pap,
        }
        body = json.dumps(document, ensure_ascii=False).encode("utf-8")
        headers = {"Content-Type": "application/json; charset=utf-8", "User-Agent": "neurocortex-webhook/1.0"}
        headers.update(self._custom_headers())
        request = urllib.request.Request(url, data=body, headers=headers, method="POST")
        status, reason, answer = self._post(request, timeout)
        self.report(
            {
                "url": self.origin,
                "status": status,
                "reason": reason,
                "bytesSent": len(body),
                "response": answer,
            }
        )

    def _custom_headers(self) -> dict:
        headers = {}
        for line in self.get_param("config.headers", []) or []:
            name, separator, value = str(line).partition(":")
            if not separator or not name.strip() or any(ch.isspace() for ch in name.strip()):
                # Never echo the value: it is usually a token.
                self.error(f"Invalid header {name.strip()[:40]!r}: expected 'Name: value'.")
            headers[name.strip()] = value.strip()
        return headers

    def _tls_context(self) -> ssl.SSLContext:
        context = ssl.create_default_context()
        # Cortex writes the configured CA certificates to input/cacerts and points this variable at them;
        # requests honours it by itself, urllib has to be told.
        bundle = os.environ.get("REQUESTS_CA_BUNDLE")
        if bundle and os.path.isfile(bundle):
            context.load_verify_locations(cafile=bundle)
        if not self.get_param("config.verify_tls", True):
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        return context

    def _post(self, request, timeout) -> tuple[int, str, object]:
        # build_opener keeps the default ProxyHandler, which reads the http_proxy/https_proxy variables
        # that cortexutils sets from the proxy configuration.
        opener = urllib.request.build_opener(
            urllib.request.HTTPSHandler(context=self._tls_context()), _NoRedirect
        )
        try:
            with opener.open(request, timeout=timeout) as response:
                return response.status, response.reason, _excerpt(response.read(MAX_RESPONSE * 4))
        except urllib.error.HTTPError as exc:
            detail = _excerpt(exc.read(MAX_RESPONSE))
            detail = json.dumps(detail) if not isinstance(detail, str) else detail
            location = f" (redirected to {exc.headers.get('Location')})" if 300 <= exc.code < 400 else ""
            self.error(
                f"Webhook {self.origin} answered HTTP {exc.code} {exc.reason}{location}: {detail[:500]}"
            )
        except urllib.error.URLError as exc:
            if isinstance(exc.reason, TimeoutError):
                self.error(f"Webhook {self.origin} did not answer within {timeout} s.")
            self.error(f"Cannot reach webhook {self.origin}: {exc.reason}")
        except TimeoutError:
            self.error(f"Webhook {self.origin} did not answer within {timeout} s.")
        except (http.client.HTTPException, OSError) as exc:
            self.error(f"Webhook {self.origin} failed: {exc.__class__.__name__}: {exc}")

    def operations(self, raw):
        tag = self.get_param("config.tag", DEFAULT_TAG)
        operation = TAG_OPERATIONS.get(self.data_type)
        return [self.build_operation(operation, tag=tag)] if tag and operation else []


def _excerpt(raw: bytes):
    """The endpoint's answer: parsed when it is JSON, else its first characters."""
    text = raw.decode("utf-8", errors="replace")
    try:
        return json.loads(text)
    except ValueError:
        return text[:MAX_RESPONSE]


if __name__ == "__main__":
    Webhook().run()
