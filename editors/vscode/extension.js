// Starts `cnnspec lsp` for cnnspec specs: files named *.cnnspec.yaml and YAML files whose first line is
// `cnnspec: 1` (the language "cnnspec" of package.json, highlighted as YAML).
const vscode = require("vscode");
const { LanguageClient } = require("vscode-languageclient/node");

let client;

function activate(context) {
  const [command, ...args] = vscode.workspace.getConfiguration("cnnspec").get("command");
  client = new LanguageClient(
    "cnnspec",
    "cnnspec",
    { command, args },
    { documentSelector: [{ language: "cnnspec" }] }
  );
  context.subscriptions.push(client);
  return client.start();
}

function deactivate() {
  return client ? client.stop() : undefined;
}

module.exports = { activate, deactivate };
