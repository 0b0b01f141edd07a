"""Training data: the sources ``cnnspec train --data`` and ``cnnspec quantize --calibrate`` read
(scikit-learn's digits, MNIST files, image folders), each checked against the spec before use
(:mod:`.sources`).

May import: errors, graph, files.
"""
