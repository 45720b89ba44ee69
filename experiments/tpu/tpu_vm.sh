#!/usr/bin/env bash
# Train on a Cloud TPU VM slice: every worker runs the same command.
#
#   BUCKET=my-bucket experiments/tpu/tpu_vm.sh create    # the slice (spot: SPOT=1)
#   BUCKET=my-bucket experiments/tpu/tpu_vm.sh install   # code, venv, bucket mount: all workers
#   BUCKET=my-bucket experiments/tpu/tpu_vm.sh train [--config.FIELD=VALUE ...]
#   BUCKET=my-bucket experiments/tpu/tpu_vm.sh resume    # after a preemption: recreate, install, train
#   experiments/tpu/tpu_vm.sh delete
#
# Run from the root of the checkout. Settings (environment, with defaults):
#   TPU_NAME=wgan-jax ZONE=us-central2-b ACCELERATOR=v4-16
#   VERSION=tpu-ubuntu2204-base SPOT= (1: a spot slice)
#   BUCKET (train/install/resume): gs://BUCKET holds data/ (fetch.sh's files)
#     and runs/; it is mounted with gcsfuse at ~/gcs/BUCKET on every worker,
#     so the workdir is one directory seen by all of them.
#   CONFIG=configs/fashion_mnist_wgangp.py RUN=fmnist_wgangp
# See experiments/tpu/README.md. Not run from this environment (no Google
# Cloud access here): the commands follow the Cloud TPU documentation.
set -euo pipefail

TPU_NAME=${TPU_NAME:-wgan-jax}
ZONE=${ZONE:-us-central2-b}
ACCELERATOR=${ACCELERATOR:-v4-16}
VERSION=${VERSION:-tpu-ubuntu2204-base}
CONFIG=${CONFIG:-configs/fashion_mnist_wgangp.py}
RUN=${RUN:-fmnist_wgangp}
MOUNT='$HOME/gcs/'"${BUCKET:-}"

on_all_workers() {
  gcloud compute tpus tpu-vm ssh "$TPU_NAME" --zone="$ZONE" --worker=all \
    --command="$1"
}

need_bucket() {
  if [[ -z "${BUCKET:-}" ]]; then
    echo "set BUCKET=NAME (gs://NAME holds data/ and runs/)" >&2
    exit 1
  fi
}

create() {
  gcloud compute tpus tpu-vm create "$TPU_NAME" --zone="$ZONE" \
    --accelerator-type="$ACCELERATOR" --version="$VERSION" \
    ${SPOT:+--spot}
}

install() {
  need_bucket
  # The checkout as it is here, on every worker.
  gcloud compute tpus tpu-vm scp --recurse --worker=all --zone="$ZONE" \
    "$(pwd)" "$TPU_NAME":~/wgan_jax_src
  on_all_workers "set -e
    rm -rf ~/wgan_jax && mv ~/wgan_jax_src ~/wgan_jax && cd ~/wgan_jax
    python3 -m venv .venv && . .venv/bin/activate
    pip install -q -e . 'jax[tpu]'
    if ! command -v gcsfuse >/dev/null; then
      curl -s https://packages.cloud.google.com/apt/doc/apt-key.gpg |
        sudo tee /usr/share/keyrings/cloud.google.asc >/dev/null
      echo \"deb [signed-by=/usr/share/keyrings/cloud.google.asc] https://packages.cloud.google.com/apt gcsfuse-\$(lsb_release -cs) main\" |
        sudo tee /etc/apt/sources.list.d/gcsfuse.list >/dev/null
      sudo apt-get -q update && sudo apt-get -q install -y gcsfuse
    fi
    mkdir -p $MOUNT
    mountpoint -q $MOUNT || gcsfuse --implicit-dirs $BUCKET $MOUNT"
}

train() {
  need_bucket
  # The same command on every worker: Cloud TPU is detected, process 0's
  # host is the coordinator (wgan_jax/distributed.py). The same command
  # again resumes from the latest checkpoint in the bucket.
  on_all_workers "cd ~/wgan_jax && . .venv/bin/activate &&
    WGAN_JAX_DATA_DIR=$MOUNT/data python -m wgan_jax.main \
      --config=$CONFIG --workdir=$MOUNT/runs/$RUN $*"
}

resume() {
  local state
  state=$(gcloud compute tpus tpu-vm describe "$TPU_NAME" --zone="$ZONE" \
          --format='value(state)' 2>/dev/null || echo MISSING)
  if [[ "$state" != READY ]]; then
    # A preempted slice cannot be restarted: make a new one.
    [[ "$state" == MISSING ]] || delete
    create
    install
  fi
  train "$@"
}

delete() {
  gcloud compute tpus tpu-vm delete "$TPU_NAME" --zone="$ZONE" --quiet
}

command=${1:-}
shift || true
case "$command" in
  create|install|train|resume|delete) "$command" "$@" ;;
  *) sed -n '2,22p' "$0"; exit 1 ;;
esac
