#!/usr/bin/env bash
# perf_analyzer_oip.sh: Triton's perf_analyzer against hbsa-server's Open Inference Protocol
# front end, with the real data of one golden case (perf_analyzer's random data would make
# invalid cu_seqlens).
#   scripts/perf_analyzer_oip.sh PERF_ANALYZER TARGET CASE_DIR OUT_DIR [perf_analyzer args...]
# PERF_ANALYZER is the binary; PyPI's only source of it is the tritonclient 2.41.0 Linux wheel
# (tritonclient-2.41.0.data/data/bin/perf_analyzer; later wheels and the `perf-analyzer` package
# do not ship it), which needs libb64-0d (Debian) and libcudart.so.12 on LD_LIBRARY_PATH
# (nvidia-cuda-runtime-cu12 from PyPI) even for a CPU server. docs/OIP.md shows a run.
# Writes OUT_DIR/input.json (the case as perf_analyzer input data) and OUT_DIR/perf.log.
set -euo pipefail
pa=$1 target=$2 case_dir=$3 out=$4
shift 4
mkdir -p "$out"
python3 - "$case_dir" "$out/input.json" > "$out/params" <<'PY'
import json, sys
import numpy as np
case, dest = sys.argv[1], sys.argv[2]
meta = json.load(open(case + "/case.json"))
assert meta["dtype"] == "fp32", "perf_analyzer's JSON content is typed: use an fp32 case"
load = lambda n: np.load("%s/%s.npy" % (case, n))
def t(a, cast):
    return {"content": [cast(x) for x in a.ravel().tolist()], "shape": list(a.shape)}
row = {"q": t(load("q"), float), "k": t(load("k"), float), "v": t(load("v"), float),
       "cu_seqlens_q": t(np.asarray(meta["cu_q"], np.int32), int),
       "cu_seqlens_k": t(np.asarray(meta["cu_k"], np.int32), int),
       "block_mask": t(load("block_mask").astype(bool), bool)}
json.dump({"data": [row]}, open(dest, "w"))
print("--request-parameter q_block_size:%d:int --request-parameter k_block_size:%d:int "
      "--request-parameter causal:%s:bool" % (meta["sq"], meta["sk"], str(meta["causal"]).lower()))
PY
# shellcheck disable=SC2046
"$pa" -m hbsa_attention -i grpc -u "$target" --input-data "$out/input.json" $(cat "$out/params") \
  "$@" 2>&1 | tee "$out/perf.log"
