#!/usr/bin/env bash
# Benchmark of `bake build`: the first build + sign + push of a closure against a second run of the unchanged
# flake (which must push nothing), for a `file://` cache and for an S3 cache on moto (plus a run from an empty
# staging directory, as on a fresh CI runner).
# Usage: MOTO_URL=http://127.0.0.1:5101 scripts/bench-build.sh [path/to/bake] [deps] [MiB per dep]
# Needs: nix (Debian nix-bin is enough: the flake is plain derivations, built offline as root), git, curl, and
# a moto server at MOTO_URL (bake lock reads the AL2023 base parameter from moto's SSM; the S3 cache is moto's).
# The closure: a toplevel referencing DEPS paths of MiB random bytes each (xz cannot shrink them), and a
# stand-in system-manager package. Prints wall seconds per run.
set -euo pipefail
cd "$(dirname "$0")/.."
BAKE=$(realpath "${1:-target/debug/bake}")
DEPS=${2:-20}
MIB=${3:-2}
: "${MOTO_URL:?set MOTO_URL to a running moto server, e.g. http://127.0.0.1:5101}"
[ -x "$BAKE" ] || { echo "build first: cargo build (or pass a binary)" >&2; exit 2; }
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
export NIX_CONFIG="substituters ="
export GIT_AUTHOR_DATE=2026-11-20T10:00:00Z GIT_COMMITTER_DATE=2026-11-20T10:00:00Z
g() { git -c user.name=bench -c user.email=bench@example.invalid -c init.defaultBranch=main "$@"; }
nixf() { nix --extra-experimental-features 'nix-command flakes' "$@"; }
run=$(date +%s%N)

mkdir -p "$work/sm" "$work/infra" "$work/mirror"
cat >"$work/sm/flake.nix" <<'NIX'
{ outputs = { self }: { packages.x86_64-linux.default = derivation {
  name = "system-manager"; system = "x86_64-linux"; builder = "/bin/sh";
  args = [ "-c" "/bin/mkdir -p $out/bin; echo '#!/bin/sh' > $out/bin/system-manager" ]; }; }; }
NIX
(cd "$work/sm" && g init -q && g add -A && g commit -qm sm)
cat >"$work/infra/flake.nix" <<NIX
{ inputs.system-manager.url = "git+file://$work/sm";
  outputs = { self, system-manager }: let
    dep = i: derivation { name = "bench-dep-\${toString i}"; system = "x86_64-linux"; builder = "/bin/sh";
      args = [ "-c" "/bin/dd if=/dev/urandom of=\$out bs=1M count=$MIB status=none; echo $run >> \$out" ]; };
    deps = builtins.genList dep $DEPS;
  in { systemConfigs.web = derivation { name = "toplevel"; system = "x86_64-linux"; builder = "/bin/sh";
    args = [ "-c" "echo \${toString deps} > \$out" ]; }; }; }
NIX
(cd "$work/infra" && g init -q && g add -A && nixf flake lock . 2>/dev/null && g add -A && g commit -qm infra)
echo installer >"$work/mirror/nix-installer-x86_64-linux"
nixf key generate-secret --key-name bench-1 >"$work/secret.key"
pub=$(nixf key convert-secret-to-public <"$work/secret.key")
bucket="bake-bench-$run"
curl -sS --aws-sigv4 aws:amz:us-east-1:s3 --user test:test -X PUT "$MOTO_URL/$bucket" >/dev/null

spec() { # $1 = file, $2 = cache URL
  cat >"$work/$1" <<KDL
stack "bench" region="us-east-1"
image "web" {
    base ssm="/aws/service/ami-amazon-linux-latest/al2023-ami-kernel-6.12-x86_64"
    nix version="3.1.1"
    flake "git+https://git.example.com/acme/infra.git" ref="main" output="systemConfigs.web" checkout="infra"
    closure cache="$2" public-key="$pub"
}
KDL
}
spec file.kdl "file://$work/cache"
spec s3.kdl "s3://$bucket?region=us-east-1"

bake() {
  (cd "$work" && env BAKE_NIX_INSTALLER_MIRROR="file://$work/mirror" AWS_ENDPOINT_URL="$MOTO_URL" \
    AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test AWS_EC2_METADATA_DISABLED=true \
    BAKE_CACHE_DIR="$work/staging" "$BAKE" "$@")
}
timed() { # $1 = label, rest = bake args; prints seconds and bake's summary line
  local label=$1 t0 t1 out
  shift
  t0=$(date +%s.%N)
  out=$(bake "$@" 2>&1) || { echo "$out" >&2; exit 1; }
  t1=$(date +%s.%N)
  printf '%-44s %7.2f s   %s\n' "$label" "$(echo "$t1 - $t0" | bc)" "$(echo "$out" | grep -m1 -- '->' || echo "$out" | tail -1)"
}
bake lock file.kdl >/dev/null 2>&1
bake lock s3.kdl >/dev/null 2>&1
echo "closure: toplevel + $DEPS x $MIB MiB + system-manager stand-in"
timed "file:// first run (build, sign, copy)" build file.kdl --signing-key secret.key
timed "file:// second run, unchanged" build file.kdl --signing-key secret.key
timed "s3 first run (staging copy, upload)" build s3.kdl --signing-key secret.key
timed "s3 second run, unchanged" build s3.kdl --signing-key secret.key
rm -rf "$work/staging"
timed "s3 unchanged, empty staging (fresh runner)" build s3.kdl --signing-key secret.key
timed "s3 --check" build s3.kdl --check
