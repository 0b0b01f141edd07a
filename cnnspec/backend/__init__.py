"""The backend interface: what a backend plugin provides (:mod:`.interface`), how plugins are found
through entry points without importing their framework (:mod:`.plugins`), and the data the
interface hands a backend's trainer: the options of a training run (:mod:`.trainconfig`) and where
the process sits in a ``torchrun`` launch (:mod:`.world`), and the weights it is handed, read from
a file of any format through one suffix table (:mod:`.weightfiles`). Backends themselves live in
``backends/``.

May import: errors, files, weights, onnxfile.
"""
