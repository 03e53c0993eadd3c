#!/usr/bin/env bash
# Regenerates common/src/gen from proto/ with ts-proto. Reproducible: pinned
# protoc and ts-proto from package-lock.json, no timestamps in the output.
# With --check, fails when the committed code differs from a fresh generation.
set -euo pipefail
cd "$(dirname "$0")/.."
out=common/src/gen
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
npx --no-install protoc \
  --plugin=protoc-gen-ts_proto=node_modules/.bin/protoc-gen-ts_proto \
  --ts_proto_out="$tmp" \
  --ts_proto_opt=outputServices=grpc-js,esModuleInterop=true,importSuffix=.js,forceLong=number,oneof=unions-value,useDate=false,env=node,useOptionals=none,snakeToCamel=true \
  -I proto proto/ferry/v1/*.proto proto/grpc/health/v1/health.proto
if [[ "${1:-}" == "--check" ]]; then
  if ! diff -r "$tmp" "$out" >/dev/null; then
    diff -ru "$out" "$tmp" | head -40 >&2 || true
    echo "generated code in $out is stale: run 'npm run gen' and commit the result" >&2
    exit 1
  fi
  echo "generated code is up to date"
else
  rm -rf "$out"
  mkdir -p "$out"
  cp -r "$tmp"/. "$out"/
  echo "generated $(find "$out" -name '*.ts' | wc -l) files in $out"
fi
