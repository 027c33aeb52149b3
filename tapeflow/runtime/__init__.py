"""Running a flow: recovery stores, a local cluster of processes, signals, then Bytewax.

`run.run(settings, options)` is what `tapeflow run` and `tapeflow demo` call; the command line
only parses. The flows themselves are found by name through `flows.spec`.
"""
