/**
 * The hub-transport contract and the model-based test on the in-process
 * (memory) transport.
 */
import t from 'tap'
import { memoryBackend, transportContract } from './helpers/transport-conformance.js'
import { modelTest } from './helpers/transport-model.js'

transportContract(t, memoryBackend())

const seed = Number(process.env.CONF_SEED ?? 20260421)
t.test('model: random interleavings of publishes, subscribers and restarts', async t => {
  await modelTest(t, memoryBackend(), undefined, { seed, numRuns: Number(process.env.CONF_RUNS ?? 40), maxActions: 30 })
})
