"""cnnspec's version, in a module of its own: the ONNX writer stamps it into every file it writes,
and the file layer must not import the package face (which imports the whole public API)."""

__version__ = "0.1.0"
