/**
 * The kit's stylesheet, inlined by `<Layout>` (no CDN, no build step).
 * Light and dark via `prefers-color-scheme`, a responsive grid of cards,
 * status colours (ok / warn / crit), and the layout rules the live
 * components rely on (chat and log tails anchored to the newest entry).
 */
export const styles = `
:root{color-scheme:light dark;--bg:#f6f7f9;--fg:#1b1f24;--muted:#5b6470;--card:#fff;--line:#e3e6ea;--accent:#3b6ef5;
--ok:#1f9d55;--warn:#c98a00;--crit:#d63b3b;--info:#3b6ef5;--radius:10px;--shadow:0 1px 2px rgba(0,0,0,.06),0 2px 8px rgba(0,0,0,.04);
--mono:ui-monospace,SFMono-Regular,Menlo,Consolas,monospace;font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif}
@media (prefers-color-scheme:dark){:root{--bg:#0f1217;--fg:#e6e9ee;--muted:#97a0ad;--card:#171b22;--line:#262c36;--accent:#7aa2ff;
--ok:#3ecf7a;--warn:#f0b429;--crit:#ff6b6b;--info:#7aa2ff;--shadow:0 1px 2px rgba(0,0,0,.4)}}
*,*::before,*::after{box-sizing:border-box}
body{margin:0;background:var(--bg);color:var(--fg);font-size:15px;line-height:1.45}
header.app,main.app{max-width:1280px;margin:0 auto;padding:16px 20px}
h1,h2,h3{margin:0 0 .5em;line-height:1.2}
h2{font-size:1.05rem}
.muted{color:var(--muted)}
.grid{display:grid;gap:16px;grid-template-columns:repeat(auto-fill,minmax(260px,1fr))}
.grid .wide{grid-column:1/-1}
@media (min-width:900px){.grid .span-2{grid-column:span 2}}
.card{background:var(--card);border:1px solid var(--line);border-radius:var(--radius);box-shadow:var(--shadow);padding:14px 16px;min-width:0}
.card>header{display:flex;justify-content:space-between;align-items:baseline;gap:8px;margin-bottom:6px}
.metric .label{font-size:.85rem;color:var(--muted);text-transform:uppercase;letter-spacing:.04em}
.metric .value{font-size:1.9rem;font-weight:650;font-variant-numeric:tabular-nums}
.metric .unit{font-size:.95rem;color:var(--muted);margin-left:2px}
.metric .detail{font-size:.85rem;color:var(--muted)}
.metric{border-left:4px solid var(--line)}
.status-ok{border-left-color:var(--ok)}.status-ok .value{color:var(--ok)}
.status-warn{border-left-color:var(--warn)}.status-warn .value{color:var(--warn)}
.status-crit{border-left-color:var(--crit)}.status-crit .value{color:var(--crit)}
.sparkline{display:block;width:100%;height:36px;margin-top:6px}
.sparkline polyline{fill:none;stroke:var(--accent);stroke-width:1.5;vector-effect:non-scaling-stroke}
.gauge{display:grid;gap:4px}.gauge meter{width:100%;height:12px}
.cores{list-style:none;margin:8px 0 0;padding:0;display:grid;gap:3px;grid-template-columns:repeat(auto-fill,minmax(18px,1fr));align-items:end;height:48px}
.cores li{background:var(--line);border-radius:3px;height:100%;position:relative;overflow:hidden}
.cores .bar{position:absolute;left:0;right:0;bottom:0;background:var(--ok)}
.cores .warn .bar{background:var(--warn)}.cores .crit .bar{background:var(--crit)}
.feed{list-style:none;margin:0;padding:0;display:grid;gap:6px;max-height:320px;overflow-y:auto}
.note{display:grid;grid-template-columns:auto 1fr;gap:2px 10px;padding:8px 10px;border-radius:8px;border:1px solid var(--line);border-left:4px solid var(--info)}
.note time{font-size:.8rem;color:var(--muted);font-family:var(--mono)}
.note-success{border-left-color:var(--ok)}.note-warning{border-left-color:var(--warn)}.note-error{border-left-color:var(--crit)}
.note .level{font-size:.75rem;text-transform:uppercase;font-weight:600;letter-spacing:.04em}
.progress{position:relative;height:22px;border-radius:11px;background:var(--line);overflow:hidden}
.progress .bar{height:100%;background:var(--accent);transition:width .3s ease}
.progress .pct{position:absolute;inset:0;display:flex;align-items:center;justify-content:center;font-size:.8rem;font-variant-numeric:tabular-nums}
.progress-list{display:grid;gap:10px}
.progress-item .label{font-size:.9rem;margin-bottom:3px}
.banner{padding:10px 14px;border-radius:8px;border:1px solid var(--line);font-weight:550}
.banner-success{border-color:var(--ok);color:var(--ok)}.banner-error{border-color:var(--crit);color:var(--crit)}.banner-cancelled{border-color:var(--muted);color:var(--muted)}.banner-interrupted{border-color:var(--warn);color:var(--warn)}
.chat{display:flex;flex-direction:column;gap:8px;height:380px}
.chat-scroll{flex:1;display:flex;flex-direction:column-reverse;overflow-y:auto;border:1px solid var(--line);border-radius:8px;padding:6px 8px}
.chat-messages{list-style:none;margin:0;padding:0;display:grid;gap:6px}
.msg{display:grid;grid-template-columns:auto 1fr auto;gap:0 8px;align-items:baseline}
.msg .nick{font-weight:650}.msg time{font-size:.75rem;color:var(--muted);font-family:var(--mono)}
.msg .text{grid-column:1/-1;margin:0;overflow-wrap:anywhere}
.chat-form{display:flex;gap:6px}
input,button,textarea{font:inherit;color:inherit}
.chat-form input{min-width:0;padding:7px 10px;border:1px solid var(--line);border-radius:8px;background:var(--bg)}
.chat-form input[name=text]{flex:1}
button{padding:7px 14px;border:0;border-radius:8px;background:var(--accent);color:#fff;font-weight:600;cursor:pointer}
.agent-output{white-space:pre-wrap;overflow-wrap:anywhere;font-size:.95rem}
.tool{border:1px solid var(--line);border-radius:8px;padding:8px 10px;margin:8px 0;font-size:.9rem}
.tool pre{margin:4px 0 0;font-family:var(--mono);font-size:.8rem;white-space:pre-wrap;overflow-wrap:anywhere}
.badge{display:inline-block;padding:1px 8px;border-radius:999px;font-size:.75rem;font-weight:600;border:1px solid currentColor}
.badge-pending,.badge-running{color:var(--warn)}.badge-ok,.badge-done{color:var(--ok)}.badge-error,.badge-failed{color:var(--crit)}.badge-cancelled{color:var(--muted)}.badge-interrupted{color:var(--warn);border-style:dashed}
.tool-result.error{color:var(--crit)}
.agent-status{font-size:.85rem;color:var(--muted);margin:4px 0}
.agent-status.state-error{color:var(--crit)}.agent-status.state-done{color:var(--ok)}
.agent-error{border-color:var(--crit)}
.log-scroll{display:flex;flex-direction:column-reverse;overflow-y:auto;max-height:320px;background:#0b0e13;color:#d5dae1;border-radius:8px;padding:6px 10px}
.log-tail{list-style:none;margin:0;padding:0;display:flex;flex-direction:column;font-family:var(--mono);font-size:.8rem}
.log-slot:empty{display:none}
.log-line{display:grid;grid-template-columns:auto auto 1fr;gap:8px;white-space:pre-wrap;overflow-wrap:anywhere}
.log-line time{color:#7d8896}.log-line .level{font-weight:700;text-transform:uppercase}
.log-trace .level,.log-debug .level{color:#7d8896}.log-info .level{color:#6cb6ff}.log-warn .level{color:#f0b429}.log-error .level,.log-fatal .level{color:#ff6b6b}
.run>header{display:flex;gap:10px;align-items:center;flex-wrap:wrap}
.run .progress-item .label{font-weight:600}
.run-log{list-style:none;margin:10px 0;padding:0;display:grid;gap:2px;font-family:var(--mono);font-size:.8rem;max-height:320px;overflow-y:auto}
.run-log:empty{display:none}
.run-result{font-family:var(--mono);font-size:.8rem;white-space:pre-wrap;overflow-wrap:anywhere;background:var(--bg);border-radius:8px;padding:8px 10px}
.run-actions{margin:10px 0 0}
.run-list{list-style:none;padding:0;margin:0;display:grid;gap:12px}
.run-list:not(:empty)~.empty-hint{display:none}
.run-row{display:grid;grid-template-columns:1fr auto;gap:4px 8px;align-items:center}
.run-row a{color:inherit;font-weight:600;text-decoration:none}
.run-row a:hover{text-decoration:underline}
.run-row .progress-item{grid-column:1/-1}
.run-row .progress-item .label{display:none}
.run-row .progress{height:14px}
.run-row .progress .pct{font-size:.7rem}
.run-row-done .bar{background:var(--ok)}
.run-row-failed .bar{background:var(--crit)}
.run-row-cancelled .bar,.run-row-interrupted .bar{background:var(--muted)}
.sse-sink{display:none}
@media (prefers-reduced-motion:reduce){.progress .bar{transition:none}}
`
