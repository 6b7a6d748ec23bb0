# Sourced by scripts/train_<dataset>.sh: runs train.py under torchrun with the caller's FLAGS array.
# Single node: torchrun --standalone --nproc_per_node=$NGPU.  Multi-node (NNODES > 1): every node runs
# the same script with its own NODE_RANK and the RDZV_ENDPOINT (HOST:PORT) of the rendezvous node.
launch_train() {
  local ngpu="${NGPU:-1}" nnodes="${NNODES:-1}" torchrun="${TORCHRUN:-torchrun}"
  if [ "$nnodes" -gt 1 ]; then
    : "${NODE_RANK:?set NODE_RANK (0..NNODES-1) for multi-node training}"
    : "${RDZV_ENDPOINT:?set RDZV_ENDPOINT=HOST:PORT of the rendezvous node}"
    exec "$torchrun" --nnodes "$nnodes" --node_rank "$NODE_RANK" --nproc_per_node="$ngpu" \
      --rdzv_backend c10d --rdzv_endpoint "$RDZV_ENDPOINT" \
      train.py "${FLAGS[@]}" "$@"
  fi
  exec "$torchrun" --standalone --nproc_per_node="$ngpu" train.py "${FLAGS[@]}" "$@"
}
