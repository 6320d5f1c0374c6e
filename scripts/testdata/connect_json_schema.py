#!/usr/bin/env python3
"""Debezium records -> Confluent-framed JSON Schema records, the way Kafka Connect's
JsonSchemaConverter does it.

Test-data tool. Run it with the Python of the serializers' virtualenv
(`scripts/services.sh serializers-python`, or $SINKFLEET_SERIALIZERS_PYTHON).

Input (stdin), one JSON object a line:
  {"topic": "...", "key": <envelope or null>, "value": <envelope or null>}
where an envelope is what Kafka Connect's JsonConverter writes with
schemas.enable=true: {"schema": <Connect schema as JSON>, "payload": ...}.
Output (stdout), one JSON object a line, in input order:
  {"key": <base64 of the record key bytes or null>, "value": <base64 or null>}
or, with --keep-going, {"error": "..."} for a record the serializer refuses.

What it does, per key and value (as a Connect worker would with
key/value.converter=io.confluent.connect.json.JsonSchemaConverter, default
settings: decimal.format=BASE64, object.additional.properties=true):
  1. the Connect schema -> the JSON Schema that Confluent's
     io.confluent.connect.json.JsonSchemaData.fromConnectSchema makes:
     int8..int64 -> "integer" + connect.type, float/double -> "number" +
     connect.type float32/float64, bytes (Decimal included) -> "string" +
     connect.type bytes, string -> "string" (an enum with the
     io.confluent.connect.json.Enum parameters), array -> "items", maps with
     non-optional string keys -> "object" + additionalProperties +
     connect.type map, other maps -> an array of {key, value} objects +
     connect.type map, structs -> "object" + "properties" (no "required",
     additional properties allowed); the Connect name as "title", the version
     as connect.version, the doc as "description", the parameters (but
     io.confluent.connect.json.*) as connect.parameters, the default as
     "default"; a struct field's position as connect.index; an optional
     schema as {"oneOf": [{"type": "null"}, T]} (the field's connect.index on
     the oneOf).
  2. the JsonConverter payload -> the Connect value (as JsonConverter reads it
     back: a null or missing field takes the schema's default) -> the JSON that
     JsonSchemaData.fromConnectData writes: integers and floats as numbers
     (Date/Time/Timestamp as their integers), a non-finite float as the text
     Jackson writes ("NaN"), bytes as base64, Decimals as base64 of the
     unscaled two's complement bytes (BigInteger.toByteArray), structs as
     objects (an optional null as null), maps as objects or [{key, value}].
  3. confluent_kafka.schema_registry.json_schema.JSONSerializer
     (auto.register.schemas, TopicNameStrategy: subjects <topic>-key and
     <topic>-value) through a real SchemaRegistryClient: it validates the value
     against the schema, then writes magic byte 0, the 4-byte big-endian
     schema id and the JSON text.

--decimal-format NUMERIC: as the converter's decimal.format=NUMERIC: a
Decimal's schema is "number" (connect.type bytes), its value the JSON number
Jackson writes for the BigDecimal (its toString, exact at any length).

--check: also decode every record with JSONDeserializer (through a second
SchemaRegistryClient, so the schema is fetched by id) and compare it with the
value that was written; exit 1 on a difference.

Usage:
  connect_json_schema.py --registry URL [--ca CA.crt] [--user U --password P] [--check] [--keep-going]
"""

import argparse
import base64
import decimal
import json
import math
import struct
import sys

from confluent_kafka.schema_registry import SchemaRegistryClient, topic_subject_name_strategy
from confluent_kafka.schema_registry.json_schema import JSONDeserializer, JSONSerializer
from confluent_kafka.serialization import MessageField, SerializationContext

NAMESPACE = "io.confluent.connect.json"
ENUM = NAMESPACE + ".Enum"
DECIMAL = "org.apache.kafka.connect.data.Decimal"
INTS = ("int8", "int16", "int32", "int64")
# Decimal arithmetic without rounding (the default context keeps 28 digits).
EXACT = decimal.Context(prec=1_000_000)
FLOATS = {"float": "float32", "double": "float64"}


class Fail(Exception):
    pass


def warn(msg):
    sys.stderr.write("connect_json_schema: warning: %s\n" % msg)


def java_bytes(n):
    """BigInteger.toByteArray(): minimal big-endian two's complement."""
    bits = n.bit_length() if n >= 0 else (~n).bit_length()
    return n.to_bytes(bits // 8 + 1, "big", signed=True)


def params(s):
    return s.get("parameters") or {}


def decimal_scale(s):
    return int(params(s).get("scale", "0"))


# ---------------------------------------------------------------- schemas

NUMERIC = False  # decimal.format=NUMERIC (--decimal-format)


def from_connect(s, index=None, ignore_optional=False):
    """JsonSchemaData.rawSchemaFromConnectSchema with default settings."""
    t, name = s["type"], s.get("name")
    optional = bool(s.get("optional", False))
    props = {}
    if t in INTS:
        b = {"type": "integer"}
        props["connect.type"] = t
    elif t in FLOATS:
        b = {"type": "number"}
        props["connect.type"] = FLOATS[t]
    elif t == "boolean":
        b = {"type": "boolean"}
    elif t == "string":
        symbols = [k[len(ENUM) + 1:] for k in params(s) if k.startswith(ENUM + ".")]
        b = {"enum": [None if x == "<NULL>" else x for x in symbols]} if ENUM in params(s) else {"type": "string"}
    elif t == "bytes":
        b = {"type": "number" if NUMERIC and name == DECIMAL else "string"}
        props["connect.type"] = "bytes"
    elif t == "array":
        b = {"type": "array", "items": from_connect(s["items"])}
    elif t == "map":
        ks, vs = s["keys"], s["values"]
        if ks["type"] == "string" and not ks.get("optional", False):
            b = {"type": "object", "additionalProperties": from_connect(vs)}
        else:
            b = {"type": "array", "items": {"type": "object", "properties": {
                "key": from_connect(ks, 0), "value": from_connect(vs, 1)}}}
        props["connect.type"] = "map"
    elif t == "struct":
        if optional:
            out = {"oneOf": [{"type": "null"}, from_connect(dict(s, optional=False))]}
            if index is not None:
                out["connect.index"] = index
            return out
        b = {"type": "object", "properties": {
            f["field"]: from_connect(f, i) for i, f in enumerate(s.get("fields") or [])}}
    else:
        raise Fail("unknown Connect schema type %r" % t)

    if name is not None:
        b["title"] = name
    if s.get("version") is not None:
        props["connect.version"] = s["version"]
    if s.get("doc") is not None:
        b["description"] = s["doc"]
    kept = {k: v for k, v in params(s).items() if not k.startswith(NAMESPACE)}
    if kept:
        props["connect.parameters"] = kept
    if s.get("default") is not None:
        b["default"] = to_json(s, s["default"], "<default>")
    if not ignore_optional and optional:
        b.update(props)
        out = {"oneOf": [{"type": "null"}, b]}
        if index is not None:
            out["connect.index"] = index
        return out
    if index is not None:
        props["connect.index"] = index
    b.update(props)
    return b


# ---------------------------------------------------------------- values

def float32(v):
    """value.floatValue() as Jackson writes the float (its shortest decimal),
    back as the Python float of that text."""
    f = struct.unpack("f", struct.pack("f", float(v)))[0]
    if math.isinf(f) or math.isnan(f):
        return f
    for digits in range(1, 10):
        text = "%.*g" % (digits, f)
        if struct.unpack("f", struct.pack("f", float(text)))[0] == f:
            return float(text)
    return f


def to_json(s, v, path):
    """JsonConverter.toConnectData of a payload, then JsonSchemaData.fromConnectData."""
    if v is None:
        if s.get("default") is not None:
            v = s["default"]
        elif s.get("optional", False):
            return None
        else:
            raise Fail("%s: null for the required %s field" % (path or "<root>", s["type"]))
    t, name = s["type"], s.get("name")
    if t in INTS:
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            raise Fail("%s: %r where %s expected" % (path, v, t))
        return int(v)
    if t in FLOATS:
        # Jackson writes a non-finite double as its text, in both converters.
        if v in ("NaN", "Infinity", "-Infinity"):
            return v
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            raise Fail("%s: %r where %s expected" % (path, v, t))
        return float32(v) if t == "float" else float(v)
    if t == "boolean":
        if not isinstance(v, bool):
            raise Fail("%s: %r where boolean expected" % (path, v))
        return v
    if t == "string":
        if not isinstance(v, str):
            raise Fail("%s: %r where string expected" % (path, v))
        return v
    if t == "bytes":
        if name == DECIMAL:
            if isinstance(v, str):
                n = int.from_bytes(base64.b64decode(v), "big", signed=True)
            else:
                n = int(decimal.Decimal(str(v)).scaleb(decimal_scale(s), EXACT))
            if NUMERIC:
                # BigDecimal(unscaled, scale): exactly these digits.
                return decimal.Decimal(n).scaleb(-decimal_scale(s), EXACT)
            return base64.b64encode(java_bytes(n)).decode()
        if not isinstance(v, str):
            raise Fail("%s: %r where base64 bytes expected" % (path, v))
        return base64.b64encode(base64.b64decode(v)).decode()
    if t == "array":
        return [to_json(s["items"], e, "%s[%d]" % (path, i)) for i, e in enumerate(v)]
    if t == "map":
        ks, vs = s["keys"], s["values"]
        if ks["type"] == "string" and not ks.get("optional", False):
            return {k: to_json(vs, e, "%s.%s" % (path, k)) for k, e in v.items()}
        pairs = v.items() if isinstance(v, dict) else v  # JsonConverter: [[k, v], ...]
        return [{"key": to_json(ks, k, path + ".key"), "value": to_json(vs, e, path + ".value")}
                for k, e in pairs]
    if t == "struct":
        if not isinstance(v, dict):
            raise Fail("%s: structs are JSON objects, found %r" % (path or "<root>", v))
        out = {}
        for f in s.get("fields") or []:
            j = to_json(f, v.get(f["field"]), path + "." + f["field"])
            out[f["field"]] = j
        return out
    raise Fail("%s: unknown Connect schema type %r" % (path, t))


def json_encode(value):
    """The serializer's JSON writer, with Decimals as their exact number text
    (BigDecimal.toString, as Jackson writes them; the stdlib has no such
    number)."""
    numbers = []

    def walk(v):
        if isinstance(v, decimal.Decimal):
            numbers.append(str(v))
            return "@@sinkfleet-decimal-%d@@" % (len(numbers) - 1)
        if isinstance(v, dict):
            return {k: walk(e) for k, e in v.items()}
        if isinstance(v, list):
            return [walk(e) for e in v]
        return v

    text = json.dumps(walk(value), separators=(",", ":"), ensure_ascii=False)
    for i, n in enumerate(numbers):
        text = text.replace('"@@sinkfleet-decimal-%d@@"' % i, n, 1)
    return text


# ---------------------------------------------------------------- driver

class Converter:
    def __init__(self, client, check_client=None):
        self.client, self.check = client, check_client is not None
        self.serializers = {}  # JSON Schema text -> JSONSerializer
        self.deserializer = JSONDeserializer(None, schema_registry_client=check_client) if self.check else None
        self.checked = 0

    def one(self, topic, field, envelope, where):
        if envelope is None:
            return None
        if not isinstance(envelope, dict) or "schema" not in envelope or "payload" not in envelope:
            raise Fail("%s: not a JsonConverter envelope {\"schema\", \"payload\"} (schemas.enable=true); "
                       "JsonSchemaConverter needs a schema" % where)
        schema, payload = envelope["schema"], envelope["payload"]
        if schema is None:
            raise Fail("%s: schema is null; JsonSchemaConverter needs a schema" % where)
        if payload is None:
            return None  # JsonSchemaConverter writes null for a null value
        text = json.dumps(from_connect(schema), separators=(",", ":"), ensure_ascii=False)
        value = to_json(schema, payload, "")
        ser = self.serializers.get(text)
        if ser is None:
            ser = JSONSerializer(text, self.client, conf={"auto.register.schemas": True,
                                                          "subject.name.strategy": topic_subject_name_strategy},
                                 json_encode=json_encode)
            self.serializers[text] = ser
        ctx = SerializationContext(topic, field)
        data = ser(value, ctx)
        if self.check and data is not None and not NUMERIC:  # json.loads would read floats
            if data[0] != 0:
                raise Fail("%s: magic byte %d, not 0" % (where, data[0]))
            back = self.deserializer(data, ctx)
            if back != value:
                raise Fail("%s: decoded value differs\n wrote %r\n  read %r" % (where, value, back))
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


def main():
    ap = argparse.ArgumentParser(description="Debezium JsonConverter records -> Confluent-framed JSON Schema")
    ap.add_argument("--registry", required=True, help="schema registry URL")
    ap.add_argument("--ca", help="CA certificate to verify an https:// registry")
    ap.add_argument("--user", help="basic auth user")
    ap.add_argument("--password", help="basic auth password")
    ap.add_argument("--check", action="store_true", help="decode each record back and compare")
    ap.add_argument("--decimal-format", choices=["BASE64", "NUMERIC"], default="BASE64",
                    help="the converter's decimal.format")
    ap.add_argument("--keep-going", action="store_true",
                    help='a record that cannot be serialized gives {"error": "..."} instead of stopping')
    a = ap.parse_args()
    global NUMERIC
    NUMERIC = a.decimal_format == "NUMERIC"
    conf = {"url": a.registry}
    if a.ca:
        conf["ssl.ca.location"] = a.ca
    if a.user is not None:
        conf["basic.auth.user.info"] = "%s:%s" % (a.user, a.password or "")
    conv = Converter(SchemaRegistryClient(conf), SchemaRegistryClient(conf) if a.check else None)
    try:
        for n, line in enumerate(sys.stdin, 1):
            if not line.strip():
                continue
            where = "record %d" % n
            try:
                try:
                    rec = json.loads(line)
                except ValueError as e:
                    raise Fail("%s: not JSON: %s" % (where, e))
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
            sys.stdout.write(json.dumps(out) + "\n")
            sys.stdout.flush()
    except Fail as e:
        sys.stderr.write("connect_json_schema: %s\n" % e)
        sys.exit(1)
    if conv.check:
        sys.stderr.write("connect_json_schema: %d keys/values serialized and round-tripped\n" % conv.checked)


if __name__ == "__main__":
    main()
