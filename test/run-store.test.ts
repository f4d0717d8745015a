import t from 'tap'
import { MemoryRunStore } from '../runs/store.js'
import { runStoreContract } from './helpers/run-store-contract.js'

runStoreContract(t, async () => new MemoryRunStore())
