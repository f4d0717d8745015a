/**
 * Styles for the route modules' own markup (forms, stats, the
 * dashboard frame), on top of the views' stylesheet and its CSS variables.
 */
export const routeStyles = `
main.app.stack,.stack{display:grid;gap:16px}
.small{font-size:.8rem}
.card>header h2{margin:0}
.card>header{flex-wrap:wrap}
.slot{display:grid;min-width:0}
.slot>.card{height:100%}
.row{display:flex;gap:8px;align-items:center;flex-wrap:wrap}
.row input:not([type=checkbox]){flex:1;min-width:0}
input:not([type=checkbox]),select{padding:7px 10px;border:1px solid var(--line);border-radius:8px;background:var(--bg);color:var(--fg);font:inherit}
input[aria-invalid=true],select[aria-invalid=true]{border-color:var(--crit);outline-color:var(--crit)}
button.secondary{background:transparent;color:var(--fg);border:1px solid var(--line)}
button:hover{filter:brightness(1.08)}
.check{display:flex;gap:6px;align-items:center;font-size:.9rem;color:var(--muted)}
.stack-form{margin:0 0 12px}
.form-error{color:var(--crit);margin:6px 0 0;font-size:.85rem}
.form-error:empty{display:none}
.form-ok{color:var(--ok);margin:6px 0 0;font-size:.85rem}
.inline-form{margin:0}
.inline-form button{padding:4px 12px;font-size:.85rem}
.feed:not(:empty)~.empty-hint{display:none}
.feed{max-height:300px}
.note .text{grid-column:1/-1;overflow-wrap:anywhere}
.cores-card .cores{height:92px;margin-top:14px}
.stats-grid{display:grid;grid-template-columns:repeat(2,minmax(0,1fr));gap:10px 16px;margin:4px 0 0}
.stat dt{font-size:.72rem;color:var(--muted);text-transform:uppercase;letter-spacing:.05em}
.stat dd{margin:0;font-size:1.25rem;font-weight:650;font-variant-numeric:tabular-nums}
.stat.warn dd .num{color:var(--warn)}
.topics-line{margin:10px 0 0;overflow-wrap:anywhere}
.agent-slot{margin-top:10px}
.agent-run .prompt{margin:0 0 2px}
.agent-run q{font-style:italic}
.agent-output{max-height:340px;overflow-y:auto;padding-right:4px}
.agent-output .tool{background:var(--bg)}
.room-list{list-style:none;display:grid;gap:8px}
.chat{height:420px}
`
