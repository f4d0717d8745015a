// One style across plugin/, views/, routes/, runs/, example-app/, test/, bench/:
// neostandard (standard's successor) with TypeScript and JSX.
import neostandard from 'neostandard'

export default [
  ...neostandard({
    ts: true,
    ignores: ['dist/**', '.tap/**', 'node_modules/**', 'coverage/**', '.bench-out/**', 'scratch/**', 'test/tmp-*']
  }),
  {
    rules: {
      // @kitajs/html renders to strings: there is no reconciliation, so no keys.
      'react/jsx-key': 'off',
      // `<script src=…></script>` must stay an explicit pair in HTML.
      'react/self-closing-comp': 'off',
      // `void promise` marks a deliberately unawaited promise.
      'no-void': ['error', { allowAsStatement: true }]
    }
  }
]
