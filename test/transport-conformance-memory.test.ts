/**
 * The hub-transport contract and the model-based test on the in-process
 * (memory) transport.
 */
import t from 'tap'
import { memoryBackend, transportContract } from './helpers/transport-conformance.js'

transportContract(t, memoryBackend())
