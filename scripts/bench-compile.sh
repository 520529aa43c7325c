#!/usr/bin/env bash
# Benchmark of `bake compile`: the shipped examples, and generated specs with N fleets (N images built, each
# locked, each fleet naming a subnet and a security group like the examples, so that the spec compiles without
# warnings), against the process start (`bake --version`) as the floor.
# Usage: scripts/bench-compile.sh [path/to/bake] [runs]    (build first: cargo build --release)
# Prints the median and minimum wall time per run in milliseconds (process start included), each example's ratio
# of medians to `bake --version` against issue 10's target (1.5×; the ratio of minimums in brackets, steadier on a
# busy machine), and the 100-image median against its 30 ms.
# Uses hyperfine (Debian: apt-get install hyperfine) when it is installed: median and min over RUNS runs after 5
# warm-ups; otherwise a shell loop (the mean, printed as both). On a loaded machine compare ratios, not times.
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
    security-groups "sg-0123456789abcdef0"
    size min=1 max=3 desired=2
    rollout "rolling" max-batch=1 min-in-service=1 pause="PT5M" wait-for-signals=#true
}}''')
    images[f"img{i}"] = entry
open(f"{work}/gen{n}.kdl", "w").write("\n".join(spec) + "\n")
json.dump({"version": 3, "images": images}, open(f"{work}/gen{n}.lock.json", "w"), indent=2)
PY
}

# "median min" milliseconds of one run of "$@" (after a run that must succeed without a word on stderr: a
# warning would be measured too).
time_it() {
  "$@" >/dev/null 2>"$work/stderr" || { echo "failed: $*" >&2; cat "$work/stderr" >&2; exit 1; }
  if grep -v ': compiled ' "$work/stderr" | grep -q .; then echo "warnings from: $*" >&2; cat "$work/stderr" >&2; exit 1; fi
  if command -v hyperfine >/dev/null; then
    local cmd
    cmd=$(printf '%q ' "$@")
    hyperfine -N --warmup 5 --runs "$RUNS" --export-json "$work/h.json" "$cmd" >/dev/null 2>&1
    python3 -c 'import json,sys; r=json.load(open(sys.argv[1]))["results"][0]; print("%.2f %.2f" % (r["median"]*1e3, r["min"]*1e3))' "$work/h.json"
  else
    local start end
    start=$(date +%s%N)
    for _ in $(seq "$RUNS"); do "$@" >/dev/null 2>&1; done
    end=$(date +%s%N)
    awk -v ns=$((end - start)) -v runs="$RUNS" 'BEGIN { printf "%.2f %.2f\n", ns / runs / 1e6, ns / runs / 1e6 }'
  fi
}

ratio() { awk -v a="${1%% *}" -v b="${2%% *}" 'BEGIN { printf "%.2f×", a / b }'; }
# "met" or "NOT met": $1 <= $2.
verdict() { awk -v a="$1" -v b="$2" 'BEGIN { print (a <= b ? "met" : "NOT met") }'; }

floor=$(time_it "$BAKE" --version)
# row WHAT "MEDIAN MIN" RATIO TARGET
row() { printf '%-34s %9s %9s %8s  %s\n' "$1" "${2%% *}" "${2##* }" "$3" "$4"; }
printf '%-34s %9s %9s %8s  %s\n' "what" "median ms" "min ms" "÷start" "target (min÷min)"
row "bake --version (process start)" "$floor" "1.00×" ""
for spec in specs/*.kdl; do
  t=$(time_it "$BAKE" compile "$spec" -o "$work/out")
  r=$(ratio "$t" "$floor")
  m=$(ratio "${t##* }" "${floor##* }")
  row "compile $spec" "$t" "$r" "≤ 1.5×: $(verdict "${r%×}" 1.5) ($m)"
done
for n in 10 100; do
  generate "$n"
  t=$(time_it "$BAKE" compile "$work/gen$n.kdl" -o "$work/out")
  target=""
  [ "$n" = 100 ] && target="≤ 30 ms: $(verdict "${t%% *}" 30)"
  row "compile, $n images + fleets" "$t" "$(ratio "$t" "$floor")" "$target"
done
