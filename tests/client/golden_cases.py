"""tests/client/golden_cases.py: the golden cases (tests/golden/cases, or $HBSA_GOLDEN_DIR) as the
Python tests read them: the client package's tests (tests/client/python) and the Open Inference
Protocol tests (tests/oip) share it, as they share hbsa_server.py."""
import json
import os

import numpy as np


class Case:
    def __init__(self, path):
        self.name = os.path.basename(path)
        self.meta = json.load(open(os.path.join(path, "case.json")))
        load = lambda n: np.load(os.path.join(path, n + ".npy"))  # noqa: E731
        self.q, self.k, self.v = load("q"), load("k"), load("v")
        self.block_mask = load("block_mask").astype(bool)
        self.out, self.lse = load("out"), load("lse")
        self.cu_q = np.asarray(self.meta["cu_q"], np.int32)
        self.cu_k = np.asarray(self.meta["cu_k"], np.int32)
        self.dtype = self.meta["dtype"]

    def args(self):
        return (self.q, self.k, self.v, self.cu_q, self.cu_k, self.block_mask, self.meta["sq"],
                self.meta["sk"], self.meta["causal"], self.meta["scale"])


def golden_root():
    """$HBSA_GOLDEN_DIR, else the repository's own cases (tests/golden/cases)."""
    return os.environ.get("HBSA_GOLDEN_DIR") or os.path.join(
        os.path.dirname(os.path.abspath(__file__)), "..", "golden", "cases")


def all_cases():
    root = golden_root()
    return sorted(os.path.join(root, d) for d in os.listdir(root)
                  if os.path.isfile(os.path.join(root, d, "case.json")))
