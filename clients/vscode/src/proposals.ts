// Inline review of agent proposals: decorations for removed/added lines, "Accept | Reject |
// Diff" code lenses, accept/reject commands (a reason is asked on reject), the Proposals tree,
// and an editable virtual document with the proposed text for VS Code's diff editor — saving
// it sends the user's version as `editedText`.
//
// The server owns every decision; this module only keeps the last proposal it announced per
// file and the hunk positions from its diagnostics, and renders them.

import * as vscode from 'vscode';
import type { LanguageClient } from 'vscode-languageclient/node';
import { applyHunks, drawHunk, hunkMarkdownDiff, LineChange, placeHunks, PlacedHunk, shiftViews } from './logic';
import { HunkView, Methods, Proposal, ProposalParams, ResolveOutcome, ResolveParams } from './protocol';

export const PROPOSED_SCHEME = 'airlock-proposed';

interface Entry {
  uri: vscode.Uri;
  proposal: Proposal;
  views: HunkView[];
}

/** Arguments accepted by the hunk commands: the server's `[proposalId, hunkIds?]` or a tree node. */
function target(args: unknown[]): { proposal?: string; hunks?: number[]; uri?: vscode.Uri } {
  const [a, b] = args;
  if (typeof a === 'string') {
    if (a.startsWith('file:')) return { uri: vscode.Uri.parse(a) };
    return { proposal: a, hunks: Array.isArray(b) ? (b as number[]) : typeof b === 'number' ? [b] : undefined };
  }
  if (a instanceof vscode.Uri) return { uri: a };
  if (a && typeof a === 'object') {
    const n = a as { proposal?: string; hunk?: number; uri?: vscode.Uri };
    return { proposal: n.proposal, hunks: n.hunk !== undefined ? [n.hunk] : undefined, uri: n.uri };
  }
  return {};
}

export type TreeNode = { kind: 'file'; uri: vscode.Uri; proposal: string } | { kind: 'hunk'; uri: vscode.Uri; proposal: string; hunk: number; placed: PlacedHunk };

export class Proposals implements vscode.CodeLensProvider, vscode.FileSystemProvider, vscode.TreeDataProvider<TreeNode>, vscode.Disposable {
  private entries = new Map<string, Entry>();
  private client: LanguageClient | undefined;
  private readonly lensChanged = new vscode.EventEmitter<void>();
  readonly onDidChangeCodeLenses = this.lensChanged.event;
  private readonly fileChanged = new vscode.EventEmitter<vscode.FileChangeEvent[]>();
  readonly onDidChangeFile = this.fileChanged.event;
  private readonly treeChanged = new vscode.EventEmitter<TreeNode | undefined>();
  readonly onDidChangeTreeData = this.treeChanged.event;
  private readonly disposables: vscode.Disposable[] = [];
  private readonly removed: vscode.TextEditorDecorationType;
  private readonly conflicted: vscode.TextEditorDecorationType;
  private readonly added: vscode.TextEditorDecorationType;
  private mtime = Date.now();
  private resolving = 0;

  constructor() {
    const overview = vscode.OverviewRulerLane.Left;
    this.removed = vscode.window.createTextEditorDecorationType({
      isWholeLine: true,
      backgroundColor: new vscode.ThemeColor('airlock.removedBackground'),
      textDecoration: 'line-through',
      overviewRulerColor: new vscode.ThemeColor('airlock.removedBackground'),
      overviewRulerLane: overview,
    });
    this.conflicted = vscode.window.createTextEditorDecorationType({
      isWholeLine: true,
      backgroundColor: new vscode.ThemeColor('editorWarning.background'),
      border: '1px dashed',
      borderColor: new vscode.ThemeColor('editorWarning.foreground'),
      overviewRulerColor: new vscode.ThemeColor('editorWarning.foreground'),
      overviewRulerLane: overview,
    });
    this.added = vscode.window.createTextEditorDecorationType({
      rangeBehavior: vscode.DecorationRangeBehavior.ClosedClosed,
    });
    this.disposables.push(
      this.removed,
      this.conflicted,
      this.added,
      vscode.window.onDidChangeVisibleTextEditors(() => this.redraw()),
      vscode.workspace.onDidChangeTextDocument((e) => this.onEdit(e)),
      vscode.workspace.onDidChangeConfiguration((e) => {
        if (e.affectsConfiguration('airlock.proposals')) this.lensChanged.fire();
      }),
    );
  }

  dispose(): void {
    for (const d of this.disposables) d.dispose();
  }

  setClient(client: LanguageClient | undefined): void {
    this.client = client;
    if (!client) this.clear();
  }

  clear(): void {
    const uris = [...this.entries.values()].map((e) => e.uri);
    this.entries.clear();
    this.changed(uris);
  }

  // ---------------------------------------------------------------- server input

  onProposal(p: ProposalParams): void {
    const uri = vscode.Uri.parse(p.uri);
    const key = uri.toString();
    if (p.event === 'resolved' || p.proposal.state !== 'pending') {
      const e = this.entries.get(key);
      if (e && e.proposal.id === p.proposal.id) this.entries.delete(key);
    } else {
      const previous = this.entries.get(key);
      const views = p.proposal.view ?? (previous?.proposal.id === p.proposal.id ? previous.views : []);
      this.entries.set(key, { uri, proposal: p.proposal, views });
    }
    this.changed([uri]);
  }

  onHunkViews(uri: vscode.Uri, views: Map<string, HunkView[]>): void {
    const key = uri.toString();
    const e = this.entries.get(key);
    if (!e) return;
    e.views = views.get(e.proposal.id) ?? [];
    this.changed([uri]);
  }

  /** Moves this file's hunks with the user's typing (the server re-places them on its next update). */
  private onEdit(e: vscode.TextDocumentChangeEvent): void {
    const entry = e.document.uri.scheme === 'file' ? this.entryFor(e.document.uri) : undefined;
    // Edits the server makes while resolving are followed by fresh positions from it.
    if (!entry || e.contentChanges.length === 0 || this.resolving > 0) return;
    const changes: LineChange[] = e.contentChanges.map((c) => ({
      startLine: c.range.start.line,
      endLine: c.range.end.line,
      newLines: c.text.split('\n').length - 1,
    }));
    entry.views = shiftViews(entry.views, changes);
    this.changed([entry.uri]);
  }

  private changed(uris: vscode.Uri[]): void {
    this.mtime = Date.now();
    this.redraw();
    this.lensChanged.fire();
    this.treeChanged.fire(undefined);
    this.fileChanged.fire(uris.map((u) => ({ type: vscode.FileChangeType.Changed, uri: proposedUri(u) })));
    const count = [...this.entries.values()].reduce((n, e) => n + placeHunks(e.proposal, e.views).length, 0);
    void vscode.commands.executeCommand('setContext', 'airlock.pendingHunks', count);
  }

  knows(id: string): boolean {
    for (const e of this.entries.values()) if (e.proposal.id === id) return true;
    return false;
  }

  entryFor(uri: vscode.Uri): Entry | undefined {
    return this.entries.get(uri.toString());
  }

  placed(uri: vscode.Uri): PlacedHunk[] {
    const e = this.entryFor(uri);
    return e ? placeHunks(e.proposal, e.views) : [];
  }

  // ---------------------------------------------------------------- decorations

  private redraw(): void {
    // The original side of an open proposal diff already shows the change: leave it plain.
    const inDiff = new Set(
      vscode.window.visibleTextEditors
        .filter((ed) => ed.document.uri.scheme === PROPOSED_SCHEME)
        .map((ed) => `${ed.viewColumn}:${originalUri(ed.document.uri).toString()}`),
    );
    for (const editor of vscode.window.visibleTextEditors) {
      this.decorate(editor, inDiff.has(`${editor.viewColumn}:${editor.document.uri.toString()}`));
    }
  }

  private decorate(editor: vscode.TextEditor, plain: boolean): void {
    const doc = editor.document;
    const e = doc.uri.scheme === 'file' && !plain ? this.entryFor(doc.uri) : undefined;
    const removed: vscode.DecorationOptions[] = [];
    const conflicted: vscode.DecorationOptions[] = [];
    const added: vscode.DecorationOptions[] = [];
    if (e) {
      const last = Math.max(0, doc.lineCount - 1);
      const clampLine = (l: number) => Math.min(Math.max(l, 0), last);
      for (const p of placeHunks(e.proposal, e.views)) {
        const d = drawHunk(p.hunk, p.view, doc.lineCount);
        const hover = new vscode.MarkdownString(
          `**Agent proposal ${e.proposal.id}, hunk ${p.hunk.id}**${p.view.status === 'conflicted' ? ' — conflict: you changed these lines since' : ''}\n\n` +
            hunkMarkdownDiff(p.hunk) +
            `\n\n[Accept](${cmdLink('airlock.acceptHunk', [e.proposal.id, [p.hunk.id]])}) · ` +
            `[Reject](${cmdLink('airlock.rejectHunk', [e.proposal.id, [p.hunk.id]])}) · ` +
            `[Diff](${cmdLink('airlock.diffHunk', [e.uri.toString(), p.hunk.id])})`,
        );
        hover.isTrusted = { enabledCommands: ['airlock.acceptHunk', 'airlock.rejectHunk', 'airlock.diffHunk'] };
        const into = p.view.status === 'conflicted' ? conflicted : removed;
        if (d.removed.end > d.removed.start) {
          const start = clampLine(d.removed.start);
          const end = clampLine(d.removed.end - 1);
          into.push({ range: new vscode.Range(start, 0, end, doc.lineAt(end).text.length), hoverMessage: hover });
        }
        const addedText = (text: string) => ({
          contentText: text,
          color: new vscode.ThemeColor('airlock.addedForeground'),
          backgroundColor: new vscode.ThemeColor('airlock.addedBackground'),
          fontStyle: 'italic',
          margin: '0 0 0 2em',
        });
        for (const pl of d.perLine) {
          const line = clampLine(pl.line);
          const end = doc.lineAt(line).text.length;
          added.push({ range: new vscode.Range(line, end, line, end), renderOptions: { after: addedText(pl.text) }, hoverMessage: hover });
        }
        if (d.anchorText) {
          const line = clampLine(d.anchorLine);
          const end = doc.lineAt(line).text.length;
          const range = d.anchorBefore ? new vscode.Range(line, 0, line, 0) : new vscode.Range(line, end, line, end);
          const opts = d.anchorBefore ? { before: { ...addedText(d.anchorText), margin: '0 2em 0 0' } } : { after: addedText(d.anchorText) };
          added.push({ range, renderOptions: opts, hoverMessage: hover });
        }
      }
    }
    editor.setDecorations(this.removed, removed);
    editor.setDecorations(this.conflicted, conflicted);
    editor.setDecorations(this.added, added);
  }

  // ---------------------------------------------------------------- code lenses

  provideCodeLenses(document: vscode.TextDocument): vscode.CodeLens[] {
    if (!vscode.workspace.getConfiguration('airlock').get<boolean>('proposals.codeLens', true)) return [];
    const e = this.entryFor(document.uri);
    if (!e) return [];
    const placed = placeHunks(e.proposal, e.views);
    const lenses: vscode.CodeLens[] = [];
    const last = Math.max(0, document.lineCount - 1);
    placed.forEach((p, i) => {
      const range = new vscode.Range(Math.min(p.view.startLine, last), 0, Math.min(p.view.startLine, last), 0);
      const args = [e.proposal.id, [p.hunk.id]];
      const conflict = p.view.status === 'conflicted';
      lenses.push(
        new vscode.CodeLens(range, {
          title: conflict ? '$(warning) Conflict — Accept' : 'Accept',
          command: 'airlock.acceptHunk',
          arguments: args,
          tooltip: `Accept hunk ${p.hunk.id} of proposal ${e.proposal.id}`,
        }),
        new vscode.CodeLens(range, { title: 'Reject', command: 'airlock.rejectHunk', arguments: args, tooltip: `Reject hunk ${p.hunk.id} (you can give a reason)` }),
        new vscode.CodeLens(range, { title: 'Diff', command: 'airlock.diffHunk', arguments: [e.uri.toString(), p.hunk.id], tooltip: 'Open the proposal in the diff editor' }),
      );
      if (i === 0 && placed.length > 1) {
        lenses.push(
          new vscode.CodeLens(range, { title: `Accept all ${placed.length} in file`, command: 'airlock.acceptFile', arguments: [e.proposal.id] }),
          new vscode.CodeLens(range, { title: 'Reject all in file', command: 'airlock.rejectFile', arguments: [e.proposal.id] }),
        );
      }
    });
    return lenses;
  }

  // ---------------------------------------------------------------- commands

  private async resolve(params: ResolveParams): Promise<ResolveOutcome | undefined> {
    if (!this.client) {
      void vscode.window.showErrorMessage('Airlock: the server is not running.');
      return undefined;
    }
    this.resolving++;
    try {
      const outcome = await this.client.sendRequest<ResolveOutcome>(Methods.resolve, params);
      vscode.window.setStatusBarMessage(`Airlock: ${outcome.summary}`, 5000);
      const conflicts = outcome.hunks.filter((h) => h.result.kind === 'conflicted');
      if (conflicts.length) {
        void vscode.window.showWarningMessage(
          `Airlock: ${conflicts.length} hunk(s) conflict with your edits and were not applied: ${conflicts.map((c) => c.result.reason ?? `hunk ${c.id}`).join('; ')}`,
        );
      }
      return outcome;
    } catch (err) {
      void vscode.window.showErrorMessage(`Airlock: ${err instanceof Error ? err.message : String(err)}`);
      return undefined;
    } finally {
      this.resolving--;
    }
  }

  /** The proposal id for a command's arguments (explicit id, a file URI, or the active editor). */
  private idFor(args: unknown[]): { proposal?: string; hunks?: number[] } {
    const t = target(args);
    if (t.proposal) return t;
    const uri = t.uri ?? activeFileUri();
    const e = uri && this.entryFor(uri);
    return { proposal: e ? e.proposal.id : undefined, hunks: t.hunks };
  }

  /** The hunk under the cursor, for keyboard use of the hunk commands. */
  private hunkAtCursor(): { proposal: string; hunks: number[] } | undefined {
    const editor = vscode.window.activeTextEditor;
    if (!editor) return undefined;
    const e = this.entryFor(editor.document.uri);
    if (!e) return undefined;
    const line = editor.selection.active.line;
    const p = placeHunks(e.proposal, e.views).find((p) => line >= p.view.startLine && line < Math.max(p.view.endLine, p.view.startLine + 1));
    return p ? { proposal: e.proposal.id, hunks: [p.hunk.id] } : undefined;
  }

  async acceptHunk(...args: unknown[]): Promise<void> {
    const t = args.length ? this.idFor(args) : this.hunkAtCursor();
    if (!t?.proposal) return void vscode.window.showInformationMessage('Airlock: no proposed hunk here.');
    await this.resolve({ proposal: t.proposal, hunks: t.hunks, decision: 'accept' });
  }

  async rejectHunk(...args: unknown[]): Promise<void> {
    const t = args.length ? this.idFor(args) : this.hunkAtCursor();
    if (!t?.proposal) return void vscode.window.showInformationMessage('Airlock: no proposed hunk here.');
    const which = t.hunks?.length === 1 ? `hunk ${t.hunks[0]}` : 'all open hunks';
    const reason = await askReason(`Reject ${which}`);
    if (reason === undefined) return;
    await this.resolve({ proposal: t.proposal, hunks: t.hunks, decision: 'reject', reason: reason || undefined });
  }

  async acceptFile(...args: unknown[]): Promise<void> {
    const t = this.idFor(args);
    if (!t.proposal) return void vscode.window.showInformationMessage('Airlock: no pending proposal for this file.');
    await this.resolve({ proposal: t.proposal, decision: 'accept' });
  }

  async rejectFile(...args: unknown[]): Promise<void> {
    let t = this.idFor(args);
    const active = vscode.window.activeTextEditor?.document.uri;
    if (!t.proposal && active?.scheme === PROPOSED_SCHEME) t = this.idFor([originalUri(active)]);
    if (!t.proposal) return void vscode.window.showInformationMessage('Airlock: no pending proposal for this file.');
    const reason = await askReason('Reject all hunks in the file');
    if (reason === undefined) return;
    const outcome = await this.resolve({ proposal: t.proposal, decision: 'reject', reason: reason || undefined });
    if (outcome) await closeDiffFor(vscode.Uri.file(outcome.path));
  }

  /** Opens VS Code's diff editor: the file as it is (left) and the proposed text (right, editable). */
  async diffHunk(...args: unknown[]): Promise<void> {
    const [a, b] = args;
    let uri: vscode.Uri | undefined = typeof a === 'string' && a.startsWith('file:') ? vscode.Uri.parse(a) : a instanceof vscode.Uri ? a : undefined;
    let hunk = typeof b === 'number' ? b : undefined;
    if (!uri && a && typeof a === 'object' && 'uri' in a) {
      const n = a as { uri: vscode.Uri; hunk?: number };
      uri = n.uri;
      hunk = n.hunk;
    }
    if (!uri && typeof a === 'string') uri = [...this.entries.values()].find((e) => e.proposal.id === a)?.uri;
    uri ??= activeFileUri();
    const e = uri && this.entryFor(uri);
    if (!uri || !e) return void vscode.window.showInformationMessage('Airlock: no pending proposal for this file.');
    const placed = placeHunks(e.proposal, e.views);
    const p = placed.find((p) => p.hunk.id === hunk) ?? placed[0];
    const title = `${vscode.workspace.asRelativePath(uri)} ↔ agent proposal (edit, then save to accept)`;
    const options: vscode.TextDocumentShowOptions = { preview: false };
    if (p) {
      // Lines on the right side: every earlier pending hunk shifts them.
      const before = placed.filter((q) => q.view.startLine < p.view.startLine && q.view.status === 'pending');
      const shift = before.reduce((n, q) => n + lineCount(q.hunk.newText) - (q.view.endLine - q.view.startLine), 0);
      const line = p.view.startLine + shift;
      options.selection = new vscode.Range(line, 0, line, 0);
    }
    await vscode.commands.executeCommand('vscode.diff', uri, proposedUri(uri), title, options);
  }

  /** Accepts the proposed document shown in the active editor, as edited there. */
  async acceptEdited(): Promise<void> {
    const doc = vscode.window.activeTextEditor?.document;
    if (!doc || doc.uri.scheme !== PROPOSED_SCHEME) return;
    if (doc.isDirty) {
      await doc.save(); // goes through writeFile below
      return;
    }
    await this.acceptFile(originalUri(doc.uri).toString());
    await closeDiffFor(originalUri(doc.uri));
  }

  // ---------------------------------------------------------------- proposed text (FileSystemProvider)

  private async currentText(uri: vscode.Uri): Promise<string> {
    const open = vscode.workspace.textDocuments.find((d) => d.uri.toString() === uri.toString());
    if (open) return open.getText();
    try {
      return new TextDecoder().decode(await vscode.workspace.fs.readFile(uri));
    } catch {
      return '';
    }
  }

  watch(): vscode.Disposable {
    return new vscode.Disposable(() => {});
  }

  stat(uri: vscode.Uri): vscode.FileStat {
    return { type: vscode.FileType.File, ctime: 0, mtime: this.mtime, size: this.entryFor(originalUri(uri)) ? 1 : 0 };
  }

  async readFile(uri: vscode.Uri): Promise<Uint8Array> {
    const original = originalUri(uri);
    const current = await this.currentText(original);
    const e = this.entryFor(original);
    let text = current;
    if (e) text = (await this.serverPreview(original, current)) ?? applyHunks(current, placeHunks(e.proposal, e.views));
    return new TextEncoder().encode(text);
  }

  /**
   * The proposed text as the server computes it (its "Preview proposal" code action, rebased
   * onto the current text), so the diff shows exactly what accepting would produce.
   */
  private async serverPreview(uri: vscode.Uri, current: string): Promise<string | undefined> {
    if (!this.client) return undefined;
    type Pos = { line: number; character: number };
    type Edit = { range: { start: Pos; end: Pos }; newText: string };
    type Action = { title?: string; edit?: { documentChanges?: { textDocument: { uri: string }; edits: Edit[] }[] } };
    try {
      const actions = await this.client.sendRequest<Action[] | null>('textDocument/codeAction', {
        textDocument: { uri: this.client.code2ProtocolConverter.asUri(uri) },
        range: { start: { line: 0, character: 0 }, end: { line: 0, character: 0 } },
        context: { diagnostics: [] },
      });
      const preview = actions?.find((a) => a.title?.startsWith('Preview proposal') && a.edit?.documentChanges?.length);
      const edits = preview?.edit?.documentChanges?.[0]?.edits;
      if (!edits) return undefined;
      // Positions are UTF-16 offsets (the default position encoding), like JS strings.
      const starts = [0];
      for (let i = 0; i < current.length; i++) if (current.charCodeAt(i) === 10) starts.push(i + 1);
      const offset = (p: Pos) => Math.min((starts[p.line] ?? current.length) + p.character, current.length);
      let text = current;
      for (const ed of [...edits].sort((a, b) => offset(b.range.start) - offset(a.range.start))) {
        text = text.slice(0, offset(ed.range.start)) + ed.newText + text.slice(offset(ed.range.end));
      }
      return text;
    } catch {
      return undefined;
    }
  }

  async writeFile(uri: vscode.Uri, content: Uint8Array): Promise<void> {
    const original = originalUri(uri);
    const e = this.entryFor(original);
    if (!e) throw vscode.FileSystemError.Unavailable('Airlock: this proposal is no longer pending; nothing to accept.');
    const editedText = new TextDecoder().decode(content);
    const outcome = await this.resolve({ proposal: e.proposal.id, decision: 'accept', editedText });
    if (!outcome) throw vscode.FileSystemError.Unavailable('Airlock: the edited proposal was not accepted.');
    // Close the diff once the save has finished: closing it while the document is still dirty
    // would ask the user whether to save it.
    const saved = vscode.workspace.onDidSaveTextDocument((d) => {
      if (d.uri.toString() !== uri.toString()) return;
      saved.dispose();
      void closeDiffFor(original);
    });
    setTimeout(() => saved.dispose(), 10000);
  }

  readDirectory(): [string, vscode.FileType][] {
    return [];
  }
  createDirectory(): void {
    throw vscode.FileSystemError.NoPermissions();
  }
  delete(): void {
    throw vscode.FileSystemError.NoPermissions();
  }
  rename(): void {
    throw vscode.FileSystemError.NoPermissions();
  }

  // ---------------------------------------------------------------- Proposals tree

  getTreeItem(n: TreeNode): vscode.TreeItem {
    if (n.kind === 'file') {
      const count = this.placed(n.uri).length;
      const item = new vscode.TreeItem(vscode.workspace.asRelativePath(n.uri), vscode.TreeItemCollapsibleState.Expanded);
      item.resourceUri = n.uri;
      item.description = `${count} hunk${count === 1 ? '' : 's'} · ${n.proposal}`;
      item.contextValue = 'airlockFile';
      item.command = { title: 'Open diff', command: 'airlock.diffHunk', arguments: [n.uri.toString()] };
      return item;
    }
    const v = n.placed.view;
    const added = lineCount(n.placed.hunk.newText);
    const removed = v.endLine - v.startLine;
    const item = new vscode.TreeItem(`hunk ${n.hunk}: line ${v.startLine + 1}`, vscode.TreeItemCollapsibleState.None);
    item.description = `-${removed} +${added}${v.status === 'conflicted' ? ' · conflict' : ''}`;
    item.tooltip = new vscode.MarkdownString(hunkMarkdownDiff(n.placed.hunk));
    item.iconPath = new vscode.ThemeIcon(v.status === 'conflicted' ? 'warning' : 'diff');
    item.contextValue = 'airlockHunk';
    item.command = {
      title: 'Show',
      command: 'vscode.open',
      arguments: [n.uri, { selection: new vscode.Range(v.startLine, 0, v.startLine, 0) } satisfies vscode.TextDocumentShowOptions],
    };
    return item;
  }

  getChildren(n?: TreeNode): TreeNode[] {
    if (!n) {
      return [...this.entries.values()]
        .filter((e) => this.placed(e.uri).length > 0)
        .sort((a, b) => a.uri.fsPath.localeCompare(b.uri.fsPath))
        .map((e) => ({ kind: 'file', uri: e.uri, proposal: e.proposal.id }));
    }
    if (n.kind === 'file') {
      return this.placed(n.uri).map((placed) => ({ kind: 'hunk', uri: n.uri, proposal: n.proposal, hunk: placed.hunk.id, placed }));
    }
    return [];
  }
}

function lineCount(text: string): number {
  if (text === '') return 0;
  return text.split('\n').length - (text.endsWith('\n') ? 1 : 0);
}

function cmdLink(command: string, args: unknown[]): string {
  return `command:${command}?${encodeURIComponent(JSON.stringify(args))}`;
}

function activeFileUri(): vscode.Uri | undefined {
  const uri = vscode.window.activeTextEditor?.document.uri;
  if (!uri) return undefined;
  return uri.scheme === PROPOSED_SCHEME ? originalUri(uri) : uri.scheme === 'file' ? uri : undefined;
}

/** `airlock-proposed:/abs/path/file.rs` mirrors `file:///abs/path/file.rs` (same name, so same language). */
export function proposedUri(uri: vscode.Uri): vscode.Uri {
  return uri.with({ scheme: PROPOSED_SCHEME });
}

export function originalUri(uri: vscode.Uri): vscode.Uri {
  return uri.with({ scheme: 'file' });
}

async function askReason(title: string): Promise<string | undefined> {
  return vscode.window.showInputBox({
    title: `Airlock: ${title}`,
    prompt: 'Why? Optional — the agent is told on its next turn. Enter to reject, Escape to keep the hunk.',
    placeHolder: 'reason (optional)',
    ignoreFocusOut: true,
  });
}

async function closeDiffFor(original: vscode.Uri): Promise<void> {
  const proposed = proposedUri(original).toString();
  for (const group of vscode.window.tabGroups.all) {
    for (const tab of group.tabs) {
      const input = tab.input;
      if (input instanceof vscode.TabInputTextDiff && input.modified.toString() === proposed) {
        await vscode.window.tabGroups.close(tab, true);
      }
    }
  }
}

