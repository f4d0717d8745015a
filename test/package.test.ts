/**
 * What `npm pack` ships, built into a temporary folder (the checkout's own
 * dist/ is never touched): dist with types for every export, README,
 * LICENSE, nothing else, and no `@internal` member in any declaration.
 */
import t from 'tap'
import { execFileSync } from 'node:child_process'
import { copyFileSync, mkdtempSync, readdirSync, readFileSync, rmSync, symlinkSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { createRequire } from 'node:module'
import { join } from 'node:path'

const require = createRequire(import.meta.url)

function walk (dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap(e => e.isDirectory() ? walk(join(dir, e.name)) : [join(dir, e.name)])
}

t.test('npm pack: dist with types for every export, README, LICENSE, no tests or sources, no @internal', async t => {
  const dir = mkdtempSync(join(tmpdir(), 'htmx-sse-pack-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  execFileSync(process.execPath, [require.resolve('typescript/bin/tsc'), '-p', 'tsconfig.build.json', '--outDir', join(dir, 'dist')], { stdio: 'inherit' })
  for (const f of ['package.json', 'README.md', 'LICENSE']) copyFileSync(f, join(dir, f))
  const listing = execFileSync('npm', ['pack', '--dry-run', '--json', '--ignore-scripts'], { cwd: dir, encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] })
  const files: string[] = JSON.parse(listing)[0].files.map((f: { path: string }) => f.path)
  t.ok(files.includes('README.md') && files.includes('LICENSE') && files.includes('package.json'))
  const pkg = JSON.parse(readFileSync('package.json', 'utf8')) as { exports: Record<string, { types?: string, default?: string }> }
  for (const [name, target] of Object.entries(pkg.exports)) {
    if (typeof target === 'string') continue
    t.ok(files.includes(target.types!.replace(/^\.\//, '')), `${name}: types shipped`)
    t.ok(files.includes(target.default!.replace(/^\.\//, '')), `${name}: code shipped`)
  }
  t.same(files.filter(f => /(^|\/)test\/|\.test\.|^bench\/|^example-app\/|\.map$|\.tsx?$/.test(f) && !f.endsWith('.d.ts')), [], 'no tests, bench, example app, sources or maps')
  const declarations = walk(join(dir, 'dist')).filter(f => f.endsWith('.d.ts'))
  t.ok(declarations.length > 10, `${declarations.length} declaration files`)
  t.same(declarations.filter(f => readFileSync(f, 'utf8').includes('@internal')).map(f => f.slice(dir.length + 1)), [], 'no declaration mentions @internal')
  // The stripped declarations still type-check on their own, as a user's compiler sees them.
  symlinkSync(join(process.cwd(), 'node_modules'), join(dir, 'node_modules'))
  execFileSync(process.execPath, [require.resolve('typescript/bin/tsc'), '--noEmit', '--strict', '--skipLibCheck', 'false',
    '--module', 'nodenext', '--moduleResolution', 'nodenext', '--jsx', 'react-jsx', '--jsxImportSource', '@kitajs/html', '--types', 'node',
    ...declarations], { cwd: dir, stdio: 'inherit' })
  t.pass('the declarations type-check')
})
