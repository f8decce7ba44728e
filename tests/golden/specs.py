"""specs.py: the list of golden cases make_golden.py writes into cases/ (one folder each).

Each spec names the problem (dtype, heads, head dim, block sizes, causal, scale, per-sequence
lengths) and how its random inputs are drawn (seed, mask density). Fields:
  name        folder name; tests refer to cases by it (readme_example_causal, d16_small_blocks,
              single_token_decode, empty_sequence_in_batch)
  dtype       fp16 | bf16 | fp32; hq, hk heads (hq % hk == 0); d head dim
  sq, sk      query / key block sizes (any positive ints)
  causal      bottom-right aligned causal mask
  scale       softmax scale, or None for 1/sqrt(d)
  lq, lk      query / key length of each sequence (0 allowed)
  density     probability of a 1 in each block_mask entry (entries pairing different
              sequences are drawn too: the contract says they are ignored)
  seed        numpy RandomState seed (its stream is frozen across NumPy versions)
  force_first default True: every query block of a sequence with keys sees that sequence's
              first key block, so only causality can empty a row
  clear_rows  [(kv head, global query block), ...] whose whole mask row is set to 0
  expect      properties make_golden.py asserts on the result: "empty_rows" (some row has no
              allowed key), "no_empty_rows"
Specs that coincide with ../shared/golden's cases of the same name (the upstream README example
and most others) keep its shapes; the five largest are smaller here so the folder stays a few MB.
"""

SPECS = [
    # The upstream README example: Sq=32, Sk=16, GQA 8:2, five sequences, ragged key lengths.
    dict(name="readme_example_causal", dtype="bf16", hq=8, hk=2, d=32, sq=32, sk=16, causal=True,
         scale=None, lq=[32, 32, 32, 32, 32], lk=[32, 29, 39, 34, 23], density=0.7, seed=1000,
         expect=["empty_rows"]),
    dict(name="readme_example_noncausal", dtype="bf16", hq=8, hk=2, d=32, sq=32, sk=16,
         causal=False, scale=None, lq=[32, 32, 32, 32, 32], lk=[32, 29, 39, 34, 23], density=0.7,
         seed=1001, expect=["no_empty_rows"]),
    # Equal block sizes, fp16, MHA (hq == hk).
    dict(name="equal_blocks_fp16", dtype="fp16", hq=2, hk=2, d=64, sq=64, sk=64, causal=True,
         scale=None, lq=[128, 192], lk=[128, 192], density=0.5, seed=1002),
    # Heterogeneous blocks.
    dict(name="hetero_80x32_gqa", dtype="bf16", hq=4, hk=2, d=64, sq=80, sk=32, causal=True,
         scale=0.333, lq=[120, 97, 90], lk=[160, 130, 120], density=0.6, seed=1003),
    dict(name="hetero_48x112_fp32", dtype="fp32", hq=2, hk=2, d=18, sq=48, sk=112, causal=False,
         scale=None, lq=[200, 64], lk=[300, 50], density=0.6, seed=1004),
    dict(name="mqa_d128_causal", dtype="bf16", hq=2, hk=1, d=128, sq=128, sk=64, causal=True,
         scale=None, lq=[130, 70], lk=[200, 150], density=0.4, seed=1005),
    # More queries than keys: the first Lq - Lk rows of sequence 0 see no key (causal).
    dict(name="lq_gt_lk_empty_rows", dtype="fp16", hq=2, hk=1, d=64, sq=16, sk=16, causal=True,
         scale=None, lq=[96, 64], lk=[40, 64], density=0.8, seed=1006, expect=["empty_rows"]),
    # Mask rows entirely off (no forced block; one row cleared for certain).
    dict(name="masked_rows_no_force", dtype="bf16", hq=2, hk=2, d=64, sq=32, sk=32, causal=False,
         scale=None, lq=[128, 64], lk=[96, 160], density=0.3, seed=1007, force_first=False,
         clear_rows=[(0, 1)], expect=["empty_rows"]),
    # Head dims 16, 96, 256 (18, 32, 64, 128 are above and below).
    dict(name="d16_small_blocks", dtype="fp32", hq=8, hk=2, d=16, sq=16, sk=32, causal=True,
         scale=0.333, lq=[32, 64, 48], lk=[61, 64, 10], density=0.7, seed=1008),
    dict(name="d96_hetero_128x16", dtype="bf16", hq=2, hk=1, d=96, sq=128, sk=16, causal=False,
         scale=None, lq=[150, 140], lk=[130, 170], density=0.35, seed=1009),
    dict(name="d256_bf16", dtype="bf16", hq=2, hk=1, d=256, sq=64, sk=128, causal=True,
         scale=None, lq=[96], lk=[160], density=0.5, seed=1010),
    # Decode: one query per sequence.
    dict(name="single_token_decode", dtype="fp16", hq=8, hk=2, d=128, sq=16, sk=64, causal=True,
         scale=None, lq=[1, 1, 1, 1], lk=[300, 17, 128, 64], density=0.6, seed=1011),
    # Block sizes that are not multiples of 16.
    dict(name="arbitrary_blocks_7x33", dtype="fp32", hq=4, hk=2, d=32, sq=7, sk=33, causal=True,
         scale=None, lq=[50, 81], lk=[70, 81], density=0.6, seed=1012),
    dict(name="arbitrary_blocks_1x5", dtype="bf16", hq=2, hk=2, d=64, sq=1, sk=5, causal=False,
         scale=None, lq=[20, 13], lk=[23, 40], density=0.5, seed=1013),
    dict(name="arbitrary_blocks_100x3", dtype="fp16", hq=4, hk=1, d=64, sq=100, sk=3, causal=True,
         scale=0.5, lq=[250], lk=[251], density=0.7, seed=1014),
    # Empty sequences: one with keys but no queries, one with queries but no keys (empty rows).
    dict(name="empty_sequence_in_batch", dtype="bf16", hq=2, hk=1, d=64, sq=32, sk=32,
         causal=False, scale=None, lq=[64, 0, 40], lk=[64, 30, 0], density=0.8, seed=1015,
         expect=["empty_rows"]),
    # A given scale of 0 is used as is (every allowed key weighs the same).
    dict(name="scale_zero_fp32", dtype="fp32", hq=2, hk=1, d=32, sq=16, sk=16, causal=True,
         scale=0.0, lq=[40, 24], lk=[40, 33], density=0.6, seed=1016),
]
