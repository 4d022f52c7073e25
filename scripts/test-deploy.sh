#!/usr/bin/env bash
# Offline checks of the deployment files (installs nothing: scripts/install-deps.sh
# does): localstack/compose.yaml against the Compose specification
# (check-jsonschema's built-in schema; no Docker daemon runs here), and terraform/:
#   1. structural tests over the parsed HCL (pytest + python-hcl2),
#   2. checkov with terraform/.checkov.yaml (every skip has a written reason),
#   3. where a terraform binary exists: terraform fmt -check; and where the AWS
#      provider is in a local filesystem mirror (FJORD_TF_PLUGIN_DIR, default
#      /opt/tf-plugins; the registry is not reachable from CI): terraform
#      validate on both examples and terraform test with a mocked provider.
# Steps that cannot run print "SKIPPED: <step> (<why>)". Exits non-zero on any
# failure.
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n==> %s\n' "$*"; }
skipped() { printf 'SKIPPED: %s\n' "$*"; }

started=$SECONDS

step "localstack/compose.yaml against the Compose specification (check-jsonschema)"
python3 -m check_jsonschema --builtin-schema vendor.compose-spec localstack/compose.yaml
bash -n localstack/smoke.sh
skipped "docker compose up and localstack/smoke.sh (no Docker daemon runs here)"

step "terraform structural tests (pytest, python-hcl2)"
python3 -m pytest -q -p no:cacheprovider tests/terraform

step "checkov"
checkov_version="3.3.30"
checkov="${XDG_CACHE_HOME:-$HOME/.cache}/fjord/checkov-$checkov_version/bin/checkov"
if [[ ! -x "$checkov" ]]; then
    echo "checkov $checkov_version is not installed at $checkov: run scripts/install-deps.sh" >&2
    exit 1
fi
nice "$checkov" --config-file terraform/.checkov.yaml -d terraform --skip-download -o cli

if ! command -v terraform >/dev/null 2>&1; then
    skipped "terraform fmt -check, validate and test (no terraform binary: Debian does not package Terraform and HashiCorp's releases are not reachable from here)"
else
    export CHECKPOINT_DISABLE=1 TF_IN_AUTOMATION=1 TF_INPUT=0
    # No user CLI configuration (it could point at a registry or a cache).
    export TF_CLI_CONFIG_FILE=/dev/null

    step "terraform fmt -check -recursive ($(terraform version | head -n1))"
    terraform fmt -check -recursive -diff terraform

    plugin_dir="${FJORD_TF_PLUGIN_DIR:-/opt/tf-plugins}"
    if [[ ! -d "$plugin_dir/registry.terraform.io/hashicorp/aws" ]]; then
        skipped "terraform validate and terraform test (the hashicorp/aws provider is not in $plugin_dir, and registry.terraform.io is not reachable from here to install it)"
    else
        # Work on a copy: init writes .terraform/ and lock files.
        workdir="$(mktemp -d)"
        trap 'rm -rf "$workdir"' EXIT
        cp -r terraform "$workdir/terraform"
        tf_init() {
            terraform -chdir="$1" init -backend=false -plugin-dir="$plugin_dir" -no-color >"$workdir/init.log" 2>&1 \
                || { cat "$workdir/init.log" >&2; return 1; }
        }
        for example in dev-single-az production-3az; do
            step "terraform validate (examples/$example)"
            tf_init "$workdir/terraform/examples/$example"
            terraform -chdir="$workdir/terraform/examples/$example" validate -no-color
        done
        for dir in modules/fdb examples/dev-single-az; do
            step "terraform test ($dir, mocked AWS provider)"
            tf_init "$workdir/terraform/$dir"
            terraform -chdir="$workdir/terraform/$dir" test -no-color
        done
    fi
fi

printf '\ndeployment checks passed in %ss\n' "$((SECONDS - started))"
