#!/usr/bin/env bash
# Installs xwin's build and test dependencies from Debian 12's packages (run as root).
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive
apt-get update -q
apt-get install -y -q --no-install-recommends \
  build-essential cmake pkg-config git ca-certificates \
  libopenmpi-dev openmpi-bin libhdf5-openmpi-dev hdf5-tools \
  zlib1g-dev libboost-program-options-dev libcurl4-openssl-dev nlohmann-json3-dev \
  libsentencepiece-dev libopenblas-dev libopenblas-openmp-dev \
  libgtest-dev libgmock-dev googletest libbenchmark-dev \
  python3 python3-torch python3-h5py python3-numpy python3-sentencepiece \
  slurm-wlm munge gnuplot-nox
