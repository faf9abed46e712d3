#!/usr/bin/env bash
# Smoke test of the sandbox image against the real engine, with the hardening flags openwork uses:
# non-root host uid:gid (no /etc/passwd entry in the image), read-only root, tmpfs /tmp, no
# capabilities, no-new-privileges, a pids limit, no network. Ensures engine and image first
# (both idempotent), so this one command exercises the whole chain:  scripts/sandbox-smoke.sh
#
# Environment: OPENWORK_TEST_CACHE (as images/build.sh); OPENWORK_TEST_OPENCODE_BIN, an opencode
# binary to bind-mount (default: the newest one test.sh cached); SMOKE_UID/SMOKE_GID (1000:1000).
set -euo pipefail

me=sandbox-smoke.sh
log() { printf '[%s] %s\n' "$me" "$*" >&2; }
repo=$(cd "$(dirname "$0")/.." && pwd)
cache="${OPENWORK_TEST_CACHE:-$HOME/.cache/openwork-test}"
uid="${SMOKE_UID:-1000}"; gid="${SMOKE_GID:-1000}"

tag=$("$repo/images/build.sh")
export DOCKER_HOST="${DOCKER_HOST:-unix:///var/run/docker.sock}"

tmp=$(mktemp -d)
trap 'rm -rf --one-file-system "$tmp"' EXIT
passed=0; failed=0; skipped=0
ok()   { passed=$((passed + 1)); log "PASS $*"; }
bad()  { failed=$((failed + 1)); log "FAIL $*"; }
skip() { skipped=$((skipped + 1)); log "SKIP $*"; }

harden=(--rm --network none --user "$uid:$gid" --read-only --tmpfs /tmp --cap-drop ALL
        --security-opt no-new-privileges --pids-limit 256)

# 1. The reference run: toolchain present, workspace writable, files owned by the host uid:gid.
ws="$tmp/ws"; mkdir "$ws"; chown "$uid:$gid" "$ws"
t0=$(date +%s%N)
if out=$(docker run "${harden[@]}" -v "$ws:/workspace" "$tag" \
           sh -c 'id; git --version; rg --version; curl --version | head -1; touch /workspace/x' 2>&1); then
  printf '%s\n' "$out" | sed 's/^/    /' >&2
  owner=$(stat -c %u:%g "$ws/x" 2>/dev/null || echo missing)
  if [ "$owner" = "$uid:$gid" ]; then ok "reference run ($(( ($(date +%s%N) - t0) / 1000000 )) ms); /workspace/x owned by $owner on the host"
  else bad "reference run: /workspace/x owner is $owner, want $uid:$gid"; fi
else
  printf '%s\n' "$out" >&2; bad "reference run failed"
fi

# 2. Git as a uid with no passwd entry: identity must come from the environment (or a gitconfig
#    under $HOME); without one, git cannot guess it from the passwd file.
ws2="$tmp/ws2"; mkdir "$ws2"; chown "$uid:$gid" "$ws2"
if out=$(docker run "${harden[@]}" -v "$ws2:/workspace" -e HOME=/tmp \
           -e GIT_AUTHOR_NAME=sandbox -e GIT_AUTHOR_EMAIL=sandbox@openwork.invalid \
           -e GIT_COMMITTER_NAME=sandbox -e GIT_COMMITTER_EMAIL=sandbox@openwork.invalid "$tag" \
           sh -c 'git init -q && echo hi >f && git add f && git commit -qm one && git log --format=%an/%s && git config --global core.x y && cat "$HOME/.gitconfig"' 2>&1); then
  ok "git init/commit/config --global without a passwd entry: $(printf '%s' "$out" | tr '\n' ' ')"
else
  bad "git without a passwd entry: $out"
fi
noid=$(docker run "${harden[@]}" -v "$ws2:/workspace" "$tag" sh -c 'git commit --allow-empty -qm two 2>&1' || true)
log "    (for the record) commit with no identity configured says: $(printf '%s' "$noid" | head -3 | tr '\n' ' ')"

# 3. A workspace owned by another uid (e.g. a root-owned checkout): /etc/gitconfig's
#    safe.directory=/workspace keeps git from refusing with "dubious ownership".
ws3="$tmp/ws3"; mkdir "$ws3"; git -C "$ws3" init -q
if out=$(docker run "${harden[@]}" -v "$ws3:/workspace:ro" "$tag" git status --short --branch 2>&1); then
  ok "git status on a workspace owned by $(stat -c %u "$ws3"), run as $uid: $out"
else
  bad "git status on a foreign-owned workspace: $out"
fi

# 4. --init: Debian's docker.io ships docker-init (tini-static); PID 1 is then docker-init.
if out=$(docker run "${harden[@]}" --init "$tag" cat /proc/1/comm 2>&1) && [ "$out" = docker-init ]; then
  ok "--init works (PID 1 is $out)"
else
  bad "--init: PID 1 is '$out'"
fi

# 5. Layout and config of the image itself.
if out=$(docker run "${harden[@]}" "$tag" sh -c 'test -d /workspace && test -d /persist && test -d /opt/openwork && ! test -e /opt/openwork/opencode && test -w /tmp && pwd && echo "HOME=$HOME"' 2>&1) \
   && [ "$(docker image inspect --format '{{index .Config.Labels "org.openwork.image"}}' "$tag")" = sandbox ]; then
  ok "layout: /workspace /persist /opt/openwork present, no opencode inside, /tmp writable, $(printf '%s' "$out" | tr '\n' ' ')"
else
  bad "layout: $out"
fi

# 6. opencode bind-mounted read-only from the host cache (it is not in the image). It is a Bun
#    executable linked against glibc only, so Debian's libc in the image is all it needs.
oc="${OPENWORK_TEST_OPENCODE_BIN:-$(find "$cache" -maxdepth 2 -path "$cache/opencode-*/opencode" -type f 2>/dev/null | sort -V | tail -1)}"
if [ -z "$oc" ] || [ ! -x "$oc" ]; then
  skip "opencode: no binary (run scripts/test.sh once, or set OPENWORK_TEST_OPENCODE_BIN)"
else
  if out=$(docker run "${harden[@]}" -v "$oc:/opt/openwork/opencode:ro" -e HOME=/tmp "$tag" \
             sh -c '/opt/openwork/opencode --version
                    (timeout 30 /opt/openwork/opencode serve --hostname 127.0.0.1 --port 4096 >/tmp/oc.log 2>&1 &)
                    i=0; until curl -fsS -m 2 -o /dev/null http://127.0.0.1:4096/config; do
                      i=$((i + 1)); [ $i -lt 60 ] || { cat /tmp/oc.log; exit 1; }; sleep 0.5; done
                    echo serve-answered' 2>&1) && printf '%s' "$out" | grep -q serve-answered; then
    ok "opencode $(printf '%s' "$out" | head -1) from $oc runs inside (--version, and serve answers /config on loopback)"
  else
    bad "opencode inside the sandbox: $out"
  fi
fi

log "engine $(docker version --format '{{.Server.Version}} API {{.Server.APIVersion}}'), image $tag $(( $(docker image inspect --format '{{.Size}}' "$tag") / 1024 / 1024 )) MiB"
echo "$passed passed, $failed failed, $skipped skipped"
[ "$failed" = 0 ]
