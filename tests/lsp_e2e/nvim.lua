-- Drives `bake lsp` with Neovim's built-in LSP client, headless (Neovim 0.7 or later).
-- Run by tests/lsp_e2e.rs:
--   BAKE_BIN=target/debug/bake BAKE_SPEC=x.kdl BAKE_E2E_OUT=out.json nvim --headless --clean -c 'luafile nvim.lua'
-- Everything observed goes to $BAKE_E2E_OUT as JSON; the Rust test makes the assertions.

local results = {}
local out_path = os.getenv("BAKE_E2E_OUT")

local function write()
  local f = assert(io.open(out_path, "w"))
  f:write(vim.fn.json_encode(results))
  f:close()
end

local function find_line(buf, needle)
  for i, line in ipairs(vim.api.nvim_buf_get_lines(buf, 0, -1, false)) do
    local col = line:find(needle, 1, true)
    if col then
      return i - 1, col - 1
    end
  end
  error("not in buffer: " .. needle)
end

local function diagnostics(buf)
  local out = {}
  for _, d in ipairs(vim.diagnostic.get(buf)) do
    local lsp = d.user_data and d.user_data.lsp or {}
    table.insert(out, {
      lnum = d.lnum,
      col = d.col,
      end_col = d.end_col,
      severity = d.severity,
      message = d.message,
      code = lsp.code or d.code,
    })
  end
  return out
end

local function has_code(buf, code)
  for _, d in ipairs(diagnostics(buf)) do
    if d.code == code then
      return true
    end
  end
  return false
end

local function main()
  if vim.lsp == nil or vim.diagnostic == nil or vim.lsp.start_client == nil then
    results.too_old = true
    return
  end
  results.nvim = vim.version and tostring(vim.version().major .. "." .. vim.version().minor) or "?"
  local bake = assert(os.getenv("BAKE_BIN"), "BAKE_BIN")
  local spec = assert(os.getenv("BAKE_SPEC"), "BAKE_SPEC")
  vim.cmd("edit " .. vim.fn.fnameescape(spec))
  local buf = vim.api.nvim_get_current_buf()
  local id = vim.lsp.start_client({
    name = "bake",
    cmd = { bake, "lsp" },
    root_dir = vim.fn.fnamemodify(spec, ":h"),
  })
  assert(id, "start_client failed")
  assert(vim.lsp.buf_attach_client(buf, id), "buf_attach_client failed")
  local client = vim.lsp.get_client_by_id(id)
  local uri = vim.uri_from_bufnr(buf)

  -- 1. Diagnostics on open.
  assert(vim.wait(15000, function() return #vim.diagnostic.get(buf) > 0 end, 20), "no diagnostics after open")
  results.open = diagnostics(buf)

  -- 2. Hover on a property (an ASCII line, so byte column = UTF-16 column).
  local line, col = find_line(buf, "max-batch")
  local hover = client.request_sync("textDocument/hover", {
    textDocument = { uri = uri },
    position = { line = line, character = col + 2 },
  }, 5000, buf)
  assert(hover and hover.result, "no hover: " .. vim.inspect(hover))
  results.hover = hover.result.contents.value

  -- 3. Completion where a node of the fleet goes.
  line, col = find_line(buf, "size min")
  local completion = client.request_sync("textDocument/completion", {
    textDocument = { uri = uri },
    position = { line = line, character = col },
  }, 5000, buf)
  assert(completion and completion.result, "no completion: " .. vim.inspect(completion))
  local items = completion.result.items or completion.result
  results.completion = {}
  for _, item in ipairs(items) do
    table.insert(results.completion, item.label)
  end

  -- 4. An edit: the server re-diagnoses the new text.
  line = find_line(buf, "size min")
  vim.api.nvim_buf_set_lines(buf, line, line + 1, false, { "    size min=3 max=2" })
  assert(
    vim.wait(15000, function() return has_code(buf, "bake::check::size_order") end, 20),
    "no size_order diagnostic after the edit: " .. vim.inspect(diagnostics(buf))
  )
  results.changed = diagnostics(buf)

  -- 5. Formatting through the server.
  if vim.lsp.buf.format then
    vim.lsp.buf.format({ timeout_ms = 5000, bufnr = buf })
  else
    vim.lsp.buf.formatting_sync(nil, 5000)
  end
  results.formatted = vim.api.nvim_buf_get_lines(buf, 0, -1, false)

  -- 6. Shutdown and exit.
  vim.lsp.stop_client(id)
  results.stopped = vim.wait(10000, function() return client.is_stopped() end, 20)
end

local ok, err = pcall(main)
if not ok then
  results.error = tostring(err)
end
write()
vim.cmd(ok and "qa!" or "cquit 1")
