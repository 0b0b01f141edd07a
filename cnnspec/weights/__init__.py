"""Weights in the framework-neutral layout (PyTorch's): which tensors a graph holds and the one check
(:mod:`.neutral`), a file's names and shapes against the spec's (:mod:`.match`), Keras' layout and
the conversion to and from it with numpy alone (:mod:`.keras_layout`), and the files: safetensors,
ours (:mod:`.safetensors_io`); PyTorch state_dicts read without PyTorch or unpickling
(:mod:`.torchzip`, :mod:`.pickleops`); Keras HDF5 and ``.keras`` files read with h5py
(:mod:`.kerash5`); every tensor declared before it is read (:mod:`.stored`), zip entries checked
(:mod:`.archive`). The table that picks a reader by suffix is :mod:`cnnspec.backend.weightfiles`
(its ONNX entry reads through ``onnxfile/``, a layer above this one).

May import: errors, graph, files.
"""
