#!/usr/bin/env bash
# The real peers bake's tests run against, installed and started the same way for CI (.ci/run) and developers.
#
#   scripts/peers.sh install   Debian packages (shellcheck, nix-bin, neovim, emacs-nox + elpa-eglot, curl, git,
#                              awscli, openssh-client)
#                              and a Python venv with moto[server], cfn-lint and checkov at pinned versions.
#                              Idempotent: what is already there at the right version is kept.
#   scripts/peers.sh start     starts moto_server on 127.0.0.1:$BAKE_MOTO_PORT unless one answers there already.
#   scripts/peers.sh env       prints the exports the tests read; use: eval "$(scripts/peers.sh env)"
#   scripts/peers.sh stop      stops the moto server `start` started (its pid file), nothing else.
#   scripts/peers.sh status    what is installed, at which version, and whether moto answers.
#
# Settings (environment): BAKE_PEERS_VENV (default /srv/bake-venv as root, ~/.cache/bake-peers/venv otherwise),
# BAKE_MOTO_PORT (default 5000). Not root: apt-get runs through sudo when it is there; without apt-get (not
# Debian) the script says which packages to get and goes on with the venv.
set -euo pipefail

MOTO_VERSION=5.2.5
CFN_LINT_VERSION=1.58.0
CHECKOV_VERSION=3.3.30
# awscli and openssh-client: tests/fetch.rs runs the bootstrap's credential part with the real AWS CLI and ssh.
DEBIAN_PACKAGES=(python3-venv curl git shellcheck nix-bin neovim emacs-nox elpa-eglot awscli openssh-client)

if [ "$(id -u)" = 0 ]; then
  VENV=${BAKE_PEERS_VENV:-/srv/bake-venv}
else
  VENV=${BAKE_PEERS_VENV:-${XDG_CACHE_HOME:-$HOME/.cache}/bake-peers/venv}
fi
PORT=${BAKE_MOTO_PORT:-5000}
URL="http://127.0.0.1:$PORT"
PIDFILE="$VENV/moto-$PORT.pid"
LOG="$VENV/moto-$PORT.log"

say() { printf 'peers: %s\n' "$*" >&2; }

# The version pip has installed in the venv, or nothing.
installed() { "$VENV/bin/pip" show "$1" 2>/dev/null | sed -n 's/^Version: //p' || true; }

install_debian() {
  local missing=()
  for p in "${DEBIAN_PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
  done
  if [ ${#missing[@]} -eq 0 ]; then
    say "Debian packages present: ${DEBIAN_PACKAGES[*]}"
    return
  fi
  if ! command -v apt-get >/dev/null; then
    say "no apt-get (not Debian?): install these yourself: ${missing[*]}"
    return
  fi
  local sudo=()
  if [ "$(id -u)" != 0 ]; then
    command -v sudo >/dev/null || { say "not root and no sudo: install ${missing[*]} as root"; return 1; }
    sudo=(sudo)
  fi
  say "apt-get install ${missing[*]}"
  "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -qq
  # --no-install-recommends: emacs-nox would pull in mail and spelling tools the tests do not use.
  "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null
}

install_venv() {
  if [ "$(installed moto)" = "$MOTO_VERSION" ] && [ "$(installed cfn-lint)" = "$CFN_LINT_VERSION" ] &&
    [ "$(installed checkov)" = "$CHECKOV_VERSION" ]; then
    say "venv $VENV has moto $MOTO_VERSION, cfn-lint $CFN_LINT_VERSION, checkov $CHECKOV_VERSION"
    return
  fi
  [ -x "$VENV/bin/pip" ] || { mkdir -p "$(dirname "$VENV")" && python3 -m venv "$VENV"; }
  say "pip install into $VENV (about two minutes)"
  # One resolve for all three: checkov pins boto3, moto and cfn-lint accept it.
  "$VENV/bin/pip" install -q "moto[server]==$MOTO_VERSION" "cfn-lint==$CFN_LINT_VERSION" \
    "checkov==$CHECKOV_VERSION" boto3
}

answers() { curl -sf -o /dev/null --max-time 2 "$URL/moto-api/"; }

start() {
  if answers; then
    say "moto already answers at $URL"
    return
  fi
  [ -x "$VENV/bin/moto_server" ] || { say "no moto in $VENV: run scripts/peers.sh install"; return 1; }
  "$VENV/bin/moto_server" -H 127.0.0.1 -p "$PORT" >"$LOG" 2>&1 &
  echo $! >"$PIDFILE"
  # moto loads its backends lazily; the dashboard answers in about 3 s (bounded here at 30 s).
  for _ in $(seq 1 150); do
    answers && { say "moto $MOTO_VERSION answers at $URL (pid $(cat "$PIDFILE"), log $LOG)"; return; }
    sleep 0.2
  done
  say "moto did not answer at $URL within 30 s; its log:"
  cat "$LOG" >&2
  return 1
}

stop() {
  [ -f "$PIDFILE" ] || { say "no moto started by this script on port $PORT"; return; }
  local pid
  pid=$(cat "$PIDFILE")
  rm -f "$PIDFILE"
  # Only the moto_server this script started: a stale pid file may name a process that reused the pid.
  if tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -q "moto_server.* -p $PORT"; then
    kill "$pid"
    say "stopped moto (pid $pid)"
  else
    say "moto (pid $pid) is not running any more"
  fi
}

env_exports() {
  cat <<EOF
export PATH="$VENV/bin:\$PATH"
export BAKE_TEST_MOTO_URL="$URL"
export AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test AWS_REGION=us-east-1 AWS_EC2_METADATA_DISABLED=true
export BAKE_TEST_REQUIRE_PEERS=1
EOF
}

status() {
  local v
  for tool in shellcheck nix nvim emacs curl git; do
    v=$({ command -v "$tool" >/dev/null && "$tool" --version 2>/dev/null | grep -m1 -o '[0-9][0-9.]*[0-9]' | head -n1; } || true)
    printf '%-11s %s\n' "$tool" "${v:-missing}"
  done
  for pkg in moto cfn-lint checkov; do
    v=$(installed "$pkg")
    printf '%-11s %s\n' "$pkg" "${v:-missing} (venv $VENV)"
  done
  if answers; then printf '%-11s %s\n' "moto_server" "answers at $URL"; else printf '%-11s %s\n' "moto_server" "not answering at $URL"; fi
}

case "${1:-}" in
  install) install_debian && install_venv ;;
  start) start ;;
  stop) stop ;;
  env) env_exports ;;
  status) status ;;
  *)
    sed -n '2,14p' "$0" | sed 's/^# \{0,1\}//' >&2
    exit 2
    ;;
esac
