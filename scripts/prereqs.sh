#!/usr/bin/env bash
# Installs what Berth needs from Debian packages, only when missing:
# Postgres (the embedded database), debootstrap (engine images), python3 with venv (the
# aws CLI / boto3 compatibility tests), the ActiveMQ JMS client jars and a JDK (the ActiveMQ
# tests), Chromium and its WebDriver (the console browser tests); Docker must already run.
set -euo pipefail

need=()
ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 && id postgres >/dev/null 2>&1 || need+=(postgresql)
command -v debootstrap >/dev/null 2>&1 || need+=(debootstrap)
command -v curl >/dev/null 2>&1 || need+=(curl)
# The ActiveMQ tests' JMS client (tests/jms): Debian's ActiveMQ client jars (slf4j comes with them), and a JDK.
[ -f /usr/share/java/activemq-client.jar ] && [ -f /usr/share/java/slf4j-simple.jar ] || need+=(libactivemq-java)
command -v javac >/dev/null 2>&1 || need+=(default-jdk-headless)
# The console browser tests (tests/tests/api/console.rs): headless Chromium driven over WebDriver.
command -v chromium >/dev/null 2>&1 || need+=(chromium)
command -v chromedriver >/dev/null 2>&1 || need+=(chromium-driver)
if ! command -v python3 >/dev/null 2>&1; then
  need+=(python3 python3-venv)
elif ! python3 -c 'import ensurepip, venv' >/dev/null 2>&1; then
  need+=(python3-venv)  # Debian splits `python3 -m venv` out of python3
fi

if ((${#need[@]})); then
  echo "[prereqs] installing: ${need[*]}" >&2
  if [ "$(id -u)" -ne 0 ]; then SUDO=sudo; else SUDO=; fi
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
  # Debian starts its own cluster on install; Berth runs a private one instead.
  if command -v pg_lsclusters >/dev/null 2>&1; then
    pg_lsclusters -h 2>/dev/null | awk '$4=="online"{print $1, $2}' | while read -r v c; do
      $SUDO pg_ctlcluster "$v" "$c" stop || true
    done
  fi
fi

if ! docker info >/dev/null 2>&1; then
  echo "[prereqs] the Docker daemon is not reachable (docker info failed)" >&2
  exit 1
fi
