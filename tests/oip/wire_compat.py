"""Compares proto/inference/v2/open_inference.proto with the descriptors tritonclient ships.

    python wire_compat.py DESCRIPTOR_SET

DESCRIPTOR_SET is our proto compiled by protoc (--descriptor_set_out; the build makes it). For
every message we define, every field must exist in tritonclient's message of the same name with
the same number, name, type, repetition and (for messages and enums) the same type name; the service must
have the same full name and each of our methods the same input and output types and streaming.
Fields we leave out are allowed (unknown fields are skipped on the wire). Exit 1 on a mismatch.
"""
import sys

from google.protobuf import descriptor_pb2

from tritonclient.grpc import service_pb2, model_config_pb2  # noqa: F401  (registers both)
from google.protobuf import descriptor_pool


def upstream(name):
    return descriptor_pool.Default().FindMessageTypeByName(name)


def compare_message(ours, theirs, prefix, problems):
    by_number = {f.number: f for f in theirs.fields}
    for f in ours.field:
        t = by_number.get(f.number)
        where = "%s.%s (field %d)" % (prefix, f.name, f.number)
        if t is None:
            problems.append("%s: no such field number upstream" % where)
            continue
        if t.name != f.name:
            problems.append("%s: upstream calls it %s" % (where, t.name))
        if t.type != f.type:
            problems.append("%s: type %d, upstream %d" % (where, f.type, t.type))
        repeated = f.label == descriptor_pb2.FieldDescriptorProto.LABEL_REPEATED
        if t.is_repeated != repeated:
            problems.append("%s: repeated %s, upstream %s" % (where, repeated, t.is_repeated))
        if f.type_name:
            theirs_type = (t.message_type or t.enum_type).full_name
            if f.type_name.lstrip(".") != theirs_type:
                problems.append("%s: type %s, upstream %s" % (where, f.type_name, theirs_type))
    for nested in ours.nested_type:
        if nested.options.map_entry:
            continue  # map entries compare through their field above
        compare_message(nested, theirs.nested_types_by_name[nested.name],
                        prefix + "." + nested.name, problems)


def main(path):
    fds = descriptor_pb2.FileDescriptorSet()
    fds.ParseFromString(open(path, "rb").read())
    (ours,) = [f for f in fds.file if f.package == "inference"]
    problems = []
    pool = descriptor_pool.Default()
    for m in ours.message_type:
        try:
            theirs = upstream("inference." + m.name)
        except KeyError:
            problems.append("message %s: not upstream" % m.name)
            continue
        compare_message(m, theirs, m.name, problems)
    for e in ours.enum_type:
        theirs = pool.FindEnumTypeByName("inference." + e.name)
        for v in e.value:
            t = theirs.values_by_number.get(v.number)
            if t is None or t.name != v.name:
                problems.append("enum %s.%s = %d: upstream %s" % (e.name, v.name, v.number,
                                                                 t and t.name))
    (service,) = ours.service
    theirs = pool.FindServiceByName("inference." + service.name)
    for m in service.method:
        t = theirs.methods_by_name.get(m.name)
        if t is None:
            problems.append("rpc %s: not upstream" % m.name)
            continue
        if m.input_type.lstrip(".") != t.input_type.full_name or \
                m.output_type.lstrip(".") != t.output_type.full_name:
            problems.append("rpc %s: types differ from upstream" % m.name)
        if m.client_streaming != t.client_streaming or m.server_streaming != t.server_streaming:
            problems.append("rpc %s: streaming differs from upstream" % m.name)
    checked = sum(len(m.field) for m in ours.message_type)
    for p in problems:
        print("MISMATCH", p)
    print("wire_compat: %d messages, %d top-level fields, %d methods compared with tritonclient; "
          "%d mismatches" % (len(ours.message_type), checked, len(service.method), len(problems)))
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
