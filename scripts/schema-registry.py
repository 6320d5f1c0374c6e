#!/usr/bin/env python3
"""A TEST schema registry for sinkfleet's own tests. Not a registry for production.

No Confluent Schema Registry (JVM) or Karapace can be installed on the
project's machines, so the tests of Confluent-framed records (Avro, Protobuf,
JSON Schema: magic byte 0, 4-byte big-endian schema id, payload) run against
this: the subset of Confluent Schema Registry's REST API that Confluent's
serializers and deserializers (and a sink resolving schema ids) use. Python 3
standard library only.

Tests must not trust it alone: the records they consume are produced by
Confluent's own serializers (confluent-kafka's AvroSerializer etc., see
scripts/testdata/connect_avro.py) talking to this registry, so the wire format
comes from Confluent's code; this file only stores and hands back schemas.

Endpoints (JSON in and out; responses are application/vnd.schemaregistry.v1+json,
any JSON content type is accepted on input):
  GET  /                                      {}
  GET  /schemas/types                         ["AVRO","JSON","PROTOBUF"]
  GET  /schemas/ids/{id}                      {"schema"[,"schemaType"][,"references"]}
                                              (schemaType only when not AVRO;
                                              unknown id: 404, 40403 "Schema {id} not found")
  GET  /schemas/ids/{id}/schema               the schema text itself
  GET  /schemas/ids/{id}/versions             [{"subject","version"}]
  GET  /schemas/ids/{id}/subjects             ["subject", ...]
  GET  /subjects                              ["subject", ...]
  GET  /subjects/{subject}/versions           [1, 2, ...]   (unknown: 404, 40401)
  GET  /subjects/{subject}/versions/{v}       {"subject","id","version","schema"[,"schemaType"][,"references"]}
                                              v = number, "latest" or -1 (unknown: 404, 40402)
  GET  /subjects/{subject}/versions/{v}/schema  the schema text itself
  POST /subjects/{subject}/versions           body {"schema", "schemaType" (absent = AVRO), "references"}
                                              -> {"id"}. Ids are global and start at 1; the
                                              same schema (same type, text and references)
                                              gets the same id under any subject; under a
                                              subject, an identical schema keeps its version,
                                              another one gets the next version.
  POST /subjects/{subject}                    lookup -> {"subject","id","version","schema"[,...]};
                                              404 40401 "Subject '{subject}' not found." or
                                              404 40403 "Schema not found"
  GET  /config, GET /config/{subject}         {"compatibilityLevel": "NONE"} (or what PUT set)
  PUT  /config, PUT /config/{subject}         body {"compatibility": L} -> echoed
  GET  /mode, GET /mode/{subject}             {"mode": "READWRITE"}
Errors: {"error_code": N, "message": "..."}: 404/405 for unknown paths and
methods, 415 for a non-JSON content type, 422 with 42201 for a body that is not
JSON or a schema that is not (Avro/JSON Schema must parse as JSON), 422 with
42202 for a bad version, 500 with 50001 for anything unexpected; on the TLS
listener 401 {"error_code":401,"message":"Unauthorized"} without the right
HTTP basic credentials.

Anything else is 404 (error_code 404), e.g. GET /associations/...: that is
what confluent-kafka 2.16's default "associated" subject name strategy asks
first, and on 404 it falls back to TopicNameStrategy, as against a real
registry without associations.

Not done: compatibility is NEVER checked (any schema is accepted under any
subject whatever the configured level); no DELETE, contexts, metadata, rule
sets, modes other than READWRITE, or schema normalization beyond "same JSON,
whitespace aside" for AVRO and JSON (Protobuf text is compared as is).

State (schemas, subjects, config) is kept in the --data JSON file, rewritten
atomically (temp file + rename) after each change, so a restart keeps ids.

Usage:
  schema-registry.py --data FILE --port P
      [--tls-port P --cert server.crt --key server.key --user U --password W]
Both listeners bind 127.0.0.1 only: --port is plain HTTP without auth,
--tls-port is HTTPS with HTTP basic auth. One line per request goes to stderr.
"""

import argparse
import base64
import hmac
import json
import os
import signal
import ssl
import sys
import tempfile
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

CONTENT_TYPE = "application/vnd.schemaregistry.v1+json"
TYPES = ("AVRO", "JSON", "PROTOBUF")


class ApiError(Exception):
    def __init__(self, status, code, message):
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


class Store:
    """Schemas by global id and subjects' versions, persisted as one JSON file."""

    def __init__(self, path):
        self.path = path
        self.lock = threading.Lock()
        self.schemas = []  # index id-1: {"schema", "schemaType", "references"}
        self.subjects = {}  # subject -> [id of version 1, id of version 2, ...]
        self.config = {}  # "" (global) or subject -> level
        if os.path.exists(path):
            with open(path, encoding="utf-8") as f:
                state = json.load(f)
            self.schemas = state["schemas"]
            self.subjects = state["subjects"]
            self.config = state.get("config", {})

    def save(self):
        state = {"schemas": self.schemas, "subjects": self.subjects, "config": self.config}
        d = os.path.dirname(os.path.abspath(self.path))
        fd, tmp = tempfile.mkstemp(dir=d, prefix=".registry-", suffix=".tmp")
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                json.dump(state, f, indent=1)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, self.path)
        except BaseException:
            if os.path.exists(tmp):
                os.unlink(tmp)
            raise

    @staticmethod
    def key(schema, schema_type, refs):
        """What makes two registrations the same schema."""
        text = schema
        if schema_type in ("AVRO", "JSON"):
            text = json.dumps(json.loads(schema), separators=(",", ":"), ensure_ascii=False)
        return json.dumps([schema_type, text, refs], separators=(",", ":"), ensure_ascii=False)

    def find_id(self, schema, schema_type, refs):
        k = self.key(schema, schema_type, refs)
        for i, s in enumerate(self.schemas):
            if self.key(s["schema"], s["schemaType"], s["references"]) == k:
                return i + 1
        return None

    def get(self, schema_id):
        if not 1 <= schema_id <= len(self.schemas):
            raise ApiError(404, 40403, "Schema %d not found" % schema_id)
        return self.schemas[schema_id - 1]

    def versions(self, subject):
        if subject not in self.subjects:
            raise ApiError(404, 40401, "Subject '%s' not found." % subject)
        return self.subjects[subject]

    def register(self, subject, schema, schema_type, refs):
        with self.lock:
            schema_id = self.find_id(schema, schema_type, refs)
            versions = self.subjects.get(subject, [])
            if schema_id is not None and schema_id in versions:
                return schema_id
            if schema_id is None:
                self.schemas.append({"schema": schema, "schemaType": schema_type, "references": refs})
                schema_id = len(self.schemas)
            self.subjects[subject] = versions + [schema_id]
            self.save()
            return schema_id

    def version_entry(self, subject, version, schema_id):
        out = {"subject": subject, "version": version, "id": schema_id}
        out.update(schema_body(self.get(schema_id)))
        return out

    def lookup(self, subject, schema, schema_type, refs):
        with self.lock:
            versions = self.versions(subject)
            schema_id = self.find_id(schema, schema_type, refs)
            if schema_id is None or schema_id not in versions:
                raise ApiError(404, 40403, "Schema not found")
            return self.version_entry(subject, versions.index(schema_id) + 1, schema_id)

    def subject_version(self, subject, version):
        with self.lock:
            versions = self.versions(subject)
            if version in ("latest", "-1"):
                n = len(versions)
            else:
                try:
                    n = int(version)
                except ValueError:
                    raise ApiError(422, 42202, "The specified version '%s' is not a valid version id. "
                                   "Allowed values are between [1, 2^31-1] and the string \"latest\"" % version)
                if n < 1:
                    raise ApiError(422, 42202, "The specified version '%s' is not a valid version id." % version)
                if n > len(versions):
                    raise ApiError(404, 40402, "Version %d not found." % n)
            return self.version_entry(subject, n, versions[n - 1])

    def set_config(self, subject, level):
        with self.lock:
            self.config[subject] = level
            self.save()

    def get_config(self, subject):
        with self.lock:
            return self.config.get(subject) or self.config.get("") or "NONE"


def schema_body(s):
    out = {"schema": s["schema"]}
    if s["schemaType"] != "AVRO":
        out["schemaType"] = s["schemaType"]
    if s["references"]:
        out["references"] = s["references"]
    return out


def parse_schema_request(body):
    if not isinstance(body, dict) or not isinstance(body.get("schema"), str):
        raise ApiError(422, 42201, "Invalid schema: the body needs a string field \"schema\"")
    schema_type = body.get("schemaType") or "AVRO"
    if schema_type not in TYPES:
        raise ApiError(422, 42201, "Invalid schema type %s" % schema_type)
    refs = body.get("references") or []
    if not isinstance(refs, list):
        raise ApiError(422, 42201, "Invalid schema: references must be a list")
    if schema_type in ("AVRO", "JSON"):
        try:
            json.loads(body["schema"])
        except ValueError as e:
            raise ApiError(422, 42201, "Invalid schema: %s" % e)
    return body["schema"], schema_type, refs


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "sinkfleet-test-registry"
    timeout = 60

    # Set per listener (server attributes): store, credentials or None, label.
    def log_request(self, code="-", size="-"):
        sys.stderr.write("[registry] %s %s %s %s %s\n" % (
            time.strftime("%Y-%m-%dT%H:%M:%S"), self.server.label, self.command, self.path, code))
        sys.stderr.flush()

    def log_message(self, fmt, *args):
        sys.stderr.write("[registry] %s %s %s\n" % (
            time.strftime("%Y-%m-%dT%H:%M:%S"), self.server.label, fmt % args))
        sys.stderr.flush()

    def send_json(self, status, obj, raw=False):
        data = obj.encode("utf-8") if raw else json.dumps(obj).encode("utf-8")
        self.send_response(status)
        self.send_header("Content-Type", "text/plain; charset=utf-8" if raw else CONTENT_TYPE)
        self.send_header("Content-Length", str(len(data)))
        if status == 401:
            self.send_header("WWW-Authenticate", 'Basic realm="sinkfleet-test-registry"')
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    def authorized(self):
        creds = self.server.credentials
        if creds is None:
            return True
        header = self.headers.get("Authorization", "")
        if not header.startswith("Basic "):
            return False
        try:
            given = base64.b64decode(header[6:].strip(), validate=True)
        except ValueError:
            return False
        want = ("%s:%s" % creds).encode("utf-8")
        return hmac.compare_digest(given, want)

    def read_body(self):
        length = int(self.headers.get("Content-Length") or 0)
        data = self.rfile.read(length) if length else b""
        ctype = self.headers.get("Content-Type", "")
        if ctype and "json" not in ctype.lower():
            raise ApiError(415, 415, "HTTP 415 Unsupported Media Type")
        try:
            return json.loads(data.decode("utf-8")) if data else None
        except (ValueError, UnicodeDecodeError) as e:
            raise ApiError(422, 42201, "Unrecognized JSON in the request body: %s" % e)

    def handle_any(self):
        try:
            if not self.authorized():
                # The body is not read: close the connection after answering.
                self.close_connection = True
                raise ApiError(401, 401, "Unauthorized")
            body = self.read_body() if self.command in ("POST", "PUT") else None
            result = self.route(body)
            if isinstance(result, tuple):  # (text, "raw")
                self.send_json(200, result[0], raw=True)
            else:
                self.send_json(200, result)
        except ApiError as e:
            self.send_json(e.status, {"error_code": e.code, "message": e.message})
        except Exception as e:  # noqa: BLE001 - a test service answers rather than dies
            self.log_message("internal error: %r", e)
            self.send_json(500, {"error_code": 50001, "message": "Error in the backend data store: %s" % e})

    do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = handle_any

    def route(self, body):
        store = self.server.store
        path = urllib.parse.urlsplit(self.path).path
        parts = [urllib.parse.unquote(p) for p in path.strip("/").split("/")] if path.strip("/") else []
        m = self.command

        def method(*allowed):
            if m not in allowed:
                raise ApiError(405, 405, "HTTP 405 Method Not Allowed")

        if parts == []:
            method("GET", "HEAD")
            return {}
        if parts[0] == "schemas":
            if parts[1:] == ["types"]:
                method("GET")
                return list(TYPES)
            if len(parts) >= 3 and parts[1] == "ids":
                try:
                    schema_id = int(parts[2])
                except ValueError:
                    raise ApiError(404, 40403, "Schema %s not found" % parts[2])
                method("GET")
                with store.lock:
                    s = store.get(schema_id)
                    if len(parts) == 3:
                        return schema_body(s)
                    if parts[3:] == ["schema"]:
                        return (s["schema"], "raw")
                    found = [(subj, vs.index(schema_id) + 1) for subj, vs in sorted(store.subjects.items())
                             if schema_id in vs]
                    if parts[3:] == ["versions"]:
                        return [{"subject": subj, "version": v} for subj, v in found]
                    if parts[3:] == ["subjects"]:
                        return [subj for subj, _ in found]
        elif parts[0] == "subjects":
            if len(parts) == 1:
                method("GET")
                with store.lock:
                    return sorted(store.subjects)
            subject = parts[1]
            if len(parts) == 2:
                method("POST")
                return store.lookup(subject, *parse_schema_request(body))
            if parts[2] == "versions":
                if len(parts) == 3:
                    method("GET", "POST")
                    if m == "POST":
                        return {"id": store.register(subject, *parse_schema_request(body))}
                    with store.lock:
                        return list(range(1, len(store.versions(subject)) + 1))
                method("GET")
                entry = store.subject_version(subject, parts[3])
                if len(parts) == 4:
                    return entry
                if parts[4:] == ["schema"]:
                    return (entry["schema"], "raw")
        elif parts[0] == "config" and len(parts) <= 2:
            subject = parts[1] if len(parts) == 2 else ""
            method("GET", "PUT")
            if m == "PUT":
                level = (body or {}).get("compatibility") if isinstance(body, dict) else None
                if not isinstance(level, str):
                    raise ApiError(422, 42203, "Invalid compatibility level")
                store.set_config(subject, level.upper())
                return {"compatibility": level.upper()}
            return {"compatibilityLevel": store.get_config(subject)}
        elif parts[0] == "mode" and len(parts) <= 2:
            method("GET")
            return {"mode": "READWRITE"}
        raise ApiError(404, 404, "HTTP 404 Not Found")


class Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, port, store, label, credentials=None, tls=None):
        super().__init__(("127.0.0.1", port), Handler)
        self.store, self.label, self.credentials, self.tls = store, label, credentials, tls

    def finish_request(self, request, client_address):
        # The TLS handshake runs in the request's own thread, not in the
        # accept loop, so one stalled client cannot block the listener.
        if self.tls is not None:
            request.settimeout(Handler.timeout)
            try:
                request = self.tls.wrap_socket(request, server_side=True)
            except (ssl.SSLError, OSError) as e:
                # A port probe (connect, close) is not worth a line.
                if isinstance(e, (ssl.SSLEOFError, ConnectionResetError)) or \
                        getattr(e, "reason", None) == "UNEXPECTED_EOF_WHILE_READING":
                    return
                sys.stderr.write("[registry] %s tls handshake failed from %s: %s\n" % (
                    time.strftime("%Y-%m-%dT%H:%M:%S"), client_address[0], e))
                return
        super().finish_request(request, client_address)


def main():
    p = argparse.ArgumentParser(description="sinkfleet's TEST schema registry (not for production)")
    p.add_argument("--data", required=True, help="JSON file holding the registry's state")
    p.add_argument("--port", type=int, required=True, help="plain HTTP port on 127.0.0.1, no auth")
    p.add_argument("--tls-port", type=int, help="HTTPS port on 127.0.0.1, with HTTP basic auth")
    p.add_argument("--cert", help="server certificate (PEM), for --tls-port")
    p.add_argument("--key", help="server private key (PEM), for --tls-port")
    p.add_argument("--user", help="basic auth user, for --tls-port")
    p.add_argument("--password", help="basic auth password, for --tls-port")
    a = p.parse_args()
    if a.tls_port and not (a.cert and a.key and a.user and a.password is not None):
        p.error("--tls-port needs --cert, --key, --user and --password")

    store = Store(a.data)
    servers = [Server(a.port, store, "http")]
    if a.tls_port:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.minimum_version = ssl.TLSVersion.TLSv1_2
        ctx.load_cert_chain(a.cert, a.key)
        servers.append(Server(a.tls_port, store, "https", (a.user, a.password), ctx))
    for s in servers:
        threading.Thread(target=s.serve_forever, daemon=True).start()
    sys.stderr.write("[registry] listening on http://127.0.0.1:%d%s, data %s (%d schemas)\n" % (
        a.port, " and https://127.0.0.1:%d (basic auth)" % a.tls_port if a.tls_port else "",
        a.data, len(store.schemas)))
    sys.stderr.flush()

    # Every change is already on disk (atomic rename), so on SIGTERM/SIGINT
    # the listeners are closed and the process exits at once (request
    # threads are daemons).
    done = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: done.set())
    signal.signal(signal.SIGINT, lambda *_: done.set())
    while not done.wait(0.2):
        pass
    for s in servers:
        s.server_close()


if __name__ == "__main__":
    main()
