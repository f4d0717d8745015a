import t from 'tap'
import { execFileSync } from 'node:child_process'
import { readFileSync } from 'node:fs'

t.test('npm pack: dist with types for every export, README, LICENSE, no tests or sources', async t => {
  execFileSync('npm', ['run', 'build'], { stdio: 'ignore' })
  const listing = execFileSync('npm', ['pack', '--dry-run', '--json', '--ignore-scripts'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] })
  const files: string[] = JSON.parse(listing)[0].files.map((f: { path: string }) => f.path)
  t.ok(files.includes('README.md') && files.includes('LICENSE') && files.includes('package.json'))
  const pkg = JSON.parse(readFileSync('package.json', 'utf8')) as { exports: Record<string, { types?: string, default?: string }> }
  for (const [name, target] of Object.entries(pkg.exports)) {
    if (typeof target === 'string') continue
    t.ok(files.includes(target.types!.replace(/^\.\//, '')), `${name}: types shipped`)
    t.ok(files.includes(target.default!.replace(/^\.\//, '')), `${name}: code shipped`)
  }
  t.same(files.filter(f => /(^|\/)test\/|\.test\.|^bench\/|^example-app\/|\.map$|\.tsx?$/.test(f) && !f.endsWith('.d.ts')), [], 'no tests, bench, example app, sources or maps')
})
