/**
 * Small pieces shared by the route modules: the Fastify plugins and helpers
 * their forms use, and their page shell.
 */
import { Ajv } from 'ajv'
import type { FastifyInstance, FastifyPluginAsync, FastifyPluginOptions, FastifyRequest } from 'fastify'
import fp from 'fastify-plugin'
import { formsAndAccepts, pageScope } from '../plugin/pages.js'
import { assetScripts } from '../plugin/assets.js'
import { routeStyles } from './styles.js'
import type { Children } from '@kitajs/html'
import { Layout, type LayoutLive } from '../views/layout.js'

/**
 * Wraps a route module: it must be registered after the core plugin (a clear
 * error at registration otherwise), keeps its own scope (`prefix` works, its
 * hooks and parsers stay inside), and gets `reply.html()` (from
 * `@kitajs/fastify-html-plugin`, unless the app already has it).
 */
export function routeModule<Options extends FastifyPluginOptions> (name: string, plugin: FastifyPluginAsync<Options>, dependencies: readonly string[] = []): FastifyPluginAsync<Options> {
  const wrapped: FastifyPluginAsync<Options> = async (app, options) => {
    await pageScope(app)
    // The module in a child scope: an error handler of its own passes what it
    // does not handle up to this one.
    await app.register(async child => await plugin(child, options))
  }
  return fp(wrapped, { fastify: '5.x', name: `fastify-htmx-sse/routes/${name}`, dependencies: ['fastify-htmx-sse', ...dependencies], encapsulate: true })
}

/** Route schemas are checked with every error reported (Fastify's default stops at the first), so a form can flag each field. */
const ajv = new Ajv({ allErrors: true })

/** A compiled schema check, shared by a route's `schema` and the module's exported `validate…` function. */
export const compileSchema = (schema: object): ReturnType<Ajv['compile']> => ajv.compile(schema)

/**
 * What a module with forms needs, in its own scope unless the app already has it:
 * urlencoded bodies (`@fastify/formbody`, 16 KiB), `request.accepts()`
 * (`@fastify/accepts`), and the validator that reports every field's problem.
 */
export async function acceptForms (app: FastifyInstance): Promise<void> {
  await formsAndAccepts(app)
  app.setValidatorCompiler(({ schema }) => compileSchema(schema))
}

/** A `preValidation` hook that trims these string fields of the body and the querystring, so schemas check the trimmed text. */
export function trimFields (...names: string[]): (request: FastifyRequest) => Promise<void> {
  return async request => {
    for (const part of [request.body, request.query]) {
      if (part !== null && typeof part === 'object') trimIn(part as Record<string, unknown>, names)
    }
  }
}

/** A shallow copy of `value` with these string fields trimmed (for the exported `validate…` functions). */
export function trimmedCopy (value: unknown, names: readonly string[]): unknown {
  if (value === null || typeof value !== 'object' || Array.isArray(value)) return value
  return trimIn({ ...value }, names)
}

function trimIn (record: Record<string, unknown>, names: readonly string[]): Record<string, unknown> {
  for (const name of names) {
    const value = record[name]
    if (typeof value === 'string') record[name] = value.trim()
  }
  return record
}

/** One Ajv error, as Fastify attaches them (`request.validationError.validation`). */
export interface SchemaError {
  keyword: string
  instancePath: string
  params: Record<string, unknown>
}

/**
 * The first problem of each field in a schema check's errors: `tooLong`
 * (maxLength) or `invalid` (missing, empty, wrong type, not allowed). An error
 * on the value itself (not an object) marks every one of `fields`.
 */
export function fieldProblems<F extends string> (errors: readonly SchemaError[] | null | undefined, fields: readonly F[]): Partial<Record<F, 'tooLong' | 'invalid'>> {
  const problems: Partial<Record<F, 'tooLong' | 'invalid'>> = {}
  for (const error of errors ?? []) {
    const name = error.keyword === 'required' ? String(error.params.missingProperty) : error.instancePath.split('/')[1] ?? ''
    for (const field of fields) {
      if (name === '' || name === field) problems[field] ??= error.keyword === 'maxLength' ? 'tooLong' : 'invalid'
    }
  }
  return problems
}

/** Characters as a schema's `maxLength` counts them (code points). */
export const charCount = (text: string): number => [...text].length

/** A string field of a parsed form or JSON body ('' when missing). */
export function field (body: unknown, name: string): string {
  if (body === null || typeof body !== 'object') return ''
  const value = (body as Record<string, unknown>)[name]
  return typeof value === 'string' ? value : ''
}

export { isHtmx, wantsJson } from '../plugin/pages.js'

/** The route modules' extra stylesheet (a constant of this package, not user input). */
export function RouteStyles (props: { nonce?: string }): JSX.Element {
  return <style nonce={props.nonce}>{routeStylesElement()}</style>
}

function routeStylesElement (): JSX.Element {
  return routeStyles
}

/**
 * A route module's page: `Layout` with the page's live scripts and the route
 * styles. `live` is the page's `reply.live(…)` (its element goes where the
 * page puts it), or `htmxScripts(app)` for a page that posts with htmx but
 * follows no topic, or nothing for a static page.
 */
export function RoutePage (props: { title: string, live?: LayoutLive, head?: Children, children?: Children }): JSX.Element {
  return (
    <Layout title={props.title} live={props.live} head={<><RouteStyles />{props.head}</>}>
      {props.children}
    </Layout>
  )
}

/** htmx and its SSE extension (htmx 2: and the resume script) for the app's major, for a page with forms but no live topic. */
export function htmxScripts (app: FastifyInstance): LayoutLive {
  const { htmx, assetsPath, resumeScriptPath } = app.htmxSse
  const [main, extension] = assetScripts(htmx)
  const src = (path: string): JSX.Element => <script src={path}></script>
  const resume = htmx === 2 ? src(resumeScriptPath === false ? '/_sse/resume.js' : resumeScriptPath) : ''
  return { scripts: <>{src(`${assetsPath}/${main}`)}{resume}{src(`${assetsPath}/${extension}`)}</>, element: '', htmx }
}
