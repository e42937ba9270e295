#!/usr/bin/env bash
# Build-parity check: the addon is built once with cmake-js (CMakeLists.txt,
# which reads its sources/defines out of binding.gyp) and once with node-gyp
# (binding.gyp), each into its own temp dir, and test/native runs against each
# plus the platform suite (on the simulator) — node-gyp-build picks the build through SEVKIT_PREBUILD. Then the two
# binaries are compared: same exports, same struct layout table, same constants,
# same imported libc symbols (open64 in both, thanks to _FILE_OFFSET_BITS=64).
#
#   scripts/native-parity.sh
#
# build/ and prebuilds/ (what everything else loads) are left untouched.
set -euo pipefail
cd "$(dirname "$0")/.."
root="$PWD"
work="$(mktemp -d "${TMPDIR:-/tmp}/sevkit-parity.XXXXXX")"
trap 'rm -rf "$work"' EXIT

echo "== cmake-js build"
mkdir -p "$work/cmake"
npx cmake-js compile --out "$work/cmake/build" >"$work/cmake.log" 2>&1 || { cat "$work/cmake.log" >&2; exit 1; }
cp package.json "$work/cmake/"

echo "== node-gyp build"
# A private copy of the inputs so node-gyp's fixed build/ dir is not the shared one.
mkdir -p "$work/gyp"
cp -r binding.gyp package.json native "$work/gyp/"
ln -s "$root/node_modules" "$work/gyp/node_modules"
# Through npm, so node-gyp uses npm's nodedir (no header download).
(cd "$work/gyp" && npm run --silent build:gyp >"$work/gyp.log" 2>&1) || { cat "$work/gyp.log" >&2; exit 1; }

status=0
for b in cmake gyp; do
  echo "== test/native and the platform suite against the $b build"
  if ! SEVKIT_PREBUILD="$work/$b" npx vitest run test/native test/platform/platform.test.ts --reporter=dot; then status=1; fi
  SEVKIT_PREBUILD="$work/$b" node -e "
    const p = require('node-gyp-build').path(process.cwd());
    if (!p.startsWith('$work/$b/')) { console.error('loaded the wrong addon: ' + p); process.exit(1); }
    console.log('loaded ' + p);"
done

echo "== comparing the two binaries"
node -e "
  const assert = require('node:assert');
  const a = require('$work/cmake/build/Release/sevkit.node');
  const b = require('$work/gyp/build/Release/sevkit.node');
  assert.deepStrictEqual(Object.keys(a).sort(), Object.keys(b).sort(), 'exports differ');
  assert.deepStrictEqual(a.layout, b.layout, 'struct layouts differ');
  assert.deepStrictEqual(a.constants, b.constants, 'constants differ');
  console.log('exports, layouts and constants identical (' + Object.keys(a).length + ' exports)');
" || status=1
sa="$(nm -D --undefined-only "$work/cmake/build/Release/sevkit.node" | awk '{print $2}' | grep -E '^(open|open64|ioctl|close)@' | sort | tr '\n' ' ')"
sb="$(nm -D --undefined-only "$work/gyp/build/Release/sevkit.node" | awk '{print $2}' | grep -E '^(open|open64|ioctl|close)@' | sort | tr '\n' ' ')"
echo "libc imports: cmake-js [$sa] node-gyp [$sb]"
[ "$sa" = "$sb" ] || { echo "native-parity: the builds import different libc symbols" >&2; status=1; }

[ $status -eq 0 ] && echo "native-parity: OK" || echo "native-parity: FAILED" >&2
exit $status
