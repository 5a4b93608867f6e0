#!/usr/bin/env python3
"""Write → proposal latency through the shadow workspace (docs/benchmarks.md).

Starts `airlock serve --isolation shadow` with the test's disk-writing agent
(tests/tests/shadow_support/disk_agent.py), which writes a file N times, each time with its
wall-clock time in the content; for every `airlock/proposal` the editor receives, the latency
is (receipt time - the time in the proposed text). Same machine, same clock.

usage: scripts/bench-shadow.py [N] [gap_ms] [files]   (files: extra files in the workspace,
                                                  in 100 dirs; env: AIRLOCK_BIN, default target/release/airlock
                                                  or target/debug/airlock; AIRLOCK_TEST_NO_OVERLAY=1
                                                  or AIRLOCK_TEST_NO_USERNS=1 pick the copy modes)
"""
import json, os, subprocess, sys, tempfile, time

root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
n = int(sys.argv[1]) if len(sys.argv) > 1 else 200
gap = int(sys.argv[2]) if len(sys.argv) > 2 else 20
binary = os.environ.get("AIRLOCK_BIN") or next(
    p for p in (f"{root}/target/release/airlock", f"{root}/target/debug/airlock") if os.path.exists(p))
agent = open(f"{root}/tests/tests/shadow_support/disk_agent.py").read()
tmp = tempfile.mkdtemp(prefix="airlock-bench-shadow-")
print("dir", tmp, file=sys.stderr)
ws = os.path.join(tmp, "ws")
os.makedirs(ws)
with open(os.path.join(ws, "f.txt"), "w") as f:
    f.write("start\n")
for i in range(int(sys.argv[3]) if len(sys.argv) > 3 else 0):
    d = os.path.join(ws, "d%03d" % (i % 100))
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, "f%d.rs" % i), "w") as f:
        f.write("// file %d\n" % i)
env = dict(os.environ, HOME=f"{tmp}/home", XDG_CONFIG_HOME=f"{tmp}/config", XDG_STATE_HOME=f"{tmp}/state",
           AIRLOCK_MANAGED_POLICY=f"{tmp}/managed.toml")
p = subprocess.Popen([binary, "serve", "--isolation", "shadow"], stdin=subprocess.PIPE,
                     stdout=subprocess.PIPE, env=env, bufsize=0)
next_id = [0]


def send(msg):
    body = json.dumps(msg).encode()
    p.stdin.write(b"Content-Length: %d\r\n\r\n" % len(body) + body)
    p.stdin.flush()


def request(method, params):
    next_id[0] += 1
    send({"jsonrpc": "2.0", "id": next_id[0], "method": method, "params": params})
    return next_id[0]


buf = b""


def read(timeout=None):
    """One message, or None when nothing arrives within `timeout` seconds."""
    global buf
    import select
    while True:
        head_end = buf.find(b"\r\n\r\n")
        if head_end >= 0:
            length = 0
            for line in buf[:head_end].split(b"\r\n"):
                if line.lower().startswith(b"content-length:"):
                    length = int(line.split(b":")[1])
            if len(buf) >= head_end + 4 + length:
                body = buf[head_end + 4:head_end + 4 + length]
                buf = buf[head_end + 4 + length:]
                return json.loads(body)
        if not select.select([p.stdout], [], [], timeout)[0]:
            return None
        chunk = os.read(p.stdout.fileno(), 1 << 16)
        if not chunk:
            sys.exit("server ended")
        buf += chunk


python = "/usr/bin/python3" if os.path.exists("/usr/bin/python3") else "python3"
request("initialize", {"processId": None, "rootUri": "file://" + ws,
                       "capabilities": {"experimental": {"airlock": True}},
                       "initializationOptions": {"agent": {"command": [python, "-c", agent]}}})
prompt_id = None
latencies = []
deadline = None
while True:
    msg = read(None if deadline is None else max(0.0, deadline - time.time()))
    if msg is None:
        break
    if "id" in msg and "method" in msg:  # server → client request: answer like an editor
        send({"jsonrpc": "2.0", "id": msg["id"], "result": None})
        continue
    if msg.get("id") == 1:
        send({"jsonrpc": "2.0", "method": "initialized", "params": {}})
        actions = [{"stamped": "f.txt", "count": n, "gap_ms": gap}]
        prompt_id = request("airlock/prompt", {"text": "bench\nDO " + json.dumps(actions)})
        continue
    if msg.get("method") == "airlock/proposal" and msg["params"]["event"] == "created":
        now = time.time()
        text = json.dumps(msg["params"]["proposal"])
        i = text.find("t=")
        if i >= 0:
            latencies.append((now - float(text[i + 2:].split("\\n")[0])) * 1000)
    if msg.get("id") == prompt_id:
        if "error" in msg:
            sys.exit("prompt failed: %s" % msg["error"])
        # Notifications travel apart from the reply: collect the late ones.
        deadline = time.time() + 2
request("shutdown", None)
send({"jsonrpc": "2.0", "method": "exit"})
p.wait(timeout=10)
latencies.sort()
if not latencies:
    sys.exit("no proposals seen")
pct = lambda q: latencies[min(len(latencies) - 1, int(q * len(latencies)))]
print(f"writes {n}, proposals {len(latencies)}, latency ms: p50 {pct(0.5):.2f} p90 {pct(0.9):.2f} "
      f"p99 {pct(0.99):.2f} max {latencies[-1]:.2f}")
