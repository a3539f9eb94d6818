# shellcheck shell=bash
# Helpers of the installation tests (sourced after tests/lib.sh): a tiny dataset written
# here and a short training, both by the installed programs.

# i_idx FILE N [H W] OFFSET: an IDX file (magic 0 0 8 ndim, big-endian sizes < 256, the
# bytes from a fixed formula; labels 0..2)
i_byte() { printf '%b' "\\$(printf %03o "$1")"; }
i_idx() {
  local f=$1 n=$2 h=$3 w=$4 i k
  if [ -n "$h" ]; then
    for k in 0 0 8 3 0 0 0 "$n" 0 0 0 "$h" 0 0 0 "$w"; do i_byte "$k"; done
    for ((i = 0; i < n; i++)); do
      for ((k = 0; k < h * w; k++)); do i_byte $(( (i * 37 + k * 101 + i * k * 13 + $5) % 256 )); done
    done
  else
    for k in 0 0 8 1 0 0 0 "$n"; do i_byte "$k"; done
    for ((i = 0; i < n; i++)); do i_byte $(( (i * 7 + $5) % 3 )); done
  fi > "$f"
}

# i_train NAME DATA TRAIN [ENV...]: converts a 24-image dataset of 3x4 images with the
# installed DATA program, trains 2 epochs on 2 ranks with the installed TRAIN program
# (a checkpoint after each), and checks the final metrics line and the checkpoints.
# Runs in the current directory; ENV (VAR=value ...) is the environment of both runs.
i_train() {
  local name=$1 data=$2 train=$3
  shift 3
  i_idx tr-img 24 3 4 0; i_idx tr-lab 24 "" "" 0; i_idx te-img 12 3 4 5; i_idx te-lab 12 "" "" 1
  if ! env "$@" "$data" convert --train-images tr-img --train-labels tr-lab --test-images te-img \
      --test-labels te-lab -o d.h5 > conv.out 2>&1; then
    cat conv.out; t_fail "$name: dlfs-data convert"; return 1
  fi
  if env "$@" mpirun -np 2 "$train" --data d.h5 --model "in(12),dense(8),relu,dense(3)" --batch 8 --epochs 2 \
      --device cpu --seed 3 --checkpoint-dir ck --checkpoint-every 1e --metrics m.jsonl --quiet > tr.out 2>&1 \
      && grep -q '"event": "final"' m.jsonl && [ -n "$(t_digest m.jsonl)" ] && [ -f ck/ckpt-000000006.h5 ]; then
    t_pass "$name: dlfs-data convert, then 2 epochs on 2 ranks, 2 checkpoints (params $(t_digest m.jsonl | cut -c1-12))"
  else
    cat tr.out; ls ck 2>&1; t_fail "$name: the training from the installed copy"; return 1
  fi
}
