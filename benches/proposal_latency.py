#!/usr/bin/env python3
"""Agent write of a 1,000-line file → `airlock/proposal` at the client, and prompt → first
`airlock/agentUpdate` (the bridge round trip), with the real binary and the scripted agent.

Each measured turn is a fresh prompt; "write" turns make the agent write a 1,000-line file with
~1 % of lines changed (a new variant each time, so every write is a real diff), "message" turns
only send one message chunk. The write → proposal cost is the write turn's latency minus the
message turn's (both include the same prompt → agent hop), reported per percentile. (Timing a
chunk sent just before the write does not isolate the write: under load the chunk's own
delivery waits behind the write's processing.)
Usage: benches/proposal_latency.py [--stages] [path/to/airlock] [turns]
(default target/release/airlock, 60 turns). `--stages` runs the server with
AIRLOCK_LOG=airlock_lsp=debug and adds the server's per-stage breakdown of each write from its
"propose timings" log lines: CPU time of the state task per stage (robust on a loaded machine)
and wall time until the proposal is on disk (when the agent's write is answered).
"""
import glob, json, os, re, statistics, subprocess, sys, tempfile, time

ARGS = [a for a in sys.argv[1:] if a != "--stages"]
STAGES = "--stages" in sys.argv[1:]
AIRLOCK = ARGS[0] if len(ARGS) > 0 else "target/release/airlock"
TURNS = int(ARGS[1]) if len(ARGS) > 1 else 60

def text(variant):
    return "".join(f"line {i} {'v%d' % variant if i % 100 == 7 else 'same'} {'x' * 40}\n" for i in range(1000))

class Client:
    def __init__(self, cmd, env):
        self.p = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=env)
        self.next = 1
    def send(self, m):
        b = json.dumps(m).encode()
        self.p.stdin.write(b"Content-Length: %d\r\n\r\n" % len(b) + b); self.p.stdin.flush()
    def read(self):
        n = None
        while True:
            line = self.p.stdout.readline()
            if not line: raise RuntimeError("server closed")
            if line in (b"\r\n", b"\n"): break
            if line.lower().startswith(b"content-length"): n = int(line.split(b":")[1])
        return json.loads(self.p.stdout.read(n))
    def request(self, method, params, until=()):
        """Sends a request; returns its response and, per method in `until`, the time of the
        first notification of that method after sending."""
        i = self.next; self.next += 1
        t0 = time.perf_counter(); hits = {}
        self.send({"jsonrpc": "2.0", "id": i, "method": method, "params": params})
        while True:
            m = self.read()
            if "method" in m and "id" in m:
                self.send({"jsonrpc": "2.0", "id": m["id"], "result": None}); continue
            if m.get("method") in until and m["method"] not in hits:
                hits[m["method"]] = time.perf_counter() - t0
            if m.get("id") == i and "method" not in m:
                return m, hits

def pct(xs, p):
    xs = sorted(xs); return xs[min(len(xs) - 1, int(len(xs) * p))]

def main():
    tmp = tempfile.mkdtemp(prefix="airlock-bench-")
    ws = os.path.join(tmp, "ws"); os.makedirs(ws)
    with open(os.path.join(ws, "big.txt"), "w") as f: f.write(text(0))
    turns = []
    for i in range(1, TURNS + 1):
        turns.append(f'[[turn]]\nmatch = "write {i} now"\n[[turn.step]]\nwrite = "big.txt"\ncontent = {json.dumps(text(i))}\n')
        turns.append(f'[[turn]]\nmatch = "message {i} now"\n[[turn.step]]\nmessage = "m{i}"\n')
    script = os.path.join(tmp, "script.toml")
    with open(script, "w") as f: f.write("\n".join(turns))
    env = dict(os.environ, XDG_STATE_HOME=os.path.join(tmp, "state"), XDG_CONFIG_HOME=os.path.join(tmp, "config"), HOME=tmp)
    if STAGES:
        env["AIRLOCK_LOG"] = "airlock_lsp=debug"
    c = Client([AIRLOCK, "serve"], env)
    c.request("initialize", {"processId": os.getpid(), "rootUri": "file://" + ws,
                             "capabilities": {"experimental": {"airlock": True}},
                             "initializationOptions": {"agent": {"script": script}}})
    c.send({"jsonrpc": "2.0", "method": "initialized", "params": {}})
    c.request("airlock/prompt", {"text": "message 1 now"})  # start the agent outside the timing
    write, msg = [], []
    for i in range(1, TURNS + 1):
        _, t = c.request("airlock/prompt", {"text": f"write {i} now"}, until=("airlock/proposal",))
        write.append(t["airlock/proposal"] * 1000)
        _, t = c.request("airlock/prompt", {"text": f"message {i} now"}, until=("airlock/agentUpdate",))
        msg.append(t["airlock/agentUpdate"] * 1000)
    c.p.kill()
    print("| path | p50 | p99 |")
    print("|---|---|---|")
    print(f"| prompt → first `airlock/agentUpdate` (bridge round trip, baseline) | {statistics.median(msg):.2f} ms | {pct(msg, .99):.2f} ms |")
    print(f"| prompt → `airlock/proposal` for a 1,000-line write | {statistics.median(write):.2f} ms | {pct(write, .99):.2f} ms |")
    print(f"| difference: agent write → proposal at the client | {statistics.median(write) - statistics.median(msg):.2f} ms | {pct(write, .99) - pct(msg, .99):.2f} ms |")
    print(f"\n{TURNS} turns of each kind; {os.cpu_count()} cores; load average {os.getloadavg()[0]:.2f}.")
    if STAGES:
        time.sleep(0.5)  # the log is written by a background thread
        stages(tmp)

def duration_us(text):
    m = re.fullmatch(r"([0-9.]+)(ns|µs|ms|s)", text)
    return float(m.group(1)) * {"ns": 1e-3, "µs": 1, "ms": 1e3, "s": 1e6}[m.group(2)]

def stages(tmp):
    rows = {}
    for path in glob.glob(os.path.join(tmp, "state", "airlock", "logs", "serve.log*")):
        for line in open(path, encoding="utf-8"):
            if "propose timings" in line:
                for k, v in re.findall(r"(cpu_\w+_us)=(\d+)", line):
                    rows.setdefault(k, []).append(float(v))
                m = re.search(r"t_publish=(\S+)", line)
                if m:
                    rows.setdefault("wall_total_us", []).append(duration_us(m.group(1)))
                m = re.search(r"t_notify=(\S+)", line)
                if m:
                    rows.setdefault("wall_until_notified_us", []).append(duration_us(m.group(1)))
            elif "fs/write_text_file persisted" in line:
                m = re.search(r"elapsed_us=(\d+)", line)
                rows.setdefault("wall_until_on_disk_us", []).append(float(m.group(1)))
    print("\n| server stage (state task) | p50 | p99 |")
    print("|---|---|---|")
    for k in ["cpu_read_us", "cpu_store_us", "cpu_notify_us", "cpu_emit_us", "cpu_publish_us",
              "wall_until_notified_us", "wall_total_us", "wall_until_on_disk_us"]:
        xs = rows.get(k, [])
        if xs:
            print(f"| {k} | {statistics.median(xs) / 1000:.3f} ms | {pct(xs, .99) / 1000:.3f} ms |")

if __name__ == "__main__":
    main()
