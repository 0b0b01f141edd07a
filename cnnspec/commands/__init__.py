"""One module per subcommand: NAME, HELP, add_arguments(parser), run(args) -> exit code. The top of
the house: ``cnnspec.cli`` finds each module by name, and a command imports the layer it needs inside
``run``, so ``cnnspec check`` never pays for the runner, training or a framework.

May import: errors, version, graph, spec, files, weights, onnxfile, backend, api, data, runner,
quantize, training, draw, importer, lsp.
"""
