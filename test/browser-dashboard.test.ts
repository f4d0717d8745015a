/** The dashboard e2e suite (test/helpers/dashboard-suite.ts) under htmx 2.0.x + htmx-ext-sse. */
import { dashboardSuite } from './helpers/dashboard-suite.js'

dashboardSuite(2)
