#!/usr/bin/env bash
# Fetches llama.cpp's own HF -> GGUF converters (convert_hf_to_gguf.py + conversion/ + gguf-py/, and
# convert_lora_to_gguf.py for adapters served unmerged; one pinned
# llama.cpp commit) out of the pinned llama-cpp-python sdist on PyPI into the git-ignored .tools/llama.cpp/,
# and checks the llama.cpp runtime bindings (xllamacpp, a prebuilt wheel pinned in requirements.txt) that the
# export verification runs the GGUF with. Idempotent: a stamp records what was extracted.
# Nothing here is copied into the repository's tracked files.
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PY:-.venv/bin/python}"
LLAMA_CPP_PYTHON_VERSION="0.3.36"          # vendors llama.cpp 0c1e57098
XLLAMACPP_REQ="$(grep -E '^xllamacpp==' requirements.txt || echo 'xllamacpp==2026.10.11549')"
TOOLS=".tools/llama.cpp"
STAMP="$TOOLS/.nursery-stamp"
WANT="llama-cpp-python==$LLAMA_CPP_PYTHON_VERSION"
PIP=("$PY" -m pip --disable-pip-version-check)

if [ -f "$STAMP" ] && [ "$(head -n1 "$STAMP")" = "$WANT" ] && [ -f "$TOOLS/convert_hf_to_gguf.py" ] \
   && [ -f "$TOOLS/convert_lora_to_gguf.py" ] && [ -d "$TOOLS/gguf-py/gguf" ]; then
  echo "[setup] llama.cpp converter present ($WANT)"
else
  start=$(date +%s)
  echo "[setup] fetching llama.cpp's converter from the $WANT sdist"
  tmp="$(mktemp -d)"
  trap 'rm -rf "$tmp"' EXIT
  # --no-binary for this package only: its build backend (scikit-build-core) may come as a wheel, so pip's
  # metadata step takes seconds instead of compiling every build dependency from source.
  "${PIP[@]}" download -q --no-deps --no-binary llama-cpp-python "$WANT" -d "$tmp"
  sdist="$(ls "$tmp"/llama_cpp_python-"$LLAMA_CPP_PYTHON_VERSION".tar.gz)"
  top="llama_cpp_python-$LLAMA_CPP_PYTHON_VERSION/vendor/llama.cpp"
  mkdir -p "$tmp/x"
  # conversion/ exists since the converter was split into per-architecture modules; older trees lack it.
  tar xzf "$sdist" -C "$tmp/x" --wildcards "$top/convert_hf_to_gguf.py" "$top/convert_lora_to_gguf.py" \
      "$top/gguf-py/*" "$top/LICENSE" "$top/conversion/*" 2>/dev/null \
    || tar xzf "$sdist" -C "$tmp/x" --wildcards "$top/convert_hf_to_gguf.py" "$top/convert_lora_to_gguf.py" \
      "$top/gguf-py/*" "$top/LICENSE"
  rm -rf "$TOOLS"
  mkdir -p "$(dirname "$TOOLS")"
  mv "$tmp/x/$top" "$TOOLS"
  secs=$(( $(date +%s) - start ))
  printf '%s\nextracted_at=%s\nseconds=%s\n' "$WANT" "$(date -u +%Y-%m-%dT%H:%M:%SZ)" "$secs" > "$STAMP"
  echo "[setup] llama.cpp converter ready in $TOOLS (${secs}s)"
fi

# The bindings are a normal requirement; install them here too when an older venv predates that line.
if ! "$PY" -c "import xllamacpp" >/dev/null 2>&1; then
  start=$(date +%s)
  echo "[setup] installing llama.cpp bindings ($XLLAMACPP_REQ, prebuilt CPU wheel)"
  "${PIP[@]}" install -q "$XLLAMACPP_REQ"
  echo "[setup] bindings installed ($(( $(date +%s) - start ))s)"
fi
# The converter needs sentencepiece for tokenizer.model (Llama-2/TinyLlama families).
if ! "$PY" -c "import sentencepiece" >/dev/null 2>&1; then
  "${PIP[@]}" install -q "$(grep -E '^sentencepiece' requirements.txt || echo 'sentencepiece>=0.2,<0.3')"
fi
echo "[setup] llama.cpp tools ready"
