"""The server: pygls wiring of the feature modules. Changes are debounced and the newest text always
wins; the check runs on one worker thread, so the event loop keeps answering while a large document is
checked; the last document that built a graph keeps the inlay hints and hovers while the text is broken."""
from __future__ import annotations

import asyncio
import logging
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from lsprotocol import types
from pygls import uris
from pygls.lsp.server import LanguageServer

from ..errors import Diagnostic, Location
from . import diagnostics, hints
from .analysis import Analysis, analyse
from .text import Lines

DEBOUNCE_S = 0.05  # a burst of keystrokes is checked once, after it
MAX_READ_BYTES = 2 * 1024 * 1024
MAX_REPAIR_BYTES = 256 * 1024  # completion reads names from the rest of a broken text up to this size
log = logging.getLogger("cnnspec.lsp")


class CnnspecServer(LanguageServer):
    """Per open document: its latest analysis, the latest one that built a graph, and the diagnostics
    it gives each file (its own, and imported files' where those are open too)."""

    def __init__(self, version: str = "0"):
        super().__init__("cnnspec", version)
        self.analyses: dict[str, Analysis] = {}
        self.good: dict[str, Analysis] = {}
        self.given: dict[str, dict[str, list]] = {}  # uri -> file -> LSP diagnostics its check gives
        self.pending: dict[str, asyncio.Task] = {}
        self.repaired: dict[tuple, Analysis | None] = {}  # see without_line
        self.checker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="cnnspec-check")

    # -- documents -------------------------------------------------------------------------------

    @property
    def encoding(self) -> str:
        try:
            enc = self.workspace.position_encoding
        except (AttributeError, RuntimeError):  # before initialize
            enc = None
        return str(getattr(enc, "value", enc) or "utf-16")

    def file_of(self, uri: str) -> str:
        return uris.to_fs_path(uri) or uri

    def uri_of(self, file: str) -> str:
        for uri in self.analyses:
            if self.file_of(uri) == file:
                return uri
        return uris.from_fs_path(file) or file

    def lines_of(self, file: str) -> Lines | None:
        """A file's lines: the editor's text where it is open, else read from disk (for ranges only)."""
        for uri, a in self.analyses.items():
            if a.file == file:
                return Lines(self.workspace.get_text_document(uri).source, self.encoding)
        try:
            with open(file, "rb") as fh:
                raw = fh.read(MAX_READ_BYTES)
        except OSError:
            return None
        return Lines(raw.decode("utf-8", "replace"), self.encoding)

    def text_of(self, uri: str) -> tuple[str, int | None]:
        doc = self.workspace.get_text_document(uri)
        return doc.source, doc.version

    def check(self, uri: str, text: str, version: int | None) -> Analysis:
        """One check, never raising: a bug in the pipeline is logged and gives no diagnostics."""
        file = self.file_of(uri)
        origin = Path(file) if uri.startswith("file:") else None
        try:
            return analyse(text, file, origin, version, self.encoding)
        except Exception as exc:  # the server outlives any document
            log.exception("checking %s failed", uri)
            a = Analysis(file, origin, text, version, encoding=self.encoding)
            a.errors = [Diagnostic(f"internal error while checking: {type(exc).__name__}: {exc}",
                                   Location(file, 1, 1))]
            return a

    async def refresh(self, uri: str) -> Analysis | None:
        """The analysis of the document's current text, checking it now where it is stale."""
        if uri not in self.workspace.text_documents:
            return None
        text, version = self.text_of(uri)
        current = self.analyses.get(uri)
        if current is not None and current.version == version and current.text == text:
            return current
        a = await asyncio.get_running_loop().run_in_executor(self.checker, self.check, uri, text, version)
        if uri not in self.workspace.text_documents:
            return None
        latest = self.analyses.get(uri)
        if latest is not None and latest.version is not None and version is not None and latest.version > version:
            return latest  # a newer text was checked meanwhile: it wins
        self.analyses[uri] = a
        if a.graph is not None:
            self.good[uri] = a
        if self.text_of(uri)[1] == version:
            self.publish(uri, a)
        return a

    async def without_line(self, uri: str, a: Analysis, line: int) -> Analysis | None:
        """The analysis of the text with one line emptied (the one being typed), where that parses; once
        per text and line, and not for texts past MAX_REPAIR_BYTES (a megabyte can take seconds)."""
        key = (uri, a.version, len(a.text), line)
        if key in self.repaired:
            return self.repaired[key]
        lines = a.text.split("\n")
        if not 0 <= line < len(lines) or len(a.text) > MAX_REPAIR_BYTES:
            return None
        lines[line] = ""
        other = await asyncio.get_running_loop().run_in_executor(self.checker, self.check, uri, "\n".join(lines), None)
        self.repaired.clear()  # one kept: the line being typed
        self.repaired[key] = other if other.doc is not None else None
        return self.repaired[key]

    def schedule(self, uri: str, delay: float) -> None:
        task = self.pending.pop(uri, None)
        if task is not None:
            task.cancel()
        self.pending[uri] = asyncio.ensure_future(self._later(uri, delay))

    async def _later(self, uri: str, delay: float) -> None:
        try:
            await asyncio.sleep(delay)
            await self.refresh(uri)
        except asyncio.CancelledError:
            pass
        except Exception:
            log.exception("refreshing %s failed", uri)

    def publish(self, uri: str, a: Analysis) -> None:
        before = self.given.get(uri, {})
        self.given[uri] = diagnostics.to_lsp(a, self.lines_of, self.uri_of)
        for file in {a.file, *before, *self.given[uri]}:
            self.publish_file(file)

    def publish_file(self, file: str) -> None:
        """A file's diagnostics: what every open document's check says about it; only open files get them."""
        target = next((u for u in self.analyses if self.file_of(u) == file), None)
        if target is None:
            return
        seen, merged = set(), []
        for by_file in self.given.values():
            for d in by_file.get(file, ()):
                key = (d.range.start.line, d.range.start.character, d.message)
                if key not in seen:
                    seen.add(key)
                    merged.append(d)
        version = self.analyses[target].version
        self.text_document_publish_diagnostics(types.PublishDiagnosticsParams(
            uri=target, diagnostics=merged, version=version))

    def forget(self, uri: str) -> None:
        task = self.pending.pop(uri, None)
        if task is not None:
            task.cancel()
        a = self.analyses.pop(uri, None)
        self.good.pop(uri, None)
        given = self.given.pop(uri, {})
        self.text_document_publish_diagnostics(types.PublishDiagnosticsParams(uri=uri, diagnostics=[]))
        for file in given:
            if a is None or file != a.file:
                self.publish_file(file)

    def forget_finished_notifications(self) -> None:
        """pygls 2.0 keeps the future of every notification its built-in handlers pass on (didChange's
        among them) in ``_request_futures`` for good: a few hundred bytes per keystroke. Finished ones are
        dropped here, so memory stays flat over a long session (bench/bench_lsp.py measures it)."""
        futures = getattr(self.protocol, "_request_futures", None)
        if isinstance(futures, dict) and len(futures) > 64:
            for key in [k for k, f in futures.items() if f.done()]:
                futures.pop(key, None)

    def hint_source(self, uri: str) -> Analysis | None:
        a = self.analyses.get(uri)
        return a if a is not None and a.graph is not None else self.good.get(uri)


def build_server(version: str = "0") -> CnnspecServer:
    server = CnnspecServer(version)

    @server.feature(types.TEXT_DOCUMENT_DID_OPEN)
    async def did_open(ls: CnnspecServer, params: types.DidOpenTextDocumentParams):
        ls.analyses.pop(params.text_document.uri, None)
        await ls.refresh(params.text_document.uri)

    @server.feature(types.TEXT_DOCUMENT_DID_CHANGE)
    def did_change(ls: CnnspecServer, params: types.DidChangeTextDocumentParams):
        ls.forget_finished_notifications()
        ls.schedule(params.text_document.uri, DEBOUNCE_S)

    @server.feature(types.TEXT_DOCUMENT_DID_SAVE)
    def did_save(ls: CnnspecServer, params: types.DidSaveTextDocumentParams):
        for uri in list(ls.analyses):  # a saved file may be one the others import: check them all again
            if uri != params.text_document.uri:
                ls.analyses[uri].version = None  # stale: the next refresh checks the text again
            ls.schedule(uri, 0)

    @server.feature(types.TEXT_DOCUMENT_DID_CLOSE)
    def did_close(ls: CnnspecServer, params: types.DidCloseTextDocumentParams):
        ls.forget(params.text_document.uri)

    @server.feature(types.TEXT_DOCUMENT_INLAY_HINT, types.InlayHintOptions(resolve_provider=False))
    async def inlay_hint(ls: CnnspecServer, params: types.InlayHintParams):
        uri = params.text_document.uri
        await ls.refresh(uri)
        source = ls.hint_source(uri)
        if source is None:
            return []
        lines = Lines(ls.text_of(uri)[0], ls.encoding)
        return hints.to_lsp(hints.hints_of(source), lines, params.range)

    @server.feature(types.SHUTDOWN)
    def shutdown(ls: CnnspecServer, *_args):
        for task in ls.pending.values():
            task.cancel()
        ls.pending.clear()
        ls.checker.shutdown(wait=False, cancel_futures=True)

    from . import requests  # hover, completion, navigation, actions

    requests.register(server)
    return server


def serve(version: str = "0") -> None:
    """Serve on stdin/stdout until the client says exit or closes the stream."""
    build_server(version).start_io()
