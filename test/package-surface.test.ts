/**
 * The public surface as a user meets it: how many names each entry point
 * exports (runtime and types, counted by the TypeScript checker), that the
 * classes the plugin makes are types only, and the package as `npm pack`
 * ships it, installed into an empty app with npm (its export map, its peers,
 * its engines). The build goes to a temporary folder: the checkout's own
 * dist/ and package.json are never touched.
 */
import t from 'tap'
import ts from 'typescript'
import { execFileSync, spawn, spawnSync } from 'node:child_process'
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { createRequire } from 'node:module'
import { join, resolve } from 'node:path'
import { connect as connectSse, request } from './helpers/sse-client.js'
import { waitForHttp } from './helpers/process.js'

const require = createRequire(import.meta.url)
const tsc = require.resolve('typescript/bin/tsc')
const SOURCE = 'htmx-sse-source'

type Target = string | { [condition: string]: Target }
interface Manifest {
  name: string
  engines: { node: string }
  exports: Record<string, Target>
  scripts: Record<string, string>
  dependencies?: Record<string, string>
  peerDependencies?: Record<string, string>
  peerDependenciesMeta?: Record<string, { optional?: boolean }>
}
const pkg = JSON.parse(readFileSync('package.json', 'utf8')) as Manifest

/**
 * Exported names per entry point: every one is a promise kept under semver.
 * The core entry stays ≤ 40 and the package ≤ 100 in all.
 */
/** Exported names (runtime and types) per entry point: each is a promise kept under semver. */
const BUDGET: Record<string, number> = { '.': 26, './views': 34, './routes': 22, './runs': 12, './redis': 2, './runs/redis': 2, './testing': 1, './metrics': 1 }

function sourceOf (entry: string): string {
  const target = pkg.exports[entry]
  if (target === undefined || typeof target === 'string' || typeof target[SOURCE] !== 'string') throw new Error(`${entry}: no ${SOURCE} condition`)
  return resolve(target[SOURCE])
}

function walk (dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap(e => e.isDirectory() ? walk(join(dir, e.name)) : [join(dir, e.name)])
}

/** Every file path an export map names, under any condition. */
function exportPaths (target: Target): string[] {
  return typeof target === 'string' ? [target] : Object.values(target).flatMap(exportPaths)
}

function hasCondition (target: Target, condition: string): boolean {
  return typeof target !== 'string' && Object.entries(target).some(([key, value]) => key === condition || hasCondition(value, condition))
}

const entries = Object.keys(pkg.exports).filter(e => e !== './package.json')

t.test('exported names per entry point stay within budget; the plugin\'s classes are types only', async t => {
  const config = ts.readConfigFile('tsconfig.json', ts.sys.readFile)
  const { options } = ts.parseJsonConfigFileContent(config.config, ts.sys, process.cwd())
  // A user's file, compiled with the entry: what it may and may not do with the exports.
  const consumer = resolve('test/__surface_consumer__.ts')
  const consumerText = [
    "import { errors, memoryTransport, SseHub, SseStream, type HubTransport } from '../plugin/index.js'",
    'export const transport: HubTransport = memoryTransport({ history: 10 })',
    'export const refused = new errors.SseForbiddenError()',
    'export const hub = new SseHub()',
    'export const stream = new SseStream()'
  ].join('\n')
  const host = ts.createCompilerHost(options)
  const getSourceFile = host.getSourceFile.bind(host)
  host.getSourceFile = (file, language, onError) => file === consumer ? ts.createSourceFile(file, consumerText, language) : getSourceFile(file, language, onError)
  const fileExists = host.fileExists.bind(host)
  host.fileExists = file => file === consumer || fileExists(file)
  const program = ts.createProgram([...entries.map(sourceOf), consumer], options, host)
  const checker = program.getTypeChecker()

  const counts: Record<string, string[]> = {}
  for (const entry of entries) {
    const file = program.getSourceFile(sourceOf(entry))!
    counts[entry] = checker.getExportsOfModule(checker.getSymbolAtLocation(file)!).map(s => s.name)
  }
  t.comment(Object.entries(counts).map(([entry, names]) => `${entry}: ${names.length}`).join(', '))
  t.same(Object.keys(BUDGET).sort(), [...entries].sort(), 'every entry point has a budget')
  for (const entry of entries) {
    const allowed = BUDGET[entry]!
    t.ok(counts[entry]!.length <= allowed, `${entry}: ${counts[entry]!.length} names, budget ${allowed}: ${counts[entry]!.join(' ')}`)
  }
  const budgets = Object.values(BUDGET).reduce((a, b) => a + b, 0)
  t.ok(BUDGET['.']! <= 40 && budgets <= 100, `budgets: core ${BUDGET['.']} ≤ 40, ${budgets} in all ≤ 100`)
  const total = Object.values(counts).reduce((sum, names) => sum + names.length, 0)
  t.ok(total <= 100, `${total} names in all ≤ 100`)

  // The hub and streams are made by the plugin (their constructors are
  // @internal, so a published class would type-check `new SseHub()`).
  const diagnostics = ts.getPreEmitDiagnostics(program, program.getSourceFile(consumer))
  const byLine = new Map<number, number[]>()
  for (const d of diagnostics) {
    const line = d.file!.getLineAndCharacterOfPosition(d.start!).line + 1
    byLine.set(line, [...byLine.get(line) ?? [], d.code])
  }
  t.same([...byLine.keys()].sort(), [4, 5], 'the imports, the factory and an error class compile')
  // TS1362: "cannot be used as a value because it was exported using 'export type'".
  t.ok(byLine.get(4)?.includes(1362) && byLine.get(5)?.includes(1362), '`new SseHub()` and `new SseStream()` do not: they are types')
})

t.test('runtime exports: functions and one errors object, no class', async t => {
  const core = await import('fastify-htmx-sse')
  t.same(Object.keys(core).sort(), ['default', 'errors', 'memoryTransport'])
  t.same(Object.keys(await import('fastify-htmx-sse/redis')).sort(), ['redisTransport'])
  t.same(Object.keys(await import('fastify-htmx-sse/metrics')).sort(), ['sseMetrics'])
  for (const entry of ['fastify-htmx-sse', 'fastify-htmx-sse/views', 'fastify-htmx-sse/redis', 'fastify-htmx-sse/metrics']) {
    const module = await import(entry) as Record<string, unknown>
    const classes = Object.keys(module).filter(name => typeof module[name] === 'function' && /^class\b/.test(Function.prototype.toString.call(module[name])))
    t.same(classes, [], `${entry}: no class to construct`)
  }
  const codes = Object.values(core.errors).map(E => new (E as new () => { code: string })().code)
  t.ok(codes.length > 10 && codes.every(code => /^HTMX_SSE_[A-Z_]+$/.test(code)), 'every error has a stable code')
  t.equal(new Set(codes).size, codes.length, 'codes are unique')
  t.ok(codes.includes('HTMX_SSE_INVALID_OPTION') && codes.includes('HTMX_SSE_MISSING_PEER'))
})

t.test('the package as published: export map, peers, engines, types; installed with npm into an empty app', async t => {
  const dir = mkdtempSync(join(tmpdir(), 'htmx-sse-pack-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  const src = join(dir, 'src')
  mkdirSync(join(src, 'scripts'), { recursive: true })
  execFileSync(process.execPath, [tsc, '-p', 'tsconfig.build.json', '--outDir', join(src, 'dist')], { stdio: 'inherit' })
  for (const f of ['README.md', 'LICENSE', 'scripts/pack-manifest.mjs']) copyFileSync(f, join(src, f))
  // The real prepack/postpack, with the build already done above.
  const manifest = JSON.stringify({ ...pkg, scripts: { ...pkg.scripts, build: 'node -e ""' } }, null, 2)
  writeFileSync(join(src, 'package.json'), manifest)
  const packed = JSON.parse(execFileSync('npm', ['pack', '--json', '--pack-destination', dir], { cwd: src, encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }))[0] as { filename: string, files: Array<{ path: string }> }
  t.equal(readFileSync(join(src, 'package.json'), 'utf8'), manifest, 'postpack restored the manifest')
  t.notOk(existsSync(join(src, '.package.json.checkout')))

  const files = packed.files.map(f => f.path)
  const tarball = join(dir, packed.filename)
  const shipped = JSON.parse(execFileSync('tar', ['-xzOf', tarball, 'package/package.json'], { encoding: 'utf8' })) as Manifest
  t.ok(files.includes('README.md') && files.includes('LICENSE') && files.includes('package.json'))
  t.same(entries.filter(e => hasCondition(shipped.exports[e]!, SOURCE)), [], `no ${SOURCE} condition in the published export map`)
  for (const [entry, target] of Object.entries(shipped.exports)) {
    for (const path of exportPaths(target)) t.ok(files.includes(path.replace(/^\.\//, '')), `${entry}: ${path} is in the tarball`)
  }
  t.same(files.filter(f => /(^|\/)test\/|\.test\.|^bench\/|^example-app\/|^scripts\/|\.map$|\.tsx?$/.test(f) && !f.endsWith('.d.ts')), [], 'no tests, bench, example app, scripts, sources or maps')
  const declarations = walk(join(src, 'dist')).filter(f => f.endsWith('.d.ts'))
  t.ok(declarations.length > 10, `${declarations.length} declaration files`)
  t.same(declarations.filter(f => readFileSync(f, 'utf8').includes('@internal')).map(f => f.slice(src.length + 1)), [], 'no declaration mentions @internal')

  t.equal(shipped.dependencies?.fastify, undefined, 'fastify is not a dependency')
  t.match(shipped.peerDependencies, { fastify: /^\^5/, ioredis: String, systeminformation: String, 'prom-client': String }, 'fastify, ioredis, systeminformation and prom-client are peers')
  t.match(shipped.peerDependencies, { ai: String, '@anthropic-ai/sdk': String }, 'the LLM SDKs of the agent adapters are peers')
  t.match(shipped.peerDependenciesMeta, { ioredis: { optional: true }, systeminformation: { optional: true }, 'prom-client': { optional: true }, ai: { optional: true }, '@anthropic-ai/sdk': { optional: true } })
  t.notOk(shipped.peerDependenciesMeta?.fastify?.optional, 'fastify is a required peer')

  // The stripped declarations type-check on their own, as a user's compiler sees them.
  symlinkSync(join(process.cwd(), 'node_modules'), join(src, 'node_modules'))
  execFileSync(process.execPath, [tsc, '--noEmit', '--strict', '--skipLibCheck', 'false',
    '--module', 'nodenext', '--moduleResolution', 'nodenext', '--jsx', 'react-jsx', '--jsxImportSource', '@kitajs/html', '--types', 'node',
    ...declarations], { cwd: src, stdio: 'inherit' })

  // An empty app installs the tarball (npm brings the required peer, fastify; not the optional ones).
  const app = join(dir, 'app')
  mkdirSync(app)
  writeFileSync(join(app, 'package.json'), JSON.stringify({ name: 'app', version: '1.0.0', private: true, type: 'module' }))
  const install = spawnSync('npm', ['install', '--prefer-offline', '--no-audit', '--no-fund', '--loglevel=warn', tarball], { cwd: app, encoding: 'utf8', timeout: 120_000 })
  t.equal(install.status, 0, 'npm install succeeds')
  if (install.status !== 0) t.comment(install.stderr)
  const badEngines = [...install.stderr.matchAll(/EBADENGINE +package: '([^']+)'/g)].map(m => m[1])
  const claimed = /^>=(\d+)$/.exec(pkg.engines.node)
  t.ok(claimed, `engines.node is a lower bound: ${pkg.engines.node}`)
  if (Number(process.versions.node.split('.')[0]) >= Number(claimed![1])) {
    t.same(badEngines, [], `no EBADENGINE on Node ${process.version}, which engines claims`)
  } else {
    t.ok(badEngines.includes(`${pkg.name}@0.1.0`), `Node ${process.version} is not claimed, and npm says so`)
  }
  t.ok(existsSync(join(app, 'node_modules/fastify/package.json')), 'the fastify peer is installed')
  t.notOk(existsSync(join(app, 'node_modules/systeminformation')), 'the optional systeminformation is not')
  t.notOk(existsSync(join(app, 'node_modules/prom-client')), 'nor the optional prom-client')

  // Plain Node, no conditions: every export resolves; the metrics sampler says what it misses.
  const probe = `
    const out = {}
    for (const entry of ${JSON.stringify(entries.map(e => `${pkg.name}${e.slice(1)}`))}) out[entry] = Object.keys(await import(entry)).length
    const { systemSampler } = await import('${pkg.name}/routes')
    out.sampler = await systemSampler().sample().then(() => 'sampled', err => ({ code: err.code, message: err.message }))
    const { default: Fastify } = await import('fastify')
    const { default: htmxSse } = await import('${pkg.name}')
    const { sseMetrics } = await import('${pkg.name}/metrics')
    const metricsApp = Fastify()
    await metricsApp.register(htmxSse, {})
    out.metrics = await metricsApp.register(sseMetrics).ready().then(() => 'registered', err => ({ code: err.code, message: err.message }))
    await metricsApp.close()
    const { aiSdkAgent } = await import('${pkg.name}/runs')
    out.aiSdk = await aiSdkAgent({ model: 'any' }).run('hi', new AbortController().signal)[Symbol.asyncIterator]().next().then(() => 'ran', err => ({ code: err.code, message: err.message }))
    console.log(JSON.stringify(out))`
  const ran = JSON.parse(execFileSync(process.execPath, ['--input-type=module', '-e', probe], { cwd: app, encoding: 'utf8' })) as Record<string, unknown>
  for (const entry of entries) t.ok((ran[`${pkg.name}${entry.slice(1)}`] as number) > 0, `${entry} imports from the installed package`)
  t.match(ran.sampler, { code: 'HTMX_SSE_MISSING_PEER', message: /systemSampler.*systeminformation: npm install systeminformation/ }, 'a missing optional peer is a coded, clear error')
  t.match(ran.metrics, { code: 'HTMX_SSE_MISSING_PEER', message: /sseMetrics.*prom-client: npm install prom-client/ }, 'sseMetrics without prom-client: the same')
  t.match(ran.aiSdk, { code: 'HTMX_SSE_MISSING_PEER', message: /^aiSdkAgent\(\) needs the optional peer dependency ai: npm install ai$/ }, 'so is the AI SDK, when a run of its adapter starts')

  // A user's TypeScript against the installed declarations.
  writeFileSync(join(app, 'consumer.ts'), [
    "import Fastify from 'fastify'",
    "import htmxSse, { errors, SseHub, type SseEvent } from 'fastify-htmx-sse'",
    "import { redisTransport } from 'fastify-htmx-sse/redis'",
    'const app = Fastify()',
    'await app.register(htmxSse, { history: 10 })',
    "export const event: SseEvent = { data: 'x' }",
    "export const failed = (err: { code?: string }) => err.code === new errors.SseInvalidOptionError('a', 'b').code",
    'export const factory = redisTransport',
    'export const hub = new SseHub()'
  ].join('\n'))
  const checked = spawnSync(process.execPath, [tsc, '--noEmit', '--strict', '--skipLibCheck', '--module', 'nodenext', '--moduleResolution', 'nodenext',
    '--target', 'es2022', '--types', 'node', '--typeRoots', join(process.cwd(), 'node_modules/@types'), 'consumer.ts'], { cwd: app, encoding: 'utf8' })
  t.same(checked.stdout.trim().split('\n').map(line => /^consumer\.ts\((\d+),\d+\): error (TS\d+)/.exec(line)?.slice(1).join(':') ?? line), ['9:TS1362'],
    'only `new SseHub()` fails: the hub is a type in the published declarations')

  // The README's "Use it in your app", followed as written: its tsconfig and its
  // live page, compiled by tsc against the installed package, run with plain Node.
  const readme = readFileSync('README.md', 'utf8')
  const use = readme.slice(readme.indexOf('## Use it in your app'), readme.indexOf('## Recipes'))
  const tsconfig = /```json\n([\s\S]*?)```/.exec(use)?.[1]
  const page = /### A live page[\s\S]*?```tsx\n([\s\S]*?)```/.exec(use)?.[1]
  t.ok(tsconfig !== undefined && page !== undefined, 'the README has the tsconfig and the page')
  rmSync(join(app, 'consumer.ts'))
  writeFileSync(join(app, 'tsconfig.json'), tsconfig!)
  mkdirSync(join(app, 'node_modules/@types'), { recursive: true })
  symlinkSync(join(process.cwd(), 'node_modules/@types/node'), join(app, 'node_modules/@types/node'))
  const port = 20_000 + Math.floor(Math.random() * 20_000)
  writeFileSync(join(app, 'server.tsx'), `${page!}\nawait app.listen({ port: ${port}, host: '127.0.0.1' })\n`)
  const built = spawnSync(process.execPath, [tsc, '-p', '.'], { cwd: app, encoding: 'utf8' })
  t.equal(built.status, 0, `the README page compiles with the README tsconfig: ${built.stdout}`)
  const server = spawn(process.execPath, ['dist/server.js'], { cwd: app, stdio: ['ignore', 'ignore', 'inherit'], env: { ...process.env, SSE_SECRET: 'readme-secret-0123456789abcdef' } })
  t.teardown(() => { server.kill() })
  const base = `http://127.0.0.1:${port}`
  await waitForHttp(`${base}/orders`, server)
  await request(`${base}/orders/first`, { method: 'POST' })
  const html = (await request(`${base}/orders`)).body
  t.match(html, /^<!doctype html><html><head><script src="\/_sse\/assets\/htmx\.min\.js">/, 'reply.html with the live scripts')
  t.match(html, /<li id="order-1">first<\/li>/)
  const connect = /sse-connect="([^"]+)"/.exec(html)![1]!.replace(/&amp;/g, '&')
  const stream = await connectSse(`${base}${connect}&sseResume=1`)
  t.teardown(() => stream.close())
  t.equal(stream.status, 200)
  await request(`${base}/orders/second`, { method: 'POST' })
  const [event] = await stream.waitFor(1)
  t.match(event!.data, /id="order-2"/, 'the published Prepend streams to the page')
})
