#!/usr/bin/env bash
# The service under an external load tool, beside `./securemnist bench serve`: starts `./securemnist serve` as a user
# would (signed model, API key, validation, audit log, JSON logs, detector on unless --on-adversarial is given), then
# runs wrk closed loop with single-image PNG predictions (test digit 0) --runs times and prints each run and the median.
#
# Usage: bench/serve-wrk.sh [--model models/baseline] [--seconds 10] [--connections 64] [--runs 3] [-- serve flags...]
# Example: bench/serve-wrk.sh -- --on-adversarial off      # the detector-off figure beside the default's
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
model=models/baseline seconds=10 connections=64 runs=3
serve_flags=()
while [ $# -gt 0 ]; do
  case "$1" in
    --model) model="$2"; shift 2 ;;
    --seconds) seconds="$2"; shift 2 ;;
    --connections) connections="$2"; shift 2 ;;
    --runs) runs="$2"; shift 2 ;;
    --) shift; serve_flags=("$@"); break ;;
    -h|--help) sed -n '2,8p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "serve-wrk: unknown option '$1' (see --help)" >&2; exit 2 ;;
  esac
done
for n in "$seconds" "$connections" "$runs"; do
  [[ "$n" =~ ^[1-9][0-9]*$ ]] || { echo "serve-wrk: --seconds, --connections and --runs take positive whole numbers (got '$n')" >&2; exit 2; }
done
command -v wrk >/dev/null || { echo "serve-wrk: wrk is not installed (apt-get install wrk)" >&2; exit 1; }
[ -f "$root/$model/manifest.json" ] || [ -f "$model/manifest.json" ] || { echo "serve-wrk: no model package at $model (./securemnist train --out $model)" >&2; exit 1; }

work="$(mktemp -d)"
server=""
cleanup() { [ -n "$server" ] && kill "$server" 2>/dev/null && wait "$server" 2>/dev/null; rm -rf "$work"; }
trap cleanup EXIT
cd "$root"
key="$(./securemnist api-keys add --file "$work/keys.json" --id load --rpm 1000000 | tail -n 1)"
# Test digit 0 as an 8-bit grey PNG, written with the standard library only.
python3 - "$root/data/mnist/t10k-images-idx3-ubyte" "$work/digit.png" <<'PY'
import struct, sys, zlib
with open(sys.argv[1], "rb") as f:
    f.seek(16)
    pixels = f.read(784)
rows = b"".join(b"\x00" + pixels[r * 28:(r + 1) * 28] for r in range(28))
def chunk(kind, data):
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
png = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", 28, 28, 8, 0, 0, 0, 0)) + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b"")
open(sys.argv[2], "wb").write(png)
PY
port="$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
metrics="$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
./securemnist serve --model "$model" --api-keys "$work/keys.json" --audit-dir "$work/audit" --audit-key "$work/audit.key" \
  --urls "http://127.0.0.1:$port" --metrics-urls "http://127.0.0.1:$metrics/metrics" --address-rate 0 "${serve_flags[@]}" > "$work/serve.log" 2>&1 &
server=$!
for _ in $(seq 1 300); do
  curl -fs "http://127.0.0.1:$port/readyz" >/dev/null 2>&1 && break
  kill -0 "$server" 2>/dev/null || { echo "serve-wrk: serve exited:" >&2; tail -n 20 "$work/serve.log" >&2; exit 1; }
  sleep 1
done
curl -fs "http://127.0.0.1:$port/readyz" >/dev/null || { echo "serve-wrk: serve was not ready after 300 s" >&2; exit 1; }
export SECUREMNIST_KEY="$key" SECUREMNIST_PNG="$work/digit.png"
wrk -t 1 -c "$connections" -d 2s -s bench/wrk/predict.lua "http://127.0.0.1:$port" >/dev/null   # warm-up
rates=() refused=()
for run in $(seq 1 "$runs"); do
  echo "== run $run/$runs: wrk -t 1 -c $connections -d ${seconds}s --latency, serve ${serve_flags[*]:-(defaults)}"
  wrk -t 1 -c "$connections" -d "${seconds}s" --latency -s bench/wrk/predict.lua "http://127.0.0.1:$port" | tee "$work/run-$run.txt"
  rate="$(awk '/^Requests\/sec:/ {print $2}' "$work/run-$run.txt")"
  if grep -q "non-2xx/3xx responses: 0$" "$work/run-$run.txt"; then
    rates+=("$rate")
  else
    echo "serve-wrk: run $run had refused requests; its rate ($rate/s) is not throughput and is left out of the median" >&2
    refused+=("$rate")
  fi
done
[ ${#rates[@]} -gt 0 ] || { echo "serve-wrk: every run had refused requests; no throughput figure" >&2; exit 1; }
median="$(printf '%s\n' "${rates[@]}" | sort -g | awk '{a[NR] = $1} END {print a[int((NR + 1) / 2)]}')"
echo "requests/s per run: ${rates[*]}; median: $median${refused:+ (left out, with refusals: ${refused[*]})}"
