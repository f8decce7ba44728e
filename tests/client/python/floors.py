#!/usr/bin/env python3
"""floors.py PYPROJECT: prints a pip constraints file pinning every requirement of the package
(dependencies, the `test` extra and the build-system requirements) to its declared floor:
"grpcio>=1.60" becomes "grpcio==1.60". A requirement without a plain ">=" floor is an error, so
a new dependency cannot slip into the package without a lowest version CI tests."""
import re
import sys
import tomllib

with open(sys.argv[1], "rb") as f:
    meta = tomllib.load(f)
reqs = (meta["project"]["dependencies"] + meta["project"]["optional-dependencies"]["test"]
        + meta["build-system"]["requires"])
for r in reqs:
    m = re.fullmatch(r"([A-Za-z0-9_.-]+)>=([0-9][0-9.]*)", r.replace(" ", ""))
    if not m:
        sys.exit("floors.py: requirement %r has no plain '>=' floor" % r)
    print("%s==%s" % m.groups())
