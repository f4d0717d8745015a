/**
 * Compile-time guarantees: each `@ts-expect-error` line below is a classic htmx-SSE
 * mistake the prop types reject. `npm run typecheck` fails if any of them compiles
 * (an unused `@ts-expect-error` is an error). The function is never called.
 */
import t from 'tap'
import { NotificationItem, ProgressBar, RunDetail, SseConnect } from '../views/index.js'
import { Oob, SseSink, SseSwap } from '../views/sse.js'

export function mistakes (): JSX.Element[] {
  return [
    // @ts-expect-error sse-swap on the connection element swaps the whole subtree
    <SseConnect url='/s' sse-swap='cpu' />,
    // @ts-expect-error hx-swap belongs on each swap target, not the connection
    <SseConnect url='/s' hx-swap='outerHTML' />,
    // @ts-expect-error the page connection is a sink: updates target their elements by id, no children
    <SseConnect url='/s'><div /></SseConnect>,
    // @ts-expect-error only htmx 2 and 4 exist
    <SseConnect htmx={3} url='/s' />,
    // @ts-expect-error topics are the route's choice (reply.sse({ topics })), not the page's
    <SseConnect url='/s' topics={['cpu', 'mem']} />,
    // @ts-expect-error a swap target without an event name never receives anything
    <SseSwap swap='innerHTML' />,
    // @ts-expect-error unknown swap style (typo)
    <SseSwap event='cpu' swap='innerHtml' />,
    // @ts-expect-error an out-of-band sink needs at least one event
    <SseSink events={[]} />,
    // @ts-expect-error an OOB fragment without a target id does nothing
    <Oob swap='beforeend'>x</Oob>,
    // @ts-expect-error hx-swap-oob does not accept arbitrary selectors: the target is `id`
    <Oob id='feed' swap='beforeend:#other'>x</Oob>,
    // @ts-expect-error notification level is a closed set
    <NotificationItem id='n' level='fatal' text='x' at={0} />,
    // @ts-expect-error progress value is a number (clamped), not a string
    <ProgressBar value='50%' label='x' />,
    // @ts-expect-error run status is a closed set
    <RunDetail run={{ id: 'r', status: 'queued' }} />,
  ]
}

t.test('type-level mistakes are compile errors (checked by tsc)', async (t) => {
  t.type(mistakes, 'function')
})

// The run statuses the store keeps and the ones the views render are one list (the views never import runs/).
{
  type Same<A, B> = [A] extends [B] ? ([B] extends [A] ? true : false) : false
  const same: Same<import('../runs/store.js').RunStatus, import('../views/run.js').RunStatus> = true
  t.ok(same)
  const { RUN_STATUSES: stored } = await import('../runs/store.js')
  const { RUN_STATUSES: rendered } = await import('../views/run.js')
  t.same(stored, rendered, 'the store and the views list the same statuses')
}
