#!/usr/bin/env python3
"""A scripted OpenAI-compatible /v1/chat/completions server for xwin's judge tests (stdlib only).

Verdicts are functions of the request, so they do not depend on the order of presentation:
a pairwise prompt (MT-bench pair-v2 or pair-v2-multi-turn) is won by the longer final answer
([[C]] when both have the same length); a single-answer prompt is rated 1 + len(answer) % 10.

A marker MODE:<name> anywhere in the messages picks a fault. Faults count attempts per distinct
request body (attempt n = the n-th time this exact body arrives):
  slow       attempt 1 waits --slow seconds before answering (beyond the client's timeout)
  e500       attempts 1 and 2 answer 500
  e429       attempt 1 answers 429 with Retry-After: 1
  e400       always 400 (a client error: must not be retried)
  malformed  attempt 1 answers 200 with a body that is not JSON
  truncated  attempt 1 announces more bytes than it sends and closes the connection
  drop       attempt 1 closes the connection without answering
  garbage    always a reply without a verdict
  noisy      attempt 1 is a reply without a verdict
  biased     always [[A]] (a position-biased judge)

--require_key KEY answers 401 (echoing the key it got, as OpenAI does) to any other key.
--hang_after N with --hang_flag FILE: while FILE exists, requests arriving after N answered
ones are held; when FILE goes away, a held request whose client has gone is logged as not
answered (so a killed client's in-flight requests are never counted as answered).

Every request is two JSON lines in --log, one when it arrives and one when it is done:
  {"event": "arrive", "t", "key", "mode", "attempt", "auth"}
  {"event": "done", "t", "key", "mode", "attempt", "status", "answered"}
The chosen port is written to --port_file once the server listens.
"""
import argparse
import hashlib
import json
import os
import re
import select
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

ARGS = None
LOCK = threading.Lock()
ATTEMPTS = {}
ANSWERED = [0]


def last_match(pattern, text):
    found = re.findall(pattern, text, re.S)
    return found[-1] if found else None


def answer_of(text, who):
    """The final answer of assistant `who` ("A", "B" or "" for single grading), or None."""
    if who:
        a = last_match(r"\[The Start of Assistant %s's Answer\]\n(.*?)\n\[The End of Assistant %s's Answer\]" % (who, who), text)
    else:
        a = last_match(r"\[The Start of Assistant's Answer\]\n(.*?)\n\[The End of Assistant's Answer\]", text)
    if a is None:
        a = last_match(r"### Assistant %s:\n(.*?)\n\n(?:### User:|<\|The End)" % (who or "A"), text)
    return a


def judge(text):
    """The deterministic reply to a judge prompt."""
    if "Assistant B" in text:
        a, b = answer_of(text, "A") or "", answer_of(text, "B") or ""
        v = "A" if len(a) > len(b) else "B" if len(b) > len(a) else "C"
        return "Comparing the two answers, the longer one is better here. [[%s]]" % v
    ans = answer_of(text, "") or ""
    return "The answer is adequate. Rating: [[%d]]" % (1 + len(ans) % 10)


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # no 40 ms delayed-ACK stalls between headers and body

    def log_message(self, *a):
        pass

    def log(self, **rec):
        rec["t"] = time.time()
        with LOCK:
            with open(ARGS.log, "a") as f:
                f.write(json.dumps(rec) + "\n")

    def client_gone(self):
        r, _, _ = select.select([self.connection], [], [], 0)
        if not r:
            return False
        try:
            return self.connection.recv(1, socket.MSG_PEEK) == b""
        except OSError:
            return True

    def send(self, status, payload, headers=(), declared=None, cut=None):
        data = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(declared if declared is not None else len(data)))
        for k, v in headers:
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(data if cut is None else data[:cut])
        self.wfile.flush()

    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        key = hashlib.sha256(body).hexdigest()[:32]
        auth = self.headers.get("Authorization")
        try:
            req = json.loads(body)
            text = "\n".join(m.get("content", "") for m in req["messages"])
        except Exception:
            req, text = {}, ""
        m = re.search(r"MODE:(\w+)", text)
        mode = m.group(1) if m else "ok"
        with LOCK:
            ATTEMPTS[key] = n = ATTEMPTS.get(key, 0) + 1
            hold = ARGS.hang_flag and os.path.exists(ARGS.hang_flag) and ANSWERED[0] >= ARGS.hang_after
        rec = dict(key=key, mode=mode, attempt=n)
        self.log(event="arrive", auth=auth, **rec)
        rec.update(event="done", answered=False)
        if hold:
            while os.path.exists(ARGS.hang_flag):
                time.sleep(0.05)
            if self.client_gone():
                self.close_connection = True
                return self.log(status=0, **rec)
        if ARGS.delay:
            time.sleep(ARGS.delay)
        status, payload, headers, extra = 200, None, [], {}
        if not self.path.endswith("/chat/completions"):
            status, payload = 404, {"error": {"message": "no route %s" % self.path}}
        elif ARGS.require_key and auth != "Bearer " + ARGS.require_key:
            given = (auth or "").replace("Bearer ", "")
            status, payload = 401, {"error": {"message": "Incorrect API key provided: %s." % given}}
        elif mode == "slow" and n == 1:
            time.sleep(ARGS.slow)
        elif mode == "e500" and n <= 2:
            status, payload = 500, {"error": {"message": "internal error"}}
        elif mode == "e429" and n == 1:
            status, payload, headers = 429, {"error": {"message": "rate limited"}}, [("Retry-After", "1")]
        elif mode == "e400":
            status, payload = 400, {"error": {"message": "bad request: context length exceeded"}}
        elif mode == "malformed" and n == 1:
            payload = b"{this is not json"
        elif mode == "truncated" and n == 1:
            extra = dict(declared=1000, cut=20)
        elif mode == "drop" and n == 1:
            self.close_connection = True
            return self.log(status=0, **rec)
        if payload is None:
            content = judge(text)
            if mode == "garbage" or (mode == "noisy" and n == 1):
                content = "I cannot decide between these."
            elif mode == "biased":
                content = "Assistant A is better. [[A]]"
            payload = {
                "id": "chatcmpl-%s" % key[:12], "object": "chat.completion", "created": int(time.time()),
                "model": req.get("model", ""),
                "choices": [{"index": 0, "message": {"role": "assistant", "content": content},
                             "finish_reason": "stop"}],
                "usage": {"prompt_tokens": len(text) // 4, "completion_tokens": len(content) // 4,
                          "total_tokens": len(text) // 4 + len(content) // 4},
            }
        try:
            self.send(status, payload, headers, **extra)
            rec["answered"] = status == 200 and not extra
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True
        if extra:
            self.close_connection = True
        if rec["answered"]:
            with LOCK:
                ANSWERED[0] += 1
        self.log(status=status, **rec)


class Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128


def main():
    global ARGS
    p = argparse.ArgumentParser()
    p.add_argument("--port_file", required=True)
    p.add_argument("--log", required=True)
    p.add_argument("--delay", type=float, default=0.0, help="seconds before every reply")
    p.add_argument("--slow", type=float, default=2.0)
    p.add_argument("--require_key", default="")
    p.add_argument("--hang_after", type=int, default=0)
    p.add_argument("--hang_flag", default="")
    ARGS = p.parse_args()
    server = Server(("127.0.0.1", 0), Handler)
    tmp = ARGS.port_file + ".tmp"
    with open(tmp, "w") as f:
        f.write(str(server.server_address[1]))
    os.replace(tmp, ARGS.port_file)
    server.serve_forever()


if __name__ == "__main__":
    main()
