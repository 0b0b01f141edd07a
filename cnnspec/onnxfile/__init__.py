"""The ONNX file: the ONNX target's lowering table (:mod:`.lowering`), the writer that builds
``model.onnx`` from a checked graph and neutral weights (:mod:`.writer`), what the output means as
metadata (:mod:`.outputmeta`), and the one serialisation boundary every file written or read passes
through (:mod:`.boundary`). It imports ``onnx`` only inside functions.

May import: errors, version, graph, files, weights.
"""
