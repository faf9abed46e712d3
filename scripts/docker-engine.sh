#!/usr/bin/env bash
# Makes sure a local Docker engine answers, so sandbox-mode tests and images/build.sh can use it.
#
# Idempotent and quiet when there is nothing to do:
#   - dockerd missing  -> apt-get update (once) + apt-get install docker.io (Debian's package: the
#                         engine CI uses on purpose, 20.10 on bookworm, API 1.41; see DESIGN)
#   - engine not answering -> start dockerd in the background (setsid, so it outlives this script
#                         and the CI step that called it), log to the cache dir, wait (bounded)
#   - engine answering -> print its versions and exit 0
# Exits non-zero with the tail of dockerd's log when the engine cannot be started.
#
# Environment:
#   OPENWORK_TEST_CACHE             cache root (default $HOME/.cache/openwork-test); log in docker/
#   OPENWORK_DOCKER_STORAGE_DRIVER  force a storage driver (default: overlay2 if a probe mount works,
#                                   else vfs)
#   OPENWORK_DOCKER_WAIT            seconds to wait for the engine (default 60)
#   DOCKER_HOST                     if set to anything but the local socket, this script only checks
#                                   that engine; it never starts a remote one
set -euo pipefail

me=docker-engine.sh
log() { printf '[%s] %s\n' "$me" "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

cache="${OPENWORK_TEST_CACHE:-$HOME/.cache/openwork-test}"
state="$cache/docker"
mkdir -p "$state"
wait_s="${OPENWORK_DOCKER_WAIT:-60}"
local_sock=/var/run/docker.sock

# Pin the CLI to the local socket unless the caller chose another engine: a docker *context* in
# ~/.docker/config.json would otherwise silently point the CLI at some other engine.
if [ -z "${DOCKER_HOST:-}" ]; then
  export DOCKER_HOST="unix://$local_sock"
fi
remote=0
[ "$DOCKER_HOST" = "unix://$local_sock" ] || remote=1

# One caller at a time: two concurrent test runs must not start two dockerds on one socket.
exec 9>"$state/.lock"
flock -w 300 9 || die "another $me holds $state/.lock for more than 300 s"

engine_up() { docker info >/dev/null 2>&1; }

report() {
  # Which CLI answered matters: this machine kind ships Docker CLI 28.x in /usr/local/bin, which
  # shadows Debian's 20.10 CLI in /usr/bin. Both speak to the same socket; the newer CLI simply
  # negotiates down to the engine's API (1.41). Tests must negotiate too (bollard: negotiate).
  local cli server api minapi driver init
  cli="$(command -v docker) ($(docker version --format '{{.Client.Version}}' 2>/dev/null || echo '?'))"
  server=$(docker version --format '{{.Server.Version}}')
  api=$(docker version --format '{{.Server.APIVersion}}')
  minapi=$(docker version --format '{{.Server.MinAPIVersion}}' 2>/dev/null || echo '?')
  driver=$(docker info --format '{{.Driver}}')
  init=$(docker info --format '{{.InitBinary}}')
  log "engine ready at $DOCKER_HOST: server $server, API $api (min $minapi), storage $driver, init binary '$init', cli $cli"
  printf 'server=%s api=%s storage=%s\n' "$server" "$api" "$driver"
}

if engine_up; then report; exit 0; fi
[ "$remote" = 0 ] || die "DOCKER_HOST=$DOCKER_HOST does not answer 'docker info'; this script only starts the local engine"

# --- 1. install the engine when missing ------------------------------------------------------------
# (docker.io also brings /usr/bin/docker, for a machine that has no CLI at all.)
if ! command -v dockerd >/dev/null 2>&1 || ! command -v docker >/dev/null 2>&1; then
  [ "$(id -u)" = 0 ] || die "dockerd or docker is missing and installing docker.io needs root"
  log "dockerd/docker missing: installing Debian's docker.io (one time)"
  t0=$(date +%s)
  export DEBIAN_FRONTEND=noninteractive
  # --no-install-recommends: the recommends (apparmor, cgroupfs-mount, needrestart, ...) are not
  # needed to run containers here, and needrestart would try to be interactive. A policy-rc.d that
  # forbids service starts (as this machine kind has) is fine: we start dockerd ourselves below.
  apt-get update -q >"$state/apt.log" 2>&1 || { tail -20 "$state/apt.log" >&2; die "apt-get update failed"; }
  apt-get install -y -q --no-install-recommends docker.io >>"$state/apt.log" 2>&1 \
    || { tail -20 "$state/apt.log" >&2; die "apt-get install docker.io failed (log: $state/apt.log)"; }
  log "installed docker.io in $(( $(date +%s) - t0 )) s"
fi
dockerd_bin=$(command -v dockerd)
[ "$(id -u)" = 0 ] || die "the engine does not answer at $local_sock and starting dockerd needs root"

# --- 2. choose flags that work on this host --------------------------------------------------------
data_root=/var/lib/docker
mkdir -p "$data_root"

# Storage: overlay2 is fast and small; it fails where /var/lib/docker itself sits on overlayfs
# (docker-in-docker) or the kernel lacks overlay. Probe with a real mount on the data root's
# filesystem instead of guessing; vfs (full copy per layer: slow, big) only when the probe fails.
pick_storage() {
  if [ -n "${OPENWORK_DOCKER_STORAGE_DRIVER:-}" ]; then
    echo "$OPENWORK_DOCKER_STORAGE_DRIVER"; return
  fi
  local p rc
  p=$(mktemp -d "$data_root/.overlay-probe.XXXXXX")
  mkdir -p "$p/l" "$p/u" "$p/w" "$p/m"
  echo probe >"$p/l/f"
  rc=0
  if mount -t overlay overlay -o "lowerdir=$p/l,upperdir=$p/u,workdir=$p/w" "$p/m" 2>"$p/err"; then
    echo x >"$p/m/g" 2>>"$p/err" || rc=1
    umount "$p/m" || rc=1
  else
    rc=1
  fi
  if [ "$rc" = 0 ]; then
    echo overlay2
  else
    log "overlay mount probe failed on $data_root ($(tr '\n' ' ' <"$p/err")): falling back to vfs (slower, no layer sharing)"
    echo vfs
  fi
  rm -rf --one-file-system "$p"
}
storage=$(pick_storage)

flags=(--host "unix://$local_sock" --data-root "$data_root" --storage-driver "$storage")

# Networking: dockerd needs iptables (the nft backend here) for its default bridge. Where the kernel
# has no netfilter (some VMs/containers) dockerd dies with "failed to create NAT chain". Sandboxes
# need no network from the engine (the agent's traffic goes through openwork's router), so fall
# back to --iptables=false instead of failing.
if ! command -v iptables >/dev/null 2>&1 || ! iptables -t nat -L -n >/dev/null 2>&1; then
  log "iptables cannot list the nat table here: starting dockerd with --iptables=false --ip-masq=false (containers get no NAT to the outside)"
  flags+=(--iptables=false --ip-masq=false)
fi

# No systemd on this machine kind (PID 1 is the VM's own init), so no systemd cgroup driver and
# no socket activation: dockerd runs with cgroupfs and manages its own containerd.
flags+=(--exec-opt native.cgroupdriver=cgroupfs)

# --- 3. start it (unless a dockerd is already starting) --------------------------------------------
pidfile=/var/run/docker.pid
logfile="$state/dockerd.log"
pid=""
if [ -s "$pidfile" ] && kill -0 "$(cat "$pidfile")" 2>/dev/null \
   && grep -q dockerd "/proc/$(cat "$pidfile")/cmdline" 2>/dev/null; then
  pid=$(cat "$pidfile")
  log "dockerd (pid $pid) is running but not answering yet; waiting for it"
else
  log "starting $dockerd_bin ${flags[*]} (log: $logfile)"
  # setsid + nohup + closed stdin: the engine must survive this script, the calling CI step and a
  # closed terminal; a stale pidfile of a dead dockerd is overwritten by dockerd itself.
  # 9>&-: dockerd must not inherit our lock fd, or it would hold the lock for its whole life.
  printf '\n=== %s starting dockerd %s\n' "$(date -u +%FT%TZ)" "${flags[*]}" >>"$logfile"
  setsid nohup "$dockerd_bin" "${flags[@]}" >>"$logfile" 2>&1 </dev/null 9>&- &
  pid=$!
fi

t0=$(date +%s)
until engine_up; do
  if ! kill -0 "$pid" 2>/dev/null; then
    tail -30 "$logfile" >&2 || true
    die "dockerd exited during startup (full log: $logfile)"
  fi
  if [ $(( $(date +%s) - t0 )) -ge "$wait_s" ]; then
    tail -30 "$logfile" >&2 || true
    die "engine did not answer 'docker info' within $wait_s s (dockerd pid $pid still running; log: $logfile)"
  fi
  sleep 0.5
done
log "engine answered after $(( $(date +%s) - t0 )) s"
report
