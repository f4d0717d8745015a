/** Child processes for tests: a free loopback port, a TypeScript entry run the way `npm start` runs it, and a wait until it answers HTTP. */
import { spawn, type ChildProcess } from 'node:child_process'
import net from 'node:net'
import { request } from './sse-client.js'

export async function freePort (): Promise<number> {
  return await new Promise((resolve, reject) => {
    const server = net.createServer()
    server.once('error', reject)
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as net.AddressInfo
      server.close(() => resolve(port))
    })
  })
}

/** Runs `file` with tsx under the package's source condition (imports by package name resolve to the sources). */
export function spawnTsx (file: string, env: Record<string, string> = {}, options: { capture?: boolean } = {}): ChildProcess {
  return spawn(process.execPath, ['--conditions=htmx-sse-source', '--import', 'tsx', file], {
    // A developer's LLM keys would make the example app's agent call a real model: tests use no network.
    env: { ...process.env, ANTHROPIC_API_KEY: '', OPENAI_API_KEY: '', ...env },
    stdio: options.capture === true ? ['ignore', 'pipe', 'pipe'] : ['ignore', 'ignore', 'inherit']
  })
}

/** Resolves once `url` answers at all (any status); throws if `child` exits first or after `timeoutMs`. */
export async function waitForHttp (url: string, child: ChildProcess, timeoutMs = 30_000): Promise<number> {
  const deadline = Date.now() + timeoutMs
  for (;;) {
    try { return (await request(url)).status } catch {}
    if (Date.now() > deadline || child.exitCode !== null) throw new Error(`${url} did not start answering`)
    await new Promise(resolve => setTimeout(resolve, 200))
  }
}
