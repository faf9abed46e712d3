#!/usr/bin/env python3
"""TEST DOUBLE for fault injection only: a stand-in for opencode, openwork-server or
opencode-router, selected by FAKE_ROLE. Every user-facing flow is also tested against the real
opencode and the real bundled server/router; this double exists to make services crash, hang or
spawn grandchildren on purpose.

Environment:
  FAKE_ROLE   opencode | server | router
  FAKE_MODE   ok | crash-always | crash-once | hang-health | grandchild | flood
  FAKE_FLOOD_LINES  lines printed by `flood` once listening (default 100000)
  FAKE_FLOOD_RATE   lines per second of `flood` (default 0: as fast as the pipe takes them)
  FAKE_STATE  directory for the crash-once marker and the pid log (pids.txt)
"""
import base64
import json
import os
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

ROLE = os.environ.get("FAKE_ROLE", "opencode")
MODE = os.environ.get("FAKE_MODE", "ok")
STATE = os.environ.get("FAKE_STATE", "/tmp")


def arg(name, default=None):
    argv = sys.argv[1:]
    if name in argv:
        i = argv.index(name)
        if i + 1 < len(argv):
            return argv[i + 1]
    return default


def log_pid(extra=""):
    with open(os.path.join(STATE, "pids.txt"), "a") as f:
        f.write(f"{ROLE} {os.getpid()}{extra}\n")


class Handler(BaseHTTPRequestHandler):
    def log_message(self, *a):
        pass

    def reply(self, code, body):
        data = json.dumps(body).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):
        if MODE == "hang-health":
            time.sleep(3600)
            return
        path = self.path.split("?")[0]
        if ROLE == "opencode":
            want = "Basic " + base64.b64encode(
                (os.environ.get("OPENCODE_SERVER_USERNAME", "opencode") + ":" +
                 os.environ.get("OPENCODE_SERVER_PASSWORD", "")).encode()).decode()
            if self.headers.get("Authorization") != want:
                self.send_response(401)
                self.end_headers()
                return
            if path == "/global/health":
                return self.reply(200, {"healthy": True, "version": "0.0.0-fake"})
        elif ROLE == "server":
            ws = arg("--workspace")
            if path == "/health":
                return self.reply(200, {"ok": True, "version": "0.0.0-fake"})
            if path == "/workspaces":
                return self.reply(200, {"items": [{
                    "id": "ws-fake", "path": ws,
                    "opencode": {
                        "baseUrl": arg("--opencode-base-url"),
                        "directory": arg("--opencode-directory"),
                        "username": os.environ.get("OPENWORK_OPENCODE_USERNAME"),
                        "password": os.environ.get("OPENWORK_OPENCODE_PASSWORD"),
                    }}]})
            if path.startswith("/workspace/") and path.endswith("/config"):
                return self.reply(200, {"opencode": {}, "openwork": {}})
            if path == "/approvals":
                return self.reply(200, {"items": []})
        elif ROLE == "router":
            if path == "/health":
                return self.reply(200, {"ok": True})
        self.reply(404, {"ok": False, "error": "Not found"})

    def do_POST(self):
        if ROLE == "server" and self.path.startswith("/tokens"):
            return self.reply(201, {"token": "owt_fake_owner_token"})
        self.reply(404, {"ok": False})


def flood(lines, rate):
    """Prints `lines` numbered lines, `rate` per second (0: unthrottled), then a done line."""
    out = sys.stdout
    start = time.monotonic()
    batch = 100
    for i in range(0, lines, batch):
        out.write("".join(f"flood line {j} level=INFO some payload to make it a realistic length\n"
                          for j in range(i, min(i + batch, lines))))
        out.flush()
        if rate > 0:
            ahead = (i + batch) / rate - (time.monotonic() - start)
            if ahead > 0:
                time.sleep(ahead)
    print(f"flood done {lines}", flush=True)


def main():
    os.makedirs(STATE, exist_ok=True)
    log_pid()
    if ROLE == "router":
        port = int(os.environ["OPENCODE_ROUTER_HEALTH_PORT"])
    else:
        port = int(arg("--port"))
    if MODE == "grandchild":
        child = subprocess.Popen(["sleep", "600"])
        log_pid(f" grandchild {child.pid}")
    server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    if ROLE == "opencode":
        print(f"opencode server listening on http://127.0.0.1:{port}", flush=True)
    else:
        print(f"fake {ROLE} listening on {port}", flush=True)
    if MODE == "flood":
        flood(int(os.environ.get("FAKE_FLOOD_LINES", "100000")),
              float(os.environ.get("FAKE_FLOOD_RATE", "0")))
    crash = MODE == "crash-always"
    if MODE == "crash-once":
        marker = os.path.join(STATE, f"{ROLE}.crashed")
        if not os.path.exists(marker):
            open(marker, "w").close()
            crash = True
    if crash:
        time.sleep(1.0)
        print(f"fake {ROLE} crashing on purpose", file=sys.stderr, flush=True)
        os._exit(3)
    while True:
        time.sleep(3600)


if __name__ == "__main__":
    main()
