#!/usr/bin/env bash
# GPU acceptance check for a fresh GPU machine with only this repository and the dependencies of
# scripts/install-deps.sh plus the CUDA toolkit (nvcc, cuBLAS, NCCL, compute-sanitizer); no
# network. Runs in under 8 minutes on one H100/H200:
#   1. detects the GPU (nvidia-smi) and its compute capability (else sm_90; XWIN_GPU_ARCHS
#      overrides, e.g. "80;90");
#   2. configures a Release build with CUDA for that architecture in build-gpu/ (XWIN_GPU_BUILD);
#   3. builds only the GPU targets: xwin_gpu_tests, xwin_gpu_engine_tests, xwin_gpu_bench,
#      xwin_nccl_test, xwin_gpu_dp_test and, when the target exists, xwin_gpu_sample_bench
#      (-j$(nproc));
#   4. ctest -L gpu: the CUDA kernels against kernels/cpu, the GPU engine against the CPU engine
#      and Trainer (PARITY lines), NCCL against MPI; a skipped test counts as a failure here;
#      the data-parallel tests (gpu_llama_dp_np*) run in the next step instead;
#   4b. xwin_gpu_dp_test through mpiexec -n min(2, GPUs): gradient accumulation and data-parallel
#      GpuLlama over NCCL against a whole-batch run (its PARITY lines, tolerance 1e-5);
#   5. compute-sanitizer --tool memcheck on xwin_gpu_tests (all kernel tests) and on two engine
#      tests (fp32 tied, bf16 untied);
#   6. xwin_gpu_bench: bf16 training of the ~1B model (B 4, T 2048): tokens/s, MFU, memory;
#   7. xwin_gpu_sample_bench (if the target exists; --json FILE when its --help offers it):
#      the tokens/s figures of its JSON (keys containing tokens_per_s) or of its log;
# then prints one summary table. Every step has a timeout, capped by the overall budget
# (XWIN_GPU_CHECK_BUDGET seconds, default 470).
#
# Exit codes: 0 every step passed; 1 a step failed or timed out (the table says which);
# 77 no GPU on this machine: nothing was built or run ("no GPU: skipped"), the code CTest uses
# for skipped tests.
#
#   bash validation/gpu_check.sh            # logs and JSON in build-gpu/gpu_check/
set -uo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BUILD=${XWIN_GPU_BUILD:-$ROOT/build-gpu}
BUDGET=${XWIN_GPU_CHECK_BUDGET:-470}
BENCH_ARGS=${XWIN_GPU_BENCH_ARGS:---batch 4 --seq 2048 --steps 8 --warmup 2}
SANITIZER_FILTER=${XWIN_GPU_SANITIZER_FILTER:-*}
ENGINE_SANITIZER_FILTER='GpuLlama.Fp32MatchesCpuTied:GpuLlama.Bf16MatchesCpuUntied'
START=$(date +%s)
FAILED=0

say() { printf '[gpu_check %4ds] %s\n' "$(($(date +%s) - START))" "$*"; }

# --- 1. the GPU ------------------------------------------------------------------------------
if ! command -v nvidia-smi >/dev/null 2>&1 || ! nvidia-smi -L >/dev/null 2>&1 ||
  [ -z "$(nvidia-smi -L 2>/dev/null)" ]; then
  echo "gpu_check: no GPU: skipped (nvidia-smi finds no device); exit code 77"
  exit 77
fi
GPU_NAME=$(nvidia-smi --query-gpu=name --format=csv,noheader | head -n 1)
GPU_COUNT=$(nvidia-smi -L | wc -l)
CAP=$(nvidia-smi --query-gpu=compute_cap --format=csv,noheader 2>/dev/null | head -n 1 | tr -d ' .')
[[ $CAP =~ ^[0-9]+$ ]] || CAP=90
CAP=${XWIN_GPU_ARCHS:-$CAP}  # e.g. "80;90" to build for several
NVCC=$(command -v nvcc || true)
[ -z "$NVCC" ] && [ -x /usr/local/cuda/bin/nvcc ] && NVCC=/usr/local/cuda/bin/nvcc
if [ -z "$NVCC" ]; then
  echo "gpu_check: a GPU ($GPU_NAME) but no nvcc: install the CUDA toolkit or put nvcc on PATH"
  exit 1
fi
SANITIZER=$(command -v compute-sanitizer || true)
[ -z "$SANITIZER" ] && [ -x "$(dirname "$NVCC")/compute-sanitizer" ] &&
  SANITIZER=$(dirname "$NVCC")/compute-sanitizer
LOGS=$BUILD/gpu_check
mkdir -p "$LOGS"
say "GPU: $GPU_NAME (sm_$CAP), $GPU_COUNT device(s); nvcc $NVCC; logs in $LOGS"

# Seconds a step may take: its own limit, capped by what is left of the budget.
limit() {
  local left=$((BUDGET - ($(date +%s) - START)))
  [ "$left" -lt "$1" ] && echo "$left" || echo "$1"
}
# run_step NAME SECONDS COMMAND...: output to $LOGS/NAME.log; sets STEP_RC, STEP_SECONDS.
run_step() {
  local name=$1 want=$2 t0
  shift 2
  local secs
  secs=$(limit "$want")
  t0=$(date +%s)
  if [ "$secs" -lt 5 ]; then
    say "$name: no time left in the ${BUDGET}s budget"
    STEP_RC=124
  else
    say "$name (timeout ${secs}s): $*"
    timeout --kill-after=10 "$secs" "$@" >"$LOGS/$name.log" 2>&1
    STEP_RC=$?
  fi
  STEP_SECONDS=$(($(date +%s) - t0))
  if [ "$STEP_RC" -eq 124 ] || [ "$STEP_RC" -eq 137 ]; then
    say "$name: TIMED OUT after ${STEP_SECONDS}s (log: $LOGS/$name.log)"
  elif [ "$STEP_RC" -ne 0 ]; then
    say "$name: FAILED with code $STEP_RC (last lines of $LOGS/$name.log follow)"
    tail -n 25 "$LOGS/$name.log"
  fi
}
status_of() {
  case $1 in
    0) echo "ok" ;;
    124 | 137) echo "TIMEOUT" ;;
    *) echo "FAILED ($1)" ;;
  esac
}

# --- 2, 3. configure and build -----------------------------------------------------------------
run_step configure 120 cmake -B "$BUILD" -S "$ROOT" -DCMAKE_BUILD_TYPE=Release -DXWIN_CUDA=ON \
  -DCMAKE_CUDA_COMPILER="$NVCC" -DCMAKE_CUDA_ARCHITECTURES="$CAP"
CONFIGURE=$(status_of "$STEP_RC")
BUILD_RESULT="not run"
SAMPLE_TARGET=no
if [ "$STEP_RC" -eq 0 ]; then
  TARGETS=(xwin_gpu_tests xwin_gpu_engine_tests xwin_gpu_bench)
  HELP=$(cmake --build "$BUILD" --target help 2>/dev/null)
  grep -qw xwin_nccl_test <<<"$HELP" && TARGETS+=(xwin_nccl_test)
  grep -qw xwin_gpu_dp_test <<<"$HELP" && TARGETS+=(xwin_gpu_dp_test)
  grep -qw xwin_gpu_sample_bench <<<"$HELP" && TARGETS+=(xwin_gpu_sample_bench) && SAMPLE_TARGET=yes
  run_step build 330 cmake --build "$BUILD" -j"$(nproc)" --target "${TARGETS[@]}"
  BUILD_RESULT="$(status_of "$STEP_RC") (${STEP_SECONDS}s: ${TARGETS[*]})"
  [ "$STEP_RC" -eq 0 ] || FAILED=1
else
  FAILED=1
fi
BUILT=$([ "$FAILED" -eq 0 ] && echo yes || echo no)

# --- 4. ctest -L gpu -----------------------------------------------------------------------------
CTEST="not run"
P_F32="n/a" P_BF16="n/a" P_TRAIN="n/a" P_TRAIN_F32="n/a"
if [ "$BUILT" = yes ]; then
  run_step ctest 150 ctest --test-dir "$BUILD" -L gpu -E '^gpu_llama_dp_' -V --timeout 140
  rc=$STEP_RC
  LOG=$LOGS/ctest.log
  total=$(grep -Eo 'tests passed, [0-9]+ tests failed out of [0-9]+' "$LOG" | grep -Eo '[0-9]+$')
  failed=$(grep -Eo '[0-9]+ tests failed' "$LOG" | grep -Eo '^[0-9]+')
  skipped=$(grep -c '\*\*\*Skipped' "$LOG")
  CTEST="$(status_of "$rc"): ${total:-0} tests, ${failed:-?} failed, $skipped skipped (${STEP_SECONDS}s)"
  if [ "$rc" -ne 0 ] || [ "${total:-0}" -eq 0 ] || [ "$skipped" -ne 0 ]; then
    FAILED=1
    [ "$skipped" -ne 0 ] && CTEST="FAILED: ${total:-0} tests, $skipped skipped on a GPU machine (${STEP_SECONDS}s)"
  fi
  # PARITY <kind> <what> norm_rel <e> max_rel <e>: the worst of both errors per group of kinds.
  worst() {
    grep -Eo "PARITY $1[^ ]* [^ ]+ norm_rel [^ ]+ max_rel [^ ]+" "$LOG" |
      awk '{ e = ($5 + 0 > $7 + 0) ? $5 + 0 : $7 + 0; if (e > m) m = e; n++ }
           END { if (n) printf "%.2e (%d checks)", m, n; else print "n/a (no PARITY lines)" }'
  }
  P_F32=$(worst 'fp32_')
  P_BF16=$(worst 'bf16_')
  P_TRAIN=$(worst 'train_bf16_')
  P_TRAIN_F32=$(worst 'train_fp32_')
  grep -q 'PARITY' "$LOG" || FAILED=1
fi

# --- 4b. data parallelism: mpiexec -n min(2, GPUs) ----------------------------------------------
DP="not run"
DP_BIN=$BUILD/tests/mpi/xwin_gpu_dp_test
if [ "$BUILT" = yes ] && [ ! -x "$DP_BIN" ]; then
  DP="n/a (no xwin_gpu_dp_test: NCCL not found)"
elif [ "$BUILT" = yes ]; then
  NP=$((GPU_COUNT < 2 ? GPU_COUNT : 2))
  MPIEXEC=$(sed -n 's/^MPIEXEC_EXECUTABLE:[A-Z]*=//p' "$BUILD/CMakeCache.txt")
  run_step dp 90 env OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 \
    OMPI_MCA_rmaps_base_oversubscribe=1 OMP_NUM_THREADS=1 "${MPIEXEC:-mpiexec}" -n "$NP" "$DP_BIN"
  # Tensors by the norm-relative error (the test's criterion); the element-wise maximum as well.
  DP=$(grep -Eo 'PARITY (dp|accum)[^ ]* [^ ]+ norm_rel [^ ]+ max_rel [^ ]+' "$LOGS/dp.log" 2>/dev/null |
    awk '{ if ($5 + 0 > m) m = $5 + 0; if ($7 + 0 > x) x = $7 + 0; n++ }
         END { if (n) printf "worst %.2e norm-rel, %.2e max-rel (%d checks)", m, x, n; else print "no PARITY lines" }')
  DP="$(status_of "$STEP_RC") on $NP rank(s): $DP (${STEP_SECONDS}s)"
  if [ "$STEP_RC" -ne 0 ] || ! grep -q 'PARITY dp' "$LOGS/dp.log" 2>/dev/null; then FAILED=1; fi
fi

# --- 5. compute-sanitizer ------------------------------------------------------------------------
SAN="not run"
if [ "$BUILT" = yes ]; then
  if [ -z "$SANITIZER" ]; then
    SAN="FAILED: compute-sanitizer not found (CUDA toolkit's bin/)"
    FAILED=1
  else
    run_step sanitizer_kernels 120 "$SANITIZER" --tool memcheck --error-exitcode 99 \
      --print-limit 20 "$BUILD/tests/gpu/xwin_gpu_tests" --gtest_filter="$SANITIZER_FILTER"
    rc_k=$STEP_RC secs=$STEP_SECONDS
    run_step sanitizer_engine 90 "$SANITIZER" --tool memcheck --error-exitcode 99 \
      --print-limit 20 "$BUILD/tests/gpu/xwin_gpu_engine_tests" \
      --gtest_filter="$ENGINE_SANITIZER_FILTER"
    rc_e=$STEP_RC secs=$((secs + STEP_SECONDS))
    errors=$(cat "$LOGS/sanitizer_kernels.log" "$LOGS/sanitizer_engine.log" |
      grep -Eo 'ERROR SUMMARY: [0-9]+' | awk '{s += $3} END {print s + 0}')
    SAN="kernels $(status_of "$rc_k"), engine $(status_of "$rc_e"): $errors errors (${secs}s)"
    [ "$rc_k" -eq 0 ] && [ "$rc_e" -eq 0 ] || FAILED=1
  fi
fi

# --- 6. training benchmark -----------------------------------------------------------------------
TRAIN="not run" MEM="n/a"
if [ "$BUILT" = yes ]; then
  # shellcheck disable=SC2086  # BENCH_ARGS is a list of options
  run_step bench 150 "$BUILD/bench/gpu/xwin_gpu_bench" $BENCH_ARGS --json "$LOGS/gpu_bench.json"
  if [ "$STEP_RC" -eq 0 ] && [ -s "$LOGS/gpu_bench.json" ]; then
    J=$LOGS/gpu_bench.json
    TRAIN=$(python3 -c 'import json, sys
j = json.load(open(sys.argv[1]))
mfu = "MFU n/a" if j["mfu"] is None else "MFU %.1f%%" % (100 * j["mfu"])
print("%.0f tok/s, %s of %.1f TFLOP/s (%s, B %d, T %d)" % (j["tokens_per_s"], mfu,
      j["peak_tflops"], j["precision"], j["batch"], j["seq"]))' "$J") || FAILED=1
    MEM=$(python3 -c 'import json, sys
m = json.load(open(sys.argv[1]))["memory"]
g = 1024.0 ** 3
print("%.1f GiB device high-water (engine %.1f GiB; %.1f GiB in use before)" % (
      m["device_used_peak_bytes"] / g, m["engine_bytes"] / g, m["device_used_before_bytes"] / g))' \
      "$J") || FAILED=1
  else
    TRAIN="$(status_of "$STEP_RC")"
    FAILED=1
  fi
fi

# --- 7. sampling benchmark (another target; optional) --------------------------------------------
SAMPLE="n/a (no xwin_gpu_sample_bench target)"
if [ "$BUILT" = yes ] && [ "$SAMPLE_TARGET" = yes ]; then
  SB=$(find "$BUILD/bench" -type f -name xwin_gpu_sample_bench -perm -u+x | head -n 1)
  # Its options are its own: --json FILE when its --help offers it, else its defaults.
  SB_ARGS=()
  "$SB" --help 2>&1 | grep -q -- '--json' && SB_ARGS=(--json "$LOGS/gpu_sample_bench.json")
  run_step sample_bench 120 "$SB" "${SB_ARGS[@]}"
  if [ "$STEP_RC" -eq 0 ]; then
    SAMPLE=$(python3 - "$LOGS/gpu_sample_bench.json" "$LOGS/sample_bench.log" <<'EOF'
import json, os, re, sys
# Every number under a key containing "tokens_per_s", with the path to it; else the log's
# lines that mention tokens/s.
found = []
def walk(x, path):
    if isinstance(x, dict):
        for k, v in x.items(): walk(v, path + [str(k)])
    elif isinstance(x, list):
        for i, v in enumerate(x):
            tag = str(i)
            if isinstance(v, dict) and "batch" in v: tag = "batch %s" % v["batch"]
            walk(v, path + [tag])
    elif isinstance(x, (int, float)) and "tokens_per_s" in (path[-1] if path else ""):
        found.append("%s %.0f" % (" ".join(path[:-1]) or "tok/s", x))
if os.path.exists(sys.argv[1]) and os.path.getsize(sys.argv[1]) > 0:
    walk(json.load(open(sys.argv[1])), [])
if found:
    print("; ".join(found) + " tok/s")
else:
    lines = [l.strip() for l in open(sys.argv[2]) if re.search(r"tok(en)?s?/s", l)][-4:]
    print("; ".join(lines) if lines else "ran, but reported no tokens/s")
EOF
    )
  else
    SAMPLE="$(status_of "$STEP_RC")"
    FAILED=1
  fi
fi

# --- summary ---------------------------------------------------------------------------------------
row() { printf '%-32s %s\n' "$1" "$2"; }
echo
echo "== xwin GPU check: $GPU_NAME (sm_$CAP), $GPU_COUNT GPU(s), $(($(date +%s) - START)) s =="
row "check" "result"
row "--------------------------------" "--------------------------------------------------"
row "configure (Release, CUDA)" "$CONFIGURE"
row "build" "$BUILD_RESULT"
row "ctest -L gpu" "$CTEST"
row "parity fp32 (max rel, tol 1e-5)" "$P_F32"
row "parity bf16 (max rel, tol 1e-2)" "$P_BF16"
row "10-step loss bf16 (tol 1e-2)" "$P_TRAIN"
row "10-step loss fp32 (tol 1e-4)" "$P_TRAIN_F32"
row "data parallel fp32 (tol 1e-5)" "$DP"
row "compute-sanitizer memcheck" "$SAN"
row "training (xwin_gpu_bench)" "$TRAIN"
row "memory" "$MEM"
row "sampling (gpu_sample_bench)" "$SAMPLE"
row "overall" "$([ "$FAILED" -eq 0 ] && echo PASS || echo FAIL)"
exit "$FAILED"
