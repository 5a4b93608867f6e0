// Airlock for VS Code: a thin client of `airlock serve`. The server owns proposals, policy,
// approvals and telemetry; this extension renders them the VS Code way.

import { execFile } from 'node:child_process';
import * as vscode from 'vscode';
import { LanguageClient, State } from 'vscode-languageclient/node';
import { AgentOutput } from './agentOutput';
import { createClient, serverPath } from './client';
import { approvalChoice, approvalQuestion, statusBarText } from './logic';
import { PROPOSED_SCHEME, Proposals } from './proposals';
import {
  AgentUpdateParams,
  ApprovalParams,
  ApprovalResult,
  CancelResult,
  Methods,
  PromptParams,
  PromptResult,
  ProposalParams,
  StatusParams,
  TelemetryParams,
} from './protocol';
import { Telemetry } from './telemetry';

let client: LanguageClient | undefined;

/** What tests and other extensions can read (returned from `activate`). */
export interface AirlockApi {
  client(): LanguageClient | undefined;
  status(): StatusParams | undefined;
}

export async function activate(context: vscode.ExtensionContext): Promise<AirlockApi> {
  const log = vscode.window.createOutputChannel('Airlock');
  const agent = new AgentOutput();
  const proposals = new Proposals();
  const telemetry = new Telemetry();
  const statusItem = vscode.window.createStatusBarItem('airlock.status', vscode.StatusBarAlignment.Left, 100);
  statusItem.name = 'Airlock';
  statusItem.command = 'airlock.statusMenu';
  let status: StatusParams | undefined;
  let turn: { started: number } | undefined;

  const renderStatus = () => {
    const { text, tooltip } = statusBarText(status, client?.state === State.Running);
    statusItem.text = text;
    statusItem.tooltip = tooltip;
    statusItem.backgroundColor = status?.agent === 'failed' ? new vscode.ThemeColor('statusBarItem.errorBackground') : undefined;
    statusItem.show();
  };
  renderStatus();

  context.subscriptions.push(
    log,
    agent,
    proposals,
    statusItem,
    vscode.languages.registerCodeLensProvider({ scheme: 'file' }, proposals),
    vscode.workspace.registerFileSystemProvider(PROPOSED_SCHEME, proposals, { isCaseSensitive: true }),
    vscode.window.createTreeView('airlock.proposals', { treeDataProvider: proposals, showCollapseAll: false }),
    vscode.window.createTreeView('airlock.telemetry', { treeDataProvider: telemetry }),
  );

  const start = async () => {
    const c = createClient(log, {
      onHunkViews: (uri, views) => proposals.onHunkViews(uri, views),
      dropServerLenses: (uri) =>
        !vscode.workspace.getConfiguration('airlock').get<boolean>('proposals.codeLens', true) || proposals.entryFor(uri) !== undefined,
      knows: (id) => proposals.knows(id),
    });
    c.onDidChangeState(() => renderStatus());
    c.onNotification(Methods.proposal, (p: ProposalParams) => proposals.onProposal(p));
    c.onNotification(Methods.agentUpdate, (p: AgentUpdateParams) => agent.onUpdate(p));
    c.onNotification(Methods.telemetry, (p: TelemetryParams) => telemetry.onBatch(p));
    c.onNotification(Methods.status, (p: StatusParams) => {
      status = p;
      renderStatus();
    });
    c.onRequest(Methods.approval, (p: ApprovalParams) => askApproval(p));
    client = c;
    proposals.setClient(c);
    try {
      await c.start();
    } catch (err) {
      const path = serverPath(vscode.workspace.getConfiguration('airlock'));
      const pick = await vscode.window.showErrorMessage(
        `Airlock: cannot start \`${path} serve\`: ${err instanceof Error ? err.message : String(err)}. Set "airlock.serverPath" to the airlock binary.`,
        'Open Settings',
      );
      if (pick) void vscode.commands.executeCommand('workbench.action.openSettings', 'airlock.serverPath');
    }
    renderStatus();
  };

  const stop = async () => {
    const c = client;
    client = undefined;
    proposals.setClient(undefined);
    status = undefined;
    if (c) await c.stop().catch(() => undefined);
    renderStatus();
  };

  const command = (id: string, fn: (...args: unknown[]) => unknown) => context.subscriptions.push(vscode.commands.registerCommand(id, fn));

  command('airlock.ask', async () => {
    if (!client || client.state !== State.Running) {
      return void vscode.window.showErrorMessage('Airlock: the server is not running (see the "Airlock" output).');
    }
    if (turn) {
      const pick = await vscode.window.showWarningMessage('Airlock: the agent is still working on the previous request.', 'Cancel its turn');
      if (pick) await vscode.commands.executeCommand('airlock.cancelTurn');
      return;
    }
    const editor = vscode.window.activeTextEditor;
    const sel = editor && !editor.selection.isEmpty ? editor.selection : undefined;
    const where = editor ? vscode.workspace.asRelativePath(editor.document.uri) : undefined;
    const text = await vscode.window.showInputBox({
      title: 'Airlock: Ask the agent',
      prompt: sel && where ? `The selection in ${where} (lines ${sel.start.line + 1}–${sel.end.line + 1}) is sent as context.` : where ? `${where} is sent as context.` : undefined,
      placeHolder: 'What should the agent do?',
      ignoreFocusOut: true,
    });
    if (!text || !text.trim()) return;
    const params: PromptParams = { text };
    if (editor && editor.document.uri.scheme === 'file') {
      params.uris = [editor.document.uri.toString()];
      if (sel) {
        params.selection = {
          uri: editor.document.uri.toString(),
          range: { start: { line: sel.start.line, character: sel.start.character }, end: { line: sel.end.line, character: sel.end.character } },
          text: editor.document.getText(sel),
        };
      }
    }
    agent.prompt(text, sel && where ? `selection in ${where}:${sel.start.line + 1}-${sel.end.line + 1}` : where);
    turn = { started: Date.now() };
    const c = client;
    try {
      const result = await vscode.window.withProgress(
        { location: vscode.ProgressLocation.Window, title: 'Airlock: the agent is working' },
        () => c.sendRequest<PromptResult>(Methods.prompt, params),
      );
      await agent.turnEnded(result.stopReason, Date.now() - turn.started);
    } catch (err) {
      const message = err instanceof Error ? err.message : String(err);
      agent.note(`— the turn failed: ${message}`);
      void vscode.window.showErrorMessage(`Airlock: ${message}`);
    } finally {
      turn = undefined;
    }
  });

  command('airlock.cancelTurn', async () => {
    if (!client) return;
    const r = await client.sendRequest<CancelResult>(Methods.cancel, null);
    vscode.window.setStatusBarMessage(r.cancelled ? 'Airlock: turn cancelled' : `Airlock: nothing to cancel${r.reason ? ` (${r.reason})` : ''}`, 4000);
  });

  command('airlock.acceptHunk', (...a) => proposals.acceptHunk(...a));
  command('airlock.rejectHunk', (...a) => proposals.rejectHunk(...a));
  command('airlock.diffHunk', (...a) => proposals.diffHunk(...a));
  command('airlock.acceptFile', (...a) => proposals.acceptFile(...a));
  command('airlock.rejectFile', (...a) => proposals.rejectFile(...a));
  command('airlock.acceptEdited', () => proposals.acceptEdited());
  command('airlock.showAgentOutput', () => agent.channel.show());
  command('airlock.clearTelemetry', () => telemetry.clear());
  command('airlock.restartServer', async () => {
    await stop();
    await start();
  });

  command('airlock.statusMenu', async () => {
    const items: (vscode.QuickPickItem & { run: string })[] = [
      { label: '$(comment-discussion) Ask the agent', run: 'airlock.ask' },
      { label: '$(output) Show agent output', run: 'airlock.showAgentOutput' },
      { label: '$(diff) Show pending proposals', run: 'airlock.proposals.focus' },
      { label: '$(graph) Show telemetry', run: 'airlock.telemetry.focus' },
    ];
    if (status?.agent === 'working') items.splice(1, 0, { label: '$(debug-stop) Cancel the agent turn', run: 'airlock.cancelTurn' });
    items.push({ label: '$(refresh) Restart the server', run: 'airlock.restartServer' });
    const pick = await vscode.window.showQuickPick(items, { title: statusItem.tooltip?.toString() });
    if (pick) await vscode.commands.executeCommand(pick.run);
  });

  command('airlock.trustPolicy', async () => {
    const folder =
      vscode.workspace.workspaceFolders?.length === 1
        ? vscode.workspace.workspaceFolders[0]
        : await vscode.window.showWorkspaceFolderPick({ placeHolder: 'Trust the policy of which folder?' });
    if (!folder) return;
    const bin = serverPath(vscode.workspace.getConfiguration('airlock'));
    const policy = vscode.Uri.joinPath(folder.uri, '.airlock', 'policy.toml');
    const confirm = await vscode.window.showWarningMessage(
      `Trust ${vscode.workspace.asRelativePath(policy)}?`,
      {
        modal: true,
        detail: 'Its loosening rules (allow lists, looser defaults) will apply to the agent. Any later change to the file revokes the trust.',
      },
      'Trust',
    );
    if (confirm !== 'Trust') return;
    const result = await new Promise<{ code: number; out: string }>((resolve) => {
      execFile(bin, ['policy', 'trust', '--workspace', folder.uri.fsPath], { cwd: folder.uri.fsPath }, (err, stdout, stderr) => {
        const code = err ? (typeof (err as { code?: unknown }).code === 'number' ? ((err as { code: number }).code) : 1) : 0;
        resolve({ code, out: `${stdout}${stderr}`.trim() || (err ? err.message : '') });
      });
    });
    log.appendLine(`airlock policy trust --workspace ${folder.uri.fsPath}: exit ${result.code}\n${result.out}`);
    if (result.code !== 0) return void vscode.window.showErrorMessage(`Airlock: ${result.out || `trust failed (exit ${result.code})`}`);
    // The server reads the trust store when it loads the policy: restart it unless a turn runs.
    if (status?.agent === 'working') {
      const pick = await vscode.window.showInformationMessage(`Airlock: ${result.out || 'policy trusted'}. Restart the server to apply it?`, 'Restart now');
      if (pick) await vscode.commands.executeCommand('airlock.restartServer');
    } else {
      await vscode.commands.executeCommand('airlock.restartServer');
      void vscode.window.showInformationMessage(`Airlock: ${result.out || 'policy trusted'} — the server reloaded it.`);
    }
  });

  context.subscriptions.push(
    vscode.workspace.onDidChangeConfiguration(async (e) => {
      if (!['airlock.serverPath', 'airlock.agent', 'airlock.telemetry.content'].some((s) => e.affectsConfiguration(s))) return;
      const pick = await vscode.window.showInformationMessage('Airlock: settings changed. Restart the server to apply them?', 'Restart');
      if (pick) await vscode.commands.executeCommand('airlock.restartServer');
    }),
  );

  await start();
  return { client: () => client, status: () => status };
}

/** `airlock/approval`: a modal dialog; closing it denies. */
async function askApproval(p: ApprovalParams): Promise<ApprovalResult> {
  const q = approvalQuestion(p);
  const picked = await vscode.window.showWarningMessage(q.message, { modal: true, detail: q.detail }, ...q.buttons);
  return { choice: approvalChoice(p, picked) };
}

export async function deactivate(): Promise<void> {
  const c = client;
  client = undefined;
  if (c) await c.stop().catch(() => undefined);
}
