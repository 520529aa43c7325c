#!/usr/bin/env bash
# Benchmark of a no-op deploy: `bake deploy --yes` on a stack that is already up to date, against
# `aws cloudformation deploy --no-fail-on-empty-changeset` (awscli v1) with the same template, on the same moto.
# Usage: scripts/bench-deploy.sh [path/to/bake] [runs]
# Needs: a running moto (BAKE_TEST_MOTO_URL, default http://127.0.0.1:5000), curl, python3 with venv.
# awscli v1 is installed from PyPI into its own venv (AWSCLI_VENV, default /srv/awscli) when missing.
# Prints the mean wall time per no-op deploy in milliseconds (process start included) and the ratio.
set -euo pipefail
cd "$(dirname "$0")/.."
BAKE=$(realpath "${1:-target/release/bake}")
RUNS=${2:-20}
URL=${BAKE_TEST_MOTO_URL:-http://127.0.0.1:5000}
AWSCLI_VENV=${AWSCLI_VENV:-/srv/awscli}
[ -x "$BAKE" ] || { echo "build first: cargo build --release (or pass a binary)" >&2; exit 2; }
curl -sf -o /dev/null "$URL/moto-api/" || { echo "no moto at $URL" >&2; exit 2; }
if [ ! -x "$AWSCLI_VENV/bin/aws" ]; then
  python3 -m venv "$AWSCLI_VENV"
  "$AWSCLI_VENV/bin/pip" install -q awscli
fi
export AWS_ENDPOINT_URL=$URL AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test AWS_REGION=us-east-1 \
       AWS_DEFAULT_REGION=us-east-1 AWS_EC2_METADATA_DISABLED=true

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
subnet=$(curl -sf -H "Authorization: AWS4-HMAC-SHA256 Credential=test/20260101/us-east-1/ec2/aws4_request, SignedHeaders=host, Signature=0" \
  "$URL/?Action=DescribeSubnets&Version=2016-11-15" | grep -o '<subnetId>[^<]*' | head -1 | cut -d'>' -f2)
suffix=$$-$(date +%s)
spec() { # $1 = stack name
  cat >"$work/$1.kdl" <<EOF
stack "$1" region="us-east-1"
image "base" {
    base ami="ami-0d27e0fb3bac4d724" arch="x86_64"
}
fleet "web" image="base" instance-type="t3.micro" {
    subnets "$subnet"
    size min=0 max=2 desired=0
    rollout "rolling" max-batch=1 min-in-service=0
}
EOF
}

mean_ms() { # $@ = command; runs it RUNS times
  local start end
  start=$(date +%s%N)
  for _ in $(seq "$RUNS"); do "$@" >/dev/null 2>&1; done
  end=$(date +%s%N)
  echo $(( (end - start) / RUNS / 1000000 ))
}

bake_stack=bench-bake-$suffix
aws_stack=bench-aws-$suffix
spec "$bake_stack"
spec "$aws_stack"
"$BAKE" deploy "$work/$bake_stack.kdl" --yes >/dev/null 2>&1
"$BAKE" compile "$work/$aws_stack.kdl" --out "$work/out" >/dev/null 2>&1
"$AWSCLI_VENV/bin/aws" cloudformation deploy --stack-name "$aws_stack" --template-file "$work/out/template.json" \
  --capabilities CAPABILITY_IAM --no-fail-on-empty-changeset >/dev/null

bake_ms=$(mean_ms "$BAKE" deploy "$work/$bake_stack.kdl" --yes)
aws_ms=$(mean_ms "$AWSCLI_VENV/bin/aws" cloudformation deploy --stack-name "$aws_stack" \
  --template-file "$work/out/template.json" --capabilities CAPABILITY_IAM --no-fail-on-empty-changeset)

"$BAKE" destroy "$work/$bake_stack.kdl" --yes >/dev/null 2>&1 || true
"$AWSCLI_VENV/bin/aws" cloudformation delete-stack --stack-name "$aws_stack" || true

echo "no-op deploy, mean of $RUNS runs against moto at $URL:"
echo "  bake deploy --yes                                   ${bake_ms} ms"
echo "  aws cloudformation deploy --no-fail-on-empty-changeset ${aws_ms} ms"
if [ "$bake_ms" -gt 0 ]; then
  echo "  ratio: $(( aws_ms / bake_ms ))x"
fi
