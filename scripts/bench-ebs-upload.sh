#!/usr/bin/env bash
# Benchmark of the NixOS image upload through the EBS direct APIs against a moto server: a sparse 2 GiB raw image
# (DATA_MIB MiB of random blocks spread over it, the rest holes) uploaded by bake's uploader
# (examples/ebs_upload_bench.rs, the code `bake image` runs), and the same file by the `coldsnap` CLI when it is
# on PATH (`cargo install coldsnap`), in one run.
# Usage: BAKE_BENCH_MOTO_URL=http://127.0.0.1:5000 scripts/bench-ebs-upload.sh [SIZE_GIB] [DATA_MIB] [PARALLELISM]
# Prints, per tool, MiB of image per second and the share of blocks skipped as all zeros.
# Note: moto 5.2.5 answers `BlockSize: 512` to StartSnapshot (AWS: 524288). bake always uploads 512 KiB blocks;
# coldsnap uses the answered size, so against moto it makes 1024 times more calls for the same data.
set -euo pipefail
cd "$(dirname "$0")/.."
SIZE_GIB=${1:-2}
DATA_MIB=${2:-64}
PAR=${3:-16}
URL=${BAKE_BENCH_MOTO_URL:?set BAKE_BENCH_MOTO_URL to a moto server, e.g. http://127.0.0.1:5000}
export AWS_ENDPOINT_URL=$URL AWS_REGION=${AWS_REGION:-us-east-1} AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test \
       AWS_EC2_METADATA_DISABLED=true
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
img=$work/image.raw
cargo build -q --example ebs_upload_bench
bench=${CARGO_TARGET_DIR:-target}/debug/examples/ebs_upload_bench
echo "image: ${SIZE_GIB} GiB sparse, ${DATA_MIB} MiB of data blocks; ${PAR} uploads at a time; endpoint $URL"
# The first call warms moto's EBS and EC2 backends up (they load lazily); it is not counted.
"$bench" 1 1 "$PAR" >/dev/null
read -r _ size written blocks skipped secs mibs < <("$bench" "$SIZE_GIB" "$DATA_MIB" "$PAR" "$img")
printf 'bake:     %5d MiB in %6.2f s = %8.1f MiB/s of image; %d of %d blocks written, %.1f%% skipped as zeros\n' \
  "$size" "$secs" "$mibs" "$written" "$blocks" "$skipped"
if command -v coldsnap >/dev/null; then
  start=$(date +%s.%N)
  if timeout "${COLDSNAP_TIMEOUT:-600}" coldsnap --endpoint "$URL" --region "$AWS_REGION" upload --no-progress --omit-zero-blocks \
       --workers "$PAR" "$img" >"$work/coldsnap.out" 2>"$work/coldsnap.err"; then
    end=$(date +%s.%N)
    awk -v s="$start" -v e="$end" -v m="$size" 'BEGIN { printf "coldsnap: %5d MiB in %6.2f s = %8.1f MiB/s of image (snapshot %s)\n", m, e-s, m/(e-s), "'"$(cat "$work/coldsnap.out")"'" }'
  else
    echo "coldsnap: failed or took over ${COLDSNAP_TIMEOUT:-600} s: $(tail -c 300 "$work/coldsnap.err")"
  fi
else
  echo "coldsnap: not on PATH (cargo install coldsnap); not compared"
fi
