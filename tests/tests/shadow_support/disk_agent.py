# A minimal ACP v1 agent that edits the disk itself, as Claude Code, Codex and Gemini CLI
# (without the client's fs capability) do: it never calls fs/* or terminal/*. The prompt carries
# what to do, one JSON list after a line starting with "DO ":
#   {"write": REL, "content": TEXT, "diff": true?}   open/write/close (a tool call with a diff if asked)
#   {"rename_write": REL, "content": TEXT, "pause_ms": MS?}  write a temp file in the same dir,
#                                                    (pause), rename it over REL
#   {"delete": REL}
#   {"rename": REL, "to": REL2}
#   {"read": REL}                                    answer with a message "READ REL: <content>"
#   {"write_abs": PATH, "content": TEXT}             try to write outside; reports "DENIED PATH" on failure
#   {"stamped": REL, "count": N, "gap_ms": MS}       N writes of "t=<unix time>" (benchmark: write → proposal)
# Paths are relative to the session's cwd. Used by tests/tests/shadow_agent.rs.
import json
import os
import sys

cwd = os.getcwd()


def send(msg):
    sys.stdout.write(json.dumps(msg) + "\n")
    sys.stdout.flush()


def update(u):
    send({"jsonrpc": "2.0", "method": "session/update",
          "params": {"sessionId": "s1", "update": u}})


def say(text):
    update({"sessionUpdate": "agent_message_chunk", "content": {"type": "text", "text": text}})


def act(a, n):
    if "write" in a or "rename_write" in a:
        rel = a.get("write") or a.get("rename_write")
        path = os.path.join(cwd, rel)
        tid = "call-%d" % n
        if a.get("diff"):
            old = open(path).read() if os.path.exists(path) else None
            update({"sessionUpdate": "tool_call", "toolCallId": tid, "title": "Edit " + rel,
                    "kind": "edit", "status": "in_progress",
                    "content": [{"type": "diff", "path": path, "oldText": old, "newText": a["content"]}]})
        try:
            os.makedirs(os.path.dirname(path), exist_ok=True)
            if "rename_write" in a:
                tmp = path + ".tmp.%d" % os.getpid()
                with open(tmp, "w") as f:
                    f.write(a["content"])
                if a.get("pause_ms"):
                    import time
                    time.sleep(a["pause_ms"] / 1000.0)
                os.rename(tmp, path)
            else:
                with open(path, "w") as f:
                    f.write(a["content"])
            say("WROTE " + rel)
        except OSError as e:
            say("DENIED %s (%s)" % (rel, e.strerror))
        if a.get("diff"):
            update({"sessionUpdate": "tool_call_update", "toolCallId": tid, "status": "completed"})
    elif "stamped" in a:
        import time
        path = os.path.join(cwd, a["stamped"])
        for _ in range(a.get("count", 1)):
            with open(path, "w") as f:
                f.write("t=%.6f\n" % time.time())
            time.sleep(a.get("gap_ms", 50) / 1000.0)
    elif "rename" in a:
        os.rename(os.path.join(cwd, a["rename"]), os.path.join(cwd, a["to"]))
    elif "delete" in a:
        os.remove(os.path.join(cwd, a["delete"]))
    elif "read" in a:
        try:
            text = open(os.path.join(cwd, a["read"])).read()
        except OSError:
            text = "<missing>"
        say("READ %s: %s" % (a["read"], text))
    elif "write_abs" in a:
        try:
            with open(a["write_abs"], "w") as f:
                f.write(a["content"])
            say("WROTE " + a["write_abs"])
        except OSError as e:
            say("DENIED %s (%s)" % (a["write_abs"], e.strerror))


for line in sys.stdin:
    try:
        msg = json.loads(line)
    except ValueError:
        continue
    method, mid = msg.get("method"), msg.get("id")
    if method == "initialize":
        send({"jsonrpc": "2.0", "id": mid, "result": {
            "protocolVersion": 1, "agentCapabilities": {}, "authMethods": [],
            "agentInfo": {"name": "disk-agent", "version": "1"}}})
    elif method == "session/new":
        send({"jsonrpc": "2.0", "id": mid, "result": {"sessionId": "s1"}})
    elif method == "session/prompt":
        text = "".join(b.get("text", "") for b in msg["params"]["prompt"])
        actions = []
        for l in text.splitlines():
            if l.startswith("DO "):
                actions = json.loads(l[3:])
        for n, a in enumerate(actions):
            act(a, n)
        say("done")
        send({"jsonrpc": "2.0", "id": mid, "result": {"stopReason": "end_turn"}})
    elif mid is not None and method is not None:
        send({"jsonrpc": "2.0", "id": mid, "error": {"code": -32601, "message": "unknown " + method}})
