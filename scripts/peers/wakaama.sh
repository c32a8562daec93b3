#!/usr/bin/env bash
# Builds Eclipse Wakaama's example programs, the independent LwM2M peers of test/interop-wakaama.test.js,
# from the source snapshots in ../shared/peers (no network), with scripts/peers/wakaama.patch applied.
# Output: .peers/wakaama/bin/{lwm2mclient,lwm2mclient_tinydtls,lightclient,bootstrap_server,lwm2mserver}
# and the patched sources in .peers/wakaama/src. The build is keyed by a hash of the tarballs, the patch
# and this script: when nothing changed, a second run does nothing.
set -euo pipefail
cd "$(dirname "$0")/../.."

PEERS_DIR="${PEERS_SOURCE_DIR:-../shared/peers}"
OUT=.peers/wakaama
PATCH=scripts/peers/wakaama.patch

only() {
  local matches=("$PEERS_DIR"/$1)
  if [ "${#matches[@]}" -ne 1 ] || [ ! -f "${matches[0]}" ]; then
    echo "wakaama.sh: expected exactly one $PEERS_DIR/$1" >&2
    exit 1
  fi
  echo "${matches[0]}"
}
WAKAAMA_TAR=$(only 'wakaama-*.tar.gz')
TINYDTLS_TAR=$(only 'tinydtls-*.tar.gz')

for tool in cmake make cc patch autoreconf sha256sum; do
  command -v "$tool" >/dev/null || { echo "wakaama.sh: $tool is missing (.ci/run installs it)" >&2; exit 1; }
done

KEY=$(cat "$WAKAAMA_TAR" "$TINYDTLS_TAR" "$PATCH" "$0" | sha256sum | cut -d' ' -f1)
PROGRAMS=(lwm2mclient lwm2mclient_tinydtls lightclient bootstrap_server lwm2mserver)
up_to_date() {
  [ "$(cat "$OUT/build-key" 2>/dev/null)" = "$KEY" ] || return 1
  for program in "${PROGRAMS[@]}"; do [ -x "$OUT/bin/$program" ] || return 1; done
}
if up_to_date; then
  echo "wakaama.sh: $OUT is up to date"
  exit 0
fi

echo "wakaama.sh: building Wakaama peers into $OUT"
rm -rf "$OUT"
mkdir -p "$OUT/src" "$OUT/build" "$OUT/bin"
tar -xzf "$WAKAAMA_TAR" -C "$OUT/src"
tar -xzf "$TINYDTLS_TAR" -C "$OUT/src"
SRC="$OUT/src/wakaama"
# Wakaama pins tinydtls as a git submodule; the snapshot's folder for it is empty.
rmdir "$SRC/transport/tinydtls/third_party/tinydtls" 2>/dev/null || true
mv "$OUT/src/tinydtls" "$SRC/transport/tinydtls/third_party/tinydtls"
patch --quiet --batch --forward -p1 -d "$SRC" < "$PATCH"

# One cmake project per example: name, folder, extra cmake options.
build() {
  local name=$1 folder=$2
  shift 2
  local dir="$OUT/build/$name" log="$OUT/build/$name.log"
  if ! { cmake -S "$SRC/$folder" -B "$dir" -DWAKAAMA_UNIT_TESTS=OFF -DCMAKE_BUILD_TYPE=Release "$@" \
      && cmake --build "$dir" --parallel "$(nproc)"; } >"$log" 2>&1; then
    tail -n 40 "$log" >&2
    echo "wakaama.sh: building $name failed (log: $log)" >&2
    exit 1
  fi
}
build lwm2mclient examples/client/udp
build lwm2mclient_tinydtls examples/client/tinydtls
# lightclient is the LwM2M 1.0 device (the full example client does not build as 1.0); SenML is 1.1 only.
build lightclient examples/lightclient -DWAKAAMA_CLIENT_LWM2M_V_1_0=ON -DWAKAAMA_DATA_SENML_JSON=OFF -DWAKAAMA_DATA_SENML_CBOR=OFF
build bootstrap_server examples/bootstrap_server
build lwm2mserver examples/server

for program in "${PROGRAMS[@]}"; do
  cp "$OUT/build/$program/$program" "$OUT/bin/$program"
done
cp "$SRC/examples/bootstrap_server/bootstrap_server.ini" "$OUT/bin/"
echo "$KEY" > "$OUT/build-key"
echo "wakaama.sh: built ${PROGRAMS[*]}"
