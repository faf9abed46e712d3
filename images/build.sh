#!/usr/bin/env bash
# Builds openwork's default sandbox image (tag in images/IMAGE) without any container registry:
# debootstrap a Debian bookworm minbase rootfs from the Debian mirror apt already uses, add the
# agent's toolchain, tar it, `docker import` it. Prints the image tag on stdout (logs on stderr),
# so callers can do: tag=$(images/build.sh).
#
# Idempotent, cheapest first:
#   1. the engine already has the tag, built from this very recipe (label org.openwork.recipe)
#      -> nothing to do (~0.2 s)
#   2. the cached rootfs tarball for this recipe exists -> docker import it (seconds)
#   3. otherwise debootstrap (a few minutes, network-bound), cache the tarball, import.
# The recipe id is a hash of this script and images/IMAGE: editing either rebuilds, and an image
# left over from an older recipe under the same tag is replaced rather than silently reused.
#
# Environment:
#   OPENWORK_TEST_CACHE               cache root (default $HOME/.cache/openwork-test); the image
#                                     cache is $OPENWORK_TEST_CACHE/images/
#   OPENWORK_DEBIAN_MIRROR            override the Debian mirror (default: the one apt uses here)
#   OPENWORK_DEBIAN_SECURITY_MIRROR   override the security mirror (default: the one apt uses here)
#   OPENWORK_IMAGE_REBUILD=1          ignore the engine's image and the cached tarball
set -euo pipefail

me=build.sh
log() { printf '[images/%s] %s\n' "$me" "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }
now() { date +%s; }

here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/.." && pwd)
tag=$(tr -d ' \t\r\n' <"$here/IMAGE")
[[ "$tag" == *:* ]] || die "images/IMAGE must hold name:tag, got '$tag'"
suite=bookworm
# The agent's toolchain. Nothing for init: docker's --init (Debian's docker.io ships docker-init,
# i.e. tini-static) or openwork's own supervisor is PID 1. No opencode: it is bind-mounted
# read-only at /opt/openwork at run time from the host's verified cache.
packages=ca-certificates,curl,git,ripgrep

cache="${OPENWORK_TEST_CACHE:-$HOME/.cache/openwork-test}"
imgcache="$cache/images"
mkdir -p "$imgcache/debs"
recipe=$(cat "$here/build.sh" "$here/IMAGE" | sha256sum | cut -c1-12)
tarball="$imgcache/${tag//[:\/]/_}-$recipe.tar.gz"
t_start=$(now)

# Concurrent callers (parallel test binaries, two CI steps) wait for one build instead of racing.
exec 9>"$imgcache/.lock"
flock -w 1800 9 || die "another build holds $imgcache/.lock for more than 30 min"

# The engine (installs/starts dockerd when needed); its stdout is not ours: ours is the tag.
# 9>&-: the engine script may start dockerd, which must not inherit (and hold) our lock.
"$repo/scripts/docker-engine.sh" >&2 9>&- || die "no Docker engine (see above)"
export DOCKER_HOST="${DOCKER_HOST:-unix:///var/run/docker.sock}"

print_size() {
  local bytes
  bytes=$(docker image inspect --format '{{.Size}}' "$tag")
  log "image $tag (recipe $recipe): $(( bytes / 1024 / 1024 )) MiB ($bytes bytes)"
}

# --- 1. already in the engine? ---------------------------------------------------------------------
if [ "${OPENWORK_IMAGE_REBUILD:-0}" != 1 ]; then
  have=$(docker image inspect --format '{{index .Config.Labels "org.openwork.recipe"}}' "$tag" 2>/dev/null || true)
  if [ "$have" = "$recipe" ]; then
    log "image $tag present (recipe $recipe); nothing to do"
    print_size; echo "$tag"; exit 0
  fi
  [ -z "$have" ] || log "image $tag is from recipe '$have', want $recipe: replacing it"
fi
# An image this tag named before (older recipe): removed after the import, once it is untagged.
old_id=$(docker image inspect --format '{{.Id}}' "$tag" 2>/dev/null || true)

import_tarball() {
  local t0; t0=$(now)
  # docker import cannot read a Dockerfile, so the image config comes from --change lines.
  # HOME=/tmp: the container runs as the host's uid:gid, which has no /etc/passwd entry here, so
  # docker would otherwise set HOME=/ (read-only); the runtime overrides it with -e HOME=... .
  docker import \
    --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    --change 'ENV LANG=C.UTF-8' \
    --change 'ENV HOME=/tmp' \
    --change 'WORKDIR /workspace' \
    --change 'CMD ["/bin/bash"]' \
    --change 'LABEL org.openwork.image=sandbox' \
    --change "LABEL org.openwork.recipe=$recipe" \
    --change "LABEL org.openwork.debian-suite=$suite" \
    --change "LABEL org.opencontainers.image.title=$tag" \
    --message "openwork sandbox $tag (recipe $recipe)" \
    "$tarball" "$tag" >/dev/null
  log "imported $tarball as $tag in $(( $(now) - t0 )) s"
  local new_id; new_id=$(docker image inspect --format '{{.Id}}' "$tag")
  if [ -n "$old_id" ] && [ "$old_id" != "$new_id" ]; then
    # Fails harmlessly (the old image is kept) while a container still uses it.
    local err
    if err=$(docker rmi "$old_id" 2>&1); then log "removed the previous $tag image ${old_id:7:12}"
    else log "kept the previous $tag image ${old_id:7:12}: $(printf '%s' "$err" | head -1)"; fi
  fi
}

# --- 2. cached tarball? ----------------------------------------------------------------------------
if [ "${OPENWORK_IMAGE_REBUILD:-0}" != 1 ] && [ -s "$tarball" ]; then
  log "using cached rootfs $tarball"
  import_tarball; print_size
  log "done in $(( $(now) - t_start )) s"
  echo "$tag"; exit 0
fi

# --- 3. build the rootfs ---------------------------------------------------------------------------
[ "$(id -u)" = 0 ] || die "building the rootfs needs root (debootstrap, chroot)"
if ! command -v debootstrap >/dev/null 2>&1; then
  log "installing debootstrap (one time)"
  export DEBIAN_FRONTEND=noninteractive
  { apt-get update -q && apt-get install -y -q --no-install-recommends debootstrap; } >"$imgcache/apt.log" 2>&1 \
    || { tail -20 "$imgcache/apt.log" >&2; die "cannot install debootstrap"; }
fi

# The mirror apt uses on this host is the one that is reachable (no other network here). Read it
# from both source formats: one-line *.list and deb822 *.sources (bookworm's default).
apt_sources() { # prints "URI SUITE" for every enabled deb source
  local f
  for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
    [ -f "$f" ] || continue
    sed -E 's/#.*//; s/\[[^]]*\]//' "$f" | awk '$1 == "deb" { print $2, $3 }'
  done
  for f in /etc/apt/sources.list.d/*.sources; do
    [ -f "$f" ] || continue
    awk 'BEGIN { RS = ""; FS = "\n" }
      { t = ""; u = ""; s = ""; en = "yes"
        for (i = 1; i <= NF; i++) {
          l = $i; if (l ~ /^[ \t]*#/) continue
          if (l ~ /^Types:/)   { sub(/^Types:[ \t]*/, "", l); t = l }
          if (l ~ /^URIs:/)    { sub(/^URIs:[ \t]*/, "", l); u = l }
          if (l ~ /^Suites:/)  { sub(/^Suites:[ \t]*/, "", l); s = l }
          if (l ~ /^Enabled:/) { sub(/^Enabled:[ \t]*/, "", l); en = l }
        }
        if (en != "no" && (" " t " ") ~ / deb /) {
          nu = split(u, U, /[ \t]+/); ns = split(s, S, /[ \t]+/)
          for (a = 1; a <= nu; a++) for (b = 1; b <= ns; b++) if (U[a] != "" && S[b] != "") print U[a], S[b]
        }
      }' "$f"
  done
}
mirror="${OPENWORK_DEBIAN_MIRROR:-$(apt_sources | awk -v s="$suite" '$2 == s { print $1; exit }')}"
[ -n "$mirror" ] || mirror="$(apt_sources | awk '$1 ~ /\/debian\/?$/ { print $1; exit }')"
[ -n "$mirror" ] || die "no Debian mirror found in /etc/apt/sources.list*; set OPENWORK_DEBIAN_MIRROR"
security="${OPENWORK_DEBIAN_SECURITY_MIRROR:-$(apt_sources | awk -v s="$suite-security" '$2 == s { print $1; exit }')}"
log "Debian mirror: $mirror; security: ${security:-none (security updates skipped)}"

work=$(mktemp -d "$imgcache/build.XXXXXX")
rootfs="$work/rootfs"
cleanup() {
  # Unmount anything left mounted inside the rootfs (a failed chroot step) before deleting, and
  # never cross into another filesystem while deleting.
  local m
  awk -v w="$work" 'index($2, w) == 1 { print $2 }' /proc/mounts | sort -r | while read -r m; do
    umount -l "$m" 2>/dev/null || true
  done
  rm -rf --one-file-system "$work"
}
trap cleanup EXIT

t0=$(now)
log "debootstrap --variant=minbase $suite with $packages (debs cached in $imgcache/debs)"
if ! debootstrap --variant=minbase --include="$packages" --components=main \
       --cache-dir="$imgcache/debs" "$suite" "$rootfs" "$mirror" >"$work/debootstrap.out" 2>&1; then
  tail -20 "$work/debootstrap.out" >&2
  [ -f "$rootfs/debootstrap/debootstrap.log" ] && tail -20 "$rootfs/debootstrap/debootstrap.log" >&2
  die "debootstrap failed"
fi
t_deboot=$(( $(now) - t0 ))
log "debootstrap done in $t_deboot s"

# Like debian:*-slim: keep docs/man/locales out of the image, now and for any later dpkg run.
mkdir -p "$rootfs/etc/dpkg/dpkg.cfg.d"
cat >"$rootfs/etc/dpkg/dpkg.cfg.d/openwork-slim" <<'EOF'
# openwork sandbox: no documentation or translations (keep copyright files)
path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/man/*
path-exclude /usr/share/info/*
path-exclude /usr/share/locale/*
path-include /usr/share/locale/locale.alias
path-exclude /usr/share/lintian/*
EOF

# Apt sources inside the image: the same mirror, plus security updates.
{
  printf 'Types: deb\nURIs: %s\nSuites: %s %s-updates\nComponents: main\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n' \
    "$mirror" "$suite" "$suite"
  if [ -n "$security" ]; then
    printf '\nTypes: deb\nURIs: %s\nSuites: %s-security\nComponents: main\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n' \
      "$security" "$suite"
  fi
} >"$rootfs/etc/apt/sources.list.d/debian.sources"
rm -f "$rootfs/etc/apt/sources.list"

# Point-release and security updates on top of the release pool debootstrap used (git and curl
# get security fixes). chroot needs /proc and name resolution; both are undone before tarring.
t0=$(now)
cp /etc/resolv.conf "$rootfs/etc/resolv.conf"
mount -t proc proc "$rootfs/proc"
printf '#!/bin/sh\nexit 101\n' >"$rootfs/usr/sbin/policy-rc.d"; chmod 755 "$rootfs/usr/sbin/policy-rc.d"
if ! chroot "$rootfs" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin DEBIAN_FRONTEND=noninteractive \
       sh -c 'apt-get update -q && apt-get -y -q -o Dpkg::Options::=--force-confold upgrade && apt-get clean' \
       >"$work/upgrade.out" 2>&1; then
  tail -20 "$work/upgrade.out" >&2; die "apt-get upgrade in the rootfs failed"
fi
log "updates: $(grep -c '^Setting up' "$work/upgrade.out" || true) packages upgraded in $(( $(now) - t0 )) s"
umount "$rootfs/proc"
rm -f "$rootfs/usr/sbin/policy-rc.d" "$rootfs/etc/resolv.conf"

# Git in the sandbox: the workspace is a bind mount owned by the host user. The container normally
# runs as that same uid, but where it does not (userns remap, a root-owned CI checkout) git >= 2.35
# refuses with "dubious ownership"; the sandbox is single-tenant, so trust the workspace root.
cat >"$rootfs/etc/gitconfig" <<'EOF'
[safe]
	directory = /workspace
[init]
	defaultBranch = main
EOF

# Layout: bind-mount targets and a sticky, world-writable /tmp (also works without --tmpfs /tmp
# when the root is writable). /workspace and /persist are world-writable too, so an image run with
# no bind mount still works as any uid; a bind mount hides these modes anyway.
mkdir -p "$rootfs/workspace" "$rootfs/persist" "$rootfs/opt/openwork"
chmod 1777 "$rootfs/tmp" "$rootfs/workspace" "$rootfs/persist"
chmod 755 "$rootfs/opt/openwork"

# Slim and deterministic-ish: drop caches, logs, docs that were installed before the dpkg filter,
# per-machine ids, and /dev (docker provides its own).
rootfs="${rootfs:?}"  # never let an empty variable turn the paths below into host paths
rm -rf "$rootfs"/var/lib/apt/lists/* "$rootfs"/var/cache/apt/* "$rootfs"/var/cache/debconf/*-old \
       "$rootfs"/var/lib/dpkg/*-old "$rootfs"/var/cache/ldconfig/aux-cache "$rootfs"/debootstrap \
       "$rootfs"/usr/share/man/* "$rootfs"/usr/share/info/* "$rootfs"/usr/share/lintian \
       "${rootfs:?}"/dev/*
find "$rootfs/usr/share/locale" -mindepth 1 -maxdepth 1 ! -name locale.alias -exec rm -rf {} +
find "$rootfs/usr/share/doc" -mindepth 1 \( -type f -o -type l \) ! -name copyright -delete
find "$rootfs/usr/share/doc" -mindepth 1 -type d -empty -delete
find "$rootfs/var/log" -type f -delete
: >"$rootfs/etc/machine-id"
rm -f "$rootfs/var/lib/dbus/machine-id"

t0=$(now)
# --numeric-owner: the rootfs's uids are the image's, not this host's names.
tar --numeric-owner --xattrs -C "$rootfs" -cf - . | gzip -1 >"$tarball.tmp"
mv "$tarball.tmp" "$tarball"
log "rootfs $(du -sm "$rootfs" | cut -f1) MiB -> $tarball ($(du -m "$tarball" | cut -f1) MiB) in $(( $(now) - t0 )) s"
# Older recipes' tarballs of this tag are dead weight.
find "$imgcache" -maxdepth 1 -name "${tag//[:\/]/_}-*.tar.gz" ! -name "$(basename "$tarball")" -delete

import_tarball
print_size
log "cold build done in $(( $(now) - t_start )) s (debootstrap $t_deboot s)"
echo "$tag"
