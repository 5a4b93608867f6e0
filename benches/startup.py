#!/usr/bin/env python3
"""Startup and idle-memory benchmark of `airlock serve` (issue: foundation).

Measures, in one run and on the same machine:
  * time from spawn to the `initialize` reply of `airlock serve`, against a baseline of the
    same round trip through `cat` (spawn a process, write one LSP frame, read it back) — the
    floor for any stdio server;
  * resident memory after `initialized` (VmRSS), against `cat`'s.
Usage: benches/startup.py [path/to/airlock] [runs]   (default target/release/airlock, 50)
Prints a Markdown table for docs/benchmarks.md.
"""
import json, os, statistics, subprocess, sys, tempfile, time

AIRLOCK = sys.argv[1] if len(sys.argv) > 1 else "target/release/airlock"
RUNS = int(sys.argv[2]) if len(sys.argv) > 2 else 50

def frame(msg):
    body = json.dumps(msg).encode()
    return b"Content-Length: %d\r\n\r\n" % len(body) + body

def read_frame(f):
    n = None
    while True:
        line = f.readline()
        if not line:
            raise RuntimeError("closed")
        if line in (b"\r\n", b"\n"):
            break
        if line.lower().startswith(b"content-length"):
            n = int(line.split(b":")[1])
    return f.read(n)

def rss_kb(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0

def one(cmd, env, init):
    t0 = time.perf_counter()
    p = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=env)
    p.stdin.write(frame(init)); p.stdin.flush()
    read_frame(p.stdout)
    elapsed = time.perf_counter() - t0
    p.stdin.write(frame({"jsonrpc": "2.0", "method": "initialized", "params": {}})); p.stdin.flush()
    time.sleep(0.3)
    rss = rss_kb(p.pid)
    p.kill(); p.wait()
    return elapsed, rss

def main():
    tmp = tempfile.mkdtemp(prefix="airlock-bench-")
    ws = os.path.join(tmp, "ws"); os.makedirs(ws)
    env = dict(os.environ, XDG_STATE_HOME=os.path.join(tmp, "state"), XDG_CONFIG_HOME=os.path.join(tmp, "config"), HOME=tmp)
    init = {"jsonrpc": "2.0", "id": 1, "method": "initialize",
            "params": {"processId": os.getpid(), "rootUri": "file://" + ws, "capabilities": {}}}
    rows = {"airlock serve": ([], []), "cat (baseline)": ([], [])}
    for _ in range(RUNS):  # interleaved so load changes hit both alike
        for name, cmd in (("airlock serve", [AIRLOCK, "serve"]), ("cat (baseline)", ["cat"])):
            t, r = one(cmd, env, init)
            rows[name][0].append(t); rows[name][1].append(r)
    med = {k: (statistics.median(v[0]) * 1000, statistics.median(v[1]) / 1024) for k, v in rows.items()}
    p99 = {k: sorted(v[0])[int(len(v[0]) * 0.99) - 1] * 1000 for k, v in rows.items()}
    base_t, base_r = med["cat (baseline)"]
    print(f"| process | startup → initialize reply, median | p99 | idle RSS | ratio (time) |")
    print(f"|---|---|---|---|---|")
    for k, (t, r) in med.items():
        print(f"| {k} | {t:.2f} ms | {p99[k]:.2f} ms | {r:.1f} MiB | {t / base_t:.2f}× |")
    print(f"\n{RUNS} runs each, interleaved; {os.uname().release}, {os.cpu_count()} cores.")

if __name__ == "__main__":
    main()
