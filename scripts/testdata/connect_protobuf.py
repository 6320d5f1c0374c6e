#!/usr/bin/env python3
"""Debezium records -> Confluent-framed Protobuf, the way Kafka Connect's ProtobufConverter does it.

Test-data tool, the Protobuf sibling of connect_avro.py (same input, output,
registry options and --keep-going). Run it with the Python of the
serializers' virtualenv ($SINKFLEET_SERIALIZERS_PYTHON).

What it does, per key and value (as a Connect worker would with
key/value.converter=io.confluent.connect.protobuf.ProtobufConverter):
  1. the Connect schema -> the .proto file that Confluent's
     io.confluent.connect.protobuf.ProtobufData.fromConnectSchema makes with
     the converter's default settings, built as a FileDescriptorProto: proto3;
     package and message name from the struct's name (ConnectDefault1, 2, ...
     when unnamed); fields numbered 1.. in order; nested structs become nested
     messages named by the struct's unqualified name ("Message" appended when
     it equals the field's); int8/int16 -> int32 with confluent.field_meta
     params {connect.type}; int32/int64/float/double/boolean/string/bytes ->
     the same scalar; arrays -> repeated; Connect Decimal ->
     confluent.type.Decimal with params {precision, scale}; Connect
     Date/Time/Timestamp -> google.type.Date / google.type.TimeOfDay /
     google.protobuf.Timestamp. Every other logical name (Debezium's) is
     dropped: the field is its physical type. No `optional`, no wrappers:
     a null scalar is simply not written (proto3 cannot tell it from zero).
     --optional-for-nullables: the converter's optional.for.nullables=true
     (optional Connect fields get proto3 `optional`, so a null stays null).
  2. the JsonConverter payload -> the Connect value (connect_avro.Reader:
     JsonConverter.toConnectData) -> the message, as
     ProtobufData.fromConnectData fills it (nulls and empty lists not set;
     Decimal as {value: BigInteger.toByteArray of the unscaled value,
     precision, scale}).
  3. confluent_kafka.schema_registry.protobuf.ProtobufSerializer
     (auto.register.schemas, TopicNameStrategy) through a real
     SchemaRegistryClient: magic byte 0, 4-byte schema id, message indexes,
     Protobuf binary.

--check: also decode every record with ProtobufDeserializer and compare it
with the message that was written; exit 1 on a difference.

Usage:
  connect_protobuf.py --registry URL [--ca CA.crt] [--user U --password P]
                      [--check] [--keep-going] [--optional-for-nullables]
"""

import argparse
import base64
import datetime
import hashlib
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from connect_avro import DATE, DECIMAL, PRECISION_PARAM, TIME, TIMESTAMP, Fail, Reader, params  # noqa: E402
from confluent_kafka.schema_registry import SchemaRegistryClient, topic_subject_name_strategy  # noqa: E402
from confluent_kafka.schema_registry.confluent import meta_pb2  # noqa: E402
from confluent_kafka.schema_registry.confluent.type import decimal_pb2  # noqa: E402
from confluent_kafka.schema_registry.protobuf import ProtobufDeserializer, ProtobufSerializer  # noqa: E402
from confluent_kafka.serialization import MessageField, SerializationContext  # noqa: E402
from google.protobuf import descriptor_pb2, descriptor_pool, message_factory, timestamp_pb2  # noqa: E402
from google.type import date_pb2, timeofday_pb2  # noqa: E402

F = descriptor_pb2.FieldDescriptorProto
SCALAR = {"int8": F.TYPE_INT32, "int16": F.TYPE_INT32, "int32": F.TYPE_INT32, "int64": F.TYPE_INT64,
          "float": F.TYPE_FLOAT, "double": F.TYPE_DOUBLE, "boolean": F.TYPE_BOOL,
          "string": F.TYPE_STRING, "bytes": F.TYPE_BYTES}
# Connect logical name -> (message type, the file that defines it).
LOGICAL = {DECIMAL: (".confluent.type.Decimal", "confluent/type/decimal.proto"),
           DATE: (".google.type.Date", "google/type/date.proto"),
           TIME: (".google.type.TimeOfDay", "google/type/timeofday.proto"),
           TIMESTAMP: (".google.protobuf.Timestamp", "google/protobuf/timestamp.proto")}
BUILTIN_FILES = [descriptor_pb2, timestamp_pb2, meta_pb2, decimal_pb2, date_pb2, timeofday_pb2]
EPOCH = datetime.datetime(1970, 1, 1, tzinfo=datetime.timezone.utc)


def warn(msg):
    sys.stderr.write("connect_protobuf: warning: %s\n" % msg)


class FromConnect:
    """ProtobufData.fromConnectSchema with default settings (or
    optional.for.nullables)."""

    def __init__(self, optional_for_nullables):
        self.optional = optional_for_nullables
        self.index = 0
        self.deps = []

    def name_or_default(self, name):
        if name:
            return name
        self.index += 1
        return "ConnectDefault%d" % self.index

    def unqualified(self, name):
        return self.name_or_default(name).rsplit(".", 1)[-1]

    def file(self, s):
        if s.get("type") != "struct":
            raise Fail("only struct keys and values are converted (ProtobufData wraps others)")
        full = self.name_or_default(s.get("name"))
        package, _, name = full.rpartition(".")
        f = descriptor_pb2.FileDescriptorProto(syntax="proto3")
        if package:
            f.package = package
        f.message_type.add().CopyFrom(self.message(name, s))
        for dep in self.deps:
            f.dependency.append(dep)
        f.name = "%s.proto" % hashlib.sha1(f.SerializeToString()).hexdigest()[:16]
        return f, (package + "." if package else "") + name

    def dep(self, path):
        if path not in self.deps:
            self.deps.append(path)

    def message(self, name, s):
        m = descriptor_pb2.DescriptorProto(name=name)
        nested = set()
        for i, fs in enumerate(s.get("fields") or [], 1):
            self.field(m, nested, fs["field"], fs, i)
        return m

    def field(self, m, nested, fname, fs, number):
        label = F.LABEL_OPTIONAL
        s = fs
        if s["type"] == "array":
            label, s = F.LABEL_REPEATED, s["items"]
        elif s["type"] == "map":
            raise Fail("%s: Connect maps are not converted by this tool" % fname)
        fd = descriptor_pb2.FieldDescriptorProto(name=fname, number=number, label=label)
        meta = {}
        logical = LOGICAL.get(s.get("name"))
        if logical:
            fd.type, fd.type_name = F.TYPE_MESSAGE, logical[0]
            self.dep(logical[1])
            if s.get("name") == DECIMAL:
                p = params(s)
                if PRECISION_PARAM in p:
                    meta["precision"] = p[PRECISION_PARAM]
                if "scale" in p:
                    meta["scale"] = p["scale"]
        elif s["type"] == "struct":
            type_name = self.unqualified(s.get("name"))
            if type_name == fname:
                type_name += "Message"
            if type_name not in nested:
                nested.add(type_name)
                m.nested_type.add().CopyFrom(self.message(type_name, s))
            fd.type, fd.type_name = F.TYPE_MESSAGE, type_name
        elif s["type"] in SCALAR:
            fd.type = SCALAR[s["type"]]
            if s["type"] in ("int8", "int16"):
                meta["connect.type"] = s["type"]
        else:
            raise Fail("%s: unknown Connect schema type %r" % (fname, s["type"]))
        if meta:
            self.dep("confluent/meta.proto")
            for k, v in meta.items():
                fd.options.Extensions[meta_pb2.field_meta].params[k] = v
        if self.optional and label != F.LABEL_REPEATED and fs.get("optional", False):
            fd.proto3_optional = True
            fd.oneof_index = len(m.oneof_decl)
            m.oneof_decl.add(name="_" + fname)
        m.field.add().CopyFrom(fd)


def fill(msg, s, v, path):
    """ProtobufData.fromConnectData of the Connect value `v` (connect_avro's
    Reader gives it) into the message `msg`."""
    for fs in s.get("fields") or []:
        name = fs["field"]
        value = v.get(name)
        if value is None:
            continue
        if fs["type"] == "array":
            items = fs["items"]
            if not value:
                continue
            rep = getattr(msg, name)
            for i, e in enumerate(value):
                if e is None:
                    raise Fail("%s.%s[%d]: a null element, which ProtobufData cannot write" % (path, name, i))
                if items["type"] == "struct" or items.get("name") in LOGICAL:
                    put(rep.add(), items, e, "%s.%s[%d]" % (path, name, i))
                else:
                    rep.append(e)
        elif fs["type"] == "struct" or fs.get("name") in LOGICAL:
            put(getattr(msg, name), fs, value, path + "." + name)
        else:
            setattr(msg, name, value)


def put(sub, s, v, path):
    name = s.get("name")
    if name == DECIMAL:
        n = int.from_bytes(v, "big", signed=True)
        sub.value = v
        sub.precision = len(str(abs(n)))
        sub.scale = int(params(s).get("scale", "0"))
    elif name == DATE:
        sub.year, sub.month, sub.day = v.year, v.month, v.day
    elif name == TIME:
        sub.hours, sub.minutes, sub.seconds = v.hour, v.minute, v.second
        sub.nanos = v.microsecond * 1000
    elif name == TIMESTAMP:
        millis = (v - EPOCH) // datetime.timedelta(milliseconds=1)
        sub.seconds, rest = divmod(millis, 1000)
        sub.nanos = rest * 1000000
    else:
        fill(sub, s, v, path)
        sub.SetInParent()


class Converter:
    def __init__(self, client, check_client, optional_for_nullables):
        self.client, self.check_client = client, check_client
        self.optional = optional_for_nullables
        self.classes = {}  # schema JSON -> (message class, serializer, deserializer)
        self.checked = 0

    def message_class(self, schema):
        key = json.dumps(schema, sort_keys=True)
        got = self.classes.get(key)
        if got is None:
            f, full = FromConnect(self.optional).file(schema)
            pool = descriptor_pool.DescriptorPool()
            for module in BUILTIN_FILES:
                pool.AddSerializedFile(module.DESCRIPTOR.serialized_pb)
            pool.AddSerializedFile(f.SerializeToString())
            cls = message_factory.GetMessageClass(pool.FindMessageTypeByName(full))
            ser = ProtobufSerializer(cls, self.client, conf={
                "auto.register.schemas": True, "use.deprecated.format": False,
                "subject.name.strategy": topic_subject_name_strategy})
            de = ProtobufDeserializer(cls, conf={"use.deprecated.format": False}) \
                if self.check_client is not None else None
            got = self.classes[key] = (cls, ser, de)
        return got

    def one(self, topic, field, envelope, where):
        if envelope is None:
            return None
        if not isinstance(envelope, dict) or "schema" not in envelope or "payload" not in envelope:
            raise Fail("%s: not a JsonConverter envelope {\"schema\", \"payload\"}; "
                       "ProtobufConverter needs a schema" % where)
        schema, payload = envelope["schema"], envelope["payload"]
        if schema is None:
            raise Fail("%s: schema is null; ProtobufConverter needs a schema" % where)
        cls, ser, de = self.message_class(schema)
        reader = Reader()
        value = reader.value(schema, payload)
        for w in reader.warnings:
            warn("%s: %s" % (where, w))
        if value is None:
            return None
        msg = cls()
        fill(msg, schema, value, "")
        ctx = SerializationContext(topic, field)
        data = ser(msg, ctx)
        if de is not None:
            if data[0] != 0:
                raise Fail("%s: magic byte %d, not 0" % (where, data[0]))
            back = de(data, ctx)
            if back != msg:
                raise Fail("%s: decoded message differs\n wrote %s\n  read %s" % (where, msg, back))
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
    ap = argparse.ArgumentParser(description="Debezium JsonConverter records -> Confluent-framed Protobuf")
    ap.add_argument("--registry", required=True, help="schema registry URL")
    ap.add_argument("--ca", help="CA certificate to verify an https:// registry")
    ap.add_argument("--user", help="basic auth user")
    ap.add_argument("--password", help="basic auth password")
    ap.add_argument("--check", action="store_true", help="decode each record back and compare")
    ap.add_argument("--keep-going", action="store_true",
                    help='a record that cannot be serialized gives {"error": "..."} instead of stopping')
    ap.add_argument("--optional-for-nullables", action="store_true",
                    help="the converter's optional.for.nullables=true")
    a = ap.parse_args()
    conf = {"url": a.registry}
    if a.ca:
        conf["ssl.ca.location"] = a.ca
    if a.user is not None:
        conf["basic.auth.user.info"] = "%s:%s" % (a.user, a.password or "")
    conv = Converter(SchemaRegistryClient(conf), SchemaRegistryClient(conf) if a.check else None,
                     a.optional_for_nullables)
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
        sys.stderr.write("connect_protobuf: %s\n" % e)
        sys.exit(1)
    if a.check:
        sys.stderr.write("connect_protobuf: %d keys/values serialized and round-tripped\n" % conv.checked)


if __name__ == "__main__":
    main()
