/**
 * The `htmx-sse-source` export condition points this checkout's tests,
 * `npm start` and TypeScript at the sources; the tarball ships only dist/,
 * so a published manifest with it would name files that are not there.
 * npm packs package.json as it is on disk after `prepack`: `strip` writes it
 * without the condition (keeping the checkout's copy aside) and `restore`
 * (`postpack`) puts the checkout's copy back.
 *
 *   node scripts/pack-manifest.mjs strip|restore
 */
import { existsSync, readFileSync, renameSync, writeFileSync } from 'node:fs'
import { fileURLToPath } from 'node:url'

export const SOURCE_CONDITION = 'htmx-sse-source'
const MANIFEST = 'package.json'
const KEPT = '.package.json.checkout'

/** The manifest as published: every `exports` entry without the source condition. */
export function publishedManifest (pkg) {
  const strip = target => {
    if (target === null || typeof target !== 'object') return target
    return Object.fromEntries(Object.entries(target).filter(([key]) => key !== SOURCE_CONDITION).map(([key, value]) => [key, strip(value)]))
  }
  return { ...pkg, exports: strip(pkg.exports) }
}

function restore () {
  if (existsSync(KEPT)) renameSync(KEPT, MANIFEST)
}

function stripManifest () {
  // A pack that stopped before postpack left the checkout's copy aside: start from it.
  restore()
  const text = readFileSync(MANIFEST, 'utf8')
  writeFileSync(KEPT, text)
  writeFileSync(MANIFEST, JSON.stringify(publishedManifest(JSON.parse(text)), null, 2) + '\n')
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const command = process.argv[2]
  if (command === 'strip') stripManifest()
  else if (command === 'restore') restore()
  else {
    console.error('usage: node scripts/pack-manifest.mjs strip|restore')
    process.exit(2)
  }
}
