"""Weights in the framework-neutral layout (PyTorch's): which tensors a graph holds and the one check
(:mod:`.neutral`), Keras' layout and the conversion to and from it with numpy alone
(:mod:`.keras_layout`), and safetensors files, the only weights files read (:mod:`.safetensors_io`).

May import: errors, graph, files.
"""
