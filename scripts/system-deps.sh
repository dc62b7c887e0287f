#!/usr/bin/env bash
# Debian packages some features need, installed only when missing and only when
# we may (root with apt-get). Otherwise print what to install and carry on:
# the features that need them say so themselves (the report falls back to a
# warning, the browser test skips with its reason unless required).
#   fonts   fonts-noto-cjk              Chinese text in report charts
#   browser chromium chromium-driver    headless browser test
#   compose docker-compose              `docker-compose config` validation
set -uo pipefail
want=()
for group in "$@"; do
  case "$group" in
    fonts)   fc-list 2>/dev/null | grep -i "Noto Sans CJK" >/dev/null || want+=(fonts-noto-cjk) ;;
    browser) [ -x /usr/bin/chromium ] || want+=(chromium chromium-driver) ;;
    compose) command -v docker-compose >/dev/null 2>&1 || want+=(docker-compose) ;;
    *) echo "system-deps: unknown group $group" >&2; exit 2 ;;
  esac
done
[ ${#want[@]} -eq 0 ] && exit 0
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  echo "system-deps: apt-get install ${want[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >/dev/null 2>&1 || true
  if ! apt-get install -y -qq "${want[@]}" >/dev/null 2>&1; then
    echo "system-deps: could not install ${want[*]}; features that need them will report it" >&2
  fi
else
  echo "system-deps: missing Debian packages: ${want[*]} (sudo apt-get install ${want[*]})" >&2
fi
exit 0
