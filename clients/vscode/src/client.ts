// Starting `airlock serve` and wiring the standard LSP side: the experimental.airlock opt-in,
// settings passed as initializationOptions, and middleware that keeps the server's generic
// rendering (code lenses, hunk diagnostics) from duplicating what this extension draws.

import * as vscode from 'vscode';
import {
  ClientCapabilities,
  FeatureState,
  LanguageClient,
  LanguageClientOptions,
  Middleware,
  RevealOutputChannelOn,
  ServerOptions,
  StaticFeature,
} from 'vscode-languageclient/node';
import { viewFromDiagnostic } from './logic';
import { ClientCapability, ServerCommands } from './protocol';
import type { HunkView } from './protocol';

/** Announces `capabilities.experimental.airlock`, which turns on the airlock/* surface. */
class AirlockCapability implements StaticFeature {
  fillClientCapabilities(capabilities: ClientCapabilities): void {
    capabilities.experimental = { ...(capabilities.experimental as object | undefined), airlock: ClientCapability };
  }
  initialize(): void {}
  getState(): FeatureState {
    return { kind: 'static' };
  }
  clear(): void {}
}

export interface Hooks {
  /** Hunk positions read from the server's diagnostics for one document (empty: none open). */
  onHunkViews(uri: vscode.Uri, views: Map<string, HunkView[]>): void;
  /** Whether to drop the server's proposal lenses here (the extension draws its own, or lenses are off). */
  dropServerLenses(uri: vscode.Uri): boolean;
  /** Whether the extension knows this proposal (from `airlock/proposal`) and can draw it. */
  knows(proposal: string): boolean;
}

/** Settings the server understands in `initializationOptions` (its Settings struct). */
export function initializationOptions(config: vscode.WorkspaceConfiguration): Record<string, unknown> {
  const agent: Record<string, unknown> = {};
  const command = config.get<string[]>('agent.command', []);
  if (Array.isArray(command) && command.length > 0) {
    agent.command = command;
    agent.env = config.get<Record<string, string>>('agent.env', {});
  }
  const script = config.get<string>('agent.script', '');
  if (script) agent.script = script;
  return { agent, telemetry: { content: config.get<boolean>('telemetry.content', false) } };
}

export function serverPath(config: vscode.WorkspaceConfiguration): string {
  return config.get<string>('serverPath', 'airlock') || 'airlock';
}

const serverCommandSet = new Set<string>(ServerCommands);

export function createClient(output: vscode.OutputChannel, hooks: Hooks): LanguageClient {
  const config = vscode.workspace.getConfiguration('airlock');
  const root = vscode.workspace.workspaceFolders?.[0]?.uri.fsPath;
  const serverOptions: ServerOptions = {
    command: serverPath(config),
    args: ['serve'],
    options: { cwd: root, env: process.env },
  };

  const middleware: Middleware = {
    // The server offers "✔ Accept hunk N" lenses to every editor; this extension draws
    // "Accept | Reject | Diff" itself, so the server's airlock lenses would be duplicates.
    provideCodeLenses: async (document, token, next) => {
      const lenses = await next(document, token);
      if (!lenses || !hooks.dropServerLenses(document.uri)) return lenses;
      return lenses.filter((l) => !(l.command && serverCommandSet.has(l.command.command)));
    },
    // The server's reject actions decide at once; route them through the extension's
    // command so the user is asked for a reason, as everywhere else.
    provideCodeActions: async (document, range, context, token, next) => {
      const actions = await next(document, range, context, token);
      if (!actions) return actions;
      for (const a of actions) {
        const cmd = a instanceof vscode.CodeAction ? a.command : (a as vscode.Command);
        if (!cmd) continue;
        if (cmd.command === 'airlock.reject') cmd.command = 'airlock.rejectHunk';
        else if (cmd.command === 'airlock.rejectAll') cmd.command = 'airlock.rejectFile';
      }
      return actions;
    },
    // Pending hunks arrive as Information diagnostics (so plain LSP editors show them). The
    // extension draws them as decorations instead, and keeps only conflicts (Warnings) in
    // the Problems view. Their ranges follow the user's typing, so they position the hunks.
    handleDiagnostics: (uri, diagnostics, next) => {
      const views = new Map<string, HunkView[]>();
      const kept: vscode.Diagnostic[] = [];
      for (const d of diagnostics) {
        const placed =
          d.source === 'airlock'
            ? viewFromDiagnostic({
                code: d.code,
                data: (d as { data?: unknown }).data,
                severity: d.severity === vscode.DiagnosticSeverity.Warning ? 2 : 3,
                range: d.range,
              })
            : undefined;
        if (!placed) {
          kept.push(d);
          continue;
        }
        const list = views.get(placed.proposal) ?? [];
        list.push(placed.view);
        views.set(placed.proposal, list);
        // A proposal restored by a server restart is not announced with airlock/proposal:
        // without its texts the extension cannot draw it, so the plain LSP view stays.
        if (d.severity === vscode.DiagnosticSeverity.Warning || !hooks.knows(placed.proposal)) kept.push(d);
      }
      hooks.onHunkViews(uri, views);
      next(uri, kept);
    },
  };

  const clientOptions: LanguageClientOptions = {
    // Every file: the server must see open buffers to place hunks and apply accepted ones.
    documentSelector: [{ scheme: 'file' }],
    initializationOptions: initializationOptions(config),
    outputChannel: output,
    revealOutputChannelOn: RevealOutputChannelOn.Never,
    middleware,
  };
  const client = new LanguageClient('airlock', 'Airlock', serverOptions, clientOptions);
  client.registerFeature(new AirlockCapability());
  return client;
}
