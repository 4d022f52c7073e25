"""Structural tests of terraform/ over the HCL parsed with python-hcl2.

They assert the rules terraform/README.md gives (least-privilege IAM, the
bucket's lifecycle, versioning, public access and TLS-only policy, the S3
gateway endpoint on every private route table, FoundationDB slot and
coordinator counts per mode, the agents' hand-off lifecycle hook, typed and
described variables, no literal secrets) without a terraform binary or a
provider. Run by scripts/test-deploy.sh: python3 -m pytest tests/terraform
"""

from __future__ import annotations

import math
import re
from functools import lru_cache
from pathlib import Path

import hcl2
import pytest

ROOT = Path(__file__).resolve().parents[2]
TERRAFORM = ROOT / "terraform"
MODULES = TERRAFORM / "modules"
EXAMPLES = TERRAFORM / "examples"
TF_FILES = sorted(TERRAFORM.rglob("*.tf"))


# --- Parsing helpers -------------------------------------------------------


def unquote(value: str) -> str:
    if len(value) >= 2 and value[0] == '"' and value[-1] == '"':
        return value[1:-1]
    return value


def normalize(node):
    """python-hcl2 8 keeps quotes around strings and block labels and marks
    blocks with __is_block__; drop both."""
    if isinstance(node, dict):
        return {unquote(k): normalize(v) for k, v in node.items() if k != "__is_block__"}
    if isinstance(node, list):
        return [normalize(v) for v in node]
    if isinstance(node, str):
        return unquote(node)
    return node


@lru_cache(maxsize=None)
def parse(path: Path) -> dict:
    with path.open() as f:
        return normalize(hcl2.load(f))


def directory(path: Path) -> dict:
    """Every top-level block of a module directory, merged."""
    merged: dict[str, list] = {}
    for tf in sorted(path.glob("*.tf")):
        for key, blocks in parse(tf).items():
            merged.setdefault(key, []).extend(blocks)
    return merged


def blocks(module: dict, kind: str, type_: str) -> dict[str, dict]:
    """{name: body} of the resources (kind="resource") or data sources
    (kind="data") of one type."""
    out = {}
    for entry in module.get(kind, []):
        for t, named in entry.items():
            if t == type_:
                out.update(named)
    return out


def all_blocks(kind: str, type_: str) -> list[tuple[Path, str, dict]]:
    out = []
    for tf in TF_FILES:
        for entry in parse(tf).get(kind, []):
            for t, named in entry.items():
                if t == type_:
                    out.extend((tf, name, body) for name, body in named.items())
    return out


def locals_of(module: dict) -> dict:
    merged = {}
    for entry in module.get("locals", []):
        merged.update(entry)
    return merged


def variables_of(module: dict) -> dict[str, dict]:
    out = {}
    for entry in module.get("variable", []):
        out.update(entry)
    return out


def one(body: dict, key: str) -> dict:
    value = body[key]
    assert isinstance(value, list) and len(value) == 1, f"{key}: expected one block, found {value!r}"
    return value[0]


def statements(document: dict) -> list[dict]:
    """The statements of an aws_iam_policy_document, dynamic ones included."""
    out = list(document.get("statement", []))
    for dynamic in document.get("dynamic", []):
        for name, body in dynamic.items():
            if name == "statement":
                out.extend(body["content"])
    return out


def policy_documents() -> list[tuple[Path, str, dict]]:
    return all_blocks("data", "aws_iam_policy_document")


def resolve_local(value: str, module_locals: dict) -> str:
    match = re.fullmatch(r"\$\{local\.([a-z_0-9]+)\}", value)
    if match:
        return module_locals[match.group(1)]
    return value


IAM = directory(MODULES / "iam")
IAM_LOCALS = locals_of(IAM)
BUCKET = directory(MODULES / "bucket")
NETWORK = directory(MODULES / "network")
FDB = directory(MODULES / "fdb")
AGENTS = directory(MODULES / "agents")


def actions_of(document_name: str) -> set[str]:
    document = blocks(IAM, "data", "aws_iam_policy_document")[document_name]
    return {a for s in statements(document) for a in s["actions"]}


# --- Every file, variable and output --------------------------------------


def test_the_layout_is_complete():
    for module in ["network", "bucket", "iam", "fdb", "agents"]:
        for name in ["main.tf", "variables.tf", "outputs.tf", "versions.tf"]:
            assert (MODULES / module / name).is_file(), f"modules/{module}/{name} is missing"
    for example in ["dev-single-az", "production-3az"]:
        for name in ["main.tf", "variables.tf", "outputs.tf", "versions.tf"]:
            assert (EXAMPLES / example / name).is_file(), f"examples/{example}/{name} is missing"
    assert (TERRAFORM / "README.md").is_file()
    assert list((EXAMPLES / "dev-single-az" / "tests").glob("*.tftest.hcl"))
    assert list((MODULES / "fdb" / "tests").glob("*.tftest.hcl"))


def test_every_tf_file_parses():
    assert len(TF_FILES) >= 20
    for tf in TF_FILES:
        parse(tf)


def test_the_aws_provider_is_pinned_to_5():
    for tf in TERRAFORM.rglob("versions.tf"):
        terraform = parse(tf)["terraform"][0]
        aws = terraform["required_providers"][0]["aws"]
        assert aws["source"] == "hashicorp/aws", tf
        assert aws["version"] == "~> 5.0", tf


def test_every_variable_is_typed_and_described():
    count = 0
    for tf in TF_FILES:
        for entry in parse(tf).get("variable", []):
            for name, body in entry.items():
                count += 1
                assert "type" in body, f"{tf.relative_to(ROOT)}: variable {name} has no type"
                description = body.get("description", "")
                assert len(description) >= 10, f"{tf.relative_to(ROOT)}: variable {name} has no description"
    assert count >= 60


def test_every_output_is_described():
    for tf in TF_FILES:
        for entry in parse(tf).get("output", []):
            for name, body in entry.items():
                assert body.get("description"), f"{tf.relative_to(ROOT)}: output {name} has no description"


@pytest.mark.parametrize("example", ["dev-single-az", "production-3az"])
def test_examples_output_bootstrap_gateway_and_bucket(example):
    outputs = {}
    for entry in directory(EXAMPLES / example).get("output", []):
        outputs.update(entry)
    assert outputs["bootstrap_address"]["value"] == "${module.agents.bootstrap_address}"
    assert outputs["gateway_url"]["value"] == "${module.agents.gateway_url}"
    assert outputs["bucket_name"]["value"] == "${module.bucket.bucket_name}"
    agent_outputs = {}
    for entry in AGENTS["output"]:
        agent_outputs.update(entry)
    assert agent_outputs["bootstrap_address"]["value"].endswith(":${local.kafka_port}")
    assert agent_outputs["gateway_url"]["value"].endswith(":${local.http_port}")


# --- IAM ----------------------------------------------------------------


def test_serving_agents_cannot_delete():
    actions = actions_of("serve")
    assert not any("Delete" in a for a in actions), actions
    assert actions >= {
        "s3:GetObject",
        "s3:PutObject",
        "s3:AbortMultipartUpload",
        "s3:ListMultipartUploadParts",
        "s3:ListBucket",
        "ssm:GetParameter",
    }
    # Only these, the KMS key (when a CMK encrypts the bucket) and S3 Express
    # sessions (when a directory bucket exists).
    assert actions <= {
        "s3:GetObject",
        "s3:PutObject",
        "s3:AbortMultipartUpload",
        "s3:ListMultipartUploadParts",
        "s3:ListBucket",
        "ssm:GetParameter",
        "kms:GenerateDataKey",
        "kms:Decrypt",
        "s3express:CreateSession",
    }
    serve_policy = blocks(IAM, "resource", "aws_iam_role_policy")["serve"]
    assert serve_policy["role"] == "${aws_iam_role.serve.id}"
    assert serve_policy["policy"] == "${data.aws_iam_policy_document.serve.json}"


def test_jobs_agents_can_also_delete_under_the_prefix():
    jobs = blocks(IAM, "data", "aws_iam_policy_document")["jobs"]
    assert jobs["source_policy_documents"] == ["${data.aws_iam_policy_document.serve.json}"]
    deletes = [s for s in statements(jobs) if "s3:DeleteObject" in s["actions"]]
    assert len(deletes) == 1
    assert deletes[0]["actions"] == ["s3:DeleteObject"]
    assert deletes[0]["resources"] == ["${local.objects_arn}"]
    assert IAM_LOCALS["objects_arn"] == "${var.bucket_arn}/${var.prefix}/*"
    jobs_policy = blocks(IAM, "resource", "aws_iam_role_policy")["jobs"]
    assert jobs_policy["role"] == "${aws_iam_role.jobs.id}"
    assert jobs_policy["policy"] == "${data.aws_iam_policy_document.jobs.json}"


def test_object_actions_are_scoped_to_the_prefix_and_listing_has_a_prefix_condition():
    serve = blocks(IAM, "data", "aws_iam_policy_document")["serve"]
    for statement in statements(serve):
        s3_actions = [a for a in statement["actions"] if a.startswith("s3:")]
        if not s3_actions:
            continue
        if s3_actions == ["s3:ListBucket"]:
            assert statement["resources"] == ["${var.bucket_arn}"]
            condition = one(statement, "condition")
            assert condition["test"] == "StringLike"
            assert condition["variable"] == "s3:prefix"
            assert condition["values"] == ["${var.prefix}", "${var.prefix}/*"]
        else:
            assert "s3:ListBucket" not in s3_actions
            assert statement["resources"] == ["${local.objects_arn}"]
    # The prefix can be neither empty nor a wildcard.
    for module in [IAM, AGENTS]:
        condition = one(variables_of(module)["prefix"], "validation")["condition"]
        pattern = re.compile(re.search(r'regex\("([^"]+)"', condition).group(1))
        for good in ["fjord", "team-a/fjord", "prod_1"]:
            assert pattern.search(good), good
        for bad in ["", "*", "fjord/*", "/fjord", "fjord/", "a*b"]:
            assert not pattern.search(bad), bad


def test_ssm_is_read_on_the_cluster_file_parameter_only():
    for _, name, document in policy_documents():
        for statement in statements(document):
            ssm = [a for a in statement["actions"] if a.startswith("ssm:")]
            if ssm:
                assert ssm == ["ssm:GetParameter"], name
                assert statement["resources"] == ["${var.cluster_file_parameter_arn}"], name


def test_no_wildcard_actions_or_resources_in_any_allow_statement():
    seen = 0
    for tf, name, document in policy_documents():
        module_locals = locals_of(directory(tf.parent))
        for statement in statements(document):
            effect = statement.get("effect", "Allow")
            if effect != "Allow":
                continue
            seen += 1
            for action in statement["actions"]:
                assert "*" not in action, f"{tf.relative_to(ROOT)} {name}: wildcard action {action}"
            for principal in statement.get("principals", []):
                assert "*" not in principal["identifiers"], f"{tf.relative_to(ROOT)} {name}: wildcard principal"
            resources = statement.get("resources", [])
            for resource in [resources] if isinstance(resources, str) else resources:
                if resource.startswith("${[for "):
                    # A list of the module's own resource ARNs.
                    assert "*" not in resource, resource
                    continue
                resolved = resolve_local(resource, module_locals)
                assert resolved != "*", f"{tf.relative_to(ROOT)} {name}: resource *"
                # The only "*" allowed: the keys under the agents' prefix.
                stars = resolved.count("*")
                if stars:
                    assert resolved == "${var.bucket_arn}/${var.prefix}/*", f"{name}: {resolved}"
    assert seen >= 8


def test_the_only_deny_is_the_tls_only_bucket_policy():
    denies = [
        (tf, name, s)
        for tf, name, document in policy_documents()
        for s in statements(document)
        if s.get("effect") == "Deny"
    ]
    assert [(tf.parent.name, name) for tf, name, _ in denies] == [("bucket", "tls_only")]


def test_policies_come_from_policy_documents_only():
    for kind in ["aws_iam_role_policy", "aws_iam_policy", "aws_s3_bucket_policy"]:
        for tf, name, body in all_blocks("resource", kind):
            assert re.fullmatch(r"\$\{data\.aws_iam_policy_document\.[a-z_]+\.json\}", body["policy"]), (
                f"{tf.relative_to(ROOT)}: {kind}.{name} must use an aws_iam_policy_document"
            )
    for kind in ["aws_iam_role_policy_attachment", "aws_iam_policy_attachment"]:
        assert not all_blocks("resource", kind), f"{kind}: no managed policies (they hold wildcards)"
    for tf in TF_FILES:
        assert "jsonencode" not in tf.read_text(), f"{tf.relative_to(ROOT)}: write policies as aws_iam_policy_document"


def test_assume_role_is_for_ec2_only():
    assume = blocks(IAM, "data", "aws_iam_policy_document")["assume_ec2"]
    statement = one(assume, "statement")
    assert statement["actions"] == ["sts:AssumeRole"]
    principal = one(statement, "principals")
    assert principal == {"type": "Service", "identifiers": ["ec2.amazonaws.com"]}
    for role in blocks(IAM, "resource", "aws_iam_role").values():
        assert role["assume_role_policy"] == "${data.aws_iam_policy_document.assume_ec2.json}"


def test_lifecycle_completion_is_scoped_to_the_agents_own_groups():
    documents = blocks(AGENTS, "data", "aws_iam_policy_document")
    serve = one(documents["serve_lifecycle"], "statement")
    assert serve["actions"] == ["autoscaling:CompleteLifecycleAction"]
    assert serve["resources"] == "${[for group in aws_autoscaling_group.serve : group.arn]}"
    jobs = one(documents["jobs_lifecycle"], "statement")
    assert jobs["resources"] == ["${aws_autoscaling_group.jobs.arn}"]


# --- The bucket ----------------------------------------------------------


def test_lifecycle_only_aborts_incomplete_multipart_uploads():
    configurations = all_blocks("resource", "aws_s3_bucket_lifecycle_configuration")
    assert len(configurations) == 2  # the bucket and the optional directory bucket
    for tf, name, body in configurations:
        for rule in body["rule"]:
            assert set(rule) <= {"id", "status", "filter", "abort_incomplete_multipart_upload"}, (
                f"{name}: only abort_incomplete_multipart_upload is allowed, found {sorted(rule)}"
            )
            assert rule["status"] == "Enabled"
            abort = one(rule, "abort_incomplete_multipart_upload")
            assert abort["days_after_initiation"] == "${var.abort_incomplete_multipart_days}"
            assert rule["filter"] == [{}], "the rule covers the whole bucket"
    for tf in TF_FILES:
        text = tf.read_text()
        for forbidden in ["expiration {", "noncurrent_version_expiration", "transition {"]:
            assert forbidden not in text, f"{tf.relative_to(ROOT)}: {forbidden}"


def test_versioning_is_not_enabled():
    versionings = all_blocks("resource", "aws_s3_bucket_versioning")
    assert versionings
    for _, name, body in versionings:
        assert one(body, "versioning_configuration")["status"] in ("Disabled", "Suspended"), name


def test_public_access_is_fully_blocked_and_ownership_enforced():
    block = blocks(BUCKET, "resource", "aws_s3_bucket_public_access_block")["this"]
    for flag in ["block_public_acls", "block_public_policy", "ignore_public_acls", "restrict_public_buckets"]:
        assert block[flag] is True, flag
    assert block["bucket"] == "${aws_s3_bucket.this.id}"
    ownership = blocks(BUCKET, "resource", "aws_s3_bucket_ownership_controls")["this"]
    assert one(ownership, "rule")["object_ownership"] == "BucketOwnerEnforced"


def test_encryption_is_kms_or_sse_s3():
    sse = blocks(BUCKET, "resource", "aws_s3_bucket_server_side_encryption_configuration")["this"]
    default = one(one(sse, "rule"), "apply_server_side_encryption_by_default")
    assert default["sse_algorithm"] == "${var.sse_algorithm}"
    variable = variables_of(BUCKET)["sse_algorithm"]
    assert variable["default"] == "aws:kms"
    assert one(variable, "validation")["condition"] == '${contains(["aws:kms", "AES256"], var.sse_algorithm)}'


def test_tls_only_bucket_policy():
    document = blocks(BUCKET, "data", "aws_iam_policy_document")["tls_only"]
    statement = one(document, "statement")
    assert statement["effect"] == "Deny"
    assert statement["actions"] == ["s3:*"]
    assert statement["resources"] == ["${aws_s3_bucket.this.arn}", "${aws_s3_bucket.this.arn}/*"]
    condition = one(statement, "condition")
    assert condition == {"test": "Bool", "variable": "aws:SecureTransport", "values": ["false"]}
    policy = blocks(BUCKET, "resource", "aws_s3_bucket_policy")["this"]
    assert policy["bucket"] == "${aws_s3_bucket.this.id}"
    assert policy["policy"] == "${data.aws_iam_policy_document.tls_only.json}"


def test_optional_express_directory_bucket():
    express = blocks(BUCKET, "resource", "aws_s3_directory_bucket")["express"]
    assert express["count"] == "${var.express_availability_zone_id == null ? 0 : 1}"
    assert express["bucket"].endswith("--x-s3")


# --- The network ---------------------------------------------------------


def test_s3_gateway_endpoint_on_every_private_route_table():
    endpoints = all_blocks("resource", "aws_vpc_endpoint")
    assert len(endpoints) == 1
    _, _, endpoint = endpoints[0]
    assert endpoint["vpc_endpoint_type"] == "Gateway"
    assert endpoint["service_name"].endswith(".s3")
    assert endpoint["route_table_ids"] == "${local.private_route_table_ids}"
    network_locals = locals_of(NETWORK)
    # New VPC: every private route table; existing subnets: every route table
    # any of them uses.
    assert network_locals["private_route_table_ids"] == (
        "${var.create_vpc ? aws_route_table.private[*].id : "
        "distinct([for s in var.existing_private_subnets : s.route_table_id])}"
    )
    route_tables = blocks(NETWORK, "resource", "aws_route_table")
    assert route_tables["private"]["count"] == "${var.create_vpc ? length(var.availability_zones) : 0}"
    # No other private route table exists that the endpoint could miss.
    assert set(route_tables) == {"private", "public"}
    existing = variables_of(NETWORK)["existing_private_subnets"]
    assert "route_table_id" in existing["type"]


def test_the_network_spans_up_to_three_zones():
    for name in ["availability_zones", "existing_private_subnets"]:
        condition = one(variables_of(NETWORK)[name], "validation")["condition"]
        assert "<= 3" in condition and "distinct" in condition, name
    production = variables_of(directory(EXAMPLES / "production-3az"))["availability_zones"]
    assert len(production["default"]) == 3
    assert "length(var.availability_zones) == 3" in one(production, "validation")["condition"]


def _rules(kind: str, group: str) -> list[dict]:
    return [
        body
        for body in blocks(NETWORK, "resource", kind).values()
        if body["security_group_id"] == f"${{aws_security_group.{group}.id}}"
    ]


def test_security_groups():
    agents_in = _rules("aws_vpc_security_group_ingress_rule", "agents")
    assert {r["from_port"] for r in agents_in} == {"${each.value.port}", "${tonumber(each.value)}"}
    for rule in agents_in:
        assert rule["from_port"] == rule["to_port"]
        assert rule.get("cidr_ipv4", "${each.value.cidr}") == "${each.value.cidr}"
    client_ports = locals_of(NETWORK)["client_rules"]
    assert "[local.kafka_port, local.http_port]" in client_ports
    assert "var.allowed_client_cidrs" in client_ports
    network_locals = locals_of(NETWORK)
    assert (network_locals["kafka_port"], network_locals["http_port"], network_locals["fdb_port"]) == (9092, 8080, 4500)
    # FoundationDB: 4500 from the agents and from FoundationDB only, no CIDR.
    fdb_in = _rules("aws_vpc_security_group_ingress_rule", "fdb")
    assert len(fdb_in) == 2
    assert {r["referenced_security_group_id"] for r in fdb_in} == {
        "${aws_security_group.agents.id}",
        "${aws_security_group.fdb.id}",
    }
    for rule in fdb_in:
        assert "cidr_ipv4" not in rule
        assert rule["from_port"] == rule["to_port"] == "${local.fdb_port}"
    # Clients can never be the whole internet.
    condition = one(variables_of(NETWORK)["allowed_client_cidrs"], "validation")["condition"]
    assert '!= "0.0.0.0/0"' in condition
    for kind in ["aws_vpc_security_group_ingress_rule", "aws_vpc_security_group_egress_rule"]:
        for name, rule in blocks(NETWORK, "resource", kind).items():
            assert rule.get("ip_protocol") != "-1", f"{kind}.{name}: all protocols"
            assert rule.get("description"), f"{kind}.{name}: no description"


# --- FoundationDB ---------------------------------------------------------


def _layout_counts(mode: str) -> tuple[int, int, int]:
    layout = locals_of(FDB)["layouts"][mode]
    slots = layout["data_halls"] * layout["slots_per_hall"]
    coordinators = layout["data_halls"] * layout["coordinators_per_hall"]
    return slots, coordinators, layout["data_halls"]


def test_fdb_modes_are_validated():
    mode = variables_of(FDB)["mode"]
    assert one(mode, "validation")["condition"] == '${contains(["double", "three_data_hall"], var.mode)}'
    assert set(locals_of(FDB)["layouts"]) == {"double", "three_data_hall"}


def test_fdb_double_has_three_slots_and_three_coordinators():
    assert _layout_counts("double") == (3, 3, 1)


def test_fdb_three_data_hall_has_nine_slots_three_per_zone_and_nine_coordinators():
    slots, coordinators, halls = _layout_counts("three_data_hall")
    assert (slots, coordinators, halls) == (9, 9, 3)
    assert locals_of(FDB)["layouts"]["three_data_hall"]["slots_per_hall"] == 3
    assert locals_of(FDB)["layouts"]["three_data_hall"]["coordinators_per_hall"] == 3


def test_fdb_slots_follow_the_layout_with_stable_addresses_and_volumes():
    fdb_locals = locals_of(FDB)
    assert "range(local.layout.data_halls * local.layout.slots_per_hall)" in fdb_locals["slots"]
    assert "cidrhost(" in fdb_locals["slots"]
    assert "if local.slots[key].coordinator" in fdb_locals["coordinators"]
    assert fdb_locals["cluster_file"] == '${local.description}:${local.cluster_id}@${join(",", local.coordinators)}'
    assert fdb_locals["fdb_port"] == 4500
    resources = {
        kind: blocks(FDB, "resource", kind)
        for kind in ["aws_network_interface", "aws_ebs_volume", "aws_volume_attachment", "aws_instance"]
    }
    for kind, named in resources.items():
        assert len(named) == 1 and next(iter(named.values()))["for_each"] == "${local.slots}", kind
    assert resources["aws_network_interface"]["slot"]["private_ips"] == ["${each.value.ip}"]
    instance = resources["aws_instance"]["slot"]
    assert one(instance, "network_interface")["network_interface_id"] == "${aws_network_interface.slot[each.key].id}"
    assert one(instance, "metadata_options")["http_tokens"] == "required"
    assert resources["aws_ebs_volume"]["data"]["encrypted"] is True
    attachment = resources["aws_volume_attachment"]["data"]
    assert attachment["volume_id"] == "${aws_ebs_volume.data[each.key].id}"
    assert attachment["instance_id"] == "${aws_instance.slot[each.key].id}"


def test_fdb_cluster_file_is_published_to_ssm():
    parameter = blocks(FDB, "resource", "aws_ssm_parameter")["cluster_file"]
    assert parameter["type"] == "String"
    assert parameter["value"] == "${local.cluster_file}"


def test_fdb_user_data_installs_the_official_release_and_sets_the_data_hall():
    template = (MODULES / "fdb" / "templates" / "fdb-user-data.sh.tftpl").read_text()
    assert "https://github.com/apple/foundationdb/releases/download/$FDB_VERSION" in template
    assert "locality-data-hall = ${data_hall}" in template
    assert "configure new ${redundancy_mode} ${storage_engine}" in template
    instance = blocks(FDB, "resource", "aws_instance")["slot"]
    assert "data_hall          = each.value.availability_zone" in (MODULES / "fdb" / "main.tf").read_text()
    assert "templatefile(" in instance["user_data"]


@pytest.mark.parametrize(("example", "mode"), [("dev-single-az", "double"), ("production-3az", "three_data_hall")])
def test_examples_choose_their_fdb_mode(example, mode):
    modules = {}
    for entry in directory(EXAMPLES / example)["module"]:
        modules.update(entry)
    assert modules["fdb"]["mode"] == mode
    assert set(modules) == {"network", "bucket", "fdb", "iam", "agents"}


# --- Agents ---------------------------------------------------------------


def test_one_serving_group_per_zone_and_a_small_jobs_group():
    groups = blocks(AGENTS, "resource", "aws_autoscaling_group")
    assert set(groups) == {"serve", "jobs"}
    assert groups["serve"]["for_each"] == "${local.subnets_by_az}"
    assert groups["serve"]["vpc_zone_identifier"] == ["${each.value.id}"]
    assert groups["serve"]["target_group_arns"] == [
        "${aws_lb_target_group.kafka.arn}",
        "${aws_lb_target_group.http.arn}",
    ]
    assert groups["jobs"]["max_size"] == "${var.jobs_count}"
    jobs_count = variables_of(AGENTS)["jobs_count"]
    assert one(jobs_count, "validation")["condition"] == "${var.jobs_count >= 1 && var.jobs_count <= 2}"
    templates = blocks(AGENTS, "resource", "aws_launch_template")
    assert one(templates["serve"], "iam_instance_profile")["name"] == "${var.serve_instance_profile_name}"
    assert one(templates["jobs"], "iam_instance_profile")["name"] == "${var.jobs_instance_profile_name}"
    for template in templates.values():
        assert one(template, "metadata_options")["http_tokens"] == "required"
        assert one(one(template, "block_device_mappings"), "ebs")["encrypted"] is True


def test_lifecycle_hooks_outlast_the_agents_shutdown():
    hooks = blocks(AGENTS, "resource", "aws_autoscaling_lifecycle_hook")
    assert set(hooks) == {"serve_terminating", "jobs_terminating"}
    assert hooks["serve_terminating"]["for_each"] == "${aws_autoscaling_group.serve}"
    for name, hook in hooks.items():
        assert hook["lifecycle_transition"] == "autoscaling:EC2_INSTANCE_TERMINATING", name
        assert hook["heartbeat_timeout"] == "${var.lifecycle_heartbeat_timeout_seconds}", name
        assert hook["default_result"] == "CONTINUE", name
        precondition = one(one(hook, "lifecycle"), "precondition")
        assert precondition["condition"] == "${var.lifecycle_heartbeat_timeout_seconds >= local.stop_timeout_seconds}"
    agent_locals = locals_of(AGENTS)
    assert agent_locals["stop_timeout_seconds"] == "${ceil(var.shutdown_timeout_ms / 1000) + 30}"
    variables = variables_of(AGENTS)
    shutdown_ms = variables["shutdown_timeout_ms"]["default"]
    heartbeat = variables["lifecycle_heartbeat_timeout_seconds"]["default"]
    assert shutdown_ms == 20000  # the agent's own default (--shutdown-timeout-ms)
    assert heartbeat >= math.ceil(shutdown_ms / 1000) + 30
    production = {}
    for entry in directory(EXAMPLES / "production-3az")["module"]:
        production.update(entry)
    agents = production["agents"]
    assert agents["lifecycle_heartbeat_timeout_seconds"] >= math.ceil(agents["shutdown_timeout_ms"] / 1000) + 30
    # The unit stops the agent with SIGTERM and waits as long as the hook allows.
    template = (MODULES / "agents" / "templates" / "agent-user-data.sh.tftpl").read_text()
    assert "KillSignal=SIGTERM" in template
    assert "TimeoutStopSec=${stop_timeout_seconds}" in template
    assert "autoscaling/target-lifecycle-state" in template
    assert "complete-lifecycle-action" in template
    # Run from the container image, the agent is stopped the same way: docker
    # sends SIGTERM and waits as long.
    assert "docker stop --signal SIGTERM --time ${stop_timeout_seconds} fjord" in template
    assert "--network host" in template


def test_agent_settings_are_rendered_from_variables():
    template = (MODULES / "agents" / "templates" / "agent-user-data.sh.tftpl").read_text()
    for line in [
        'metadata-url = "fdb:///etc/foundationdb/fdb.cluster"',
        'storage-url = "${storage_url}"',
        'roles = "${roles}"',
        'kafka-listen = "0.0.0.0:${kafka_port}"',
        'http-listen = "0.0.0.0:${http_port}"',
        "shutdown-timeout-ms = ${shutdown_timeout_ms}",
    ]:
        assert line in template, line
    assert "advertised-address" in template
    assert "aws ssm get-parameter" in template
    assert locals_of(AGENTS)["storage_url"] == "s3://${var.bucket_name}/${var.prefix}"
    main = (MODULES / "agents" / "main.tf").read_text()
    assert main.count('roles      = "serve"') == 1 and main.count('roles      = "jobs"') == 1


def test_internal_load_balancer_with_kafka_and_http_listeners():
    lb = blocks(AGENTS, "resource", "aws_lb")["this"]
    assert lb["internal"] is True
    assert lb["load_balancer_type"] == "network"
    listeners = blocks(AGENTS, "resource", "aws_lb_listener")
    assert {l["port"] for l in listeners.values()} == {"${local.kafka_port}", "${local.http_port}"}
    groups = blocks(AGENTS, "resource", "aws_lb_target_group")
    assert set(groups) == {"kafka", "http"}
    for name, group in groups.items():
        check = one(group, "health_check")
        assert check["protocol"] == "HTTP", name
        assert check["path"] == "/readyz", name
    assert one(groups["kafka"], "health_check")["port"] == "${tostring(local.http_port)}"


# --- No literal secrets, and checkov's skips ------------------------------

SECRET_PATTERNS = [
    re.compile(r"AKIA[0-9A-Z]{16}"),
    re.compile(r"ASIA[0-9A-Z]{16}"),
    re.compile(r"(?i)aws_secret_access_key\s*=\s*\"[^\"]"),
    re.compile(r"(?i)(secret_key|access_key)\s*=\s*\"[^\"$]"),
    re.compile(r"(?i)password\s*=\s*\"[^\"$]"),
    re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----"),
    re.compile(r"(?<![0-9A-Za-z/+])[0-9A-Za-z/+]{40}(?![0-9A-Za-z/+])"),
]


def test_no_literal_secrets():
    files = [p for p in TERRAFORM.rglob("*") if p.is_file() and ".terraform" not in p.parts]
    assert len(files) >= 25
    for path in files:
        text = path.read_text()
        for pattern in SECRET_PATTERNS:
            match = pattern.search(text)
            assert match is None, f"{path.relative_to(ROOT)}: looks like a secret: {match.group(0)!r}"
    for tf in TF_FILES:
        for name, body in variables_of(parse(tf)).items():
            if re.search(r"(?i)password|secret|token|access_key", name):
                assert body.get("default") is None, f"{tf.relative_to(ROOT)}: {name} has a default"


def test_every_checkov_skip_has_a_reason():
    lines = (TERRAFORM / ".checkov.yaml").read_text().splitlines()
    start = lines.index("skip-check:")
    skips = 0
    for i, line in enumerate(lines[start + 1 :], start + 1):
        stripped = line.strip()
        if stripped.startswith("- "):
            skips += 1
            reason = lines[i - 1].strip()
            assert reason.startswith("# reason: ") and len(reason) > 40, f"{stripped}: no written reason above it"
        elif stripped and not stripped.startswith("#"):
            break
    assert skips >= 1
