// The airlock/* LSP surface as the extension sees it: a mirror of docs/lsp-extensions.md
// (server/airlock-lsp/src/ext.rs is the source of truth). Only this file names the methods.

export const Methods = {
  prompt: 'airlock/prompt',
  cancel: 'airlock/cancel',
  resolve: 'airlock/resolve',
  proposal: 'airlock/proposal',
  agentUpdate: 'airlock/agentUpdate',
  telemetry: 'airlock/telemetry',
  status: 'airlock/status',
  approval: 'airlock/approval',
} as const;

/** Commands the server registers through `workspace/executeCommand` (and code lenses use). */
export const ServerCommands = [
  'airlock.accept',
  'airlock.reject',
  'airlock.acceptAll',
  'airlock.rejectAll',
  'airlock.prompt',
  'airlock.cancel',
] as const;

/** What the client announces in `capabilities.experimental.airlock`. */
export const ClientCapability = { version: 1, proposals: true, approvals: true, telemetry: true };

export interface PromptParams {
  text: string;
  uris?: string[];
  selection?: Selection;
}
export interface Selection {
  uri: string;
  range: { start: { line: number; character: number }; end: { line: number; character: number } };
  text: string;
}
export interface PromptResult {
  stopReason: string;
}
export interface CancelResult {
  cancelled: boolean;
  reason?: string;
}

export type Decision = 'accept' | 'reject';
export interface ResolveParams {
  proposal: string;
  hunks?: number[];
  decision: Decision;
  reason?: string;
  editedText?: string;
}
export interface ResolveOutcome {
  proposal: string;
  path: string;
  relativePath: string;
  totalHunks: number;
  hunks: { id: number; result: { kind: 'accepted' | 'rejected' | 'edited' | 'conflicted'; reason?: string; text?: string } }[];
  stillOpen: number;
  editDiff?: string;
  summary: string;
}

export type HunkStatus = 'pending' | 'accepted' | 'rejected' | 'conflicted';
export interface Hunk {
  id: number;
  oldStart: number;
  oldCount: number;
  oldText: string;
  newText: string;
  status: HunkStatus;
  reason?: string;
  editedText?: string;
}
/** Where an open hunk sits in the buffer now: lines `startLine..endLine` (end exclusive). */
export interface HunkView {
  id: number;
  status: HunkStatus;
  startLine: number;
  endLine: number;
}
export interface Proposal {
  id: string;
  path: string;
  baseHash?: string;
  baseVersion?: number;
  isNewFile: boolean;
  hunks: Hunk[];
  origin?: { session?: string; toolCall?: string };
  createdAt?: string | number;
  state: 'pending' | 'resolved' | 'superseded';
  supersedes?: string;
  view?: HunkView[];
}
export interface ProposalParams {
  event: 'created' | 'updated' | 'resolved';
  uri: string;
  proposal: Proposal;
}

export interface AgentUpdateParams {
  // An ACP SessionUpdate object, as the agent sent it.
  update: Record<string, unknown>;
}

export interface TelemetryEvent {
  seq: number;
  tsMs: number;
  session: string;
  kind: string;
  subject: string;
  decision?: string;
  rule?: string;
  layer?: string;
  durationMs?: number;
  fields?: Record<string, unknown>;
}
export interface TelemetryParams {
  events: TelemetryEvent[];
  dropped: number;
}

export type AgentState = 'stopped' | 'starting' | 'idle' | 'working' | 'failed';
export interface StatusParams {
  agent: AgentState;
  pendingProposals: number;
  pendingHunks: number;
}

export type ApprovalChoice = 'allow_once' | 'allow_session' | 'allow_always' | 'allow_always_workspace' | 'deny';
export interface ApprovalParams {
  kind: 'command' | 'network' | 'tool' | string;
  subject: string;
  rule?: string | null;
  layer?: string | null;
  /** The rule "always" writes (`commands.allow "cargo test"`); null when no rule can express it. */
  alwaysRule?: string | null;
  options: string[];
}
export interface ApprovalResult {
  choice: ApprovalChoice;
}
