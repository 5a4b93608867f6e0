// Unit tests of the extension's pure logic (no VS Code needed): node --test.

import assert from 'node:assert/strict';
import { readFileSync, existsSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import {
  applyHunks,
  approvalChoice,
  approvalQuestion,
  countEvents,
  describeEvent,
  drawHunk,
  emptyCounts,
  formatAgentUpdate,
  placeHunks,
  shiftViews,
  splitLinesKeepEnds,
  statusBarText,
  viewFromDiagnostic,
} from '../../src/logic';
import type { Hunk, HunkView, Proposal, TelemetryEvent } from '../../src/protocol';

const BASE = 'fn one() {\n    1\n}\n\nfn two() {\n    2\n}\n';

function hunk(id: number, oldText: string, newText: string, oldStart = 0): Hunk {
  return { id, oldStart, oldCount: splitLinesKeepEnds(oldText).length, oldText, newText, status: 'pending' };
}
function proposal(hunks: Hunk[], view: HunkView[]): Proposal {
  return { id: 'p1', path: '/w/src/lib.rs', isNewFile: false, hunks, state: 'pending', view };
}

test('splitLinesKeepEnds keeps endings and a last line without one', () => {
  assert.deepEqual(splitLinesKeepEnds('a\nb\r\nc'), ['a\n', 'b\r\n', 'c']);
  assert.deepEqual(splitLinesKeepEnds(''), []);
  assert.deepEqual(splitLinesKeepEnds('\n\n'), ['\n', '\n']);
});

test('applyHunks replaces, inserts and deletes at the viewed lines', () => {
  const hunks = [hunk(1, '    1\n', '    100\n'), hunk(2, '', '// new\n'), hunk(3, '    2\n', '')];
  const view: HunkView[] = [
    { id: 1, status: 'pending', startLine: 1, endLine: 2 },
    { id: 2, status: 'pending', startLine: 4, endLine: 4 },
    { id: 3, status: 'pending', startLine: 5, endLine: 6 },
  ];
  const out = applyHunks(BASE, placeHunks(proposal(hunks, view), view));
  assert.equal(out, 'fn one() {\n    100\n}\n\n// new\nfn two() {\n}\n');
});

test('applyHunks leaves conflicted hunks out', () => {
  const hunks = [hunk(1, '    1\n', '    100\n')];
  const view: HunkView[] = [{ id: 1, status: 'conflicted', startLine: 1, endLine: 2 }];
  assert.equal(applyHunks(BASE, placeHunks(proposal(hunks, view), view)), BASE);
});

test('applyHunks at the end of a file without a final newline', () => {
  const text = 'a\nb';
  const replace = [hunk(1, 'b', 'c')];
  const v1: HunkView[] = [{ id: 1, status: 'pending', startLine: 1, endLine: 2 }];
  assert.equal(applyHunks(text, placeHunks(proposal(replace, v1), v1)), 'a\nc');
  const append = [hunk(1, '', 'c\n')];
  const v2: HunkView[] = [{ id: 1, status: 'pending', startLine: 2, endLine: 2 }];
  assert.equal(applyHunks(text, placeHunks(proposal(append, v2), v2)), 'a\nb\nc\n');
});

// Property: for random texts and random non-overlapping line replacements, applying the hunks
// gives the text built directly from the replacements (a seeded generator, so failures repeat).
test('applyHunks agrees with a direct construction on random edits', () => {
  let seed = 42;
  const rnd = (n: number) => {
    seed = (seed * 1103515245 + 12345) & 0x7fffffff;
    return seed % n;
  };
  const word = () => ['x', 'yy', 'élan', '日本', '', '  z'][rnd(6)];
  for (let iter = 0; iter < 500; iter++) {
    const lines = Array.from({ length: rnd(12) }, () => word() + '\n');
    const hunks: Hunk[] = [];
    const view: HunkView[] = [];
    const expected: string[] = [];
    let i = 0;
    let id = 1;
    while (i <= lines.length) {
      if (rnd(3) === 0) {
        const len = Math.min(rnd(3), lines.length - i);
        const repl = Array.from({ length: rnd(3) }, () => word() + '\n');
        if (len === 0 && repl.length === 0) {
          if (i < lines.length) expected.push(lines[i]);
          i++;
          continue;
        }
        hunks.push(hunk(id, lines.slice(i, i + len).join(''), repl.join('')));
        view.push({ id, status: 'pending', startLine: i, endLine: i + len });
        id++;
        expected.push(...repl);
        i += len;
        if (i < lines.length) expected.push(lines[i]);
        i++; // keep one untouched line between hunks so they never touch
      } else {
        if (i < lines.length) expected.push(lines[i]);
        i++;
      }
    }
    const got = applyHunks(lines.join(''), placeHunks(proposal(hunks, view), view));
    assert.equal(got, expected.join(''), `iteration ${iter}: ${JSON.stringify({ lines, view, hunks })}`);
  }
});

test('viewFromDiagnostic reads data, falls back to the code, and maps Warning to conflicted', () => {
  const range = { start: { line: 4, character: 0 }, end: { line: 6, character: 0 } };
  assert.deepEqual(viewFromDiagnostic({ data: { proposal: 'p-7', hunk: 2 }, range, severity: 3 }), {
    proposal: 'p-7',
    view: { id: 2, status: 'pending', startLine: 4, endLine: 6 },
  });
  assert.deepEqual(viewFromDiagnostic({ code: 'p#x#3', range, severity: 2 })?.view, { id: 3, status: 'conflicted', startLine: 4, endLine: 6 });
  // A range that ends inside the last line (file without a final newline) still covers it.
  const eof = { start: { line: 4, character: 0 }, end: { line: 5, character: 3 } };
  assert.equal(viewFromDiagnostic({ code: { value: 'p#1' }, range: eof })?.view.endLine, 6);
  // Policy-file diagnostics also have source "airlock" but are not hunks.
  assert.equal(viewFromDiagnostic({ code: 'unknown-key', range }), undefined);
});

test('drawHunk pairs removed with added lines and puts the rest on the anchor', () => {
  const d = drawHunk(hunk(1, 'a\nb\n', 'A\nB\nC\n'), { id: 1, status: 'pending', startLine: 3, endLine: 5 }, 10);
  assert.deepEqual(d.removed, { start: 3, end: 5 });
  assert.deepEqual(d.perLine, [
    { line: 3, text: '→ A' },
    { line: 4, text: '→ B' },
  ]);
  assert.equal(d.anchorLine, 4);
  assert.equal(d.anchorText, '+ C');
  const ins = drawHunk(hunk(2, '', '  x\n  y\n'), { id: 2, status: 'pending', startLine: 0, endLine: 0 }, 10);
  assert.equal(ins.anchorBefore, true);
  assert.equal(ins.anchorText, '+ x ⏎ y  (2 lines)');
  const del = drawHunk(hunk(3, 'gone\n', ''), { id: 3, status: 'pending', startLine: 2, endLine: 3 }, 10);
  assert.deepEqual(del.perLine, [{ line: 2, text: '  (deleted)' }]);
  assert.equal(del.anchorText, '');
});

test('formatAgentUpdate streams chunks and puts other updates on their own lines', () => {
  const chunk = (text: string) => ({ sessionUpdate: 'agent_message_chunk', content: { type: 'text', text } });
  assert.equal(formatAgentUpdate(chunk('Hel'), undefined)?.text, 'Hel');
  assert.equal(formatAgentUpdate(chunk('lo'), 'agent_message_chunk')?.text, 'lo');
  assert.equal(formatAgentUpdate({ sessionUpdate: 'agent_thought_chunk', content: { type: 'text', text: 'hm' } }, 'agent_message_chunk')?.text, '\n(thinking) hm');
  const tool = formatAgentUpdate({ sessionUpdate: 'tool_call', toolCallId: 't1', title: 'Run ls', kind: 'execute', status: 'pending' }, 'agent_message_chunk');
  assert.equal(tool?.text, '\n⚙ execute: Run ls [pending]\n');
  const plan = formatAgentUpdate({ sessionUpdate: 'plan', entries: [{ content: 'read', status: 'completed' }, { content: 'write', status: 'pending' }] }, undefined);
  assert.equal(plan?.text, 'Plan:\n  [x] read\n  [ ] write\n');
  assert.equal(formatAgentUpdate({ sessionUpdate: 'available_commands_update' }, undefined), undefined);
});

function ev(kind: string, extra: Partial<TelemetryEvent> = {}): TelemetryEvent {
  return { seq: 1, tsMs: 0, session: 's', kind, subject: 'x', ...extra };
}

test('countEvents counts each thing once', () => {
  const c = countEvents(emptyCounts(), [
    ev('command.started'),
    ev('approval.requested'),
    ev('approval.decided', { decision: 'deny' }),
    ev('command.denied', { decision: 'deny' }),
    ev('net.attempt', { decision: 'deny' }),
    ev('net.attempt', { decision: 'allow' }),
    ev('fs.read_denied', { decision: 'deny' }),
    ev('proposal.created'),
    ev('proposal.resolved', { decision: 'accepted' }),
    ev('proposal.resolved', { decision: 'edited' }),
    ev('proposal.resolved', { decision: 'rejected' }),
    ev('proposal.resolved', { decision: 'conflicted' }),
  ], 3);
  assert.deepEqual(
    { commands: c.commands, denials: c.denials, network: c.network, accepted: c.accepted, rejected: c.rejected, approvals: c.approvals, proposals: c.proposals, dropped: c.dropped, total: c.total },
    { commands: 1, denials: 3, network: 2, accepted: 2, rejected: 1, approvals: 1, proposals: 1, dropped: 3, total: 12 },
  );
});

test('describeEvent shows the subject, decision and reason', () => {
  const d = describeEvent(ev('proposal.resolved', { subject: 'src/lib.rs', decision: 'rejected', fields: { reason: 'no', hunk: 3 } }));
  assert.equal(d.description, 'src/lib.rs — rejected, “no”, hunk 3');
  assert.match(d.tooltip, /fields: \{"reason":"no","hunk":3\}/);
});

test('approvals: question names subject and rule; unknown or closed answers deny', () => {
  const p = { kind: 'command', subject: 'git push', rule: 'commands.ask[0]', layer: 'workspace', options: ['allow_once', 'allow_session', 'allow_always', 'deny'] };
  const q = approvalQuestion(p);
  assert.equal(q.message, 'The agent wants to run the command: git push');
  assert.match(q.detail, /commands\.ask\[0\] \(workspace layer\)/);
  assert.deepEqual(q.buttons, ['Allow once', 'Allow for this session', 'Always allow', 'Deny']);
  assert.equal(approvalChoice(p, 'Allow for this session'), 'allow_session');
  assert.equal(approvalChoice(p, undefined), 'deny');
  assert.equal(approvalChoice(p, 'Cancel'), 'deny');
  // A choice the server did not offer is never sent.
  assert.equal(approvalChoice({ ...p, options: ['allow_once', 'deny'] }, 'Always allow'), 'deny');
  // The rule "always" writes is named; the workspace target has its own button.
  const w = approvalQuestion({ ...p, alwaysRule: 'commands.allow "git push"', options: [...p.options.slice(0, 3), 'allow_always_workspace', 'deny'] });
  assert.match(w.detail, /adds commands\.allow "git push" to your user policy/);
  assert.deepEqual(w.buttons, ['Allow once', 'Allow for this session', 'Always allow', 'Always allow (workspace policy)', 'Deny']);
  assert.equal(approvalChoice({ ...p, options: ['allow_always_workspace', 'deny'] }, 'Always allow (workspace policy)'), 'allow_always_workspace');
});

test('status bar text', () => {
  assert.equal(statusBarText({ agent: 'idle', pendingProposals: 1, pendingHunks: 3 }, true).text, '$(shield) Airlock: idle · 3 pending hunks');
  assert.equal(statusBarText({ agent: 'working', pendingProposals: 1, pendingHunks: 1 }, true).text, '$(sync~spin) Airlock: working · 1 pending hunk');
  assert.equal(statusBarText(undefined, false).text, '$(circle-slash) Airlock: off');
});

test('package.json: schema association, settings, and no clash with the server commands', () => {
  const root = join(__dirname, '..', '..', '..');
  const pkg = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8'));
  const toml = pkg.contributes.tomlValidation;
  assert.deepEqual(toml, [{ fileMatch: '.airlock/policy.toml', url: './dist/policy.schema.json' }]);
  assert.ok(existsSync(join(root, '..', '..', 'schemas', 'policy.schema.json')), 'schemas/policy.schema.json is copied into dist/ by esbuild.mjs');
  const props = pkg.contributes.configuration.properties;
  for (const key of ['airlock.serverPath', 'airlock.agent.command', 'airlock.telemetry.content']) assert.ok(props[key], `setting ${key}`);
  // Settings that choose a program to run may not come from a workspace.
  for (const key of ['airlock.serverPath', 'airlock.agent.command', 'airlock.agent.env', 'airlock.agent.script']) assert.equal(props[key].scope, 'machine', key);
  // vscode-languageclient registers the server's executeCommand names; ours must differ.
  const server = new Set(['airlock.accept', 'airlock.reject', 'airlock.acceptAll', 'airlock.rejectAll', 'airlock.prompt', 'airlock.cancel']);
  for (const c of pkg.contributes.commands) assert.ok(!server.has(c.command), `${c.command} clashes with a server command`);
  assert.ok(pkg.contributes.commands.some((c: { title: string }) => c.title === 'Ask the agent'));
  assert.ok(pkg.contributes.commands.some((c: { title: string }) => c.title === 'Trust workspace policy'));
});

test('shiftViews moves hunks below an edit and marks touched ones conflicted', () => {
  const views: HunkView[] = [
    { id: 1, status: 'pending', startLine: 1, endLine: 2 },
    { id: 2, status: 'pending', startLine: 5, endLine: 5 },
    { id: 3, status: 'pending', startLine: 9, endLine: 11 },
  ];
  // A line inserted at the top (typing Enter at the start of line 0).
  assert.deepEqual(
    shiftViews(views, [{ startLine: 0, endLine: 0, newLines: 1 }]).map((v) => [v.startLine, v.endLine, v.status]),
    [[2, 3, 'pending'], [6, 6, 'pending'], [10, 12, 'pending']],
  );
  // Lines 6..7 joined into one (one line break removed) between hunks 2 and 3.
  assert.deepEqual(
    shiftViews(views, [{ startLine: 6, endLine: 7, newLines: 0 }]).map((v) => [v.startLine, v.endLine]),
    [[1, 2], [5, 5], [8, 10]],
  );
  // Typing inside hunk 3's lines.
  assert.equal(shiftViews(views, [{ startLine: 10, endLine: 10, newLines: 0 }])[2].status, 'conflicted');
  // Several changes in one event, reported top-down: applied bottom-up.
  assert.deepEqual(
    shiftViews(views, [{ startLine: 0, endLine: 0, newLines: 1 }, { startLine: 7, endLine: 7, newLines: 2 }]).map((v) => [v.startLine, v.endLine]),
    [[2, 3], [6, 6], [12, 14]],
  );
  // A deletion across the place of an insertion: conflicted.
  assert.equal(shiftViews(views, [{ startLine: 3, endLine: 6, newLines: 0 }])[1].status, 'conflicted');
  // Editing the line an insertion goes before leaves the insertion alone.
  assert.deepEqual(shiftViews(views, [{ startLine: 5, endLine: 5, newLines: 0 }])[1], views[1]);
});
