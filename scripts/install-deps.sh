#!/usr/bin/env bash
# Installs what dmvjnd needs on Debian 12 (bookworm): a C compiler, oneDNN,
# libpng, libjpeg-turbo and libwebp (dmvjnd compress), PyTorch + NumPy for the parity
# checks and the benchmark peer, matplotlib for plots, djpeg/dwebp and PIL as independent decoders, and
# clang (libFuzzer) and valgrind for the robustness checks.
# Run as root (or with sudo). Packages already present are left alone.
set -euo pipefail

pkgs=(build-essential pkg-config libdnnl-dev libpng-dev zlib1g-dev libjpeg62-turbo-dev libwebp-dev
      python3 python3-numpy python3-torch python3-matplotlib python3-pil libjpeg-turbo-progs webp)
if [ "${DMVJND_NO_TORCH:-0}" = 1 ]; then
    pkgs=(build-essential pkg-config libdnnl-dev libpng-dev zlib1g-dev libjpeg62-turbo-dev libwebp-dev)
fi
# scripts/ci-robustness.sh: libFuzzer harnesses (clang and its runtime), valgrind.
pkgs+=(clang libclang-rt-14-dev valgrind)

missing=()
for p in "${pkgs[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
    echo "install-deps: all packages present"
    exit 0
fi
echo "install-deps: installing ${missing[*]}"
SUDO=""
[ "$(id -u)" -ne 0 ] && SUDO="sudo"
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
