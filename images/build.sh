#!/usr/bin/env bash
# Build Berth engine images without pulling anything from a registry.
#
#   images/build.sh ENGINE VERSION AGENT_BINARY
#   images/build.sh rabbitmq 4.0 target/release/broker-agent
#
# Produces:
#   berth/ENGINE-base:VERSION  debootstrap'd Debian rootfs with the engine packages, `docker import`ed
#   berth/ENGINE:VERSION       thin `docker build` layer on top: the agent binary as ENTRYPOINT
# Each image carries LABEL berth.inputs-hash; a step is skipped when the existing image's label equals
# the hash of its inputs. See images/README.md.
#
# Environment:
#   BERTH_BUILD_DIR        work dir for the rootfs and the .deb cache (default: $REPO/target/images)
#   BERTH_IMAGES_FORCE     "base" or "all": rebuild even if up to date (e.g. to pick up new security updates)
#   BERTH_KEEP_ROOTFS=1    keep the rootfs directory after import / on failure (debugging)
#   BERTH_IMAGE_PREFIX     image name prefix (default: berth), e.g. a scratch prefix for tests
# Progress goes to stderr; the last line on stdout is "<final tag> <image id>".
set -euo pipefail
{ # the whole script is one compound command: bash parses it fully before running, so editing
  # this file while a build runs cannot derail that build.

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
SCRIPT="$HERE/$(basename "${BASH_SOURCE[0]}")"
REPO=$(cd "$HERE/.." && pwd)

say() { printf '[images] %s\n' "$*" >&2; }
die() { printf '[images] ERROR: %s\n' "$*" >&2; exit 1; }
now() { date +%s.%N; }
since() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }'; }

# step "description" "estimate" cmd... : run a slow step with progress and elapsed time.
# (No `cmd || …` here: that would switch off set -e inside the step's functions; on_exit reports failures.)
STEP="" STEP_T0=""
step() {
  local what=$1 est=$2
  shift 2
  say "$what … ($est)"
  STEP=$what STEP_T0=$(now)
  "$@"
  say "$what done in $(since "$STEP_T0") s"
  STEP=""
}

[ $# -eq 3 ] || { echo "usage: $0 ENGINE VERSION AGENT_BINARY   (e.g. $0 rabbitmq 4.0 target/release/broker-agent)" >&2; exit 2; }
ENGINE=$1 VERSION=$2 AGENT=$3

ENGINE_FILE="$HERE/$ENGINE/engine.sh"
[ -f "$ENGINE_FILE" ] || die "unknown engine '$ENGINE' (no $ENGINE_FILE)"
[[ "$VERSION" =~ ^[0-9A-Za-z._-]+$ ]] || die "bad version '$VERSION'"
[ -f "$AGENT" ] || die "agent binary '$AGENT' not found"
[ -x "$AGENT" ] || die "agent binary '$AGENT' is not executable"

# shellcheck source=rabbitmq/engine.sh
. "$ENGINE_FILE"
: "${SUITE:?}" "${ENGINE_FULL_VERSION:?}" "${VERSION_PACKAGE:?}"
[ "${#PACKAGES[@]}" -gt 0 ] || die "$ENGINE_FILE sets no PACKAGES"

PREFIX=${BERTH_IMAGE_PREFIX:-berth}
[[ "$PREFIX" =~ ^[a-z0-9][a-z0-9._/-]*$ ]] || die "bad BERTH_IMAGE_PREFIX '$PREFIX'"
BASE_TAG="$PREFIX/$ENGINE-base:$VERSION"
FINAL_TAG="$PREFIX/$ENGINE:$VERSION"
BUILD_DIR=$(realpath -m "${BERTH_BUILD_DIR:-$REPO/target/images}")
WORK="$BUILD_DIR/${PREFIX//\//_}-$ENGINE-$VERSION"   # rootfs, context, lock, stale-images
ROOTFS="$WORK/rootfs"
CTX="$WORK/context"
FORCE=${BERTH_IMAGES_FORCE:-}

command -v docker >/dev/null || die "docker CLI not found"
docker info >/dev/null 2>&1 || die "docker daemon not reachable"

mkdir -p "$WORK"
exec 9>"$WORK/.lock"
if ! flock -n 9; then say "another build of $ENGINE $VERSION is running; waiting"; flock 9; fi

# ---------------------------------------------------------------- helpers
sha256() { sha256sum | cut -d' ' -f1; }
image_id() { docker image inspect -f '{{.Id}}' "$1" 2>/dev/null || true; }
image_hash() { docker image inspect -f '{{index .Config.Labels "berth.inputs-hash"}}' "$1" 2>/dev/null || true; }

# Unmount everything mounted at or below $1, deepest first.
unmount_under() {
  local root m
  root=$(realpath -m "$1")
  awk -v r="$root" '$2 == r || index($2, r "/") == 1 { print $2 }' /proc/mounts | sort -r |
    while read -r m; do umount "$m" 2>/dev/null || umount -l "$m" || say "WARNING: could not unmount $m"; done
}
remove_rootfs() {
  [ -e "$ROOTFS" ] || return 0
  unmount_under "$ROOTFS"
  rm -rf --one-file-system "$ROOTFS"
}
STALE_IDS=()   # old image ids to remove at the end (children first)
STALE_FILE="$WORK/stale-images"   # ids that could not be removed yet (in use); retried on every run
remove_stale() {
  local id tags left=()
  if [ -s "$STALE_FILE" ]; then mapfile -t -O "${#STALE_IDS[@]}" STALE_IDS < "$STALE_FILE"; fi
  for id in "${STALE_IDS[@]}"; do
    [ -n "$id" ] || continue
    # Gone already? (Removing an old final image cascades to its untagged parents, often the old base.)
    tags=$(docker image inspect -f '{{len .RepoTags}}' "$id" 2>/dev/null) || continue
    [ "$tags" = 0 ] || continue   # someone tagged it meanwhile: not ours to delete
    # rmi of an untagged top image also removes its now-unused <none> parents (legacy builder chain).
    if docker rmi "$id" >/dev/null 2>&1; then say "removed old image ${id#sha256:}"
    else
      say "old image ${id#sha256:} kept for now (still used by a container); retried on the next run"
      left+=("$id")
    fi
  done
  if [ "${#left[@]}" -gt 0 ]; then printf '%s\n' "${left[@]}" | sort -u > "$STALE_FILE"; else rm -f "$STALE_FILE"; fi
}
on_exit() {
  local rc=$?
  if [ "$rc" -ne 0 ] && [ -n "$STEP" ]; then say "ERROR: $STEP failed (exit $rc) after $(since "$STEP_T0") s"; fi
  if [ -e "$ROOTFS" ]; then unmount_under "$ROOTFS"; fi
  if [ "$rc" -ne 0 ] && [ -e "$ROOTFS" ] && [ -z "${BERTH_KEEP_ROOTFS:-}" ]; then
    rm -rf --one-file-system "$ROOTFS"
  fi
  rm -rf "$CTX"
}
trap on_exit EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# ---------------------------------------------------------------- base image
BASE_HASH=$(
  {
    echo "berth-base-v1"
    echo "engine=$ENGINE version=$VERSION suite=$SUITE full=$ENGINE_FULL_VERSION packages=${PACKAGES[*]}"
    echo "--- build.sh"; cat "$SCRIPT"
    echo "--- engine.sh"; cat "$ENGINE_FILE"
  } | sha256
)

mirrors() {
  local src=/etc/apt/sources.list.d/debian.sources
  [ -r "$src" ] || die "$src not readable: cannot find the host's Debian mirror"
  MIRROR=$(awk '/^URIs:/ { print $2; exit }' "$src")
  SECURITY_MIRROR=$(awk '/^URIs:/ { n++; if (n == 2) { print $2; exit } }' "$src")
  [ -n "$MIRROR" ] || die "no URIs: entry in $src"
  [ -n "$SECURITY_MIRROR" ] || die "no second URIs: entry (security mirror) in $src"
}

in_chroot() {
  chroot "$ROOTFS" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin LC_ALL=C.UTF-8 \
    DEBIAN_FRONTEND=noninteractive "$@"
}

# suite_published URI SUITE: does the mirror publish dists/SUITE? Asked with the rootfs's own apt (apt-helper),
# over the same network path as apt-get update. Only a 404 means "no": a suite Debian has not opened yet. Any
# other failure (mirror unreachable …) fails the build rather than silently skipping security updates.
suite_published() {
  local out rc=0
  out=$(in_chroot /usr/lib/apt/apt-helper download-file "$1/dists/$2/InRelease" /tmp/.berth-probe 2>&1) || rc=$?
  rm -f "$ROOTFS/tmp/.berth-probe"
  [ "$rc" -ne 0 ] || return 0
  grep -q ' 404 ' <<<"$out" && return 1
  printf '%s\n' "$out" >&2
  die "cannot tell whether $1 publishes $2"
}

# apt-get update. Testing's Release files are valid for a week only: a mirror that has stopped syncing serves
# expired ones and apt refuses them. Only in that case: warn and retry without the Valid-Until check.
APT_OPTS=()
apt_update() {
  local out rc=0
  out=$(in_chroot apt-get -q update 2>&1) || rc=$?
  printf '%s\n' "$out" >&2
  [ "$rc" -ne 0 ] || return 0
  grep -q 'is expired' <<<"$out" || return "$rc"
  say "WARNING: the mirror's Release files for $SUITE are past their Valid-Until (the mirror is stale);" \
      "retrying with Acquire::Check-Valid-Until=false"
  APT_OPTS=(-o Acquire::Check-Valid-Until=false)
  in_chroot apt-get -q "${APT_OPTS[@]}" update >&2
}

# Point the rootfs at SUITE plus SUITE-updates and SUITE-security where the mirrors publish them (the sources
# stay in the image), then upgrade from them.
security_upgrade() {
  local suites=$SUITE security=1 src="$ROOTFS/etc/apt/sources.list.d/debian.sources"
  printf '#!/bin/sh\nexit 101\n' > "$ROOTFS/usr/sbin/policy-rc.d"
  chmod 0755 "$ROOTFS/usr/sbin/policy-rc.d"
  mount -t proc proc "$ROOTFS/proc"
  if suite_published "$MIRROR" "$SUITE-updates"; then suites="$suites $SUITE-updates"
  else say "no $SUITE-updates on $MIRROR: not used"; fi
  if ! suite_published "$SECURITY_MIRROR" "$SUITE-security"; then
    security=""
    say "WARNING: no $SUITE-security on $SECURITY_MIRROR (not opened yet for this suite?): no security updates"
  fi
  rm -f "$ROOTFS/etc/apt/sources.list"
  printf 'Types: deb\nURIs: %s\nSuites: %s\nComponents: main\nSigned-By: %s\n' \
    "$MIRROR" "$suites" /usr/share/keyrings/debian-archive-keyring.gpg > "$src"
  if [ -n "$security" ]; then
    printf '\nTypes: deb\nURIs: %s\nSuites: %s\nComponents: main\nSigned-By: %s\n' \
      "$SECURITY_MIRROR" "$SUITE-security" /usr/share/keyrings/debian-archive-keyring.gpg >> "$src"
  fi
  if [ "$suites" = "$SUITE" ] && [ -z "$security" ]; then
    say "only $SUITE itself is published: nothing to upgrade from"
  else
    apt_update
    in_chroot apt-get -q -y "${APT_OPTS[@]}" -o Dpkg::Options::=--force-confold upgrade >&2
  fi
  umount "$ROOTFS/proc"
  rm -f "$ROOTFS/usr/sbin/policy-rc.d"
}

trim() {
  in_chroot apt-get clean
  rm -rf "$ROOTFS"/var/lib/apt/lists/* "$ROOTFS"/var/cache/apt/*.bin \
         "$ROOTFS"/usr/share/doc/* "$ROOTFS"/usr/share/man/* "$ROOTFS"/usr/share/info/* \
         "$ROOTFS"/var/log/*.log "$ROOTFS"/var/log/apt/* "$ROOTFS"/var/cache/debconf/*-old \
         "$ROOTFS"/tmp/* "$ROOTFS"/var/tmp/*
  find "$ROOTFS/usr/share/locale" -mindepth 1 -maxdepth 1 ! -name locale.alias -exec rm -rf {} +
  # debootstrap copies the host's resolv.conf/hostname; Docker bind-mounts its own at run time.
  : > "$ROOTFS/etc/resolv.conf"
  : > "$ROOTFS/etc/hostname"
  engine_customize "$ROOTFS"
}

import_rootfs() {
  local id
  id=$(tar -C "$ROOTFS" --numeric-owner -c . |
       docker import --change "LABEL berth.inputs-hash=$BASE_HASH" \
                     --change "LABEL berth.engine-package=$PKG_VERSION" \
                     --change "LABEL berth.debian-suite=$SUITE" - "$BASE_TAG")
  [ "$(image_hash "$BASE_TAG")" = "$BASE_HASH" ] || die "imported $BASE_TAG ($id) lacks the inputs-hash label"
}

build_base() {
  local old_id
  old_id=$(image_id "$BASE_TAG")
  [ "$(id -u)" -eq 0 ] || die "building the base image needs root (debootstrap, chroot, mount)"
  if ! command -v debootstrap >/dev/null; then
    say "debootstrap not installed; installing it (apt-get install -y debootstrap)"
    apt-get -qq update >&2 && DEBIAN_FRONTEND=noninteractive apt-get -qq install -y debootstrap >&2 \
      || die "could not install debootstrap"
  fi
  mirrors
  remove_rootfs   # leftovers of an interrupted run
  local include deb_cache="$BUILD_DIR/deb-cache/$SUITE"
  include=$(IFS=,; echo "${PACKAGES[*]}")
  mkdir -p "$deb_cache"   # .debs kept across builds (checksums are verified against the fresh index)
  # debootstrap finds a suite's recipe in /usr/share/debootstrap/scripts/SUITE, and an older debootstrap does not
  # know the newest suites (bookworm's 1.0.128 has no forky). Every Debian suite since buster uses sid's recipe
  # (bookworm, trixie and testing are symlinks to it there), so pass that one as debootstrap's SCRIPT argument.
  local script=()
  if [ ! -e "/usr/share/debootstrap/scripts/$SUITE" ]; then
    [ -f /usr/share/debootstrap/scripts/sid ] || die "debootstrap has no script for $SUITE, and no sid script"
    say "this debootstrap has no script for $SUITE: using its sid script"
    script=(/usr/share/debootstrap/scripts/sid)
  fi
  step "debootstrap $SUITE ($include) from $MIRROR" "≈40–95 s, depends on the mirror" \
    debootstrap --variant=minbase --cache-dir="$deb_cache" --include="$include" "$SUITE" "$ROOTFS" "$MIRROR" \
      "${script[@]}" >&2
  step "updates and security upgrade (from $MIRROR and $SECURITY_MIRROR)" "≈5 s" security_upgrade

  PKG_VERSION=$(in_chroot dpkg-query -W -f='${Version}' "$VERSION_PACKAGE") \
    || die "$VERSION_PACKAGE is not installed in the rootfs"
  local upstream=${PKG_VERSION#*:}; upstream=${upstream%-*}   # drop the epoch and the Debian revision
  upstream=${upstream%%[+~]dfsg*}; upstream=${upstream%%[+~]ds*}   # and a repack suffix (5.17.6+dfsg)
  [ "$upstream" = "$ENGINE_FULL_VERSION" ] \
    || die "$VERSION_PACKAGE is $PKG_VERSION in $SUITE, expected upstream version $ENGINE_FULL_VERSION"
  say "$VERSION_PACKAGE $PKG_VERSION installed"

  step "trim rootfs" "≈1 s" trim
  say "rootfs size: $(du -sh --one-file-system "$ROOTFS" | cut -f1)"
  step "docker import $BASE_TAG" "≈3 s" import_rootfs
  [ -n "${BERTH_KEEP_ROOTFS:-}" ] || remove_rootfs
  if [ -n "$old_id" ] && [ "$old_id" != "$(image_id "$BASE_TAG")" ]; then STALE_IDS+=("$old_id"); fi
}

t_all=$(now)
if [ "$(image_hash "$BASE_TAG")" = "$BASE_HASH" ] && [ "$FORCE" != base ] && [ "$FORCE" != all ]; then
  say "$BASE_TAG up to date (inputs ${BASE_HASH:0:12})"
else
  say "$BASE_TAG needs a build (inputs ${BASE_HASH:0:12}, image has '$(image_hash "$BASE_TAG" | cut -c1-12)')"
  build_base
fi
BASE_ID=$(image_id "$BASE_TAG")

# ---------------------------------------------------------------- final image
DOCKERFILE="FROM $BASE_TAG
COPY broker-agent /usr/local/bin/broker-agent
ENTRYPOINT [\"/usr/local/bin/broker-agent\"]
STOPSIGNAL SIGTERM
LABEL berth.engine=$ENGINE berth.engine-version=$ENGINE_FULL_VERSION berth.inputs-hash=@INPUTS_HASH@
"
# (One LABEL instruction: the legacy builder commits an image per instruction, ≈2.5 s each here.)
# The base image id is included too: a forced base rebuild (same base hash) must rebuild this layer.
FINAL_HASH=$(
  {
    echo "berth-final-v1"
    echo "base=$BASE_HASH base-id=$BASE_ID"
    echo "agent=$(sha256 < "$AGENT")"
    echo "--- Dockerfile template"; printf '%s' "$DOCKERFILE"
  } | sha256
)

build_final() {
  rm -rf "$CTX"; mkdir -p "$CTX"
  cp "$AGENT" "$CTX/broker-agent"
  chmod 0755 "$CTX/broker-agent"
  printf '%s' "${DOCKERFILE//@INPUTS_HASH@/$FINAL_HASH}" > "$CTX/Dockerfile"
  local err
  # No buildx on this daemon: the legacy builder, explicitly (its deprecation notice is dropped).
  if ! err=$(DOCKER_BUILDKIT=0 docker build -q --force-rm -t "$FINAL_TAG" "$CTX" 2>&1 >/dev/null); then
    printf '%s\n' "$err" >&2
    return 1
  fi
}

if [ "$(image_hash "$FINAL_TAG")" = "$FINAL_HASH" ] && [ "$FORCE" != all ]; then
  say "$FINAL_TAG up to date (inputs ${FINAL_HASH:0:12})"
else
  old_final=$(image_id "$FINAL_TAG")
  step "docker build $FINAL_TAG (agent $(stat -c %s "$AGENT") bytes)" "≈5 s" build_final
  if [ -n "$old_final" ] && [ "$old_final" != "$(image_id "$FINAL_TAG")" ]; then
    STALE_IDS=("$old_final" "${STALE_IDS[@]}")   # child before its old base
  fi
fi
remove_stale

say "done in $(since "$t_all") s: $BASE_TAG $(docker image inspect -f '{{.Size}}' "$BASE_TAG" | awk '{printf "%.0f MB", $1/1e6}'), $FINAL_TAG $(docker image inspect -f '{{.Size}}' "$FINAL_TAG" | awk '{printf "%.0f MB", $1/1e6}')"
echo "$FINAL_TAG $(image_id "$FINAL_TAG")"
exit 0
}
