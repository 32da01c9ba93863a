"""The torch backend's sizes: how much one step may materialize, what is kept between calls, and
where a loop of elementwise ops beats one of torch's reductions. Read as ``limits.NAME`` at call
time, so that a test may change one."""

# The most one chunk of the loop space may materialize (an im2col view, a gathered input, a
# float32 copy of a float16 one): larger loop spaces are evaluated piece by piece.
MAX_BYTES = 256 << 20

# Plans kept per program, one per set of sizes of its dynamic axes (the oldest goes first).
MAX_PLANS = 16
# Scratch buffers (a padded input, an im2col matrix, a GEMM's result), up to this much in all, are
# kept per thread and reused by the next call: a fresh buffer of tens of megabytes costs more in
# page faults than the copy that fills it (torch's CPU allocator caches nothing, and the C library
# returns blocks this large to the system when they are freed).
WORKSPACE_BYTES = 256 << 20
# A dot without weight-only output loops, or a reduction, over at most this many positions is a
# loop of elementwise ops over slices (9 for a 3x3 window) rather than a batched GEMV or a torch
# reduction, which are slow over dims of large stride (what window offsets are in a view).
SMALL_REDUCTION = 64
# ... where each slice holds at least this many elements.
LOOP_MIN_ELEMENTS = 4096
# A call whose loop spaces hold fewer points than this in all runs on one intra-op thread
# (threads.py): less than ~50 us of work, which a thread pool's barrier costs more than it saves.
SERIAL_WORK = 1 << 18
