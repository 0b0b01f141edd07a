"""ONNX in: ``cnnspec import`` reads an ONNX model as hostile input (:mod:`.reader`), folds what an
exporter left computable (:mod:`.constfold`), recognises exporter patterns as the language's ops
through one table keyed by ONNX op type (:mod:`.patterns`, the inverse of
:mod:`cnnspec.onnxfile.lowering`), names the layers (:mod:`.naming`), folds repeated subgraphs into
blocks (:mod:`.blocks`) and writes the spec and its neutral weights (:mod:`.writer`). It imports
``onnx`` only inside functions, so ``cnnspec check`` never loads it.

May import: errors, graph, spec, files, weights, onnxfile.
"""
