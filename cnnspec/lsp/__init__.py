"""``cnnspec lsp``: the spec language in an editor, as a Language Server Protocol server over stdio.

The server never checks a spec its own way: every diagnostic, shape and count comes from the same
pipeline ``cnnspec check`` runs (:mod:`cnnspec.spec.loader`, :mod:`cnnspec.spec.compiler`,
:mod:`cnnspec.graph.lint`, :mod:`cnnspec.graph.report`), run on the editor's text. The modules here
only translate: positions (:mod:`.text`), one check of a document (:mod:`.analysis`), and the answers
to each request (:mod:`.hints`, :mod:`.hover`, :mod:`.completion`, :mod:`.navigation`, :mod:`.actions`);
:mod:`.server` wires them to pygls. It never imports a framework nor ONNX.

May import: errors, graph, spec.
"""
