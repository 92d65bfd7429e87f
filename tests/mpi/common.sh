# Shared by the mpi test scripts: `source common.sh XWIN WORK [RECORDS]` makes an empty WORK the
# current directory with a synthetic token dataset (data.h5, RECORDS records, 256 by default),
# the MPI environment for root and oversubscription, HERE (this directory), TOL and WTOL (below),
# and defines
#   sft_args D_MODEL D_FF  -> ARGS: 6 SFT steps of a 4-layer GQA model (4 query / 2 KV heads)
#   run NAME DP TP PP [ARGS...]  -> `xwin sft` under that layout into NAME (log NAME.log)
XWIN=$1 WORK=$2
# TOL bounds each step's loss (relative); WTOL the final weights and AdamW moments (relative,
# Frobenius). The moments after 5-6 steps carry more rounding than the losses: under tp=2 every
# row-parallel product sums its K dimension in two halves plus an all-reduce, and the K-split
# reorders the rounding of each gradient element; v squares it and the update divides m by
# sqrt(v), so the final tensors of a correct run sit 1.0-1.3e-5 from one rank (AMD EPYC,
# OpenBLAS's AVX-512 kernels; losses within 2e-8), where the same code had passed 1e-5 on the
# machine it was written on. m is linear in the gradient: a gradient off by 0.1% (a wrong
# scale) moves m by 1e-3, 10x over WTOL; a wrong shard or a missing all-reduce moves it by O(1).
TOL=1e-5
WTOL=1e-4
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
rm -rf "$WORK" && mkdir -p "$WORK" && cd "$WORK"
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_rmaps_base_oversubscribe=1
export OMP_NUM_THREADS=1
"$XWIN" data synth --out data.h5 --records "${3:-256}" >/dev/null
sft_args() {
  ARGS=(--data data.h5 --model.vocab_size 24 --model.d_model "$1" --model.n_layers 4
        --model.n_heads 4 --model.n_kv_heads 2 --model.d_ff "$2" --model.max_seq_len 32
        --train.steps 6 --train.batch_size 8 --train.micro_batch_size 2 --train.lr 2e-3
        --train.warmup_steps 2)
}
run() {
  local name=$1 dp=$2 tp=$3 pp=$4
  shift 4
  mpiexec -n $((dp * tp * pp)) "$XWIN" sft "${ARGS[@]}" --parallel.dp $dp --parallel.tp $tp \
    --parallel.pp $pp --out $name "$@" >$name.log 2>&1 || { echo "FAIL: $name"; cat $name.log; exit 1; }
}
