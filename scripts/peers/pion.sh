#!/usr/bin/env bash
# Builds the pion/dtls peer (scripts/peers/pion/main.go) from Debian's Go sources, offline, into .peers/pion/.
# Needs the Debian packages golang-go and golang-github-pion-dtls.v2-dev (.ci/run installs them).
# Prints the path of the binary.
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
source="$root/scripts/peers/pion/main.go"
out="$root/.peers/pion"
binary="$out/pion-dtls-peer"
stamp="$out/source.sha256"
sum="$(sha256sum "$source" | cut -d' ' -f1)"
if [ -x "$binary" ] && [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$sum" ]; then
  echo "$binary"
  exit 0
fi
mkdir -p "$out/src/pion-dtls-peer" "$out/cache"
cp "$source" "$out/src/pion-dtls-peer/main.go"
(
  cd "$out/src/pion-dtls-peer"
  GOPATH="/usr/share/gocode:$out" GO111MODULE=off GOCACHE="$out/cache" GOPROXY=off go build -o "$binary" .
) >&2
echo "$sum" > "$stamp"
echo "$binary"
