#!/usr/bin/env bash
# Installs the OS-level parts the real test layers use, when missing: OpenSSH's sshd, Debian's chromium, Go.
# (llama.cpp's converter is not an OS package: `make setup` fetches it, for `make run` and `make test` alike.)
# Under CI=true a failure here is fatal (no test may skip for a missing component).
set -uo pipefail
PY="${PY:-.venv/bin/python}"
need=()
[ -x /usr/sbin/sshd ] || need+=(openssh-server)
[ -x /usr/bin/chromium ] || need+=(chromium)
command -v ssh-keygen >/dev/null 2>&1 || need+=(openssh-client)
command -v go >/dev/null 2>&1 || need+=(golang-go)  # renders the Ollama Go TEMPLATE in tests
if [ ${#need[@]} -gt 0 ]; then
  echo "[setup] installing OS packages: ${need[*]}"
  if [ "$(id -u)" = 0 ]; then SUDO=""; else SUDO="sudo"; fi
  if ! ( $SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null ); then
    echo "[setup] could not install ${need[*]}" >&2
    [ "${CI:-}" = "true" ] && exit 1
  fi
fi
exit 0
