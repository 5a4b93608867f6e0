// The Telemetry view: running counts for the session and the most recent events, newest first.
// Batches arrive every 50–200 ms; the tree is refreshed at most every 250 ms.

import * as vscode from 'vscode';
import { Counts, countEvents, describeEvent, emptyCounts } from './logic';
import type { TelemetryEvent, TelemetryParams } from './protocol';

type Node = { kind: 'count'; label: string; value: number; icon: string } | { kind: 'recent' } | { kind: 'event'; event: TelemetryEvent };

const EventIcons: Record<string, string> = {
  'command.started': 'terminal',
  'command.finished': 'pass',
  'command.denied': 'circle-slash',
  'net.attempt': 'globe',
  'fs.read': 'file',
  'fs.read_denied': 'lock',
  'proposal.created': 'diff',
  'proposal.resolved': 'check',
  'approval.requested': 'question',
  'approval.decided': 'verified',
  'agent.started': 'play',
  'agent.exited': 'debug-stop',
  prompt: 'comment',
  'policy.loaded': 'shield',
  'policy.error': 'error',
  'policy.warning': 'warning',
};

export class Telemetry implements vscode.TreeDataProvider<Node> {
  private counts: Counts = emptyCounts();
  private recent: TelemetryEvent[] = [];
  private readonly changed = new vscode.EventEmitter<Node | undefined>();
  readonly onDidChangeTreeData = this.changed.event;
  private timer: NodeJS.Timeout | undefined;
  private readonly recentNode: Node = { kind: 'recent' };

  onBatch(p: TelemetryParams): void {
    this.counts = countEvents(this.counts, p.events, p.dropped);
    const max = vscode.workspace.getConfiguration('airlock').get<number>('telemetry.maxEvents', 500);
    this.recent = [...p.events].reverse().concat(this.recent).slice(0, Math.max(10, max));
    this.schedule();
  }

  clear(): void {
    this.counts = emptyCounts();
    this.recent = [];
    this.schedule();
  }

  getCounts(): Counts {
    return this.counts;
  }

  private schedule(): void {
    if (this.timer) return;
    this.timer = setTimeout(() => {
      this.timer = undefined;
      this.changed.fire(undefined);
    }, 250);
  }

  getTreeItem(n: Node): vscode.TreeItem {
    switch (n.kind) {
      case 'count': {
        const item = new vscode.TreeItem(n.label);
        item.description = String(n.value);
        item.iconPath = new vscode.ThemeIcon(n.icon);
        return item;
      }
      case 'recent': {
        const item = new vscode.TreeItem('Recent events', vscode.TreeItemCollapsibleState.Expanded);
        item.description = `${this.recent.length} shown of ${this.counts.total}`;
        item.id = 'airlock.recent';
        return item;
      }
      case 'event': {
        const d = describeEvent(n.event);
        const item = new vscode.TreeItem(d.label);
        item.description = d.description;
        item.tooltip = d.tooltip;
        const icon = EventIcons[n.event.kind] ?? 'circle-small';
        const denied = n.event.decision === 'deny' || n.event.kind.endsWith('denied');
        item.iconPath = new vscode.ThemeIcon(icon, denied ? new vscode.ThemeColor('errorForeground') : undefined);
        return item;
      }
    }
  }

  getChildren(n?: Node): Node[] {
    if (!n) {
      const c = this.counts;
      const rows: Node[] = [
        { kind: 'count', label: 'Commands run', value: c.commands, icon: 'terminal' },
        { kind: 'count', label: 'Denials', value: c.denials, icon: 'circle-slash' },
        { kind: 'count', label: 'Network attempts', value: c.network, icon: 'globe' },
        { kind: 'count', label: 'Hunks accepted', value: c.accepted, icon: 'check' },
        { kind: 'count', label: 'Hunks rejected', value: c.rejected, icon: 'close' },
        { kind: 'count', label: 'Approvals asked', value: c.approvals, icon: 'question' },
        { kind: 'count', label: 'Proposals', value: c.proposals, icon: 'diff' },
      ];
      if (c.dropped > 0) rows.push({ kind: 'count', label: 'Events dropped (editor too slow)', value: c.dropped, icon: 'warning' });
      rows.push(this.recentNode);
      return rows;
    }
    if (n.kind === 'recent') return this.recent.map((event) => ({ kind: 'event', event }));
    return [];
  }
}
