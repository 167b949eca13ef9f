#!/usr/bin/env bash
# Download Meta's SAM 2 / SAM 2.1 checkpoints and verify their SHA-256 before keeping them.
#
#   bash scripts/download_checkpoints.sh                 # all four SAM 2.1 checkpoints into ./checkpoints
#   bash scripts/download_checkpoints.sh DIR sam2.1_hiera_tiny sam2_hiera_large
#
# The expected SHA-256 comes from a second, independent place: a line "<sha256>  <file>" in
# $SHA256_FILE (default scripts/checkpoints.sha256, for pinning) or, when the file has no line for it,
# the Git LFS object id that Hugging Face publishes for the same file in facebook/<model> (an LFS oid is
# the file's SHA-256). A mismatch deletes the download and exits 1. Then use:
#   tracker model=sam2.1_hiera_t model.checkpoint=checkpoints/sam2.1_hiera_tiny.pt ...
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
DIR=${1:-checkpoints}
shift || true
MODELS=("$@")
[ ${#MODELS[@]} -gt 0 ] || MODELS=(sam2.1_hiera_tiny sam2.1_hiera_small sam2.1_hiera_base_plus sam2.1_hiera_large)
BASE_URL=${SAM2_BASE_URL:-https://dl.fbaipublicfiles.com/segment_anything_2}
HF_API=${HF_API:-https://huggingface.co/api/models}
SHA256_FILE=${SHA256_FILE:-$here/checkpoints.sha256}
mkdir -p "$DIR"

expected_sha() {  # $1 = file name, $2 = Hugging Face repo
  if [ -f "$SHA256_FILE" ] && grep -q "  $1\$" "$SHA256_FILE"; then
    grep "  $1\$" "$SHA256_FILE" | head -n1 | cut -d' ' -f1
    return
  fi
  curl -fsSL "$HF_API/$2/tree/main" | python3 -c '
import json, sys
name = sys.argv[1]
for entry in json.load(sys.stdin):
    if entry.get("path") == name and entry.get("lfs"):
        print(entry["lfs"]["oid"]); break
' "$1"
}

for model in "${MODELS[@]}"; do
  case "$model" in
    sam2.1_hiera_*) release=092824 ;;
    sam2_hiera_*) release=072824 ;;
    *) echo "error: unknown checkpoint '$model': use sam2.1_hiera_{tiny,small,base_plus,large} or sam2_hiera_*" >&2; exit 2 ;;
  esac
  file="$model.pt"
  repo="facebook/$(echo "$model" | sed 's/_hiera_/-hiera-/; s/base_plus/base-plus/')"
  target="$DIR/$file"
  sha=$(expected_sha "$file" "$repo" || true)
  if [ -z "$sha" ]; then
    echo "error: no SHA-256 known for $file (neither in $SHA256_FILE nor from $repo): not downloading" >&2
    exit 1
  fi
  if [ -f "$target" ] && [ "$(sha256sum "$target" | cut -d' ' -f1)" = "$sha" ]; then
    echo "$target: present, checksum OK"
    continue
  fi
  echo "downloading $file ..."
  curl -fL --retry 3 -o "$target.partial" "$BASE_URL/$release/$file"
  got=$(sha256sum "$target.partial" | cut -d' ' -f1)
  if [ "$got" != "$sha" ]; then
    rm -f "$target.partial"
    echo "error: $file has SHA-256 $got, expected $sha: download deleted" >&2
    exit 1
  fi
  mv "$target.partial" "$target"
  echo "$target: checksum OK ($sha)"
done
