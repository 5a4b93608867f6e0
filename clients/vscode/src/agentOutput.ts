// The agent's streamed output (`airlock/agentUpdate`) in the "Airlock Agent" output channel:
// message chunks stream on one line, thoughts, tool calls and plans get their own lines.

import * as vscode from 'vscode';
import { formatAgentUpdate } from './logic';
import type { AgentUpdateParams } from './protocol';

export class AgentOutput implements vscode.Disposable {
  readonly channel = vscode.window.createOutputChannel('Airlock Agent');
  private last: string | undefined;
  private lastUpdate = 0;

  dispose(): void {
    this.channel.dispose();
  }

  prompt(text: string, context: string | undefined): void {
    this.channel.append(`${this.last !== undefined ? '\n' : ''}\n› ${text}${context ? `  [${context}]` : ''}\n`);
    this.last = undefined;
    this.channel.show(true);
  }

  /**
   * The turn's end line. The server may deliver the turn's last updates just after the prompt
   * response, so the line waits until updates have been quiet for a moment (at most 2 s).
   */
  async turnEnded(stopReason: string, ms: number): Promise<void> {
    const deadline = Date.now() + 2000;
    while (Date.now() - this.lastUpdate < 150 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
    this.channel.append(`${this.last !== undefined ? '\n' : ''}— turn ended: ${stopReason} (${(ms / 1000).toFixed(1)} s)\n`);
    this.last = undefined;
  }

  note(text: string): void {
    this.channel.append(`\n${text}\n`);
    this.last = undefined;
  }

  onUpdate(p: AgentUpdateParams): void {
    const update = p?.update;
    if (!update || typeof update !== 'object') return;
    this.lastUpdate = Date.now();
    const piece = formatAgentUpdate(update, this.last);
    if (!piece) return;
    this.channel.append(piece.text);
    const kind = String(update.sessionUpdate ?? '');
    this.last = kind.endsWith('_chunk') ? kind : undefined;
    if (this.last === undefined && !piece.text.endsWith('\n')) this.channel.append('\n');
  }
}
