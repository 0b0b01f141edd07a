-- Headless Neovim as a real LSP client of `cnnspec lsp`: open a spec, wait for the diagnostics Neovim
-- received, ask for the inlay hints, write both as JSON. Driven by tests/test_lsp_editor.py.
-- Neovim 0.8+ has vim.lsp.start; 0.7 (Debian 12) only vim.lsp.start_client + buf_attach_client.
-- Neovim 0.10+ shows inlay hints itself (vim.lsp.inlay_hint); older ones are asked with buf_request_sync.
local out = os.getenv("CNNSPEC_NVIM_OUT")
local spec = os.getenv("CNNSPEC_NVIM_SPEC")
local cmd = vim.fn.json_decode(os.getenv("CNNSPEC_NVIM_CMD"))

local function finish(result)
  local f = io.open(out, "w")
  f:write(vim.fn.json_encode(result))
  f:close()
  vim.cmd("qa!")
end

vim.cmd("edit " .. vim.fn.fnameescape(spec))
local buf = vim.api.nvim_get_current_buf()
local config = { name = "cnnspec", cmd = cmd, root_dir = vim.fn.fnamemodify(spec, ":h") }
local client_id
if vim.lsp.start then
  client_id = vim.lsp.start(config)
else
  client_id = vim.lsp.start_client(config)
  vim.lsp.buf_attach_client(buf, client_id)
end

local got = vim.wait(30000, function() return #vim.diagnostic.get(buf) > 0 end, 50)
local diagnostics = {}
for _, d in ipairs(vim.diagnostic.get(buf)) do
  table.insert(diagnostics, { lnum = d.lnum, col = d.col, end_lnum = d.end_lnum, end_col = d.end_col,
                              message = d.message, severity = d.severity, source = d.source })
end

local params = {
  textDocument = vim.lsp.util.make_text_document_params(buf),
  range = { start = { line = 0, character = 0 }, ["end"] = { line = vim.api.nvim_buf_line_count(buf), character = 0 } },
}
local hints = {}
local responses = vim.lsp.buf_request_sync(buf, "textDocument/inlayHint", params, 30000)
for _, response in pairs(responses or {}) do
  for _, h in ipairs(response.result or {}) do
    table.insert(hints, { line = h.position.line, character = h.position.character, label = h.label })
  end
end

local native = vim.NIL
if vim.lsp.inlay_hint and vim.lsp.inlay_hint.get then
  vim.lsp.inlay_hint.enable(true, { bufnr = buf })
  native = {}
  vim.wait(10000, function() return #vim.lsp.inlay_hint.get({ bufnr = buf }) > 0 end, 50)
  for _, item in ipairs(vim.lsp.inlay_hint.get({ bufnr = buf })) do
    table.insert(native, { line = item.inlay_hint.position.line, label = item.inlay_hint.label })
  end
end

local version = vim.version()
vim.lsp.stop_client(client_id)
vim.wait(5000, function() return vim.lsp.get_client_by_id(client_id) == nil end, 50)
finish({ nvim = string.format("%d.%d.%d", version.major, version.minor, version.patch), waited = got,
         diagnostics = diagnostics, hints = hints, native_hints = native })
