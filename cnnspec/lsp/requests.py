"""The requests beyond diagnostics and hints, each answered by its feature module. Position-based
requests read the current text's analysis; where that text does not parse, the last good one."""
from __future__ import annotations

from lsprotocol import types

from . import actions, completion, hover, navigation
from .text import Lines


def _live(ls, uri):
    """(the current analysis if its text parsed else the last good one, the one with a graph)."""
    a = ls.analyses.get(uri)
    good = ls.good.get(uri)
    live = a if a is not None and a.doc is not None else good
    return live, (a if a is not None and a.graph is not None else good) or live


def register(server) -> None:
    @server.feature(types.TEXT_DOCUMENT_HOVER)
    async def on_hover(ls, params: types.HoverParams):
        await ls.refresh(params.text_document.uri)
        live, a = _live(ls, params.text_document.uri)
        return hover.hover(a, live, params.position) if live is not None else None

    @server.feature(types.TEXT_DOCUMENT_COMPLETION,
                    types.CompletionOptions(trigger_characters=["$", ":", " ", "[", ",", "{", "-"]))
    async def on_completion(ls, params: types.CompletionParams):
        uri = params.text_document.uri
        await ls.refresh(uri)
        current = ls.analyses.get(uri)
        if current is None:
            return []
        live, a = _live(ls, uri)
        if current.doc is None:  # the line being typed breaks the text: the names of the rest of it
            a = await ls.without_line(uri, current, params.position.line) or a
        if a is None:
            return []
        items = completion.complete(current, a if a.doc is not None else live, params.position)
        return types.CompletionList(is_incomplete=False, items=items)

    @server.feature(types.TEXT_DOCUMENT_DEFINITION)
    async def on_definition(ls, params: types.DefinitionParams):
        await ls.refresh(params.text_document.uri)
        live, _a = _live(ls, params.text_document.uri)
        if live is None:
            return None
        return navigation.definition(live, params.position, ls.uri_of, ls.lines_of)

    @server.feature(types.TEXT_DOCUMENT_DOCUMENT_SYMBOL)
    async def on_symbols(ls, params: types.DocumentSymbolParams):
        await ls.refresh(params.text_document.uri)
        live, _a = _live(ls, params.text_document.uri)
        return navigation.symbols(live) if live is not None else []

    @server.feature(types.TEXT_DOCUMENT_CODE_ACTION,
                    types.CodeActionOptions(code_action_kinds=[types.CodeActionKind.QuickFix]))
    def on_code_action(ls, params: types.CodeActionParams):
        uri = params.text_document.uri
        if uri not in ls.workspace.text_documents:
            return []
        lines = Lines(ls.text_of(uri)[0], ls.encoding)
        return actions.quick_fixes(uri, lines, params.context.diagnostics)
