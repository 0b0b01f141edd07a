"""Reading a spec: YAML with positions (:mod:`.loader`), the JSON Schema generated from the op table
(:mod:`.schema`, answered by :mod:`.fastschema` for a valid spec), the messages that explain schema
errors (:mod:`.messages`) and "did you mean" (:mod:`.suggestions`), ``import:`` of other files and the
block library (:mod:`.imports`), expressions over parameters (:mod:`.expressions`: a whitelisted
``ast`` walk, never ``eval``), the spec's ``params``/``scales`` and ``--scale``/``--set``
(:mod:`.parameters`), blocks, repeats and ``when`` (:mod:`.expansion`), and the compiler
that turns the result into a checked graph (:mod:`.compiler`).

Every input here is hostile until checked; errors are diagnostics at ``file:line:col``.

May import: errors, graph.
"""
