#!/usr/bin/env bash
# Build Google's Pub/Sub fake (pstest) into build/pstest from Debian packages only.
#
# Why Debian: CI may only reach apt/PyPI (no Go module proxy, no gcloud SDK), and
# bookworm ships cloud.google.com/go 0.56 plus all its deps (grpc 1.33, genproto,
# golang/protobuf) as golang-*-dev source packages, so a GOPATH-mode build works
# fully offline once apt is done.
#
# Idempotent: apt only runs if something is missing (needs root then); the compile only
# runs if build/pstest is missing or older than main.go / this script.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
out="$root/build/pstest"
pstest_src=/usr/share/gocode/src/cloud.google.com/go/pubsub/pstest

# golang-google-cloud-dev depends on golang-google-grpc-dev, golang-google-genproto-dev
# and golang-github-golang-protobuf-1-5-dev (or -1-3-dev), which is everything pstest imports.
pkgs=(golang-go golang-google-cloud-dev)

if ! command -v go >/dev/null 2>&1 || [ ! -d "$pstest_src" ]; then
    # Both refusals come before anything is changed; make playground then delivers over HTTP instead.
    if ! command -v apt-get >/dev/null 2>&1; then
        echo "build.sh: pstest is built from Debian's ${pkgs[*]}, and this machine has no apt-get" >&2
        exit 1
    fi
    if [ "$(id -u)" -ne 0 ]; then
        echo "build.sh: need root to apt-get install ${pkgs[*]} (once; the build itself needs no root)" >&2
        exit 1
    fi
    echo "build.sh: installing ${pkgs[*]}" >&2
    export DEBIAN_FRONTEND=noninteractive
    start=$SECONDS
    # Fresh images often have empty apt lists; refresh (once) only when a plain install fails.
    apt-get install -y --no-install-recommends "${pkgs[@]}" >/dev/null 2>&1 \
        || { apt-get update >/dev/null && apt-get install -y --no-install-recommends "${pkgs[@]}" >/dev/null; }
    echo "build.sh: apt step took $((SECONDS - start))s" >&2
fi

if [ -x "$out" ] && [ "$out" -nt "$here/main.go" ] && [ "$out" -nt "${BASH_SOURCE[0]}" ]; then
    echo "build.sh: $out is up to date" >&2
    exit 0
fi

mkdir -p "$root/build/gopath" "$root/build/gocache"
start=$SECONDS
# GOPATH mode, no network: private GOPATH first (writable), Debian's tree second.
(
    cd "$here"
    env GO111MODULE=off GOFLAGS= GOPROXY=off GOTOOLCHAIN=local CGO_ENABLED=0 \
        GOPATH="$root/build/gopath:/usr/share/gocode" GOCACHE="$root/build/gocache" \
        go build -o "$out.tmp" .
)
mv -f "$out.tmp" "$out"
echo "build.sh: built $out in $((SECONDS - start))s" >&2
