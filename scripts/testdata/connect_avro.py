#!/usr/bin/env python3
"""Debezium records -> Confluent-framed Avro, the way Kafka Connect's AvroConverter does it.

Test-data tool. Run it with the Python of the serializers' virtualenv
(`scripts/services.sh serializers-python`, or $SINKFLEET_SERIALIZERS_PYTHON).

Input (stdin), one JSON object a line:
  {"topic": "...", "key": <envelope or null>, "value": <envelope or null>}
where an envelope is what Kafka Connect's JsonConverter writes with
schemas.enable=true: {"schema": <Connect schema as JSON>, "payload": ...}.
Output (stdout), one JSON object a line, in input order:
  {"key": <base64 of the record key bytes or null>, "value": <base64 or null>}

What it does, per key and value (as a Connect worker would with
key/value.converter=io.confluent.connect.avro.AvroConverter, default settings):
  1. the Connect schema -> the Avro schema that Confluent's
     io.confluent.connect.avro.AvroData.fromConnectSchema makes (records named
     from the struct's name, unnamed ones io.confluent.connect.avro.ConnectDefault,
     ConnectDefault2, ...; optional = ["null", T] with "default": null, or
     [T, "null"] when the Connect schema has a default; connect.doc,
     connect.version, connect.parameters, connect.default, connect.name;
     int8/int16 -> int + connect.type; Connect Decimal -> bytes + logicalType
     decimal, precision (connect.decimal.precision, default 64) and scale;
     Connect Date/Time/Timestamp -> int/int/long + date/time-millis/
     timestamp-millis; Debezium's own logical names keep their physical type
     plus connect.name; maps with non-optional string keys -> Avro maps, others
     -> arrays of MapEntry {key, value} records). Field names are used as they
     are; names Avro rejects fail.
  2. the JsonConverter payload -> the value that schema needs, as JsonConverter
     would read it back (fields the schema does not declare are ignored, a null
     or missing field takes the schema's default; a value of the wrong JSON type
     becomes what JsonConverter makes of it, with a warning on stderr): bytes
     from base64, decimals as the unscaled two's complement bytes that Java's
     BigInteger.toByteArray gives (what AvroData hands to Avro; fastavro's own
     Decimal encoding differs for negative powers of two), dates/times/
     timestamps as datetime objects, structs as dicts, union values plain.
  3. confluent_kafka.schema_registry.avro.AvroSerializer (auto.register.schemas,
     TopicNameStrategy: subjects <topic>-key and <topic>-value) through a real
     SchemaRegistryClient: magic byte 0, 4-byte big-endian schema id, Avro binary.

--check: also decode every record with AvroDeserializer (through a second
SchemaRegistryClient, so the schema is fetched by id from the registry) and compare it with the value that was written and with
the input payload; exit 1 on a difference.
--self-test: run synthetic records covering the types the fixtures lack
(int8, float32, maps, Connect Date/Time/Timestamp, Decimal without precision,
defaults, unnamed structs, VariableScaleDecimal) through the same path with
--check, print a summary, exit 0 if all round-trip. Reads no stdin.

Usage:
  connect_avro.py --registry URL [--ca CA.crt] [--user U --password P] [--check|--self-test]
"""

import argparse
import base64
import datetime
import decimal
import json
import math
import sys

from confluent_kafka.schema_registry import SchemaRegistryClient, topic_subject_name_strategy
from confluent_kafka.schema_registry.avro import AvroDeserializer, AvroSerializer
from confluent_kafka.serialization import MessageField, SerializationContext

NAMESPACE = "io.confluent.connect.avro"
DECIMAL = "org.apache.kafka.connect.data.Decimal"
DATE = "org.apache.kafka.connect.data.Date"
TIME = "org.apache.kafka.connect.data.Time"
TIMESTAMP = "org.apache.kafka.connect.data.Timestamp"
PRECISION_PARAM = "connect.decimal.precision"
PRECISION_DEFAULT = 64
EPOCH = datetime.datetime(1970, 1, 1, tzinfo=datetime.timezone.utc)
# JsonConverter's type names (Connect's FLOAT32/FLOAT64 are "float"/"double").
PRIMITIVE = {"int8": "int", "int16": "int", "int32": "int", "int64": "long", "float": "float",
             "double": "double", "boolean": "boolean", "string": "string", "bytes": "bytes"}


class Fail(Exception):
    pass


def warn(msg):
    sys.stderr.write("connect_avro: warning: %s\n" % msg)


def java_bytes(n):
    """BigInteger.toByteArray(): minimal big-endian two's complement."""
    bits = n.bit_length() if n >= 0 else (~n).bit_length()
    return n.to_bytes(bits // 8 + 1, "big", signed=True)


def params(s):
    return s.get("parameters") or {}


def decimal_scale(s):
    return int(params(s).get("scale", "0"))


def canon(s, optional=None):
    """Equality of Connect schemas (ConnectSchema.equals), as a hashable key."""
    return json.dumps({
        "type": s["type"], "optional": bool(s.get("optional", False)) if optional is None else optional,
        "default": s.get("default"), "name": s.get("name"), "version": s.get("version"),
        "doc": s.get("doc"), "parameters": params(s),
        "fields": [[f["field"], json.loads(canon(f))] for f in s.get("fields") or []],
        "keys": json.loads(canon(s["keys"])) if "keys" in s else None,
        "values": json.loads(canon(s["values"])) if "values" in s else None,
        "items": json.loads(canon(s["items"])) if "items" in s else None,
    }, sort_keys=True)


def non_optional(s):
    c = dict(s)
    c["optional"] = False
    return c


def split_name(name):
    i = name.rfind(".")
    return (None, name) if i < 0 else (name[:i], name[i + 1:])


# ---------------------------------------------------------------- schemas

class FromConnect:
    """AvroData.fromConnectSchema with default settings (connect.meta.data on,
    enhanced schema support off, names not scrubbed). Avro schemas are built
    as Python dicts/lists; a named type reused is the same dict object."""

    def __init__(self):
        self.schema_map = {}      # canon(non-optional schema) -> Avro schema
        self.cycle = {}           # struct name -> Avro record
        self.name_index = 0
        self.seen_named = set()

    def name_or_default(self, name):
        if name is not None:
            return split_name(name)
        self.name_index += 1
        return NAMESPACE, "ConnectDefault" + (str(self.name_index) if self.name_index > 1 else "")

    def convert(self, s, ignore_optional=False):
        optional = bool(s.get("optional", False))
        key = None
        if not optional:
            key = canon(s)
            if key in self.schema_map:
                return self.schema_map[key]
        t, name = s["type"], s.get("name")
        connect_type = None
        if t in ("int8", "int16"):
            connect_type = t
        if t in PRIMITIVE:
            base = {"type": PRIMITIVE[t]}
            if t == "bytes" and name == DECIMAL:
                base["scale"] = decimal_scale(s)
                base["precision"] = int(params(s).get(PRECISION_PARAM, PRECISION_DEFAULT))
        elif t == "array":
            base = {"type": "array", "items": self.with_cycle(s["items"], False)}
        elif t == "map":
            ks, vs = s["keys"], s["values"]
            if ks["type"] == "string" and not ks.get("optional", False):
                base = {"type": "map", "values": self.with_cycle(vs, False)}
            else:
                if name is None:
                    entry = {"type": "record", "name": "MapEntry", "namespace": NAMESPACE}
                else:
                    ns, n = self.name_or_default(name)
                    entry = {"type": "record", "name": n, "namespace": ns}
                fields = [self.field("key", ks), self.field("value", vs)]
                entry["fields"] = fields
                if name is not None:
                    entry["connect.internal.type"] = "MapEntry"
                base = {"type": "array", "items": entry}
        elif t == "struct":
            if optional:
                base = ["null", self.with_cycle(non_optional(s), False)]
            else:
                ns, n = self.name_or_default(name)
                base = {"type": "record", "name": n, "namespace": ns}
                doc = params(s).get(NAMESPACE + ".record.doc")
                if doc is not None:
                    base["doc"] = doc
                if name is not None:
                    self.cycle[name] = base
                base["fields"] = [self.field(f["field"], f, params(s).get(NAMESPACE + ".field.doc." + f["field"]))
                                  for f in s.get("fields") or []]
        else:
            raise Fail("unknown Connect schema type %r" % t)

        final = base
        if isinstance(base, dict):
            if s.get("doc") is not None:
                base["connect.doc"] = s["doc"]
            if s.get("version") is not None:
                base["connect.version"] = s["version"]
            if params(s):
                base["connect.parameters"] = {k: v for k, v in params(s).items()
                                              if k != NAMESPACE + ".field.default"}
                if not base["connect.parameters"]:
                    del base["connect.parameters"]
            if s.get("default") is not None and NAMESPACE + ".field.default" not in params(s):
                base["connect.default"] = default_json(s, s["default"])
            if name is not None:
                base["connect.name"] = name
            if connect_type is not None:
                base["connect.type"] = connect_type
            if name == DECIMAL:
                if not 0 <= base["scale"] <= base["precision"]:
                    base["logicalType"] = "decimal"  # legacy form, as AvroData falls back to
                else:
                    base["logicalType"] = "decimal"
            elif name == TIME:
                base["logicalType"] = "time-millis"
            elif name == TIMESTAMP:
                base["logicalType"] = "timestamp-millis"
            elif name == DATE:
                base["logicalType"] = "date"
            for k, v in params(s).items():
                if k.startswith("avro") and k not in base:
                    base[k] = v
            if not ignore_optional and optional:
                final = [base, "null"] if s.get("default") is not None else ["null", base]
        if not optional:
            self.schema_map[key] = final
        return final

    def with_cycle(self, s, ignore_optional):
        name = s.get("name")
        if name in self.cycle:
            r = self.cycle[name]
            if not ignore_optional and s.get("optional", False):
                return [r, "null"] if s.get("default") is not None else ["null", r]
            return r
        return self.convert(s, ignore_optional)

    def field(self, fname, fs, doc=None):
        name = fs.get("name")
        already = name is not None and name in self.seen_named
        if name is not None:
            self.seen_named.add(name)
        avro = self.convert(fs)
        f = {"name": fname, "type": avro}
        if doc is not None:
            f["doc"] = doc
        if fs.get("default") is not None:
            d = default_json(fs, fs["default"])
            first = avro[0] if isinstance(avro, list) else avro
            if first != "null":  # Avro rejects a default the union's first branch does not take
                f["default"] = d
        elif fs.get("optional", False):
            f["default"] = None
        if already and params(fs) and is_named(avro):
            f["connect.parameters"] = dict(params(fs))
        return f


def is_named(avro):
    if isinstance(avro, list):
        return any(is_named(b) for b in avro)
    return isinstance(avro, dict) and avro.get("type") in ("record", "enum", "fixed")


def default_json(s, d):
    """defaultValueFromConnect: the JsonConverter form of a default -> Avro's JSON form."""
    if d is None:
        return None
    t = s["type"]
    if t == "bytes":
        raw = decimal_bytes(s, d) if s.get("name") == DECIMAL else base64.b64decode(d)
        return raw.decode("latin-1")
    if t == "array":
        return [default_json(s["items"], e) for e in d]
    if t == "map":
        if s["keys"]["type"] == "string" and not s["keys"].get("optional", False):
            return {k: default_json(s["values"], v) for k, v in d.items()}
        pairs = d.items() if isinstance(d, dict) else d
        return [[default_json(s["keys"], k), default_json(s["values"], v)] for k, v in pairs]
    if t == "struct":
        return {f["field"]: default_json(f, d.get(f["field"], f.get("default"))) for f in s.get("fields") or []}
    return d


def decimal_bytes(s, v):
    """A Decimal payload (base64 unscaled bytes, or a number with decimal.format=NUMERIC)
    -> unscaled bytes as Java's BigInteger.toByteArray gives them."""
    if isinstance(v, str):
        n = int.from_bytes(base64.b64decode(v), "big", signed=True)
    else:
        n = int(decimal.Decimal(str(v)).scaleb(decimal_scale(s)))
    return java_bytes(n)


def to_text(avro, space=None, names=None):
    """Avro schema JSON as Avro Java's Schema.toString writes it: named types
    defined once then referred to by name, namespaces relative to the
    enclosing one."""
    if names is None:
        names = set()

    def walk(a, space):
        if isinstance(a, list):
            return [walk(b, space) for b in a]
        if isinstance(a, str):
            return a
        t = a["type"]
        if t in ("record", "enum", "fixed"):
            ns, n = a.get("namespace"), a["name"]
            full = "%s.%s" % (ns, n) if ns else n
            if full in names:
                return n if ns == space or (ns is None and space is None) else full
            names.add(full)
            out = {"type": t, "name": n}
            if ns != space:
                out["namespace"] = ns if ns is not None else ""
            for k, v in a.items():
                if k in ("type", "name", "namespace"):
                    continue
                if k == "fields":
                    out["fields"] = [dict(f, type=walk(f["type"], ns)) for f in v]
                else:
                    out[k] = v
            return out
        out = dict(a)
        if t == "array":
            out["items"] = walk(a["items"], space)
        elif t == "map":
            out["values"] = walk(a["values"], space)
        if len(out) == 1:
            return t
        return out

    return json.dumps(walk(avro, space), separators=(",", ":"), ensure_ascii=False)


# ---------------------------------------------------------------- values

class Reader:
    """JsonConverter.toConnectData for a payload, then AvroData.fromConnectData
    -> the Python value fastavro writes."""

    def __init__(self):
        self.warnings = []

    def note(self, path, msg):
        self.warnings.append("%s: %s" % (path or "<root>", msg))

    def value(self, s, v, path=""):
        if v is None:
            if s.get("default") is not None:
                v = s["default"]
            elif s.get("optional", False):
                return None
            else:
                raise Fail("%s: null for the required %s field" % (path or "<root>", s["type"]))
        t, name = s["type"], s.get("name")
        if t in ("int8", "int16", "int32", "int64"):
            if isinstance(v, bool) or not isinstance(v, (int, float)):
                self.note(path, "%r where %s expected: JsonConverter reads 0" % (v, t))
                v = 0
            v = int(v)
            if name == DATE:
                return datetime.date(1970, 1, 1) + datetime.timedelta(days=v)
            if name == TIME:
                if not 0 <= v < 86400000:
                    raise Fail("%s: Time %d ms is not within a day" % (path, v))
                return (datetime.datetime(1970, 1, 1) + datetime.timedelta(milliseconds=v)).time()
            if name == TIMESTAMP:
                return EPOCH + datetime.timedelta(milliseconds=v)
            return v
        if t in ("float", "double"):
            # Jackson writes a non-finite double as a string: the Connect
            # value (what AvroConverter serializes) was that double.
            if v in ("NaN", "Infinity", "-Infinity"):
                return float(v)
            if isinstance(v, bool) or not isinstance(v, (int, float)):
                self.note(path, "%r where %s expected: JsonConverter reads 0.0" % (v, t))
                v = 0.0
            return float(v)
        if t == "boolean":
            if not isinstance(v, bool):
                self.note(path, "%r where boolean expected: JsonConverter reads false" % (v,))
                return False
            return v
        if t == "string":
            if not isinstance(v, str):
                self.note(path, "%r where string expected: JsonConverter reads null" % (v,))
                return None if s.get("optional") else self.fail_required(path, t)
            return v
        if t == "bytes":
            if name == DECIMAL:
                return decimal_bytes(s, v)
            if not isinstance(v, str):
                self.note(path, "%r where base64 bytes expected: JsonConverter reads null" % (v,))
                return None if s.get("optional") else self.fail_required(path, t)
            return base64.b64decode(v)
        if t == "array":
            return [self.value(s["items"], e, "%s[%d]" % (path, i)) for i, e in enumerate(v)]
        if t == "map":
            ks, vs = s["keys"], s["values"]
            if ks["type"] == "string" and not ks.get("optional", False):
                return {k: self.value(vs, e, "%s.%s" % (path, k)) for k, e in v.items()}
            pairs = v.items() if isinstance(v, dict) else v  # JsonConverter: [[k, v], ...]
            return [{"key": self.value(ks, k, path + ".key"), "value": self.value(vs, e, path + ".value")}
                    for k, e in pairs]
        if t == "struct":
            if not isinstance(v, dict):
                raise Fail("%s: structs are JSON objects, found %r" % (path or "<root>", v))
            declared = {f["field"] for f in s.get("fields") or []}
            for k in v:
                if k not in declared:
                    self.note(path + "." + k, "not in the schema: ignored, as JsonConverter does")
            return {f["field"]: self.value(f, v.get(f["field"]), path + "." + f["field"])
                    for f in s.get("fields") or []}
        raise Fail("%s: unknown Connect schema type %r" % (path, t))

    def fail_required(self, path, t):
        raise Fail("%s: null for the required %s field" % (path, t))


def decoded_equal(s, written, decoded):
    """Compare what was written with what AvroDeserializer read back."""
    if written is None or decoded is None:
        return written is None and decoded is None
    t, name = s["type"], s.get("name")
    if t == "bytes" and name == DECIMAL:
        n = int.from_bytes(written, "big", signed=True)
        if isinstance(decoded, decimal.Decimal):
            return decoded == decimal.Decimal(n).scaleb(-decimal_scale(s))
        return int.from_bytes(decoded, "big", signed=True) == n
    if t == "array":
        return len(written) == len(decoded) and all(
            decoded_equal(s["items"], a, b) for a, b in zip(written, decoded))
    if t == "map":
        if isinstance(written, dict):
            return written.keys() == decoded.keys() and all(
                decoded_equal(s["values"], written[k], decoded[k]) for k in written)
        return len(written) == len(decoded) and all(
            decoded_equal(s["keys"], a["key"], b["key"]) and decoded_equal(s["values"], a["value"], b["value"])
            for a, b in zip(written, decoded))
    if t == "struct":
        return set(decoded) == {f["field"] for f in s.get("fields") or []} and all(
            decoded_equal(f, written[f["field"]], decoded[f["field"]]) for f in s.get("fields") or [])
    return type(written) is type(decoded) and written == decoded


def to_payload(s, v):
    """A decoded value back to JsonConverter's JSON form (for comparing with the input)."""
    if v is None:
        return None
    t, name = s["type"], s.get("name")
    if name == DATE:
        return (v - datetime.date(1970, 1, 1)).days
    if name == TIME:
        return ((v.hour * 60 + v.minute) * 60 + v.second) * 1000 + v.microsecond // 1000
    if name == TIMESTAMP:
        d = v - EPOCH
        return (d.days * 86400 + d.seconds) * 1000 + d.microseconds // 1000
    if t == "bytes":
        if name == DECIMAL and isinstance(v, decimal.Decimal):
            v = java_bytes(int(v.scaleb(decimal_scale(s))))
        return base64.b64encode(v).decode()
    if t == "array":
        return [to_payload(s["items"], e) for e in v]
    if t == "map":
        if isinstance(v, dict):
            return {k: to_payload(s["values"], e) for k, e in v.items()}
        return [[to_payload(s["keys"], e["key"]), to_payload(s["values"], e["value"])] for e in v]
    if t == "struct":
        return {f["field"]: to_payload(f, v[f["field"]]) for f in s.get("fields") or []}
    return v


def payload_equal(s, given, back):
    """The input payload (declared fields only, defaults for nulls) vs the decoded one."""
    if given is None and s.get("default") is not None:
        given = s["default"]
    t = s["type"]
    if given is None or back is None:
        return given is None and back is None
    if t == "struct":
        return isinstance(given, dict) and all(
            payload_equal(f, given.get(f["field"]), back[f["field"]]) for f in s.get("fields") or [])
    if t == "array":
        return len(given) == len(back) and all(payload_equal(s["items"], a, b) for a, b in zip(given, back))
    if t == "map" and isinstance(given, dict):
        return given.keys() == back.keys() and all(payload_equal(s["values"], given[k], back[k]) for k in given)
    if t == "bytes":
        if s.get("name") == DECIMAL:
            return decimal_bytes(s, given) == decimal_bytes(s, back)
        return base64.b64decode(given) == base64.b64decode(back)
    if t in ("float", "double"):
        return float(given) == float(back) or (math.isnan(float(given)) and math.isnan(float(back)))
    return given == back


# ---------------------------------------------------------------- driver

class Converter:
    def __init__(self, client, check_client=None):
        self.client, self.check = client, check_client is not None
        self.serializers = {}  # Avro schema text -> AvroSerializer
        # A client of its own, so each schema is fetched by id from the
        # registry (GET /schemas/ids/N) rather than found in the writer's cache.
        self.deserializer = AvroDeserializer(check_client, conf={"subject.name.strategy": topic_subject_name_strategy}) \
            if self.check else None
        self.checked = 0

    def avro_schema(self, connect_schema):
        return to_text(FromConnect().convert(connect_schema))

    def one(self, topic, field, envelope, where):
        if envelope is None:
            return None
        if not isinstance(envelope, dict) or "schema" not in envelope or "payload" not in envelope:
            raise Fail("%s: not a JsonConverter envelope {\"schema\", \"payload\"} (schemas.enable=true); "
                       "AvroConverter needs a schema" % where)
        schema, payload = envelope["schema"], envelope["payload"]
        if schema is None:
            raise Fail("%s: schema is null; AvroConverter needs a schema" % where)
        text = self.avro_schema(schema)
        reader = Reader()
        value = reader.value(schema, payload)
        for w in reader.warnings:
            warn("%s: %s" % (where, w))
        ser = self.serializers.get(text)
        if ser is None:
            # TopicNameStrategy, as Connect's default (named, so the client's
            # default "associated" strategy does not query the registry first).
            ser = AvroSerializer(self.client, text, conf={"auto.register.schemas": True,
                                                          "subject.name.strategy": topic_subject_name_strategy})
            self.serializers[text] = ser
        ctx = SerializationContext(topic, field)
        data = ser(value, ctx)
        if self.check and data is not None:
            if data[0] != 0:
                raise Fail("%s: magic byte %d, not 0" % (where, data[0]))
            back = self.deserializer(data, ctx)
            if not decoded_equal(schema, value, back):
                raise Fail("%s: decoded value differs\n wrote %r\n  read %r" % (where, value, back))
            if not payload_equal(schema, payload, to_payload(schema, back)):
                msg = "%s: decoded payload differs from the input" % where
                if not reader.warnings:
                    raise Fail(msg)
                warn(msg + " where JsonConverter would have read it differently (see above)")
            self.checked += 1
        return data

    def record(self, rec, where):
        topic = rec.get("topic")
        if not isinstance(topic, str) or not topic:
            raise Fail("%s: no \"topic\"" % where)
        out = {}
        for name, field in (("key", MessageField.KEY), ("value", MessageField.VALUE)):
            data = self.one(topic, field, rec.get(name), "%s %s" % (where, name))
            out[name] = None if data is None else base64.b64encode(data).decode()
        return out


def self_test_records():
    def f(name, s):
        return dict(s, field=name)
    dec = {"type": "bytes", "name": DECIMAL, "version": 1, "parameters": {"scale": "3"}}
    vsd = {"type": "struct", "name": "io.debezium.data.VariableScaleDecimal", "version": 1,
           "doc": "Variable scaled decimal",
           "fields": [f("scale", {"type": "int32"}), f("value", {"type": "bytes"})]}
    schema = {"type": "struct", "name": "selftest.Value", "optional": False, "fields": [
        f("i8", {"type": "int8"}), f("i16", {"type": "int16", "optional": True}),
        f("i32d", {"type": "int32", "default": 7}), f("i64", {"type": "int64"}),
        f("f32", {"type": "float"}), f("f64", {"type": "double", "optional": True}),
        f("b", {"type": "boolean", "optional": True, "default": True}),
        f("s", {"type": "string", "doc": "a doc"}), f("raw", {"type": "bytes", "optional": True}),
        f("dec", dec), f("negdec", dict(dec, optional=True)),
        f("date", {"type": "int32", "name": DATE, "version": 1}),
        f("time", {"type": "int32", "name": TIME, "version": 1, "optional": True}),
        f("ts", {"type": "int64", "name": TIMESTAMP, "version": 1}),
        f("strmap", {"type": "map", "keys": {"type": "string"}, "values": {"type": "int64", "optional": True}}),
        f("intmap", {"type": "map", "keys": {"type": "int32"}, "values": {"type": "string"}, "optional": True}),
        f("arr", {"type": "array", "items": {"type": "string", "optional": True}}),
        f("nested", {"type": "struct", "optional": True, "fields": [f("x", {"type": "int32"})]}),
        f("nested2", {"type": "struct", "fields": [f("y", {"type": "string", "optional": True})]}),
        f("vsd", dict(vsd, optional=True)), f("vsd2", dict(vsd, optional=True)),
        f("micro", {"type": "int64", "name": "io.debezium.time.MicroTimestamp", "version": 1}),
    ]}
    payloads = [
        {"i8": -5, "i16": 300, "i32d": None, "i64": 2 ** 40, "f32": 1.5, "f64": -2.25, "b": False,
         "s": "é ü", "raw": base64.b64encode(b"\x00\xff").decode(),
         "dec": base64.b64encode(java_bytes(12345)).decode(),
         "negdec": base64.b64encode(java_bytes(-128)).decode(),
         "date": 19279, "time": 86131989, "ts": 1665791731989,
         "strmap": {"a": 1, "b": None}, "intmap": [[1, "one"], [2, "two"]], "arr": ["x", None],
         "nested": {"x": 3}, "nested2": {"y": None},
         "vsd": {"scale": 2, "value": base64.b64encode(java_bytes(299)).decode()}, "vsd2": None,
         "micro": 1179150269996577},
        {"i8": 0, "i16": None, "i32d": 1, "i64": -1, "f32": 0.0, "f64": None, "b": None, "s": "",
         "raw": None, "dec": base64.b64encode(java_bytes(-1)).decode(), "negdec": None,
         "date": -1, "time": None, "ts": -1, "strmap": {}, "intmap": None, "arr": [],
         "nested": None, "nested2": {"y": "z"}, "vsd": None, "vsd2": None, "micro": 0},
    ]
    key = {"type": "struct", "name": "selftest.Key", "fields": [f("id", {"type": "int32", "default": 0})]}
    for i, p in enumerate(payloads):
        yield {"topic": "sinkfleet.selftest", "key": {"schema": key, "payload": {"id": i}},
               "value": {"schema": schema, "payload": p}}
    yield {"topic": "sinkfleet.selftest", "key": {"schema": key, "payload": {"id": 9}}, "value": None}


def main():
    ap = argparse.ArgumentParser(description="Debezium JsonConverter records -> Confluent-framed Avro")
    ap.add_argument("--registry", required=True, help="schema registry URL")
    ap.add_argument("--ca", help="CA certificate to verify an https:// registry")
    ap.add_argument("--user", help="basic auth user")
    ap.add_argument("--password", help="basic auth password")
    ap.add_argument("--check", action="store_true", help="decode each record back and compare")
    ap.add_argument("--self-test", action="store_true", help="round-trip synthetic records, read no stdin")
    ap.add_argument("--keep-going", action="store_true",
                    help='a record that cannot be serialized gives {"error": "..."} instead of stopping')
    a = ap.parse_args()
    conf = {"url": a.registry}
    if a.ca:
        conf["ssl.ca.location"] = a.ca
    if a.user is not None:
        conf["basic.auth.user.info"] = "%s:%s" % (a.user, a.password or "")
    conv = Converter(SchemaRegistryClient(conf), SchemaRegistryClient(conf) if a.check or a.self_test else None)
    records = ((i + 1, r) for i, r in enumerate(self_test_records())) if a.self_test else \
        ((n, line) for n, line in enumerate(sys.stdin, 1) if line.strip())
    try:
        for n, rec in records:
            where = "record %d" % n
            if isinstance(rec, str):
                try:
                    rec = json.loads(rec)
                except ValueError as e:
                    raise Fail("%s: not JSON: %s" % (where, e))
            try:
                try:
                    out = conv.record(rec, where)
                except Fail:
                    raise
                except Exception as e:  # the registry's or the serializer's own errors
                    raise Fail("%s: %s: %s" % (where, type(e).__name__, e))
            except Fail as e:
                if not a.keep_going:
                    raise
                out = {"error": str(e)}
            if not a.self_test:
                sys.stdout.write(json.dumps(out) + "\n")
                sys.stdout.flush()
    except Fail as e:
        sys.stderr.write("connect_avro: %s\n" % e)
        sys.exit(1)
    if conv.check:
        sys.stderr.write("connect_avro: %d keys/values serialized and round-tripped\n" % conv.checked)


if __name__ == "__main__":
    main()
