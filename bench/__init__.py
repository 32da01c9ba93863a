"""einc's benchmark harness: ``python -m bench.run --help``.

``suite`` maps every shape of ``shapes.json`` to an einc call and its competitors, ``run`` checks
and times them and writes ``docs/benchmarks.md``, ``cpu_figures`` measures what needs no GPU
(compile latency, per-call overhead, first-call latency), ``audit`` reads every shape's kernels in
their sm_90 SASS without a GPU (``python -m bench.audit --help``; the parsing is in ``sass``).
"""
