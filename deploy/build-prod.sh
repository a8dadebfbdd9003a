#!/bin/sh
# Builds what the image runs, from a source tree holding what deploy/Dockerfile's build stage copies:
#   sh deploy/build-prod.sh SRC OUT [pnpm install options, e.g. --offline]
# OUT/node and OUT/router: each service's compiled JavaScript and its production dependencies only
# (`pnpm deploy --prod`: no dev dependencies, no tests, no TypeScript sources), plus OUT/healthcheck.mjs;
# every file read-only. test/src/deploy/image.test.ts runs it on a copy of the repository and starts the
# result. SRC is changed in place (its test files are deleted before compiling).
set -eu
src=$(cd "$1" && pwd)
out=$2
shift 2
pnpm=${PNPM:-$src/tools/pnpm/node_modules/.bin/pnpm}
cd "$src"
"$pnpm" install --frozen-lockfile "$@"
find shared/src node/src router/src -name '*.test.ts' -delete
node_modules/.bin/tsc -b shared node router
mkdir -p "$out"
for service in node router; do
  "$pnpm" --filter "@chat/$service" --prod deploy "$out/$service" "$@"
  shared=$(readlink -f "$out/$service/node_modules/@chat/shared")
  for pkg in "$out/$service" "$shared"; do
    rm -rf "$pkg/src" "$pkg/dist/bin" "$pkg/tsconfig.json" "$pkg/tsconfig.tsbuildinfo" \
      "$pkg/pnpm-lock.yaml" "$pkg/pnpm-workspace.yaml"
    find "$pkg/dist" \( -name '*.d.ts' -o -name '*.map' \) -type f -exec rm -f {} +
  done
done
cp deploy/healthcheck.mjs "$out/healthcheck.mjs"
chmod -R a-w "$out"
