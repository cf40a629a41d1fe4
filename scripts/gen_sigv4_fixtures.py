#!/usr/bin/env python3
"""Generate `sigv4_fixtures.json`: real SigV4-signed Amazon MQ requests made by botocore,
boto3's `mq` client and the aws CLI (v1), for the Rust tests in `sigv4.rs`.

Nothing is sent over the network: each request is grabbed from botocore's `before-send`
event (the fully prepared request, exactly what would go on the wire) and answered with a
canned empty 200 reply. The signing clock is pinned so the output is reproducible.

Setup (PyPI only):
    python3 -m venv .venv
    .venv/bin/pip install botocore==1.44.8 boto3 awscli==1.46.3
    .venv/bin/python scripts/gen_sigv4_fixtures.py > src/sigv4_fixtures.json

awscli v1 bundles its own botocore and aliases the top-level `botocore` import to it, so
the CLI capture runs in a child process (`--awscli-child`).
"""

import datetime
import json
import logging
import os
import subprocess
import sys
from urllib.parse import urlsplit

ACCESS_KEY = "AKIDEXAMPLE"
SECRET_KEY = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"
SESSION_TOKEN = "IQoJb3JpZ2luX2VjEXAMPLE//////////wEaCXVzLWVhc3QtMSJHMEUCIQ+session/token=="
REGION = "us-east-1"
ENDPOINT = "http://127.0.0.1:8080"
SIGNING_TIME = datetime.datetime(2026, 11, 24, 17, 39, 18, tzinfo=datetime.timezone.utc)
BROKER_ARN = "arn:aws:mq:us-east-1:123456789012:broker:demo:b-1234"


def pin_clock(botocore_module):
    """Make botocore's signer see SIGNING_TIME (it reads the clock via this function)."""
    import importlib

    auth = importlib.import_module(botocore_module + ".auth")
    auth.get_current_datetime = lambda *a, **kw: SIGNING_TIME.replace(tzinfo=None)


class CanonicalRequestLog(logging.Handler):
    """Collect the canonical requests botocore logs at DEBUG level while signing."""

    def __init__(self):
        super().__init__(logging.DEBUG)
        self.records = []

    def emit(self, record):
        if record.msg.startswith("CanonicalRequest:"):
            self.records.append(record.args[0] if isinstance(record.args, tuple) else record.args)


def install_log(logger_name):
    handler = CanonicalRequestLog()
    logger = logging.getLogger(logger_name)
    logger.setLevel(logging.DEBUG)
    logger.addHandler(handler)
    logger.propagate = False
    return handler


def wire_fixture(name, source, prepared, canonical_request, secret=SECRET_KEY):
    """Turn a prepared request into a fixture, adding the Host header urllib3 would send."""
    from botocore.auth import _host_from_url  # same rule urllib3 uses for Host

    parts = urlsplit(prepared.url)
    path_and_query = parts.path + ("?" + parts.query if parts.query else "")
    headers = [["Host", _host_from_url(prepared.url)]]
    for key, value in prepared.headers.items():
        if isinstance(value, bytes):
            value = value.decode("utf-8")
        headers.append([key, value])
    body = prepared.body
    if body is None:
        body = b""
    elif isinstance(body, str):
        body = body.encode("utf-8")
    elif hasattr(body, "read"):
        body = body.read()
    return {
        "name": name,
        "source": source,
        "method": prepared.method,
        "path_and_query": path_and_query,
        "headers": headers,
        "body": body.decode("utf-8"),
        "access_key_id": ACCESS_KEY,
        "secret_access_key": secret,
        "signing_time": SIGNING_TIME.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "canonical_request": canonical_request,
        "expected_error": None,
    }


class _Raw:
    def stream(self, **_kwargs):
        yield b"{}"


def capture_hook(sink):
    """A before-send handler: record the prepared request, answer 200 `{}` locally."""
    from botocore.awsrequest import AWSResponse

    def hook(request, **_kwargs):
        sink.append(request)
        return AWSResponse(request.url, 200, {"Content-Type": "application/json"}, _Raw())

    return hook


# ---------------------------------------------------------------------------------------
# 1. Raw botocore: SigV4Auth on hand-built AWSRequests mirroring the mq wire format.
# ---------------------------------------------------------------------------------------
def raw_botocore_fixtures():
    import botocore
    from botocore.auth import SigV4Auth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials

    pin_clock("botocore")
    log = install_log("botocore.auth")
    source = f"botocore {botocore.__version__} SigV4Auth"
    json_ct = {"Content-Type": "application/json"}
    create_body = json.dumps(
        {
            "brokerName": "demo",
            "engineType": "ACTIVEMQ",
            "engineVersion": "5.18",
            "hostInstanceType": "mq.t3.micro",
            "deploymentMode": "SINGLE_INSTANCE",
            "publiclyAccessible": False,
            "autoMinorVersionUpgrade": True,
            "users": [{"username": "admin", "password": "correct-horse-battery"}],
            "creatorRequestId": "5f0c3a52-3f5e-4a36-9f0e-0a4d1c1e7b11",
        },
        separators=(",", ":"),
    )
    cases = [
        ("raw GET /v1/brokers", "GET", "/v1/brokers", {}, b"", None),
        (
            "raw GET list with maxResults and encoded nextToken",
            "GET",
            "/v1/brokers?maxResults=5&nextToken=abc%3D%3D",
            {},
            b"",
            None,
        ),
        ("raw POST create broker", "POST", "/v1/brokers", json_ct, create_body.encode(), None),
        (
            "raw DELETE tags with ARN label and repeated query key",
            "DELETE",
            "/v1/tags/arn%3Aaws%3Amq%3Aus-east-1%3A123456789012%3Abroker%3Ademo%3Ab-1234"
            "?tagKeys=a&tagKeys=b%20c",
            {},
            b"",
            None,
        ),
        (
            "raw PUT update user",
            "PUT",
            "/v1/brokers/b-1/users/app-user",
            json_ct,
            '{"consoleAccess":true,"groups":["ops","grüppe"],"password":"n3w-Passw0rd-long"}'.encode("utf-8"),
            None,
        ),
        (
            "raw GET with session token",
            "GET",
            "/v1/brokers/b-1",
            {},
            b"",
            SESSION_TOKEN,
        ),
        (
            "raw GET signed with Date header instead of X-Amz-Date",
            "GET",
            "/v1/configurations",
            {"Date": "placeholder, replaced by the signer"},
            b"",
            None,
        ),
        (
            "raw GET with an extra signed header needing whitespace trimming",
            "GET",
            "/v1/broker-engine-types?engineType=RABBITMQ",
            {"X-Berth-Note": "  two   spaces  and\ta tab "},
            b"",
            None,
        ),
    ]
    fixtures = []
    for name, method, path_and_query, headers, body, token in cases:
        request = AWSRequest(
            method=method, url=ENDPOINT + path_and_query, headers=dict(headers), data=body
        )
        SigV4Auth(Credentials(ACCESS_KEY, SECRET_KEY, token), "mq", REGION).add_auth(request)
        fixtures.append(wire_fixture(name, source, request.prepare(), log.records.pop()))

    # Query given as params: botocore signs quote(value) ('%20' for a space) but the
    # prepared URL is built with urlencode(), which writes a space as '+'.
    request = AWSRequest(
        method="GET",
        url=ENDPOINT + "/v1/configurations",
        params={"nextToken": "a b/c+d=", "maxResults": "5"},
    )
    SigV4Auth(Credentials(ACCESS_KEY, SECRET_KEY), "mq", REGION).add_auth(request)
    fixtures.append(
        wire_fixture(
            "raw GET with params dict (space sent as '+')",
            source,
            request.prepare(),
            log.records.pop(),
        )
    )

    # An explicit X-Amz-Content-SHA256 replaces the body hash in botocore's canonical
    # request. With the real hash the request is ordinary; with UNSIGNED-PAYLOAD the body
    # is not covered, which the verifier refuses (mq clients never send either).
    import hashlib

    body = b'{"name":"cfg","engineType":"ACTIVEMQ","engineVersion":"5.18"}'
    for name, payload_hash, expected_error in [
        ("raw POST with x-amz-content-sha256 = body hash", hashlib.sha256(body).hexdigest(), None),
        ("raw POST with x-amz-content-sha256 = UNSIGNED-PAYLOAD", "UNSIGNED-PAYLOAD", "SignatureMismatch"),
    ]:
        request = AWSRequest(
            method="POST",
            url=ENDPOINT + "/v1/configurations",
            headers={**json_ct, "X-Amz-Content-SHA256": payload_hash},
            data=body,
        )
        SigV4Auth(Credentials(ACCESS_KEY, SECRET_KEY), "mq", REGION).add_auth(request)
        fixture = wire_fixture(name, source, request.prepare(), log.records.pop())
        if expected_error:
            fixture["expected_error"] = expected_error
        fixtures.append(fixture)
    return fixtures


# ---------------------------------------------------------------------------------------
# 2. boto3's mq client: exactly what the SDK sends.
# ---------------------------------------------------------------------------------------
def boto3_fixtures():
    import boto3
    import botocore

    pin_clock("botocore")
    log = install_log("botocore.auth")
    source = f"boto3 {boto3.__version__} / botocore {botocore.__version__} mq client"

    def client(token=None, endpoint=ENDPOINT):
        c = boto3.client(
            "mq",
            region_name=REGION,
            endpoint_url=endpoint,
            aws_access_key_id=ACCESS_KEY,
            aws_secret_access_key=SECRET_KEY,
            aws_session_token=token,
        )
        sink = []
        c.meta.events.register("before-send.mq", capture_hook(sink))
        return c, sink

    mq, sink = client()
    mq_token, sink_token = client(SESSION_TOKEN)
    mq_https, sink_https = client(endpoint="https://mq.us-east-1.amazonaws.com")
    calls = [
        ("boto3 list_brokers", mq, sink, "list_brokers", {}),
        (
            "boto3 list_brokers page 2",
            mq,
            sink,
            "list_brokers",
            {"MaxResults": 5, "NextToken": "abc=="},
        ),
        (
            "boto3 create_broker",
            mq,
            sink,
            "create_broker",
            {
                "BrokerName": "demo",
                "EngineType": "ACTIVEMQ",
                "EngineVersion": "5.18",
                "HostInstanceType": "mq.t3.micro",
                "DeploymentMode": "SINGLE_INSTANCE",
                "PubliclyAccessible": False,
                "AutoMinorVersionUpgrade": True,
                "Users": [{"Username": "admin", "Password": "correct-horse-battery"}],
                "CreatorRequestId": "5f0c3a52-3f5e-4a36-9f0e-0a4d1c1e7b11",
                "Tags": {"env": "dev", "team name": "platform/mq"},
            },
        ),
        (
            "boto3 delete_tags on a broker ARN",
            mq,
            sink,
            "delete_tags",
            {"ResourceArn": BROKER_ARN, "TagKeys": ["a", "b c"]},
        ),
        (
            "boto3 create_tags on a broker ARN",
            mq,
            sink,
            "create_tags",
            {"ResourceArn": BROKER_ARN, "Tags": {"k": "v/ü"}},
        ),
        (
            "boto3 update_user",
            mq,
            sink,
            "update_user",
            {
                "BrokerId": "b-1",
                "Username": "app-user",
                "ConsoleAccess": True,
                "Groups": ["ops"],
                "Password": "n3w-Passw0rd-long",
            },
        ),
        ("boto3 reboot_broker (POST, no body)", mq, sink, "reboot_broker", {"BrokerId": "b-1"}),
        (
            "boto3 describe_broker with session token",
            mq_token,
            sink_token,
            "describe_broker",
            {"BrokerId": "b-1"},
        ),
        (
            "boto3 list_users over https default port",
            mq_https,
            sink_https,
            "list_users",
            {"BrokerId": "b-1", "MaxResults": 10},
        ),
    ]
    fixtures = []
    for name, c, s, operation, params in calls:
        getattr(c, operation)(**params)
        fixtures.append(wire_fixture(name, source, s.pop(), log.records.pop()))
    return fixtures


# ---------------------------------------------------------------------------------------
# 3. aws CLI v1 (bundled botocore), run in a child process.
# ---------------------------------------------------------------------------------------
def awscli_child():
    os.environ.update(
        {
            "AWS_ACCESS_KEY_ID": ACCESS_KEY,
            "AWS_SECRET_ACCESS_KEY": SECRET_KEY,
            "AWS_DEFAULT_REGION": REGION,
            "AWS_CONFIG_FILE": "/dev/null",
            "AWS_SHARED_CREDENTIALS_FILE": "/dev/null",
        }
    )
    os.environ.pop("AWS_SESSION_TOKEN", None)
    import awscli
    import botocore  # the copy bundled in awscli (aliased by awscli's import hook)
    from awscli.clidriver import create_clidriver

    pin_clock("botocore")
    log = install_log(botocore.auth.__name__)
    source = f"aws-cli {awscli.__version__} (bundled botocore {botocore.__version__})"
    runs = [
        ("aws mq list-brokers", ["mq", "list-brokers"]),
        (
            "aws mq create-configuration",
            [
                "mq",
                "create-configuration",
                "--name",
                "cfg one",
                "--engine-type",
                "RABBITMQ",
                "--engine-version",
                "3.13",
                "--tags",
                "owner=me",
            ],
        ),
        (
            "aws mq delete-tags",
            ["mq", "delete-tags", "--resource-arn", BROKER_ARN, "--tag-keys", "a", "b c"],
        ),
    ]
    fixtures = []
    for name, args in runs:
        driver = create_clidriver()
        sink = []
        driver.session.register("before-send.mq", capture_hook(sink))
        devnull = open(os.devnull, "w")
        saved = sys.stdout
        sys.stdout = devnull
        try:
            rc = driver.main(["--endpoint-url", ENDPOINT, "--output", "json"] + args)
        finally:
            sys.stdout = saved
        if rc != 0 or len(sink) != 1:
            raise SystemExit(f"aws {' '.join(args)} failed: rc={rc}, captured={len(sink)}")
        fixtures.append(wire_fixture(name, source, sink[0], log.records.pop()))
    json.dump(fixtures, sys.stdout)


def main():
    if sys.argv[1:] == ["--awscli-child"]:
        awscli_child()
        return
    fixtures = raw_botocore_fixtures() + boto3_fixtures()
    child = subprocess.run(
        [sys.executable, os.path.abspath(__file__), "--awscli-child"],
        check=True,
        capture_output=True,
        text=True,
    )
    fixtures += json.loads(child.stdout)
    out = {
        "comment": "Generated by gen_sigv4_fixtures.py; do not edit by hand. Each fixture is a "
        "request exactly as the named client put it on the wire (Host added as urllib3 "
        "sends it), signed at signing_time. canonical_request is what the client signed. "
        "expected_error is null when the request must verify, else the SigV4Error variant.",
        "fixtures": fixtures,
    }
    json.dump(out, sys.stdout, indent=2, ensure_ascii=False)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
