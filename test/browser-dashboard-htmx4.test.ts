/** The dashboard e2e suite (test/helpers/dashboard-suite.ts) under htmx 4.0.x + hx-sse. */
import { dashboardSuite } from './helpers/dashboard-suite.js'

dashboardSuite(4)
