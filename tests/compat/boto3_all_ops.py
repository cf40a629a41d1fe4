#!/usr/bin/env python3
"""Every one of the 25 Amazon MQ operations through boto3 (tests/compat/requirements.txt)
against a running Berth, asserting on the replies as boto3 presents them (PascalCase
members, parsed timestamps, modeled exceptions with ErrorAttribute).

Environment: BERTH_ENDPOINT (http://127.0.0.1:PORT) and AWS_SHARED_CREDENTIALS_FILE (the
file Berth wrote on first start; profile `berth`), or BERTH_ACCESS_KEY_ID and
BERTH_SECRET_ACCESS_KEY. Operations Berth does not implement yet (404 NotFoundException on
errorAttribute `path`) are reported as SKIPPED. Ends with `N passed, M failed` and exits
non-zero on any failure.
"""

import base64
import configparser
import datetime
import os
import sys
import time
import traceback
import uuid

import boto3
import botocore
from botocore import UNSIGNED
from botocore.config import Config
from botocore.exceptions import ClientError

ENDPOINT = os.environ["BERTH_ENDPOINT"]
REGION = "us-east-1"
WAIT_SECS = float(os.environ.get("BERTH_COMPAT_WAIT_SECS", "180"))
ALL_OPERATIONS = {
    "CreateBroker", "CreateConfiguration", "CreateTags", "CreateUser", "DeleteBroker",
    "DeleteConfiguration", "DeleteTags", "DeleteUser", "DescribeBroker",
    "DescribeBrokerEngineTypes", "DescribeBrokerInstanceOptions", "DescribeConfiguration",
    "DescribeConfigurationRevision", "DescribeSharedResources", "DescribeUser", "ListBrokers",
    "ListConfigurationRevisions", "ListConfigurations", "ListTags", "ListUsers", "Promote",
    "RebootBroker", "UpdateBroker", "UpdateConfiguration", "UpdateUser",
}


def credentials():
    key, secret = os.environ.get("BERTH_ACCESS_KEY_ID"), os.environ.get("BERTH_SECRET_ACCESS_KEY")
    if key and secret:
        return key, secret
    cp = configparser.ConfigParser()
    cp.read(os.environ["AWS_SHARED_CREDENTIALS_FILE"])
    return cp["berth"]["aws_access_key_id"], cp["berth"]["aws_secret_access_key"]


KEY, SECRET = credentials()
# No retries: a 5xx must show up as the failure it is, not be retried away.
NO_RETRY = Config(retries={"total_max_attempts": 1, "mode": "standard"})


def client(key=KEY, secret=SECRET, config=NO_RETRY):
    return boto3.client("mq", endpoint_url=ENDPOINT, region_name=REGION,
                        aws_access_key_id=key, aws_secret_access_key=secret, config=config)


mq = client()
called = set()        # operations boto3 actually sent
statuses = []         # (operation, HTTP status) of every reply
mq.meta.events.register("before-call.mq", lambda model, **_: called.add(model.name))
mq.meta.events.register(
    "after-call.mq",
    lambda model, http_response, **_: statuses.append((model.name, http_response.status_code)))

T0 = time.monotonic()
passed, failed, skipped = [], [], []


class Skip(Exception):
    """The operation does not exist in this Berth yet."""


def log(msg):
    print(f"[boto3 +{time.monotonic() - T0:5.1f}s] {msg}", flush=True)


def check(name):
    """Decorator: runs the function now as one named check."""
    def run(fn):
        try:
            fn()
        except Skip as e:
            skipped.append(name)
            log(f"SKIPPED {name}: {e}")
        except Exception as e:  # noqa: BLE001 -- every failure is reported, then the run goes on
            failed.append(name)
            log(f"FAIL {name}: {e!r}")
            traceback.print_exc(limit=3, file=sys.stdout)
        else:
            passed.append(name)
            log(f"ok   {name}")
        return fn
    return run


def missing_operation(e):
    """Berth's answer for a route it does not have: 404 NotFoundException on `path`."""
    return (isinstance(e, ClientError) and e.response["Error"]["Code"] == "NotFoundException"
            and e.response.get("ErrorAttribute") == "path")


def call(op, **kw):
    """mq.<op>(**kw), turning 'operation does not exist' into Skip."""
    try:
        return getattr(mq, op)(**kw)
    except ClientError as e:
        if missing_operation(e):
            raise Skip(f"{op}: Berth answers 404 operation does not exist") from None
        raise


def expect_error(fn, code, status, attribute=None, **kw):
    """Calls fn(**kw), which must raise ClientError `code` with `status` (and attribute)."""
    try:
        reply = fn(**kw)
    except ClientError as e:
        if missing_operation(e) and code != "NotFoundException":
            raise Skip(f"{fn.__name__}: Berth answers 404 operation does not exist") from None
        err, meta = e.response["Error"], e.response["ResponseMetadata"]
        assert err["Code"] == code, f"code {err['Code']!r}, wanted {code!r}: {e.response}"
        assert meta["HTTPStatusCode"] == status, f"status {meta['HTTPStatusCode']}: {e.response}"
        assert err.get("Message"), f"no message: {e.response}"
        assert meta.get("RequestId"), f"no x-amzn-RequestId: {meta}"
        if attribute is not None:
            assert e.response.get("ErrorAttribute") == attribute, \
                f"ErrorAttribute {e.response.get('ErrorAttribute')!r}, wanted {attribute!r}"
        if hasattr(mq.exceptions, code):  # modeled: boto3 raises the specific class
            assert isinstance(e, getattr(mq.exceptions, code)), type(e)
        return e
    raise AssertionError(f"expected {code}, got success: {reply}")


def ok_meta(reply, status=200):
    assert reply["ResponseMetadata"]["HTTPStatusCode"] == status, reply["ResponseMetadata"]
    assert reply["ResponseMetadata"].get("RequestId"), reply["ResponseMetadata"]


def wait_state(broker_id, want):
    start, deadline = time.monotonic(), time.monotonic() + WAIT_SECS
    while True:
        d = mq.describe_broker(BrokerId=broker_id)
        if d["BrokerState"] == want:
            log(f"     {broker_id} {want} after {time.monotonic() - start:.1f}s")
            return d
        assert d["BrokerState"] != "CREATION_FAILED" or want == "CREATION_FAILED", d
        assert time.monotonic() < deadline, f"{broker_id} still {d['BrokerState']} after {WAIT_SECS}s"
        time.sleep(0.3)


def wait_gone(broker_id):
    deadline = time.monotonic() + WAIT_SECS
    while True:
        try:
            mq.describe_broker(BrokerId=broker_id)
        except mq.exceptions.NotFoundException:
            return
        assert time.monotonic() < deadline, f"{broker_id} still exists after {WAIT_SECS}s"
        time.sleep(0.3)


suffix = uuid.uuid4().hex[:8]
NAME = f"boto3-{suffix}"
ADMIN, ADMIN_PW = "boto3-admin", f"Adm1n-pass-{suffix}"
TOKEN = str(uuid.uuid4())
state = {}


def broker_body(name, **extra):
    body = dict(BrokerName=name, EngineType="RABBITMQ", EngineVersion="4.0",
                DeploymentMode="SINGLE_INSTANCE", HostInstanceType="mq.m7g.medium",
                PubliclyAccessible=False, AutoMinorVersionUpgrade=True,
                Users=[{"Username": ADMIN, "Password": ADMIN_PW}])
    body.update(extra)
    return body


log(f"boto3 {boto3.__version__}, botocore {botocore.__version__} against {ENDPOINT}")


@check("the client model has exactly the 25 operations")
def _():
    assert set(mq.meta.service_model.operation_names) == ALL_OPERATIONS, \
        set(mq.meta.service_model.operation_names) ^ ALL_OPERATIONS


# --- signing -------------------------------------------------------------------------------
@check("wrong secret key -> 403")
def _():
    bad = client(secret=SECRET[:-2] + ("AA" if not SECRET.endswith("AA") else "BB"))
    try:
        bad.list_brokers()
    except ClientError as e:
        assert e.response["ResponseMetadata"]["HTTPStatusCode"] == 403, e.response
        log(f"     code {e.response['Error']['Code']}: {e.response['Error'].get('Message')}")
    else:
        raise AssertionError("a wrong secret was accepted")


@check("unknown access key -> 403")
def _():
    try:
        client(key="AKIA" + "Z" * 16).list_brokers()
    except ClientError as e:
        assert e.response["ResponseMetadata"]["HTTPStatusCode"] == 403, e.response
        log(f"     code {e.response['Error']['Code']}")
    else:
        raise AssertionError("an unknown key was accepted")


@check("unsigned request -> 403")
def _():
    unsigned = boto3.client("mq", endpoint_url=ENDPOINT, region_name=REGION,
                            config=NO_RETRY.merge(Config(signature_version=UNSIGNED)))
    try:
        unsigned.list_brokers()
    except ClientError as e:
        assert e.response["ResponseMetadata"]["HTTPStatusCode"] == 403, e.response
    else:
        raise AssertionError("an unsigned request was accepted")


# --- catalogue --------------------------------------------------------------------------
@check("DescribeBrokerEngineTypes")
def _():
    r = mq.describe_broker_engine_types(EngineType="RABBITMQ")
    ok_meta(r)
    engines = {e["EngineType"]: [v["Name"] for v in e["EngineVersions"]] for e in r["BrokerEngineTypes"]}
    assert "4.0" in engines.get("RABBITMQ", []), engines


@check("DescribeBrokerInstanceOptions")
def _():
    r = mq.describe_broker_instance_options(EngineType="RABBITMQ", MaxResults=100)
    ok_meta(r)
    opts = r["BrokerInstanceOptions"]
    types = {o["HostInstanceType"] for o in opts}
    assert {"mq.m7g.medium", "mq.m7g.large"} <= types, types
    for o in opts:
        assert o["EngineType"] == "RABBITMQ" and "SINGLE_INSTANCE" in o["SupportedDeploymentModes"], o
        # RabbitMQ 4.x runs on m7g (as on Amazon MQ), 3.10 on t3.micro and m5.
        want = "4.0" if o["HostInstanceType"].startswith("mq.m7g.") else "3.10"
        assert want in o["SupportedEngineVersions"], o


# --- CreateBroker, idempotency, validation ---------------------------------------------------
@check("CreateBroker")
def _():
    r = mq.create_broker(CreatorRequestId=TOKEN, Tags={"suite": "boto3"}, **broker_body(NAME))
    ok_meta(r)
    assert r["BrokerId"].startswith("b-"), r
    assert r["BrokerArn"] == f"arn:aws:mq:{REGION}:{r['BrokerArn'].split(':')[4]}:broker:{NAME}:{r['BrokerId']}", r
    state["id"], state["arn"] = r["BrokerId"], r["BrokerArn"]


@check("CreateBroker with the same creatorRequestId -> the same broker")
def _():
    r = mq.create_broker(CreatorRequestId=TOKEN, Tags={"suite": "boto3"}, **broker_body(NAME))
    assert r["BrokerId"] == state["id"] and r["BrokerArn"] == state["arn"], (r, state)


@check("CreateBroker with a taken name -> ConflictException")
def _():
    expect_error(mq.create_broker, "ConflictException", 409, **broker_body(NAME))


@check("CreateBroker with a bad brokerName -> BadRequestException brokerName")
def _():
    expect_error(mq.create_broker, "BadRequestException", 400, "brokerName", **broker_body("bad name!"))


@check("CreateBroker with deploymentMode BOGUS -> BadRequestException deploymentMode")
def _():
    expect_error(mq.create_broker, "BadRequestException", 400, "deploymentMode",
                 **broker_body(f"bogus-{suffix}", DeploymentMode="BOGUS"))


@check("CreateBroker with a short password -> BadRequestException")
def _():
    e = expect_error(mq.create_broker, "BadRequestException", 400,
                     **broker_body(f"weak-{suffix}", Users=[{"Username": "u-1", "Password": "short"}]))
    log(f"     ErrorAttribute {e.response.get('ErrorAttribute')!r}")


# --- DescribeBroker / ListBrokers ---------------------------------------------------------
@check("DescribeBroker (while creating)")
def _():
    d = mq.describe_broker(BrokerId=state["id"])
    ok_meta(d)
    assert d["BrokerId"] == state["id"] and d["BrokerArn"] == state["arn"] and d["BrokerName"] == NAME, d
    assert d["BrokerState"] in ("CREATION_IN_PROGRESS", "RUNNING"), d["BrokerState"]
    assert d["EngineType"] == "RABBITMQ" and d["EngineVersion"].startswith("4.0"), d
    assert d["DeploymentMode"] == "SINGLE_INSTANCE" and d["HostInstanceType"] == "mq.m7g.medium", d
    assert d["PubliclyAccessible"] is False and d["AutoMinorVersionUpgrade"] is True, d
    assert isinstance(d["Created"], datetime.datetime) and d["Created"].tzinfo is not None, d["Created"]
    assert [u["Username"] for u in d["Users"]] == [ADMIN], d["Users"]
    assert d["Tags"] == {"suite": "boto3"}, d.get("Tags")
    assert "Password" not in repr(d) and ADMIN_PW not in repr(d)


@check("DescribeBroker unknown id -> NotFoundException broker-id")
def _():
    expect_error(mq.describe_broker, "NotFoundException", 404, "broker-id",
                 BrokerId="b-00000000-0000-4000-8000-000000000000")


@check("DescribeBroker malformed id -> 4xx, not 5xx")
def _():
    try:
        mq.describe_broker(BrokerId="not-a-broker-id")
    except ClientError as e:
        status = e.response["ResponseMetadata"]["HTTPStatusCode"]
        assert status in (400, 404), e.response
    else:
        raise AssertionError("a malformed broker id was found")


@check("a second broker for the pagination checks")
def _():
    r = mq.create_broker(CreatorRequestId=str(uuid.uuid4()), **broker_body(f"{NAME}-2"))
    state["id2"] = r["BrokerId"]


@check("ListBrokers")
def _():
    r = mq.list_brokers(MaxResults=100)
    ok_meta(r)
    mine = [b for b in r["BrokerSummaries"] if b["BrokerId"] == state["id"]]
    assert len(mine) == 1, r
    b = mine[0]
    assert b["BrokerArn"] == state["arn"] and b["BrokerName"] == NAME, b
    assert b["DeploymentMode"] == "SINGLE_INSTANCE" and b["EngineType"] == "RABBITMQ", b
    assert b["HostInstanceType"] == "mq.m7g.medium" and isinstance(b["Created"], datetime.datetime), b
    assert not r.get("NextToken"), r


@check("ListBrokers MaxResults=1 + NextToken by hand")
def _():
    first = mq.list_brokers(MaxResults=1)
    assert len(first["BrokerSummaries"]) == 1 and first["NextToken"], first
    second = mq.list_brokers(MaxResults=1, NextToken=first["NextToken"])
    assert len(second["BrokerSummaries"]) == 1, second
    assert second["BrokerSummaries"][0]["BrokerId"] != first["BrokerSummaries"][0]["BrokerId"]


@check("get_paginator('list_brokers') with PageSize 1")
def _():
    pages = list(mq.get_paginator("list_brokers").paginate(PaginationConfig={"PageSize": 1}))
    ids = [b["BrokerId"] for p in pages for b in p["BrokerSummaries"]]
    assert len(pages) >= 2 and len(ids) == len(set(ids)), ids
    assert {state["id"], state["id2"]} <= set(ids), ids
    full = mq.get_paginator("list_brokers").paginate(
        PaginationConfig={"PageSize": 1, "MaxItems": 1}).build_full_result()
    assert len(full["BrokerSummaries"]) == 1 and full.get("NextToken"), full


@check("ListBrokers MaxResults=101 -> BadRequestException maxResults")
def _():
    expect_error(mq.list_brokers, "BadRequestException", 400, "maxResults", MaxResults=101)


@check("ListBrokers with a garbage NextToken -> BadRequestException")
def _():
    expect_error(mq.list_brokers, "BadRequestException", 400, NextToken="%%%not-a-token%%%")


@check("DeleteBroker (the second broker, while it is being created)")
def _():
    r = mq.delete_broker(BrokerId=state["id2"])
    ok_meta(r)
    assert r["BrokerId"] == state["id2"], r


# --- tags -------------------------------------------------------------------------------------
@check("CreateTags / ListTags / DeleteTags on the broker ARN")
def _():
    r = mq.create_tags(ResourceArn=state["arn"], Tags={"team": "core", "env": "test"})
    ok_meta(r, 204)
    assert mq.list_tags(ResourceArn=state["arn"])["Tags"] == {"suite": "boto3", "team": "core", "env": "test"}
    r = mq.delete_tags(ResourceArn=state["arn"], TagKeys=["team", "suite"])
    ok_meta(r, 204)
    assert mq.list_tags(ResourceArn=state["arn"])["Tags"] == {"env": "test"}


@check("ListTags on an unknown ARN -> NotFoundException")
def _():
    expect_error(mq.list_tags, "NotFoundException", 404,
                 ResourceArn=f"arn:aws:mq:{REGION}:000000000000:broker:nope:b-00000000-0000-4000-8000-000000000000")


# --- not available in Berth: CRDR and shared resources -------------------------------------
@check("Promote -> BadRequestException (no cross-region data replication)")
def _():
    expect_error(mq.promote, "BadRequestException", 400, BrokerId=state["id"], Mode="SWITCHOVER")


@check("DescribeSharedResources -> empty list")
def _():
    r = call("describe_shared_resources", BrokerId=state["id"])
    ok_meta(r)
    assert r.get("SharedResources", []) == [], r
    pages = list(mq.get_paginator("describe_shared_resources").paginate(BrokerId=state["id"]))
    assert all(p.get("SharedResources", []) == [] for p in pages), pages


# --- configurations -----------------------------------------------------------------------------
CONF_DATA = "consumer_timeout = 1800000\nheartbeat = 30\nlisteners.tcp.default = 5673\n"


@check("CreateConfiguration")
def _():
    r = call("create_configuration", Name=f"boto3-conf-{suffix}", EngineType="RABBITMQ",
             EngineVersion="4.0", AuthenticationStrategy="SIMPLE", Tags={"suite": "boto3"})
    ok_meta(r)
    assert r["Id"].startswith("c-") and r["Arn"].endswith(f":configuration:{r['Id']}"), r
    assert r["Name"] == f"boto3-conf-{suffix}" and r["AuthenticationStrategy"] == "SIMPLE", r
    assert isinstance(r["Created"], datetime.datetime), r
    assert r["LatestRevision"]["Revision"] == 1 and isinstance(r["LatestRevision"]["Created"], datetime.datetime), r
    state["conf"], state["conf_arn"] = r["Id"], r["Arn"]


DUMMY_CONF = "c-00000000-0000-4000-8000-000000000000"


def need_conf(op, **kw):
    """Without a configuration to work on, still send `op` (on a dummy id) so that every
    operation is attempted, then skip the check."""
    if "conf" not in state:
        try:
            getattr(mq, op)(**kw)
        except ClientError as e:
            if missing_operation(e):
                raise Skip(f"{op}: Berth answers 404 operation does not exist") from None
        raise Skip("no configuration to work on (CreateConfiguration unavailable or failed)")


@check("CreateConfiguration with a bad name -> BadRequestException name")
def _():
    need_conf("create_configuration", Name="bad name!", EngineType="RABBITMQ")
    expect_error(mq.create_configuration, "BadRequestException", 400, "name",
                 Name="bad name!", EngineType="RABBITMQ", EngineVersion="4.0")


@check("UpdateConfiguration (base64 cuttlefish data, one disallowed key)")
def _():
    need_conf("update_configuration", ConfigurationId=DUMMY_CONF, Data="")
    r = mq.update_configuration(ConfigurationId=state["conf"], Description="boto3 revision 2",
                                Data=base64.b64encode(CONF_DATA.encode()).decode())
    ok_meta(r)
    assert r["Id"] == state["conf"] and r["Arn"] == state["conf_arn"], r
    assert r["LatestRevision"]["Revision"] == 2 and r["LatestRevision"]["Description"] == "boto3 revision 2", r
    assert isinstance(r["Created"], datetime.datetime), r
    reasons = {"DISALLOWED_ELEMENT_REMOVED", "DISALLOWED_ATTRIBUTE_REMOVED", "INVALID_ATTRIBUTE_VALUE_REMOVED"}
    assert r["Warnings"] and all(w["Reason"] in reasons for w in r["Warnings"]), r.get("Warnings")
    log(f"     warnings: {r['Warnings']}")


@check("UpdateConfiguration with non-base64 data -> BadRequestException data")
def _():
    need_conf("update_configuration", ConfigurationId=DUMMY_CONF, Data="")
    expect_error(mq.update_configuration, "BadRequestException", 400, "data",
                 ConfigurationId=state["conf"], Data="*** not base64 ***")


@check("DescribeConfiguration")
def _():
    need_conf("describe_configuration", ConfigurationId=DUMMY_CONF)
    r = mq.describe_configuration(ConfigurationId=state["conf"])
    ok_meta(r)
    assert r["Id"] == state["conf"] and r["Arn"] == state["conf_arn"], r
    assert r["EngineType"] == "RABBITMQ" and r["EngineVersion"].startswith("4.0"), r
    assert r["LatestRevision"]["Revision"] == 2 and r["Tags"] == {"suite": "boto3"}, r
    assert r["AuthenticationStrategy"] == "SIMPLE" and isinstance(r["Created"], datetime.datetime), r


@check("DescribeConfiguration unknown id -> NotFoundException configuration-id")
def _():
    need_conf("describe_configuration", ConfigurationId=DUMMY_CONF)
    expect_error(mq.describe_configuration, "NotFoundException", 404, "configuration-id",
                 ConfigurationId=DUMMY_CONF)


@check("ListConfigurations")
def _():
    need_conf("list_configurations")
    r = mq.list_configurations(MaxResults=100)
    ok_meta(r)
    mine = [c for c in r["Configurations"] if c["Id"] == state["conf"]]
    assert len(mine) == 1, r
    c = mine[0]
    for k in ("Arn", "Name", "Description", "EngineType", "EngineVersion",
              "AuthenticationStrategy", "Created", "LatestRevision"):
        assert k in c, (k, c)


@check("ListConfigurationRevisions")
def _():
    need_conf("list_configuration_revisions", ConfigurationId=DUMMY_CONF)
    r = mq.list_configuration_revisions(ConfigurationId=state["conf"])
    ok_meta(r)
    assert r["ConfigurationId"] == state["conf"], r
    assert [x["Revision"] for x in r["Revisions"]] == [1, 2], r["Revisions"]
    page = mq.list_configuration_revisions(ConfigurationId=state["conf"], MaxResults=1)
    assert len(page["Revisions"]) == 1 and page["NextToken"], page
    rest = mq.list_configuration_revisions(ConfigurationId=state["conf"], MaxResults=1,
                                           NextToken=page["NextToken"])
    assert [x["Revision"] for x in rest["Revisions"]] == [2], rest


@check("DescribeConfigurationRevision")
def _():
    need_conf("describe_configuration_revision", ConfigurationId=DUMMY_CONF, ConfigurationRevision="1")
    r = mq.describe_configuration_revision(ConfigurationId=state["conf"], ConfigurationRevision="2")
    ok_meta(r)
    assert r["ConfigurationId"] == state["conf"] and r["Description"] == "boto3 revision 2", r
    data = base64.b64decode(r["Data"]).decode()
    assert "consumer_timeout = 1800000" in data and "heartbeat = 30" in data, data
    assert "listeners.tcp.default" not in data, f"the disallowed key was kept: {data}"
    assert isinstance(r["Created"], datetime.datetime), r
    first = mq.describe_configuration_revision(ConfigurationId=state["conf"], ConfigurationRevision="1")
    assert base64.b64decode(first["Data"]), first
    expect_error(mq.describe_configuration_revision, "NotFoundException", 404,
                 ConfigurationId=state["conf"], ConfigurationRevision="99")


@check("CreateTags / ListTags on the configuration ARN")
def _():
    need_conf("list_configurations")
    mq.create_tags(ResourceArn=state["conf_arn"], Tags={"team": "core"})
    assert mq.list_tags(ResourceArn=state["conf_arn"])["Tags"] == {"suite": "boto3", "team": "core"}


# --- broker RUNNING: users, update, reboot -------------------------------------------------------
@check("the broker reaches RUNNING")
def _():
    d = wait_state(state["id"], "RUNNING")
    inst = d["BrokerInstances"]
    assert len(inst) == 1 and inst[0]["ConsoleURL"].startswith("http"), inst
    assert any(e.startswith("amqp://") for e in inst[0]["Endpoints"]), inst


USER, USER_PW = "boto3-app", f"App-pass-1-{suffix}"


@check("CreateUser")
def _():
    r = mq.create_user(BrokerId=state["id"], Username=USER, Password=USER_PW)
    ok_meta(r)
    assert set(r) == {"ResponseMetadata"}, r


@check("CreateUser again -> ConflictException")
def _():
    expect_error(mq.create_user, "ConflictException", 409, BrokerId=state["id"], Username=USER, Password=USER_PW)


@check("CreateUser named guest -> BadRequestException username")
def _():
    expect_error(mq.create_user, "BadRequestException", 400, "username",
                 BrokerId=state["id"], Username="guest", Password=USER_PW)


@check("DescribeUser (pending CREATE, then applied)")
def _():
    r = mq.describe_user(BrokerId=state["id"], Username=USER)
    ok_meta(r)
    assert r["BrokerId"] == state["id"] and r["Username"] == USER, r
    assert "Password" not in r, r
    if "Pending" in r:
        assert r["Pending"]["PendingChange"] == "CREATE", r
    deadline = time.monotonic() + WAIT_SECS
    while "Pending" in r:
        assert time.monotonic() < deadline, r
        time.sleep(0.3)
        r = mq.describe_user(BrokerId=state["id"], Username=USER)


@check("ListUsers")
def _():
    r = mq.list_users(BrokerId=state["id"])
    ok_meta(r)
    assert r["BrokerId"] == state["id"] and isinstance(r["MaxResults"], int), r
    assert sorted(u["Username"] for u in r["Users"]) == sorted([ADMIN, USER]), r["Users"]
    page = mq.list_users(BrokerId=state["id"], MaxResults=1)
    assert len(page["Users"]) == 1 and page["NextToken"], page
    rest = mq.list_users(BrokerId=state["id"], MaxResults=1, NextToken=page["NextToken"])
    assert len(rest["Users"]) == 1 and rest["Users"] != page["Users"], rest


@check("UpdateUser")
def _():
    r = mq.update_user(BrokerId=state["id"], Username=USER, Password=f"App-pass-2-{suffix}")
    ok_meta(r)
    d = mq.describe_user(BrokerId=state["id"], Username=USER)
    assert d.get("Pending", {}).get("PendingChange", "UPDATE") == "UPDATE", d


@check("UpdateUser unknown user -> NotFoundException username")
def _():
    expect_error(mq.update_user, "NotFoundException", 404, "username",
                 BrokerId=state["id"], Username="nobody-here", Password=USER_PW)


@check("DeleteUser")
def _():
    r = mq.delete_user(BrokerId=state["id"], Username=USER)
    ok_meta(r)
    deadline = time.monotonic() + WAIT_SECS
    while True:
        users = mq.list_users(BrokerId=state["id"])["Users"]
        if [u["Username"] for u in users] == [ADMIN]:
            break
        pending = [u.get("PendingChange") for u in users if u["Username"] == USER]
        assert pending in ([], ["DELETE"]), users
        assert time.monotonic() < deadline, users
        time.sleep(0.3)
    expect_error(mq.describe_user, "NotFoundException", 404, "username", BrokerId=state["id"], Username=USER)


@check("UpdateBroker (instance type pending until reboot)")
def _():
    r = mq.update_broker(BrokerId=state["id"], HostInstanceType="mq.m7g.large")
    ok_meta(r)
    assert r["BrokerId"] == state["id"] and r["HostInstanceType"] == "mq.m7g.large", r
    d = mq.describe_broker(BrokerId=state["id"])
    assert d["HostInstanceType"] == "mq.m7g.medium" and d["PendingHostInstanceType"] == "mq.m7g.large", d


@check("UpdateBroker with a configuration revision (pending until reboot)")
def _():
    need_conf("list_configurations")
    want = {"Id": state["conf"], "Revision": 2}
    r = mq.update_broker(BrokerId=state["id"], Configuration=want)
    ok_meta(r)
    state["conf_applied"] = True
    d = mq.describe_broker(BrokerId=state["id"])
    assert d.get("Configurations", {}).get("Pending") == want, d.get("Configurations")
    assert r.get("Configuration") == want, f"UpdateBroker reply lacks Configuration: {r}"


@check("UpdateBroker with an unknown instance type -> BadRequestException hostInstanceType")
def _():
    expect_error(mq.update_broker, "BadRequestException", 400, "hostInstanceType",
                 BrokerId=state["id"], HostInstanceType="mq.t2.nano")


@check("DeleteConfiguration of a configuration a broker uses -> ConflictException")
def _():
    need_conf("delete_configuration", ConfigurationId=DUMMY_CONF)
    expect_error(mq.delete_configuration, "ConflictException", 409, ConfigurationId=state["conf"])


@check("RebootBroker applies the pending changes")
def _():
    r = mq.reboot_broker(BrokerId=state["id"])
    ok_meta(r)
    assert set(r) == {"ResponseMetadata"}, r
    d = mq.describe_broker(BrokerId=state["id"])
    assert d["BrokerState"] in ("REBOOT_IN_PROGRESS", "RUNNING"), d["BrokerState"]
    d = wait_state(state["id"], "RUNNING")
    assert d["HostInstanceType"] == "mq.m7g.large" and "PendingHostInstanceType" not in d, d
    if state.get("conf_applied"):
        assert d["Configurations"]["Current"] == {"Id": state["conf"], "Revision": 2}, d["Configurations"]
        assert "Pending" not in d["Configurations"], d["Configurations"]


# --- teardown ------------------------------------------------------------------------------------
@check("DeleteBroker; DescribeBroker -> NotFoundException once gone")
def _():
    r = mq.delete_broker(BrokerId=state["id"])
    ok_meta(r)
    assert r["BrokerId"] == state["id"], r
    d = mq.describe_broker(BrokerId=state["id"])
    assert d["BrokerState"] == "DELETION_IN_PROGRESS", d["BrokerState"]
    wait_gone(state["id"])
    wait_gone(state["id2"])


@check("DeleteConfiguration")
def _():
    need_conf("delete_configuration", ConfigurationId=DUMMY_CONF)
    r = mq.delete_configuration(ConfigurationId=state["conf"])
    ok_meta(r)
    assert r["ConfigurationId"] == state["conf"], r
    expect_error(mq.describe_configuration, "NotFoundException", 404, ConfigurationId=state["conf"])


@check("every one of the 25 operations was sent")
def _():
    missing = sorted(ALL_OPERATIONS - called)
    assert not missing, f"never called: {missing}"


@check("no reply was a 5xx")
def _():
    bad = [(op, s) for op, s in statuses if s >= 500]
    assert not bad, bad


log(f"operations sent: {len(called)}/25; skipped checks: {skipped or 'none'}")
if failed:
    print("failed: " + "; ".join(failed), flush=True)
print(f"{len(passed)} passed, {len(failed)} failed", flush=True)
sys.exit(1 if failed else 0)
