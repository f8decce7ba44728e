"""setup.py: the one build step pyproject.toml cannot express: generate the gRPC stubs.

build_py runs grpc_tools.protoc on proto/hbsa/v1/attention.proto (found at ../../proto from this
folder, or at $HBSA_PROTO_DIR) and writes hbsa/v1/attention_pb2*.py into the build tree, so the
wheel carries stubs matching the protobuf/grpcio-tools versions of the build, and the repository
carries none.
"""
import os

from setuptools import setup
from setuptools.command.build_py import build_py

HERE = os.path.dirname(os.path.abspath(__file__))
PROTO_REL = os.path.join("hbsa", "v1", "attention.proto")


def _proto_root():
    candidates = [os.environ.get("HBSA_PROTO_DIR", ""), os.path.join(HERE, "..", "..", "proto")]
    for root in candidates:
        if root and os.path.isfile(os.path.join(root, PROTO_REL)):
            return os.path.abspath(root)
    raise RuntimeError(
        "hbsa: cannot find %s; build from the repository (pip install ./client/python) or set "
        "HBSA_PROTO_DIR to the folder holding it" % PROTO_REL)


class BuildPyWithStubs(build_py):
    def run(self):
        super().run()
        import grpc_tools
        from grpc_tools import protoc

        root = _proto_root()
        include = os.path.join(os.path.dirname(grpc_tools.__file__), "_proto")
        out = os.path.abspath(self.build_lib)
        rc = protoc.main([
            "grpc_tools.protoc", "-I" + root, "-I" + include, "--python_out=" + out,
            "--grpc_python_out=" + out, "--pyi_out=" + out, os.path.join(root, PROTO_REL)])
        if rc != 0:
            raise RuntimeError("hbsa: protoc failed on %s (exit %d)" % (PROTO_REL, rc))
        init = os.path.join(out, "hbsa", "v1", "__init__.py")
        with open(init, "w") as f:
            f.write('"""Generated at build time from proto/hbsa/v1/attention.proto."""\n')


setup(cmdclass={"build_py": BuildPyWithStubs})
