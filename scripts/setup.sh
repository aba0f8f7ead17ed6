#!/usr/bin/env bash
# Set up voice2anime on a fresh Debian/Ubuntu machine with Python 3.11+:
# system packages, a virtualenv in .venv, PyTorch, then the project with its image engine
# (`voice2anime[engine]`: in-process drawing, `worker`, `generate`). A bot that only runs with
# ENGINE=redis needs neither: `pip install -e .` is the bot, speech, database and Redis client, no torch.
#   bash scripts/setup.sh        # to run the bot
#   bash scripts/setup.sh dev    # + test dependencies (espeak-ng, ffmpeg, PostgreSQL, Redis, Chromium, test Whisper model)
set -euo pipefail
cd "$(dirname "$0")/.."
mode="${1:-run}"

apt_packages=()
if [ "$mode" = dev ]; then
  command -v espeak-ng >/dev/null || apt_packages+=(espeak-ng)
  command -v ffmpeg >/dev/null || apt_packages+=(ffmpeg)
  ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || apt_packages+=(postgresql)
  command -v redis-server >/dev/null || apt_packages+=(redis-server)
  # the studio's browser test (Playwright drives Debian's Chromium; it never downloads a browser),
  # with fonts for its Chinese and emoji so its screenshots are legible
  command -v chromium >/dev/null || apt_packages+=(chromium)
  fc-list :lang=zh 2>/dev/null | grep -q . || apt_packages+=(fonts-wqy-zenhei)
  fc-list 2>/dev/null | grep -qi "color emoji" || apt_packages+=(fonts-noto-color-emoji)
fi
if [ "${#apt_packages[@]}" -gt 0 ]; then
  sudo=""; [ "$(id -u)" -ne 0 ] && sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${apt_packages[@]}" >/dev/null
fi

python3 -m venv .venv
pip=(.venv/bin/python -m pip --disable-pip-version-check -q)
"${pip[@]}" install --upgrade pip
# torch first, pinned: the engine extra then accepts it instead of pulling another (CUDA) build.
"${pip[@]}" install "torch==${TORCH_VERSION:-2.13.0}"
if [ "$mode" = dev ]; then
  "${pip[@]}" install -e ".[engine,dev]"
else
  "${pip[@]}" install -e ".[engine]"
fi
echo "voice2anime is set up in .venv ($mode)."
