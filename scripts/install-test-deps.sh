#!/usr/bin/env bash
# Installs what the integration tests (tests/, crate spate-tests) drive and build:
#  - kcat (apt), the command-line Kafka client the kcat tests run;
#  - nftables and iproute2 (apt), for the link-cut and nemesis tests (namespaces, nft rules);
#  - a C toolchain, make, pkg-config and zlib headers (apt), which the `rdkafka` crate needs to
#    build librdkafka from source (default features: no ssl, no sasl, no cmake);
#  - python3-venv (apt) and, in the venv target/pyenv, the Python clients confluent-kafka and
#    kafka-python (pip);
#  - cargo-nextest, the test runner.
# Idempotent; quick when everything is already there (no network access then).
set -euo pipefail
cd "$(dirname "$0")/.."

need_apt=()
command -v kcat >/dev/null 2>&1 || need_apt+=(kcat)
command -v nft >/dev/null 2>&1 || need_apt+=(nftables)
# The nemesis tests: network namespaces, veth pairs and a bridge (ip), a tmpfs data dir (mount).
command -v ip >/dev/null 2>&1 || need_apt+=(iproute2)
command -v mountpoint >/dev/null 2>&1 || need_apt+=(util-linux)
command -v make >/dev/null 2>&1 || need_apt+=(make)
command -v cc >/dev/null 2>&1 || need_apt+=(gcc)
command -v c++ >/dev/null 2>&1 || need_apt+=(g++)
command -v pkg-config >/dev/null 2>&1 || need_apt+=(pkg-config)
pkg-config --exists zlib 2>/dev/null || need_apt+=(zlib1g-dev)
command -v python3 >/dev/null 2>&1 || need_apt+=(python3)
python3 -c 'import venv, ensurepip' >/dev/null 2>&1 || need_apt+=(python3-venv)
if [ ${#need_apt[@]} -gt 0 ]; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq "${need_apt[@]}" >/dev/null
fi
command -v cargo-nextest >/dev/null 2>&1 || cargo install --locked cargo-nextest

venv=target/pyenv
if ! "$venv/bin/python" -m pip --version >/dev/null 2>&1; then
  python3 -m venv --clear "$venv"
fi
if ! "$venv/bin/python" -c 'import confluent_kafka, kafka' >/dev/null 2>&1; then
  "$venv/bin/python" -m pip install -q --disable-pip-version-check confluent-kafka kafka-python
fi
