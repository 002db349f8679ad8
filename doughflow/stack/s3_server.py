"""The stack's S3 service: moto's in-memory S3, answering only requests signed with the stack's key.

moto's own server (``moto_server``, moto 5.2.5) answers every request whatever its credentials. It
also serves a control API (``/moto-api``: reset, seed, reset-auth) and every other AWS service it
mocks, on the same port. Its optional IAM check (INITIAL_NO_AUTH_ACTION_COUNT) is switched off
again by one anonymous ``POST /moto-api/reset-auth``. On a reachable port, anyone could read, write
or wipe the store.

So this server checks every request before moto sees it. It needs an AWS Signature Version 4
``Authorization`` header made with the configured access key (AWS_ACCESS_KEY_ID and
AWS_SECRET_ACCESS_KEY, from the stack's .env), for service ``s3``, dated within 15 minutes of now,
over a body whose SHA-256 is the signed one. The signature is recomputed with botocore's signer,
the one boto3 and s3fs sign with, and compared in constant time. Requests that pass go to moto's
S3 application alone (no /moto-api, no other services). Anything else gets 403 and an S3 error
document. Query-string (presigned) signatures and signed streaming chunks are refused: the
pipeline's clients (s3fs, boto3) sign headers.
"""

from __future__ import annotations

import argparse
import hashlib
import hmac
import io
import logging
import os
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING
from urllib.parse import quote
from xml.sax.saxutils import escape

if TYPE_CHECKING:
    from werkzeug.datastructures import Headers

log = logging.getLogger(__name__)

MAX_CLOCK_SKEW = timedelta(minutes=15)  # as AWS S3 (RequestTimeTooSkewed)
# s3fs uploads in parts of 50 MiB at most; moto keeps every object in memory anyway.
MAX_BODY_BYTES = 256 * 2**20
# Payload markers whose body is not covered by the signature (botocore sends them when it computes
# a checksum trailer instead); the signature still covers method, path, query and headers.
UNSIGNED_PAYLOADS = frozenset({"UNSIGNED-PAYLOAD", "STREAMING-UNSIGNED-PAYLOAD-TRAILER"})
AUTHORIZATION = re.compile(
    r"AWS4-HMAC-SHA256\s+Credential=(?P<key>[^/,\s]+)/(?P<date>\d{8})/(?P<region>[a-z0-9-]+)/(?P<service>[a-z0-9-]+)"
    r"/aws4_request,\s*SignedHeaders=(?P<signed>[a-z0-9;-]+),\s*Signature=(?P<signature>[0-9a-f]{64})"
)
REQUIRED_SIGNED_HEADERS = frozenset({"host", "x-amz-date", "x-amz-content-sha256"})


@dataclass(frozen=True)
class S3Credentials:
    access_key_id: str
    secret_access_key: str

    @classmethod
    def from_environment(cls, environ: Mapping[str, str] = os.environ) -> S3Credentials:
        """The pair clients sign with (AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY); refuses to serve
        without both, or with a secret short enough to guess."""
        key, secret = environ.get("AWS_ACCESS_KEY_ID", ""), environ.get("AWS_SECRET_ACCESS_KEY", "")
        if not key or len(secret) < 16:
            raise ValueError(
                "AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (16 characters or more) must be set: "
                "the S3 service accepts only requests signed with them (see .env.example)"
            )
        return cls(key, secret)


def signature_problem(
    credentials: S3Credentials,
    method: str,
    raw_uri: str,
    headers: Mapping[str, str] | Headers,
    body: bytes,
    now: datetime,
) -> str | None:
    """Why this request is not signed by ``credentials``, or None when it is. ``raw_uri`` is the
    path and query exactly as sent (still percent-encoded)."""
    from botocore.auth import S3SigV4Auth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials

    headers = {name.lower(): value for name, value in headers.items()}
    match = AUTHORIZATION.fullmatch((headers.get("authorization") or "").strip())
    if match is None:
        return "the request has no AWS Signature Version 4 Authorization header"
    if not hmac.compare_digest(match["key"].encode(), credentials.access_key_id.encode()):
        return "unknown access key"
    if match["service"] != "s3":
        return f"signed for service {match['service']!r}, not s3"
    signed = match["signed"].split(";")
    if missing := REQUIRED_SIGNED_HEADERS - set(signed):
        return f"headers {sorted(missing)} are not signed"
    amz_date = headers.get("x-amz-date") or ""
    try:
        sent_at = datetime.strptime(amz_date, "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)
    except ValueError:
        return "X-Amz-Date is not a timestamp"
    if abs(now - sent_at) > MAX_CLOCK_SKEW:
        return "the request time is more than 15 minutes from the server's"
    if match["date"] != amz_date[:8]:
        return "the credential's date is not the request's"
    payload = headers.get("x-amz-content-sha256") or ""
    if payload not in UNSIGNED_PAYLOADS and not hmac.compare_digest(payload, hashlib.sha256(body).hexdigest()):
        return "the body does not match its signed SHA-256"

    if not raw_uri.startswith("/"):
        return "the request target is not a path"
    # The path and query come from raw_uri; the host the client signed is its Host header.
    request = AWSRequest(
        method=method,
        url=f"http://s3.invalid{raw_uri}",
        data=body,
        headers={name: headers[name] for name in signed if name in headers},
    )
    request.context["timestamp"] = amz_date
    signer = S3SigV4Auth(Credentials(credentials.access_key_id, credentials.secret_access_key), "s3", match["region"])
    expected = signer.signature(signer.string_to_sign(request, signer.canonical_request(request)), request)
    if not hmac.compare_digest(expected, match["signature"]):
        return "the signature does not match"
    return None


def _refuse(start_response: Callable, reason: str, status: str = "403 Forbidden") -> Iterable[bytes]:
    document = (
        f'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>AccessDenied</Code>'
        f"<Message>{escape(reason)}</Message></Error>"
    ).encode()
    start_response(status, [("Content-Type", "application/xml"), ("Content-Length", str(len(document)))])
    return [document]


class SignedRequestsOnly:
    """WSGI middleware: passes ``app`` only the requests ``credentials`` signed (see module docs)."""

    def __init__(self, app: Callable, credentials: S3Credentials, clock: Callable[[], datetime] | None = None) -> None:
        self.app = app
        self.credentials = credentials
        self.clock = clock or (lambda: datetime.now(UTC))

    def __call__(self, environ: dict, start_response: Callable) -> Iterable[bytes]:
        from werkzeug.exceptions import RequestEntityTooLarge
        from werkzeug.wrappers import Request

        request = Request(environ)
        request.max_content_length = MAX_BODY_BYTES
        try:
            body = request.get_data(cache=True)
        except RequestEntityTooLarge:
            return _refuse(
                start_response, f"bodies over {MAX_BODY_BYTES} bytes are refused", "413 Request Entity Too Large"
            )
        raw_uri = (
            environ.get("RAW_URI")
            or environ.get("REQUEST_URI")
            or (
                quote(environ.get("PATH_INFO", ""), safe="/~")
                + (f"?{environ['QUERY_STRING']}" if environ.get("QUERY_STRING") else "")
            )
        )
        problem = signature_problem(self.credentials, request.method, raw_uri, request.headers, body, self.clock())
        if problem is not None:
            log.warning(
                "refused %s %s from %s: %s",
                request.method,
                environ.get("PATH_INFO"),
                environ.get("REMOTE_ADDR"),
                problem,
            )
            return _refuse(start_response, problem)
        # moto reads the body again: hand it the bytes already read.
        environ["wsgi.input"] = io.BytesIO(body)
        environ["CONTENT_LENGTH"] = str(len(body))
        environ.pop("HTTP_TRANSFER_ENCODING", None)
        environ["wsgi.input_terminated"] = False
        return self.app(environ, start_response)


def application(credentials: S3Credentials) -> SignedRequestsOnly:
    """moto's S3 backend alone, behind the signature check."""
    from moto.moto_server.werkzeug_app import create_backend_app

    return SignedRequestsOnly(create_backend_app("s3"), credentials)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default loopback)")
    parser.add_argument("--port", type=int, default=9000)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    from moto.moto_server.werkzeug_app import MotoRequestHandler
    from werkzeug.serving import run_simple

    app = application(S3Credentials.from_environment())
    run_simple(args.host, args.port, app, threaded=True, request_handler=MotoRequestHandler)


if __name__ == "__main__":
    main()
