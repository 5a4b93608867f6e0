// Pure logic of the extension, free of the `vscode` module so node's test runner checks it:
// applying hunks to a text, reading hunk positions from the server's diagnostics, formatting
// agent updates, counting telemetry, wording approvals and the status bar.

import type {
  AgentState,
  ApprovalChoice,
  ApprovalParams,
  Hunk,
  HunkView,
  Proposal,
  StatusParams,
  TelemetryEvent,
} from './protocol';

/** Lines of `text`, each with its line ending; a last line without one is kept. */
export function splitLinesKeepEnds(text: string): string[] {
  const lines: string[] = [];
  let start = 0;
  for (let i = 0; i < text.length; i++) {
    if (text.charCodeAt(i) === 10) {
      lines.push(text.slice(start, i + 1));
      start = i + 1;
    }
  }
  if (start < text.length) lines.push(text.slice(start));
  return lines;
}

/** An open hunk placed in the current buffer. */
export interface PlacedHunk {
  hunk: Hunk;
  view: HunkView;
}

/** Pending (not conflicted) hunks with their current place, in file order. */
export function placeHunks(proposal: Proposal, views: HunkView[] | undefined): PlacedHunk[] {
  const byId = new Map(proposal.hunks.map((h) => [h.id, h]));
  return (views ?? [])
    .map((view) => ({ hunk: byId.get(view.id), view }))
    .filter((p): p is PlacedHunk => p.hunk !== undefined && (p.view.status === 'pending' || p.view.status === 'conflicted'))
    .sort((a, b) => a.view.startLine - b.view.startLine || a.view.endLine - b.view.endLine);
}

/**
 * `current` with every given hunk applied: lines `startLine..endLine` replaced by the hunk's
 * `newText`. Conflicted hunks are left out (their lines changed since the agent wrote them).
 * A hunk that ends the file without a newline keeps the file's own last-line shape.
 */
export function applyHunks(current: string, placed: PlacedHunk[]): string {
  const lines = splitLinesKeepEnds(current);
  const open = placed.filter((p) => p.view.status === 'pending').sort((a, b) => b.view.startLine - a.view.startLine);
  for (const p of open) {
    const start = Math.min(p.view.startLine, lines.length);
    const end = Math.min(Math.max(p.view.endLine, start), lines.length);
    let insert = p.hunk.newText;
    // Inserting after a last line that has no newline: give that line one, so lines stay lines.
    if (start === lines.length && start > 0 && insert !== '' && !lines[start - 1].endsWith('\n')) {
      lines[start - 1] += '\n';
    }
    lines.splice(start, end - start, ...splitLinesKeepEnds(insert));
  }
  return lines.join('');
}

/**
 * Where a hunk lies, read back from one of the server's `airlock` diagnostics (the server
 * republishes them after every edit, so they follow the user's typing).
 */
export function viewFromDiagnostic(d: {
  code?: unknown;
  data?: unknown;
  severity?: number;
  range: { start: { line: number; character: number }; end: { line: number; character: number } };
}): { proposal: string; view: HunkView } | undefined {
  let proposal: string | undefined;
  let hunk: number | undefined;
  const data = d.data as { proposal?: unknown; hunk?: unknown } | undefined;
  if (data && typeof data.proposal === 'string' && typeof data.hunk === 'number') {
    proposal = data.proposal;
    hunk = data.hunk;
  } else {
    const code = typeof d.code === 'object' && d.code !== null ? (d.code as { value?: unknown }).value : d.code;
    const m = typeof code === 'string' ? /^(.*)#(\d+)$/.exec(code) : null;
    if (!m) return undefined;
    proposal = m[1];
    hunk = Number(m[2]);
  }
  const { start, end } = d.range;
  const endLine = end.character === 0 ? end.line : end.line + 1;
  // LSP severity 2 = Warning: the server marks conflicted hunks that way.
  const status = d.severity === 2 ? 'conflicted' : 'pending';
  return { proposal, view: { id: hunk, status, startLine: start.line, endLine: Math.max(endLine, start.line) } };
}

/** Lines of a hunk text without their endings (for inline rendering). */
export function textLines(text: string): string[] {
  return splitLinesKeepEnds(text).map((l) => l.replace(/\r?\n$/, ''));
}

/**
 * How to draw a hunk in the buffer: the removed lines are `startLine..endLine`; the added
 * lines are attached as after-text to `anchorLine` (the last removed line, or the line just
 * above an insertion; `before` when the insertion is at the top of the file).
 */
export interface HunkDrawing {
  removed: { start: number; end: number };
  anchorLine: number;
  anchorBefore: boolean;
  /** Inline after-text for each removed line (the replacement line, when line counts pair up). */
  perLine: { line: number; text: string }[];
  /** After-text on the anchor line for the added lines that pair with no removed line. */
  anchorText: string;
}

const MAX_INLINE = 120;

function clip(s: string): string {
  return s.length > MAX_INLINE ? s.slice(0, MAX_INLINE - 1) + '…' : s;
}

export function drawHunk(hunk: Hunk, view: HunkView, lineCount: number): HunkDrawing {
  const removedCount = Math.max(0, view.endLine - view.startLine);
  const added = textLines(hunk.newText);
  const perLine: { line: number; text: string }[] = [];
  let rest: string[];
  if (removedCount > 0) {
    // Pair removed line i with added line i; the last removed line also carries the remainder.
    const paired = Math.min(removedCount, added.length);
    for (let i = 0; i < paired; i++) perLine.push({ line: view.startLine + i, text: `→ ${clip(added[i].trim() === '' ? '⏎' : added[i].trim())}` });
    // Leading indentation is dropped inline (the text sits after the old line); hovers and the
    // diff editor show it exactly.
    rest = added.slice(paired).map((l) => l.trim());
    const anchorLine = view.endLine - 1;
    const anchorText = rest.length ? `+ ${clip(rest.join(' ⏎ '))}${rest.length > 1 ? `  (${rest.length} lines)` : ''}` : '';
    if (added.length === 0) perLine.push({ line: view.startLine, text: '  (deleted)' });
    return { removed: { start: view.startLine, end: view.endLine }, anchorLine, anchorBefore: false, perLine, anchorText };
  }
  rest = added.map((l) => l.trim());
  const atTop = view.startLine === 0;
  const anchorLine = atTop ? 0 : Math.min(view.startLine - 1, Math.max(0, lineCount - 1));
  const anchorText = `+ ${clip(rest.join(' ⏎ '))}${rest.length > 1 ? `  (${rest.length} lines)` : ''}`;
  return { removed: { start: view.startLine, end: view.startLine }, anchorLine, anchorBefore: atTop, perLine, anchorText };
}

/** A unified-diff style preview of one hunk, for hovers. */
export function hunkMarkdownDiff(hunk: Hunk): string {
  const body = [
    ...textLines(hunk.oldText).map((l) => `- ${l}`),
    ...textLines(hunk.newText).map((l) => `+ ${l}`),
  ].join('\n');
  return '```diff\n' + body.replace(/```/g, '`\u200b``') + '\n```';
}

// ---------------------------------------------------------------------------------------------
// Agent output

/** One piece of agent output: `text` is appended as is (chunks stream without newlines). */
export interface OutputPiece {
  text: string;
}

function contentText(content: unknown): string | undefined {
  if (!content || typeof content !== 'object') return undefined;
  const c = content as { type?: string; text?: string; content?: unknown };
  if (c.type === 'text' && typeof c.text === 'string') return c.text;
  if (c.type === 'content') return contentText(c.content);
  if (Array.isArray(content)) return content.map(contentText).filter((t) => t !== undefined).join('\n');
  return undefined;
}

/**
 * Renders one ACP `SessionUpdate` for the output channel. `last` is the kind of the previous
 * update, so message chunks stream on one line and a new kind starts a new line.
 */
export function formatAgentUpdate(update: Record<string, unknown>, last: string | undefined): OutputPiece | undefined {
  const kind = String(update.sessionUpdate ?? '');
  const sep = (k: string) => (last !== undefined && last !== k ? '\n' : '');
  switch (kind) {
    case 'agent_message_chunk': {
      const t = contentText(update.content);
      return t === undefined ? undefined : { text: sep(kind) + t };
    }
    case 'agent_thought_chunk': {
      const t = contentText(update.content);
      return t === undefined ? undefined : { text: sep(kind) + (last === kind ? t : `(thinking) ${t}`) };
    }
    case 'user_message_chunk': {
      const t = contentText(update.content);
      return t === undefined ? undefined : { text: sep(kind) + (last === kind ? t : `› ${t}`) };
    }
    case 'tool_call': {
      const title = String(update.title ?? update.toolCallId ?? 'tool call');
      const status = update.status ? ` [${String(update.status)}]` : '';
      const k = update.kind ? `${String(update.kind)}: ` : '';
      const body = Array.isArray(update.content) ? contentText(update.content) : undefined;
      return { text: `${sep('x')}⚙ ${k}${title}${status}\n${body ? indent(body) : ''}` };
    }
    case 'tool_call_update': {
      const id = String(update.toolCallId ?? '');
      const parts = [update.title ? String(update.title) : id];
      if (update.status) parts.push(`[${String(update.status)}]`);
      const body = Array.isArray(update.content) ? contentText(update.content) : undefined;
      return { text: `${sep('x')}  ↳ ${parts.join(' ')}\n${body ? indent(body) : ''}` };
    }
    case 'plan': {
      const entries = Array.isArray(update.entries) ? (update.entries as { content?: string; status?: string }[]) : [];
      const mark = (s?: string) => (s === 'completed' ? '[x]' : s === 'in_progress' ? '[~]' : '[ ]');
      return { text: `${sep('x')}Plan:\n${entries.map((e) => `  ${mark(e.status)} ${e.content ?? ''}`).join('\n')}\n` };
    }
    default:
      return undefined;
  }
}

function indent(text: string): string {
  const lines = text.replace(/\n$/, '').split('\n');
  const shown = lines.slice(0, 20).map((l) => `    ${l}`);
  if (lines.length > 20) shown.push(`    … (${lines.length - 20} more lines)`);
  return shown.join('\n') + '\n';
}

// ---------------------------------------------------------------------------------------------
// Telemetry

export interface Counts {
  commands: number;
  denials: number;
  network: number;
  accepted: number;
  rejected: number;
  approvals: number;
  reads: number;
  proposals: number;
  dropped: number;
  total: number;
}

export function emptyCounts(): Counts {
  return { commands: 0, denials: 0, network: 0, accepted: 0, rejected: 0, approvals: 0, reads: 0, proposals: 0, dropped: 0, total: 0 };
}

/**
 * Adds a batch to the counts. A user's "deny" answer shows up both as `approval.decided` and
 * as `command.denied`; only the latter counts as a denial so nothing is counted twice.
 */
export function countEvents(counts: Counts, events: TelemetryEvent[], dropped = 0): Counts {
  const c = { ...counts };
  c.dropped += dropped;
  for (const e of events) {
    c.total++;
    switch (e.kind) {
      case 'command.started':
        c.commands++;
        break;
      case 'command.denied':
      case 'fs.read_denied':
        c.denials++;
        break;
      case 'net.attempt':
        c.network++;
        if (e.decision === 'deny') c.denials++;
        break;
      case 'proposal.created':
        c.proposals++;
        break;
      case 'proposal.resolved':
        if (e.decision === 'accepted' || e.decision === 'edited') c.accepted++;
        else if (e.decision === 'rejected') c.rejected++;
        break;
      case 'approval.requested':
        c.approvals++;
        break;
      case 'fs.read':
        c.reads++;
        break;
    }
  }
  return c;
}

/** One line for an event in the Telemetry view: label and description. */
export function describeEvent(e: TelemetryEvent): { label: string; description: string; tooltip: string } {
  const bits: string[] = [];
  if (e.decision) bits.push(e.decision);
  const f = e.fields ?? {};
  if (typeof f.reason === 'string') bits.push(`“${f.reason}”`);
  if (typeof f.hunk === 'number') bits.push(`hunk ${f.hunk}`);
  if (typeof f.hunks === 'number') bits.push(`${f.hunks} hunks`);
  if (typeof f.choice === 'string') bits.push(f.choice);
  if (typeof f.exit === 'number') bits.push(`exit ${f.exit}`);
  if (e.durationMs !== undefined) bits.push(`${Math.round(e.durationMs)} ms`);
  const description = [e.subject, bits.join(', ')].filter((s) => s !== '').join(' — ');
  const tooltip = [
    `${e.kind} #${e.seq}`,
    `subject: ${e.subject}`,
    e.decision ? `decision: ${e.decision}` : '',
    e.rule ? `rule: ${e.rule}${e.layer ? ` (${e.layer} layer)` : ''}` : '',
    Object.keys(f).length ? `fields: ${JSON.stringify(f)}` : '',
  ]
    .filter((s) => s !== '')
    .join('\n');
  return { label: e.kind, description, tooltip };
}

// ---------------------------------------------------------------------------------------------
// Approvals and status

export const ApprovalLabels: Record<ApprovalChoice, string> = {
  allow_once: 'Allow once',
  allow_session: 'Allow for this session',
  allow_always: 'Always allow',
  allow_always_workspace: 'Always allow (workspace policy)',
  deny: 'Deny',
};

export function approvalQuestion(p: ApprovalParams): { message: string; detail: string; buttons: string[] } {
  const what =
    p.kind === 'command' ? 'run the command' : p.kind === 'network' ? 'connect to' : p.kind === 'tool' ? 'use the tool' : `do (${p.kind})`;
  const message = `The agent wants to ${what}: ${p.subject}`;
  const detail = [
    p.rule ? `Asked by rule: ${p.rule}${p.layer ? ` (${p.layer} layer)` : ''}` : 'No policy rule decided this; you are asked.',
    p.alwaysRule
      ? `“Always allow” adds ${p.alwaysRule} to your user policy (or to the workspace policy). Closing this dialog denies.`
      : 'No policy rule can express this: “Always allow” lasts for this session. Closing this dialog denies.',
  ].join('\n');
  const offered = p.options.filter((o): o is ApprovalChoice => o in ApprovalLabels);
  const buttons = (offered.length ? offered : (Object.keys(ApprovalLabels) as ApprovalChoice[])).map((o) => ApprovalLabels[o]);
  return { message, detail, buttons };
}

/** The choice for the label the user clicked; anything else (dialog closed) denies. */
export function approvalChoice(p: ApprovalParams, label: string | undefined): ApprovalChoice {
  const found = (Object.keys(ApprovalLabels) as ApprovalChoice[]).find((c) => ApprovalLabels[c] === label);
  if (!found) return 'deny';
  return p.options.length === 0 || p.options.includes(found) ? found : 'deny';
}

const AgentIcons: Record<AgentState, string> = {
  stopped: '$(circle-outline)',
  starting: '$(loading~spin)',
  idle: '$(shield)',
  working: '$(sync~spin)',
  failed: '$(error)',
};

export function statusBarText(s: StatusParams | undefined, connected: boolean): { text: string; tooltip: string } {
  if (!connected) return { text: '$(circle-slash) Airlock: off', tooltip: 'The Airlock server is not running' };
  if (!s) return { text: '$(shield) Airlock', tooltip: 'Airlock server running' };
  const icon = AgentIcons[s.agent] ?? '$(shield)';
  const pending = s.pendingHunks > 0 ? ` · ${s.pendingHunks} pending hunk${s.pendingHunks === 1 ? '' : 's'}` : '';
  return {
    text: `${icon} Airlock: ${s.agent}${pending}`,
    tooltip: `Agent: ${s.agent}\nPending: ${s.pendingHunks} hunk(s) in ${s.pendingProposals} proposal(s)`,
  };
}

// ---------------------------------------------------------------------------------------------
// Following the user's typing

/** One edit of a document: lines `startLine..=endLine` (of the text before) replaced by text with `newLines` line breaks. */
export interface LineChange {
  startLine: number;
  endLine: number;
  newLines: number;
}

/**
 * Hunk positions after the user's edits, until the server says where they are. A hunk below an
 * edit moves with it; a hunk whose lines were touched is shown as conflicted (the server
 * decides on accept whether it still applies). `changes` are in the order VS Code reports them;
 * they are applied bottom-up, so each is in the coordinates of the text before it.
 */
export function shiftViews(views: HunkView[], changes: LineChange[]): HunkView[] {
  const sorted = [...changes].sort((a, b) => b.startLine - a.startLine || b.endLine - a.endLine);
  let out = views.map((v) => ({ ...v }));
  for (const c of sorted) {
    const delta = c.newLines - (c.endLine - c.startLine);
    out = out.map((v) => {
      const lastTouched = Math.max(v.endLine, v.startLine + 1) - 1;
      if (c.endLine < v.startLine) {
        return { ...v, startLine: v.startLine + delta, endLine: v.endLine + delta };
      }
      // An edit wholly inside the line an insertion goes before (startLine == endLine) does not
      // touch the insertion; any edit of a replaced line does.
      const touches = v.endLine > v.startLine ? c.startLine <= lastTouched : c.startLine < v.startLine;
      if (!touches) return v;
      return { ...v, status: 'conflicted', endLine: Math.max(v.startLine, v.endLine + delta) };
    });
  }
  return out;
}
