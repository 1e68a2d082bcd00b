#!/usr/bin/env python3
"""A scripted OpenAI-compatible model for scripts/test-openclaw.sh.

It stands in for the LLM behind a real OpenClaw gateway. For each agent turn it does what
the agent's AGENTS.md tells a real model to do with an agentbus job: it finds the job's
marker lines in the hook message (AGENTBUS_JOB_ID, AGENTBUS_LEASE_TOKEN, ...) and calls
OpenClaw's `exec` tool once, running the fleet's stand-in agent (scripts/demo/agent.sh)
for that job. Everything else gets a short text answer.

Two traps of a scripted model behind OpenClaw are handled (see the gateway's behaviour in
the README's OpenClaw section): the last message of a turn is never the task (OpenClaw
appends an internal-context message after the task and after every tool result), so the
tool is called only when no tool call followed the task message; and a heartbeat turn has
no job, so it is answered NO_REPLY.

Usage: fake_model.py PORT AGENT_SCRIPT LOG_FILE
"""

import json
import re
import shlex
import sys
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

PORT = int(sys.argv[1])
AGENT_SCRIPT = sys.argv[2]
LOG = open(sys.argv[3], "a", buffering=1)
MODEL = "fake-1"
MARKERS = ("NAMESPACE", "JOB_ID", "ATTEMPT", "LEASE_TOKEN", "AGENT")
# Values of the marker lines are ids, numbers and agent names; anything else is refused.
SAFE = re.compile(r"^[A-Za-z0-9._:-]{1,200}$")


def text_of(message):
    content = message.get("content")
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "\n".join(p.get("text", "") for p in content if isinstance(p, dict))
    return ""


def decide(messages):
    """The tool call to make, or the text to answer."""
    task = None
    for i, m in enumerate(messages):
        if m.get("role") == "user" and "AGENTBUS_JOB_ID: " in text_of(m):
            task = i
    if task is None:
        return None, "NO_REPLY"
    if any(m.get("role") == "assistant" and m.get("tool_calls") for m in messages[task + 1:]):
        return None, "Done: the job is closed with agentbus."
    found = {}
    for line in text_of(messages[task]).splitlines():
        for name in MARKERS:
            prefix = f"AGENTBUS_{name}: "
            if line.strip().startswith(prefix):
                found[name] = line.strip()[len(prefix):].strip()
    if any(name not in found or not SAFE.match(found[name]) for name in MARKERS):
        return None, "The job markers are incomplete; nothing was run."
    env = " ".join(f"AGENTBUS_{k}={shlex.quote(v)}" for k, v in found.items())
    return f"env {env} bash {shlex.quote(AGENT_SCRIPT)}", None


def chunk(delta, finish=None):
    return {
        "id": "chatcmpl-fake",
        "object": "chat.completion.chunk",
        "created": int(time.time()),
        "model": MODEL,
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
    }


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, fmt, *args):
        LOG.write("http " + (fmt % args) + "\n")

    def send_json(self, status, doc):
        body = json.dumps(doc).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):
        if self.path.rstrip("/").endswith("/models"):
            self.send_json(200, {"object": "list", "data": [{"id": MODEL, "object": "model"}]})
        else:
            self.send_json(404, {"error": "not found"})

    def do_POST(self):
        length = int(self.headers.get("Content-Length") or 0)
        request = json.loads(self.rfile.read(length) or b"{}")
        command, text = decide(request.get("messages", []))
        LOG.write(json.dumps({"turn": len(request.get("messages", [])), "exec": command, "text": text}) + "\n")
        if command is not None:
            events = [
                chunk({"role": "assistant", "tool_calls": [{
                    "index": 0, "id": "call_" + uuid.uuid4().hex[:12], "type": "function",
                    "function": {"name": "exec", "arguments": ""}}]}),
                chunk({"tool_calls": [{"index": 0, "function": {
                    "arguments": json.dumps({"command": command})}}]}),
                chunk({}, "tool_calls"),
            ]
        else:
            events = [chunk({"role": "assistant", "content": text}), chunk({}, "stop")]
        body = "".join(f"data: {json.dumps(e)}\n\n" for e in events) + "data: [DONE]\n\n"
        data = body.encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


ThreadingHTTPServer(("127.0.0.1", PORT), Handler).serve_forever()
