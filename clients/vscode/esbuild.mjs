// Bundles the extension (and, with --tests, the unit tests) with esbuild.
//   node esbuild.mjs              development bundle with source maps -> dist/extension.js
//   node esbuild.mjs --production minified bundle, as packed into the .vsix
//   node esbuild.mjs --watch      rebuild on change
//   node esbuild.mjs --tests      also bundle test/unit/*.test.ts -> out/test/unit/
// The policy schema is copied from the repository's schemas/ so `tomlValidation` can point
// at a file inside the extension.
import * as esbuild from 'esbuild';
import { copyFileSync, mkdirSync, readdirSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const args = new Set(process.argv.slice(2));
const production = args.has('--production');

mkdirSync(join(here, 'dist'), { recursive: true });
copyFileSync(join(here, '..', '..', 'schemas', 'policy.schema.json'), join(here, 'dist', 'policy.schema.json'));

const extension = {
  entryPoints: [join(here, 'src', 'extension.ts')],
  bundle: true,
  outfile: join(here, 'dist', 'extension.js'),
  external: ['vscode'],
  format: 'cjs',
  platform: 'node',
  target: 'node18',
  sourcemap: !production,
  minify: production,
  logLevel: 'warning',
};

if (args.has('--watch')) {
  const ctx = await esbuild.context(extension);
  await ctx.watch();
} else {
  await esbuild.build(extension);
}

if (args.has('--tests')) {
  const dir = join(here, 'test', 'unit');
  await esbuild.build({
    entryPoints: readdirSync(dir).filter((f) => f.endsWith('.test.ts')).map((f) => join(dir, f)),
    bundle: true,
    outdir: join(here, 'out', 'test', 'unit'),
    external: ['vscode'],
    format: 'cjs',
    platform: 'node',
    target: 'node18',
    sourcemap: true,
    logLevel: 'warning',
  });
}
