// End-to-end test of the Airlock extension in a real VS Code: code-server in headless Debian
// Chromium driven by playwright-core, the extension installed from the built .vsix, the real
// `airlock` binary and its embedded scripted agent. Each step is a named check; a screenshot of
// every step is saved under the output directory.
//
//   node test/e2e/run.mjs
// Environment (scripts/test-vscode.sh sets them):
//   CODE_SERVER_ENTRY  code-server's out/node/entry.js          (required)
//   AIRLOCK_BIN        the airlock binary                        (required)
//   AIRLOCK_VSIX       the packaged extension                    (default: out/airlock.vsix)
//   AIRLOCK_E2E_OUT    where screenshots and logs go             (default: a new temp dir)
//   CHROMIUM           browser executable                        (default: /usr/bin/chromium)
//   E2E_HEADED=1       show the browser (needs a display)
//   E2E_KEEP=1         keep the temp workspace and state dirs (printed) for debugging
//
// Prints one line per check and, last, `N passed, N failed`. Exit status 1 if any failed.

import { spawn, spawnSync } from 'node:child_process';
import { chmodSync, copyFileSync, cpSync, existsSync, rmSync, mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const extRoot = resolve(here, '..', '..');
const require = createRequire(import.meta.url);
const { chromium } = require('playwright-core');

const ENTRY = process.env.CODE_SERVER_ENTRY;
const BIN_SOURCE = process.env.AIRLOCK_BIN;
const VSIX = resolve(process.env.AIRLOCK_VSIX ?? join(extRoot, 'out', 'airlock.vsix'));
const OUT = resolve(process.env.AIRLOCK_E2E_OUT ?? mkdtempSync(join(tmpdir(), 'airlock-vscode-e2e-')));
mkdirSync(OUT, { recursive: true });
const BROWSER = process.env.CHROMIUM ?? '/usr/bin/chromium';
for (const [name, v] of [['CODE_SERVER_ENTRY', ENTRY], ['AIRLOCK_BIN', BIN_SOURCE]]) {
  if (!v || !existsSync(v)) {
    console.error(`run.mjs: ${name} must name an existing file (got ${v ?? 'nothing'})`);
    process.exit(2);
  }
}
if (!existsSync(VSIX)) {
  console.error(`run.mjs: no extension package at ${VSIX} (run npm run package)`);
  process.exit(2);
}

// ------------------------------------------------------------------ the sample workspace

const BASE = 'fn one() {\n    1\n}\n\nfn two() {\n    2\n}\n\nfn three() {\n    3\n}\n';
const AGENT = 'fn one() {\n    100\n}\n\nfn two() {\n    200\n}\n\nfn three() {\n    300\n}\n';
// Expected after: a line typed at the top while the proposal is pending, hunk 1 accepted, hunk 2
// edited in the diff editor to 222, hunk 3 rejected.
const NOTE = '// reviewed\n';
const FINAL = NOTE + 'fn one() {\n    100\n}\n\nfn two() {\n    222\n}\n\nfn three() {\n    3\n}\n';
const REASON = 'keep three as it is';
const RENAMED = FINAL.replace('fn one()', 'fn uno()').replace('fn three()', 'fn tres()');
const BUMPED = RENAMED.replace('    222\n', '    2222\n');

const tmp = mkdtempSync(join(tmpdir(), 'airlock-vscode-run-'));
// A private copy of the binary: the server starts the embedded agent from its own executable,
// and a concurrent `cargo build` replacing target/debug/airlock must not pull it away mid-test.
mkdirSync(join(tmp, 'bin'));
const BIN = join(tmp, 'bin', 'airlock');
copyFileSync(BIN_SOURCE, BIN);
chmodSync(BIN, 0o755);
const ws = join(tmp, 'ws');
mkdirSync(join(ws, 'src'), { recursive: true });
writeFileSync(join(ws, 'src', 'lib.rs'), BASE);
// A workspace policy that loosens the defaults: ignored until trusted.
mkdirSync(join(ws, '.airlock'));
writeFileSync(join(ws, '.airlock', 'policy.toml'), 'version = 1\n[commands]\nallow = ["echo airlock-trusted"]\n');
const libPath = join(ws, 'src', 'lib.rs');

// Turn 1 only matches when the selection (the body of `two`) reached the agent with the prompt;
// turn 2 only matches when the rejection reason was passed on to the agent.
const script = `
name = "vscode-e2e"
[[turn]]
match = "${REASON}"
[[turn.step]]
message = "Understood, three stays. Checking the build now."
[[turn.step]]
run = "echo airlock-approved"
[[turn.step]]
run = "echo airlock-denied"
[[turn.step]]
message = "Check finished."

[[turn]]
match = "take your time"
[[turn.step]]
message = "Thinking it over."
[[turn.step]]
wait = 20000
[[turn.step]]
message = "NOT CANCELLED"

[[turn]]
match = "bump two"
[[turn.step]]
write = "src/lib.rs"
content = ${JSON.stringify(BUMPED)}

[[turn]]
match = "rename them"
[[turn.step]]
write = "src/lib.rs"
content = ${JSON.stringify(RENAMED)}

[[turn]]
match = "fn two() {"
[[turn.step]]
message = "Fixing the numbers in src/lib.rs."
[[turn.step]]
write = "src/lib.rs"
content = ${JSON.stringify(AGENT)}
[[turn.step]]
message = "Proposal ready: three hunks."


[[turn]]
[[turn.step]]
message = "NO TURN MATCHED: the prompt lacked the selection or the review outcome."
`;
const scriptPath = join(tmp, 'script.toml');
writeFileSync(scriptPath, script);

// ------------------------------------------------------------------ code-server

const home = join(tmp, 'home');
const env = {
  ...process.env,
  HOME: home,
  XDG_CONFIG_HOME: join(tmp, 'xdg', 'config'),
  XDG_DATA_HOME: join(tmp, 'xdg', 'data'),
  XDG_CACHE_HOME: join(tmp, 'xdg', 'cache'),
  XDG_STATE_HOME: join(tmp, 'xdg', 'state'),
  AIRLOCK_LOG: process.env.AIRLOCK_LOG ?? 'info',
};
for (const d of [home, env.XDG_CONFIG_HOME, env.XDG_DATA_HOME, env.XDG_CACHE_HOME, env.XDG_STATE_HOME, join(tmp, 'data', 'User'), join(tmp, 'ext')]) {
  mkdirSync(d, { recursive: true });
}
writeFileSync(
  join(tmp, 'data', 'User', 'settings.json'),
  JSON.stringify(
    {
      'workbench.startupEditor': 'none',
      'workbench.tips.enabled': false,
      'workbench.enableExperiments': false,
      'extensions.autoCheckUpdates': false,
      'extensions.autoUpdate': false,
      'extensions.ignoreRecommendations': true,
      'telemetry.telemetryLevel': 'off',
      'security.workspace.trust.enabled': false,
      'git.enabled': false,
      'files.autoSave': 'off',
      'editor.codeLens': true,
      'editor.minimap.enabled': false,
      'workbench.colorTheme': 'Default Dark Modern',
      'airlock.serverPath': BIN,
      'airlock.agent.script': scriptPath,
    },
    null,
    2,
  ),
);

const csArgs = ['--config', join(tmp, 'config.yaml'), '--extensions-dir', join(tmp, 'ext'), '--user-data-dir', join(tmp, 'data')];
const install = spawnSync(process.execPath, [ENTRY, ...csArgs, '--install-extension', VSIX], { env, encoding: 'utf8', timeout: 120000 });
writeFileSync(join(OUT, 'install-extension.log'), `${install.stdout}\n${install.stderr}`);
if (install.status !== 0 || !/airlock/i.test(`${install.stdout}${install.stderr}`)) {
  console.error(`run.mjs: installing ${VSIX} failed (exit ${install.status}):\n${install.stdout}\n${install.stderr}`);
  process.exit(1);
}

// ------------------------------------------------------------------ checks

const results = [];
let failShot;
let aborted = false;
async function check(name, fn) {
  if (aborted) {
    results.push({ name, ok: false, note: 'not run: an earlier step failed' });
    console.log(`SKIP ${name} (an earlier step failed)`);
    return;
  }
  const t0 = Date.now();
  try {
    await fn();
    results.push({ name, ok: true });
    console.log(`PASS ${name} (${Date.now() - t0} ms)`);
  } catch (err) {
    results.push({ name, ok: false, note: err.message });
    if (failShot) await failShot(name).catch(() => {});
    console.log(`FAIL ${name}: ${err.message.split('\n').slice(0, 6).join('\n     ')}`);
    aborted = true;
  }
}
function assert(cond, message) {
  if (!cond) throw new Error(message);
}
async function eventually(what, fn, timeout = 20000) {
  const end = Date.now() + timeout;
  let last;
  for (;;) {
    try {
      const v = await fn();
      if (v) return v;
      last = v;
    } catch (e) {
      last = e.message;
    }
    if (Date.now() > end) throw new Error(`timed out waiting for ${what} (last: ${JSON.stringify(last)})`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

let cs;
let browser;
let csOut = '';
async function main() {
  cs = spawn(process.execPath, [ENTRY, ...csArgs, '--auth', 'none', '--bind-addr', '127.0.0.1:0', '--disable-telemetry', '--disable-update-check', '--disable-workspace-trust', ws], {
    env,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  cs.stdout.on('data', (d) => (csOut += d));
  cs.stderr.on('data', (d) => (csOut += d));
  const url = await eventually('code-server to listen', () => /HTTP server listening on (http:\/\/\S+\/)/.exec(csOut)?.[1], 60000);

  browser = await chromium.launch({ executablePath: BROWSER, headless: process.env.E2E_HEADED !== '1', args: ['--no-sandbox'] });
  const page = await browser.newPage({ viewport: { width: 1400, height: 900 } });
  page.setDefaultTimeout(20000);
  let shot = 0;
  const screenshot = async (name) => {
    shot++;
    await page.waitForTimeout(300);
    await page.screenshot({ path: join(OUT, `${String(shot).padStart(2, '0')}-${name}.png`) });
  };
  failShot = async () => {
    await page.screenshot({ path: join(OUT, `FAILED-after-${String(shot).padStart(2, '0')}.png`) });
    const out = await page.locator('.part.panel .view-lines').first().innerText().catch(() => '');
    writeFileSync(join(OUT, 'FAILED-output-panel.txt'), out);
  };
  const statusText = () => page.locator('.statusbar-item', { hasText: 'Airlock' }).first().innerText();
  const lenses = (title) => page.locator('.editor-instance:visible .codelens-decoration a', { hasText: new RegExp(`^${title}$`) });
  const runCommand = async (title) => {
    await page.keyboard.press('F1');
    const input = page.locator('.quick-input-widget input');
    await input.waitFor({ state: 'visible' });
    await input.fill(`>${title}`);
    await page.locator('.quick-input-list .monaco-list-row', { hasText: title }).first().waitFor({ state: 'visible' });
    await page.keyboard.press('Enter');
  };
  const openFile = async (name) => {
    await page.keyboard.press('F1');
    const input = page.locator('.quick-input-widget input');
    await input.waitFor({ state: 'visible' });
    await input.fill(name);
    await page.locator('.quick-input-list .monaco-list-row', { hasText: name }).first().waitFor({ state: 'visible' });
    await page.keyboard.press('Enter');
    await page.locator('.tab.active', { hasText: name }).waitFor();
  };
  const answerInput = async (text) => {
    const input = page.locator('.quick-input-widget input');
    await input.waitFor({ state: 'visible' });
    await input.fill(text);
    await page.keyboard.press('Enter');
    await input.waitFor({ state: 'hidden' });
  };
  const editorText = async () => (await page.locator('.editor-instance:visible .view-lines').first().innerText()).replace(/\u00a0/g, ' ');
  const outputText = async () => (await page.locator('.part.panel .view-lines').first().innerText()).replace(/\u00a0/g, ' ');
  // Whole-line decorations drawn with the extension's removed-line colour (#f85149 at 15%).
  const removedLines = () =>
    page.evaluate(() =>
      [...document.querySelectorAll('.editor-instance .view-overlays > div > div')].filter((el) => getComputedStyle(el).backgroundColor.startsWith('rgba(248, 81, 73')).length,
    );
  // Inline "→ new text" annotations: injected text, in the DOM or as ::after content.
  const inlineAdded = () =>
    page.evaluate(() => {
      const texts = [];
      for (const el of document.querySelectorAll('.editor-instance .view-lines span')) {
        const after = getComputedStyle(el, '::after').content;
        if (after && after !== 'none' && after !== 'normal') texts.push(after);
        else if (el.children.length === 0 && /^(→|\+ )/.test((el.textContent ?? '').trim())) texts.push(el.textContent);
      }
      return texts.join('\n');
    });
  const disk = () => readFileSync(libPath, 'utf8');

  await check('workbench loads and the extension starts the server', async () => {
    await page.goto(`${url}?folder=${encodeURIComponent(ws)}`);
    await page.locator('.monaco-workbench').waitFor({ timeout: 60000 });
    const text = await eventually('the Airlock status bar item to show a running server', async () => {
      const t = await statusText();
      return /Airlock/.test(t) && !/off/.test(t) ? t : undefined;
    }, 60000);
    assert(/stopped|idle|Airlock/.test(text), `status bar: ${text}`);
    await screenshot('started');
  });

  await check('prompt with a selection produces a proposal: decorations, CodeLens, status', async () => {
    await openFile('lib.rs');
    await page.locator('.editor-instance:visible .view-lines', { hasText: 'fn two' }).waitFor();
    // Select the whole of `fn two` (lines 5–7) as the context.
    await runCommand('Go to Line/Column');
    await answerInput(':5');
    await page.keyboard.press('Home');
    for (let i = 0; i < 3; i++) await page.keyboard.press('Shift+ArrowDown');
    await runCommand('Airlock: Ask the agent');
    const prompt = page.locator('.quick-input-widget');
    await prompt.locator('.quick-input-message', { hasText: 'selection' }).waitFor();
    await answerInput('fix the numbers');
    await eventually('3 Accept lenses', async () => (await lenses('Accept').count()) === 3);
    assert((await lenses('Reject').count()) === 3, 'expected 3 Reject lenses');
    assert((await lenses('Diff').count()) === 3, 'expected 3 Diff lenses');
    assert((await lenses('Accept all 3 in file').count()) === 1, 'expected one "Accept all 3 in file" lens');
    const dup = await page.locator('.codelens-decoration a', { hasText: /Accept hunk/ }).count();
    assert(dup === 0, `the server's own lenses should be filtered, saw ${dup}`);
    const removed = await eventually('3 removed-line decorations', async () => ((await removedLines()) === 3 ? 3 : undefined));
    assert(removed === 3, 'removed lines');
    const added = await inlineAdded();
    for (const n of ['100', '200', '300']) assert(added.includes(`→ ${n}`) || added.includes(`→ ${n}`.replace(' ', '\u00a0')), `inline added text for ${n} missing; saw: ${added}`);
    await eventually('status bar pending count', async () => /3 pending hunks/.test(await statusText()));
    assert(disk() === BASE, 'nothing may reach the disk before accept');
    const out = await eventually('agent output in the output channel', async () => ((await outputText()).includes('Proposal ready') ? true : undefined));
    assert(out, 'agent output');
    await runCommand('Airlock: Focus on Proposals View');
    const tree = page.locator('.pane', { has: page.locator('.pane-header', { hasText: 'Proposals' }) });
    await tree.locator('.monaco-list-row', { hasText: 'src/lib.rs' }).filter({ hasText: '3 hunks' }).waitFor();
    assert((await tree.locator('.monaco-list-row', { hasText: /^hunk \d/ }).count()) === 3, 'three hunk rows in the Proposals view');
    await screenshot('proposal');
  });

  await check('typing above the hunks moves the lenses with them', async () => {
    await page.locator('.editor-instance:visible .view-line').first().click();
    await page.keyboard.press('Control+Home');
    await page.keyboard.press('Enter'); // (typed after the new line: Rust continues a comment on Enter)
    await page.keyboard.press('ArrowUp');
    await page.keyboard.type(NOTE.trimEnd());
    // The first lens must sit right above the line `    1` (now line 3), not above line 2.
    await eventually('the first Accept lens above `    1`', async () => {
      const lens = await lenses('Accept').first().boundingBox();
      const line = await page.locator('.editor-instance:visible .view-line', { hasText: /^\s+1$/ }).first().boundingBox();
      const above = await page.locator('.editor-instance:visible .view-line', { hasText: /^fn\sone\(\)\s\{$/ }).first().boundingBox();
      return lens && line && above && lens.y > above.y && lens.y < line.y;
    });
    assert((await lenses('Accept').count()) === 3, 'still 3 Accept lenses');
    await screenshot('typed-above');
  });

  await check('Accept on hunk 1, save: the file on disk has exactly that hunk', async () => {
    await lenses('Accept').first().click();
    await eventually('2 Accept lenses', async () => (await lenses('Accept').count()) === 2);
    await eventually('buffer shows 100', async () => (await editorText()).includes('    100'));
    await eventually('status bar shows 2 pending hunks', async () => /2 pending hunks/.test(await statusText()));
    await page.keyboard.press('Control+s');
    await eventually('disk content after save', async () => disk() === NOTE + BASE.replace('    1\n', '    100\n'), 10000);
    await screenshot('accepted-hunk-1');
  });

  await check('Reject on hunk 3 with a reason', async () => {
    await lenses('Reject').last().click();
    const box = page.locator('.quick-input-widget');
    await box.locator('.quick-input-title', { hasText: 'Reject hunk 3' }).waitFor();
    await screenshot('reject-reason');
    await answerInput(REASON);
    await eventually('1 Accept lens', async () => (await lenses('Accept').count()) === 1);
    await eventually('status bar shows 1 pending hunk', async () => /1 pending hunk\b/.test(await statusText()));
    assert((await editorText()).includes('    3\n') || (await editorText()).match(/^ {4}3$/m), 'hunk 3 must stay as it was');
    await screenshot('rejected-hunk-3');
  });

  await check('Diff opens the proposal; editing and saving it sends editedText', async () => {
    await lenses('Diff').first().click();
    await page.locator('.tab.active', { hasText: 'agent proposal' }).waitFor();
    const modified = page.locator('.monaco-diff-editor .editor.modified');
    await modified.locator('.view-lines', { hasText: '200' }).waitFor();
    await screenshot('diff-editor');
    // The cursor is on the hunk's line in the proposed (right, editable) side: "    200".
    await modified.locator('.view-line', { hasText: '200' }).click();
    await page.keyboard.press('End');
    for (let i = 0; i < 3; i++) await page.keyboard.press('Backspace');
    await page.keyboard.type('222');
    await page.keyboard.press('Control+s');
    await page.locator('.tab', { hasText: 'agent proposal' }).waitFor({ state: 'detached' });
    await openFile('lib.rs');
    await eventually('buffer shows 222', async () => (await editorText()).includes('    222'));
    await eventually('no lenses left', async () => (await lenses('Accept').count()) === 0);
    await page.keyboard.press('Control+s');
    await eventually('disk content after save', async () => disk() === FINAL, 10000);
    await eventually('status bar without pending hunks', async () => !/pending/.test(await statusText()));
    await screenshot('edited-accepted');
  });

  await check('approval modal: allow once, then deny', async () => {
    await page.locator('.editor-instance:visible .view-line').first().click(); // no selection this time
    await runCommand('Airlock: Ask the agent');
    await answerInput('check the build');
    const dialog = page.locator('.monaco-dialog-box');
    await dialog.waitFor({ timeout: 30000 });
    const text = await dialog.innerText();
    assert(text.includes('echo airlock-approved'), `dialog should name the command: ${text}`);
    assert(/rule/i.test(text) && /ask/i.test(text), `dialog should name the rule: ${text}`);
    for (const b of ['Allow once', 'Allow for this session', 'Always allow', 'Deny']) {
      assert((await dialog.locator('.monaco-button', { hasText: b }).count()) >= 1, `no "${b}" button`);
    }
    await screenshot('approval');
    await dialog.locator('.monaco-button', { hasText: 'Allow once' }).click();
    const second = page.locator('.monaco-dialog-box', { hasText: 'echo airlock-denied' });
    await second.waitFor({ timeout: 30000 });
    await second.locator('.monaco-button', { hasText: /^Deny$/ }).click();
    await eventually('the turn to end', async () => (await outputText()).includes('turn ended'), 30000);
    const out = await outputText();
    assert(out.includes('Understood, three stays'), `the agent was not told the rejection reason:\n${out}`);
  });

  await check('telemetry view counts events', async () => {
    await runCommand('Airlock: Focus on Telemetry View');
    const view = page.locator('.pane', { has: page.locator('.pane-header', { hasText: 'Telemetry' }) });
    const row = (label) => view.locator('.monaco-list-row', { hasText: label }).first();
    const value = async (label) => Number((await row(label).locator('.label-description').innerText()).trim());
    // Batches arrive every 50–200 ms and the view refreshes at most every 250 ms: wait for all.
    const want = { 'Commands run': 1, 'Hunks accepted': 2, 'Hunks rejected': 1, 'Approvals asked': 2, Denials: 1, Proposals: 1 };
    await eventually(`counts ${JSON.stringify(want)}`, async () => {
      const got = {};
      for (const k of Object.keys(want)) got[k] = await value(k);
      if (JSON.stringify(got) !== JSON.stringify(want)) throw new Error(`saw ${JSON.stringify(got)}`);
      return true;
    }, 15000);
    const events = await view.innerText();
    // Newest first and only what fits the pane is rendered: check the latest turn's kinds
    // (proposal.resolved events are counted above as accepted/rejected hunks).
    for (const kind of ['approval.decided', 'command.finished', 'prompt.finished']) assert(events.includes(kind), `no ${kind} event listed`);
    await screenshot('telemetry');
  });

  await check('"Accept all in file" accepts every hunk of a new proposal', async () => {
    await openFile('lib.rs');
    await page.locator('.editor-instance:visible .view-line').first().click();
    await runCommand('Airlock: Ask the agent');
    await answerInput('rename them');
    await lenses('Accept all 2 in file').waitFor();
    await screenshot('second-proposal');
    await lenses('Accept all 2 in file').click();
    await eventually('no lenses left', async () => (await lenses('Accept').count()) === 0);
    await page.keyboard.press('Control+s');
    await eventually('disk content after save', async () => disk() === RENAMED, 10000);
  });

  await check('typing inside a hunk turns it into a conflict; Reject without a reason', async () => {
    await page.locator('.editor-instance:visible .view-line').first().click();
    await runCommand('Airlock: Ask the agent');
    await answerInput('bump two');
    await eventually('1 Accept lens', async () => (await lenses('Accept').count()) === 1);
    await page.locator('.editor-instance:visible .view-line', { hasText: /^\s+222$/ }).click();
    await page.keyboard.press('End');
    await page.keyboard.type('9');
    await eventually('the conflict lens', async () => (await lenses('\\S* ?Conflict — Accept').count()) === 1);
    await screenshot('conflict');
    await lenses('Reject').click();
    await answerInput('');
    await eventually('no lenses left', async () => (await lenses('Reject').count()) === 0);
    await page.keyboard.press('Control+s');
    await eventually('disk keeps the user\'s text', async () => disk() === RENAMED.replace('    222\n', '    2229\n'), 10000);
  });

  await check('Cancel stops a running turn', async () => {
    await runCommand('Airlock: Ask the agent');
    await answerInput('take your time');
    await eventually('the agent to be working', async () => /working/.test(await statusText()));
    await eventually('its first words', async () => (await outputText()).includes('Thinking it over.'));
    await runCommand("Airlock: Cancel the agent's turn");
    await eventually('the cancelled turn', async () => (await outputText()).includes('turn ended: cancelled'), 10000);
    await eventually('the agent to be idle', async () => /Airlock: idle/.test(await statusText()));
    assert(!(await outputText()).includes('NOT CANCELLED'), 'the turn went on after the cancel');
  });

  await check('"Trust workspace policy" trusts the workspace policy and restarts the server', async () => {
    assert(explain('echo airlock-trusted') === 'ask', 'an untrusted loosening rule must not apply');
    // (The server's policy diagnostics are not checked here: the server clears them right after
    // publishing them — reported, see the README's known issues.)
    await runCommand('Airlock: Trust workspace policy');
    const dialog = page.locator('.monaco-dialog-box', { hasText: 'policy.toml' });
    await dialog.waitFor();
    await screenshot('trust-confirm');
    await dialog.locator('.monaco-button', { hasText: /^Trust$/ }).click();
    await page.locator('.notification-toast', { hasText: 'the server reloaded it' }).waitFor({ timeout: 30000 });
    assert(explain('echo airlock-trusted') === 'allow', 'the trusted rule should now apply');
    await eventually('the restarted server in the status bar', async () => /Airlock: (stopped|idle)/.test(await statusText()), 30000);
    await screenshot('trusted');
  });

  await check('a proposal pending across a server restart stays reviewable', async () => {
    await openFile('lib.rs');
    await page.locator('.editor-instance:visible .view-line').first().click();
    await runCommand('Airlock: Ask the agent');
    await answerInput('bump two');
    await eventually('1 Accept lens', async () => (await lenses('Accept').count()) === 1);
    await runCommand('Airlock: Restart the server');
    // The restarted server announces the restored proposal (airlock/proposal "created"), so the
    // extension renders it again with its own lenses, not the server's plain ones.
    await eventually('1 Accept lens after the restart', async () => (await lenses('Accept').count()) === 1, 30000);
    assert((await page.locator('.codelens-decoration a', { hasText: /Accept hunk/ }).count()) === 0, 'server lenses shown too');
    await eventually('1 pending hunk in the status bar', async () => /1 pending hunk\b/.test(await statusText()));
    await screenshot('after-restart');
    await lenses('Accept').first().click();
    await eventually('buffer shows 2222', async () => (await editorText()).includes('    2222'));
    await page.keyboard.press('Control+s');
    await eventually('disk content after save', async () => disk() === BUMPED, 10000);
  });
}

/** What the policy decides for a command, asked from outside the editor (same dirs as the server). */
function explain(command) {
  const r = spawnSync(BIN, ['policy', 'explain', '--workspace', ws, '--command', command, '--json'], { env, encoding: 'utf8' });
  return JSON.parse(r.stdout).decision;
}

let fatal;
try {
  await main();
} catch (err) {
  fatal = err;
  console.log(`FAIL harness: ${err.message}`);
} finally {
  if (browser) await browser.close().catch(() => {});
  if (cs && cs.exitCode === null) {
    cs.kill('SIGTERM');
    await new Promise((r) => setTimeout(r, 500));
    if (cs.exitCode === null) cs.kill('SIGKILL');
  }
}
writeFileSync(join(OUT, 'code-server.log'), csOut);
// Keep the server's log with the screenshots; drop the rest (workspace, dirs, binary copy).
const serverLogs = join(env.XDG_STATE_HOME, 'airlock', 'logs');
if (existsSync(serverLogs)) cpSync(serverLogs, join(OUT, 'airlock-logs'), { recursive: true });
if (!process.env.E2E_KEEP) rmSync(tmp, { recursive: true, force: true });
console.log(`screenshots and logs: ${OUT}${process.env.E2E_KEEP ? `; workspace and state: ${tmp}` : ''}`);
const passed = results.filter((r) => r.ok).length;
const failed = results.length - passed + (fatal ? 1 : 0);
console.log(`${passed} passed, ${failed} failed`);
process.exit(failed ? 1 : 0);
