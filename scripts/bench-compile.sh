#!/usr/bin/env bash
# Benchmark of `bake compile`: the shipped examples, and generated specs with N fleets (N images built, each
# locked), to show growth is linear. Usage: scripts/bench-compile.sh [path/to/bake] [runs]
# Prints the mean wall time per compile in milliseconds (process start included).
set -euo pipefail
cd "$(dirname "$0")/.."
BAKE=${1:-target/release/bake}
RUNS=${2:-50}
[ -x "$BAKE" ] || { echo "build first: cargo build --release (or pass a binary)" >&2; exit 2; }
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

generate() { # $1 = fleets
  python3 - "$1" "$work" <<'PY'
import json, sys
n, work = int(sys.argv[1]), sys.argv[2]
lock = json.load(open("specs/web.lock.json"))
entry = lock["images"]["web"]
spec = ['stack "gen" region="us-east-1"']
images = {}
for i in range(n):
    spec.append(f'''image "img{i}" {{
    base ssm="/aws/service/ami-amazon-linux-latest/al2023-ami-kernel-6.12-x86_64"
    nix version="3.1.1"
    flake "git+https://github.com/acme/infra.git" ref="main" output="systemConfigs.web"
    rpms "git" "jq"
}}
fleet "f{i}" image="img{i}" instance-type="m7i.large" {{
    subnets "subnet-0a1b2c3d4e5f60718"
    size min=1 max=3 desired=2
    rollout "rolling" max-batch=1 min-in-service=1 pause="PT5M" wait-for-signals=#true
}}''')
    images[f"img{i}"] = entry
open(f"{work}/gen{n}.kdl", "w").write("\n".join(spec) + "\n")
json.dump({"version": 1, "images": images}, open(f"{work}/gen{n}.lock.json", "w"), indent=2)
PY
}

time_it() { # $1 = spec
  local start end
  "$BAKE" compile "$1" -o "$work/out" 2>/dev/null   # warm-up, and fail early if it does not compile
  start=$(date +%s%N)
  for _ in $(seq "$RUNS"); do "$BAKE" compile "$1" -o "$work/out" 2>/dev/null; done
  end=$(date +%s%N)
  awk -v ns=$((end - start)) -v runs="$RUNS" 'BEGIN { printf "%.2f", ns / runs / 1e6 }'
}

printf '%-28s %10s\n' "spec" "ms/compile"
for spec in specs/*.kdl; do printf '%-28s %10s\n' "$spec" "$(time_it "$spec")"; done
for n in 10 100; do generate "$n"; printf '%-28s %10s\n' "generated: $n fleets+images" "$(time_it "$work/gen$n.kdl")"; done
