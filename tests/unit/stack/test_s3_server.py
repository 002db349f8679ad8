"""The stack's S3 signature check: requests botocore signs with the stack's key pass; a wrong key,
a changed path, query, header or body, a stale date, a missing or foreign signature do not. Behind
it, moto's real S3 application, in process."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from botocore.auth import S3SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from doughflow.stack.s3_server import S3Credentials, SignedRequestsOnly, application, signature_problem

KEY = S3Credentials("doughflow", "s" * 40)
HOST = "s3:9000"  # a host name without dots: path-style buckets, as the compose service


def signed(
    method: str,
    path: str,
    body: bytes = b"",
    key: S3Credentials = KEY,
    service: str = "s3",
    headers: dict[str, str] | None = None,
) -> AWSRequest:
    """A request signed the way boto3 and s3fs sign (header signature, SHA-256 of the body)."""
    request = AWSRequest(
        method=method, url=f"http://{HOST}{path}", data=body, headers={"Host": HOST, **(headers or {})}
    )
    S3SigV4Auth(Credentials(key.access_key_id, key.secret_access_key), service, "us-east-1").add_auth(request)
    return request


def problem(
    request: AWSRequest, path: str | None = None, body: bytes | None = None, now: datetime | None = None, **headers: str
) -> str | None:
    target = path or request.url.split(HOST, 1)[1]
    return signature_problem(
        KEY,
        request.method,
        target,
        {**dict(request.headers), **headers},
        request.data if body is None else body,
        now or datetime.now(UTC),
    )


def test_a_request_signed_with_the_stacks_key_passes():
    assert problem(signed("GET", "/doughflow?list-type=2&prefix=a%20b%2F")) is None
    assert problem(signed("PUT", "/doughflow/runs/r1/model.onnx", b"\x00bytes")) is None
    assert problem(signed("GET", "/doughflow/%C3%BC%2Bx.txt")) is None


def test_everything_else_is_refused():
    request = signed("PUT", "/doughflow/model.onnx", b"weights", headers={"x-amz-meta-run": "r1"})
    other_secret = S3Credentials(KEY.access_key_id, "t" * 40)
    assert problem(signed("GET", "/doughflow", key=other_secret)) == "the signature does not match"
    assert (
        problem(signed("GET", "/doughflow", key=S3Credentials("someone", KEY.secret_access_key)))
        == "unknown access key"
    )
    assert problem(request, path="/doughflow/other.onnx") == "the signature does not match"
    assert problem(request, path="/doughflow/model.onnx?acl") == "the signature does not match"
    assert problem(request, **{"x-amz-meta-run": "r2"}) == "the signature does not match"
    assert problem(request, body=b"poisoned") == "the body does not match its signed SHA-256"
    assert (
        problem(request, now=datetime.now(UTC) + timedelta(minutes=20))
        == "the request time is more than 15 minutes from the server's"
    )
    assert problem(request, Authorization="") == "the request has no AWS Signature Version 4 Authorization header"
    assert problem(signed("GET", "/", service="sqs")) == "signed for service 'sqs', not s3"
    assert problem(request, path="http://elsewhere/doughflow/model.onnx") == "the request target is not a path"


def test_the_server_needs_a_real_secret():
    with pytest.raises(ValueError, match="AWS_SECRET_ACCESS_KEY"):
        S3Credentials.from_environment({"AWS_ACCESS_KEY_ID": "doughflow", "AWS_SECRET_ACCESS_KEY": "short"})
    with pytest.raises(ValueError, match="AWS_ACCESS_KEY_ID"):
        S3Credentials.from_environment({"AWS_SECRET_ACCESS_KEY": "s" * 40})
    assert S3Credentials.from_environment(
        {"AWS_ACCESS_KEY_ID": "k", "AWS_SECRET_ACCESS_KEY": "s" * 40}
    ) == S3Credentials("k", "s" * 40)


def test_moto_answers_only_signed_requests():
    from werkzeug.test import Client

    app = application(KEY)
    assert isinstance(app, SignedRequestsOnly)
    client = Client(app)

    def send(request: AWSRequest):
        return client.open(
            request.url.split(HOST, 1)[1], method=request.method, headers=dict(request.headers), data=request.body
        )

    assert send(signed("PUT", "/doughflow")).status_code == 200
    assert send(signed("PUT", "/doughflow/kept.txt", b"kept")).status_code == 200
    refused = client.delete("/doughflow/kept.txt", headers={"Host": HOST})
    assert refused.status_code == 403 and b"<Code>AccessDenied</Code>" in refused.data
    assert client.post("/moto-api/reset", headers={"Host": HOST}).status_code == 403
    # moto saw the signed body intact, and the unsigned delete never reached it.
    assert send(signed("GET", "/doughflow/kept.txt")).data == b"kept"
