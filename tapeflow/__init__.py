"""Tapeflow: a streaming pipeline for trading platforms.

The package holds the pure core (`tapeflow.core`: business rules, no I/O, no engine, no clock)
and, beside it, the top of the stack that runs it: the settings (`tapeflow.settings`), the
error family (`tapeflow.errors`), connections to the services (`tapeflow.services`), the flow
runtime (`tapeflow.runtime`) and the command line (`tapeflow.cli`). The adapters and the flows
live in the top-level packages `sources`, `sinks`, `flows`, `jobs` and `schemas`
(docs/design.md, "Layout").
"""

__version__ = "0.1.0"
