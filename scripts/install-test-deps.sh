#!/usr/bin/env bash
# Installs what the integration tests drive: kcat (apt) and the Python Kafka clients (pip, in a
# venv under target/). Idempotent; quick when everything is already there.
set -euo pipefail
cd "$(dirname "$0")/.."

need_apt=()
command -v kcat >/dev/null 2>&1 || need_apt+=(kcat)
command -v cargo-nextest >/dev/null 2>&1 || cargo install --locked cargo-nextest
if [ ${#need_apt[@]} -gt 0 ]; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq "${need_apt[@]}" >/dev/null
fi

venv=target/pyenv
if [ ! -x "$venv/bin/python" ]; then
  python3 -m venv "$venv"
fi
if ! "$venv/bin/python" -c 'import confluent_kafka, kafka' >/dev/null 2>&1; then
  "$venv/bin/pip" install -q --disable-pip-version-check confluent-kafka kafka-python
fi
