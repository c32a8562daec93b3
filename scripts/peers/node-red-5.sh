#!/usr/bin/env bash
# Node-RED 5 on Node 22 from the npm registry, for the second run of the Node-RED tests
# (scripts/test-node-red-5.js). Installed once into .peers/nr5 (ignored by git) from the
# pinned package.json and lock file beside this script; installed again when they change.
set -euo pipefail
cd "$(dirname "$0")/../.."

source_dir=scripts/peers/nr5
target=.peers/nr5
stamp="$target/.installed"
wanted=$(cat "$source_dir/package.json" "$source_dir/package-lock.json" | sha256sum | cut -d' ' -f1)

if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$wanted" ] && [ -x "$target/node_modules/.bin/node" ]; then
  exit 0
fi
rm -rf "$target"
mkdir -p "$target"
cp "$source_dir/package.json" "$source_dir/package-lock.json" "$target/"
# The node package's install script fetches the Node 22 binary for this platform, also from the registry.
(cd "$target" && npm ci --no-audit --no-fund --foreground-scripts >/dev/null)
"$target/node_modules/.bin/node" --version
echo "$wanted" > "$stamp"
