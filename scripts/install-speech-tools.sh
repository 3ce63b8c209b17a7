#!/usr/bin/env bash
# Installs the speech synthesisers the demo corpus uses (festival + voices, flite, espeak-ng,
# sox, ffmpeg for mp4 previews). Idempotent: returns at once when everything is present.
set -euo pipefail

PACKAGES=(festival festvox-us-slt-hts festvox-kallpc16k flite espeak-ng sox ffmpeg)

missing=()
for pkg in "${PACKAGES[@]}"; do
    if ! dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed"; then
        missing+=("$pkg")
    fi
done

if [ ${#missing[@]} -eq 0 ]; then
    echo "speech tools: all installed"
    exit 0
fi

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
    SUDO="sudo"
fi
echo "speech tools: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
echo "speech tools: done"
