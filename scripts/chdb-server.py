#!/usr/bin/env python3
"""The current ClickHouse engine behind the part of ClickHouse's HTTP
interface that sinkfleet's ClickHouse sink uses, for the tests.

No current ClickHouse server is installable here; PyPI's chdb-core is the
current engine (parser, MergeTree family, formats) as a library. This
front only carries requests to it, the way a server's HTTP handler does:

* POST (or GET) to `/`. The statement is the `query` URL parameter
  followed by the body (an INSERT's data), or the body alone. A gzip body
  (`Content-Encoding: gzip`) is inflated.
* Other URL parameters are settings, applied to that request only.
* `session_id` gives a request its own engine connection, kept while the
  session is used (temporary tables live there, as in a server's HTTP
  session); a request without one gets a fresh connection.
* The answer is the statement's output (its `FORMAT`, TabSeparated by
  default) with status 200, or the engine's exception text
  (`Code: N. DB::Exception: ...`) with status 500.

Users and passwords are not checked (the engine has none). Requests are
served one at a time.

Usage: chdb-server.py --port 58124 --data DIR
"""

import argparse
import gzip
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qsl, urlparse

import chdb

ENGINE = threading.Lock()
SESSIONS = {}  # session_id -> (connection, last used)
SESSION_IDLE_SECONDS = 60
NOT_SETTINGS = {"query", "session_id", "session_timeout", "database", "default_format"}


def quote(value):
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def run(data_dir, statement, settings, session_id):
    """Runs `statement` with `settings`; returns its output bytes."""
    now = time.monotonic()
    for sid, (conn, used) in list(SESSIONS.items()):
        if now - used > SESSION_IDLE_SECONDS:
            conn.close()
            del SESSIONS[sid]
    if session_id:
        conn = SESSIONS.get(session_id, (None, 0))[0] or chdb.connect(data_dir)
        SESSIONS[session_id] = (conn, now)
    else:
        conn = chdb.connect(data_dir)
    try:
        for name, value in settings:
            conn.query(f"SET {name} = {quote(value)}")
        return conn.query(statement, "TabSeparated").bytes()
    finally:
        for name, _ in settings:
            try:
                conn.query(f"SET {name} = DEFAULT")
            except Exception:  # the connection goes away below, or stays unset
                pass
        if not session_id:
            conn.close()


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    data_dir = None

    def handle_query(self):
        url = urlparse(self.path)
        params = parse_qsl(url.query, keep_blank_values=True)
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        if self.headers.get("Content-Encoding") == "gzip":
            body = gzip.decompress(body)
        query = dict(params).get("query")
        statement = (query + "\n" + body.decode()) if query is not None else body.decode()
        settings = [(k, v) for k, v in params if k not in NOT_SETTINGS]
        try:
            with ENGINE:
                out = run(self.data_dir, statement, settings, dict(params).get("session_id"))
            status = 200
        except Exception as e:  # the engine's exception text is the answer
            out = (str(e).strip() + "\n").encode()
            status = 500
        self.send_response(status)
        self.send_header("Content-Type", "text/tab-separated-values; charset=UTF-8")
        self.send_header("Content-Length", str(len(out)))
        self.end_headers()
        self.wfile.write(out)

    do_POST = handle_query
    do_GET = handle_query

    def log_message(self, fmt, *args):
        pass


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--data", required=True)
    args = parser.parse_args()
    Handler.data_dir = args.data
    # Opens the data directory once before serving: a bad one fails here.
    chdb.connect(args.data).close()
    server = ThreadingHTTPServer(("127.0.0.1", args.port), Handler)
    print(f"chdb {chdb.__version__} (ClickHouse engine) on 127.0.0.1:{args.port}", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
