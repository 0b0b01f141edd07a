"""The checked graph: the frozen IR, the op table and the one output-size function, and everything
computed from a graph without a framework: receptive fields, per-layer figures, memory at a batch
size, whether it fits this machine, lint warnings and the report (``cnnspec check``'s table and JSON).

This is the bottom of the house: what the language knows about an op (arguments, shape rule,
weight parts) lives in :mod:`.ops`, and every other layer reads graphs made of :mod:`.ir` nodes.

May import: errors.
"""
