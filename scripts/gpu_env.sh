# Source this on the device machine (carry .whl and .gpu): installs the carried wheels once into
# /tmp/site and sets the environment every GPU script here expects.
if [ ! -f /tmp/site/.installed ]; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
    && touch /tmp/site/.installed || return 1
fi
export PYTHONPATH=/tmp/site:$PWD:$PWD/scripts HF_HUB_OFFLINE=1 PYTHONUNBUFFERED=1 TOKENIZERS_PARALLELISM=false
export OUT=${OUT:-/tmp/out}
mkdir -p "$OUT"
