# A minimal ACP agent (v1, or v2 with --v2) that edits the disk itself, as Claude Code, Codex and Gemini CLI
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
#   {"init": true}                                   answer with a message "INIT <initialize params as JSON>"
#   {"ask": TITLE}                                   request permission, answer "PERMISSION <outcome JSON>"
# Paths are relative to the session's cwd. Used by tests/tests/shadow_agent.rs.
#
# With `--v2` it speaks ACP v2 only (tests/tests/shadow_acp_v2.rs, acp_schema.rs): initialize
# must offer version 2 (else error -32022), chunks carry a messageId, a tool call is a
# `tool_call_update` whose diff is `changes` + a `git_patch`, a prompt is acknowledged at once
# with a messageId and its turn ends with a `state_update` to idle.
import json
import os
import sys

cwd = os.getcwd()
V2 = "--v2" in sys.argv[1:]
init_params = {}


def send(msg):
    sys.stdout.write(json.dumps(msg) + "\n")
    sys.stdout.flush()


def update(u):
    send({"jsonrpc": "2.0", "method": "session/update",
          "params": {"sessionId": "s1", "update": u}})


def say(text):
    u = {"sessionUpdate": "agent_message_chunk", "content": {"type": "text", "text": text}}
    if V2:
        u["messageId"] = "a1"
    update(u)


def diff_content(path, old, new):
    if not V2:
        return {"type": "diff", "path": path, "oldText": old, "newText": new}
    import difflib
    a = [] if old is None else old.splitlines(True)
    lines = list(difflib.unified_diff(a, new.splitlines(True),
                                      "/dev/null" if old is None else path, path))
    head = "diff --git %s %s\n" % (path, path)
    if old is None:
        head += "new file mode 100644\n"
    return {"type": "diff",
            "changes": [{"operation": "add" if old is None else "modify", "path": path}],
            "patch": {"format": "git_patch", "text": head + "".join(lines)}}


def tool_call(tid, title, content):
    if V2:
        update({"sessionUpdate": "tool_call_update", "toolCallId": tid, "title": title,
                "kind": "edit", "status": "in_progress", "content": content})
    else:
        update({"sessionUpdate": "tool_call", "toolCallId": tid, "title": title,
                "kind": "edit", "status": "in_progress", "content": content})


def ask(title, n):
    pid = "perm-%d" % n
    call = {"toolCallId": "call-%d" % n, "title": title, "kind": "edit"}
    if V2:
        params = {"sessionId": "s1", "title": title, "subject": {"type": "tool_call", "toolCall": call},
                  "options": [{"optionId": "yes", "name": "Allow", "kind": "allow_once"},
                              {"optionId": "no", "name": "Reject", "kind": "reject_once"}]}
    else:
        params = {"sessionId": "s1", "toolCall": call,
                  "options": [{"optionId": "yes", "name": "Allow", "kind": "allow_once"},
                              {"optionId": "no", "name": "Reject", "kind": "reject_once"}]}
    send({"jsonrpc": "2.0", "id": pid, "method": "session/request_permission", "params": params})
    for line in sys.stdin:
        msg = json.loads(line)
        if msg.get("id") == pid and "method" not in msg:
            say("PERMISSION " + json.dumps(msg.get("result", msg.get("error"))))
            return


def act(a, n):
    if "write" in a or "rename_write" in a:
        rel = a.get("write") or a.get("rename_write")
        path = os.path.join(cwd, rel)
        tid = "call-%d" % n
        if a.get("diff"):
            old = open(path).read() if os.path.exists(path) else None
            tool_call(tid, "Edit " + rel, [diff_content(path, old, a["content"])])
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
    elif "init" in a:
        say("INIT " + json.dumps(init_params))
    elif "ask" in a:
        ask(a["ask"], n)
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
    if method == "initialize" and V2:
        init_params = msg["params"]
        if init_params.get("protocolVersion", 0) >= 2:
            send({"jsonrpc": "2.0", "id": mid, "result": {
                "protocolVersion": 2, "capabilities": {"session": {}},
                "info": {"name": "disk-agent", "version": "2"}}})
        else:
            send({"jsonrpc": "2.0", "id": mid, "error": {
                "code": -32022, "message": "unsupported protocol version",
                "data": {"requested": init_params.get("protocolVersion", 0), "supported": [2]}}})
    elif method == "initialize":
        init_params = msg["params"]
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
        if V2:
            # Acknowledged at once; the turn's end is the idle state update.
            update({"sessionUpdate": "state_update", "state": "running"})
            send({"jsonrpc": "2.0", "id": mid, "result": {"messageId": "u%s" % mid}})
        for n, a in enumerate(actions):
            act(a, n)
        say("done")
        if V2:
            update({"sessionUpdate": "state_update", "state": "idle", "stopReason": "end_turn"})
        else:
            send({"jsonrpc": "2.0", "id": mid, "result": {"stopReason": "end_turn"}})
    elif method == "session/cancel" or (mid is not None and method is None):
        pass
    elif mid is not None and method is not None:
        send({"jsonrpc": "2.0", "id": mid, "error": {"code": -32601, "message": "unknown " + method}})
