#!/usr/bin/env bash
# Sets up IoTKETI Mobius, the oneM2M CSE that test/interop-mobius.test.js runs the IPE against:
# extracted from ../shared/peers, patched (scripts/peers/mobius.patch, a reason per change), its
# dependencies installed from the npm registry as locked in scripts/peers/mobius-package-lock.json,
# all in .peers/mobius/ (ignored by git). Does nothing when that is up to date.
# MariaDB is Debian's (mariadb-server, installed by .ci/run); test/support/mobius.js starts a
# database of its own for each test run, on loopback.
set -euo pipefail
cd "$(dirname "$0")/../.."

tarball=$(ls ../shared/peers/mobius-*.tar.gz 2>/dev/null | head -n 1 || true)
if [ -z "$tarball" ]; then
  echo "mobius.sh: no ../shared/peers/mobius-*.tar.gz beside the repository" >&2
  exit 1
fi
dest=.peers/mobius
stamp=$(cat "$tarball" scripts/peers/mobius.sh scripts/peers/mobius.patch scripts/peers/mobius-package-lock.json | sha256sum | cut -c1-16)
if [ "$(cat "$dest/src/.setup-stamp" 2>/dev/null)" = "$stamp" ]; then
  echo "Mobius is set up in $dest/src"
  exit 0
fi

rm -rf "$dest/src"
mkdir -p "$dest"
unpacked=$(mktemp -d "$dest/unpack.XXXXXX")
tar xzf "$tarball" -C "$unpacked"
mv "$unpacked/mobius" "$dest/src"
rmdir "$unpacked"
patch -d "$dest/src" -p1 --quiet --no-backup-if-mismatch < scripts/peers/mobius.patch
cp scripts/peers/mobius-package-lock.json "$dest/src/package-lock.json"
(cd "$dest/src" && npm ci --omit=dev --ignore-scripts --no-audit --no-fund --loglevel=error)
echo "$stamp" > "$dest/src/.setup-stamp"
echo "Mobius set up in $dest/src"
