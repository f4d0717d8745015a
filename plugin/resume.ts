/**
 * The optional resume script. htmx-ext-sse reconnects by creating a new
 * EventSource with the original `sse-connect` URL, so the browser's own
 * Last-Event-ID is lost and the page would miss what was published while it
 * was away. This wraps `htmx.createEventSource` to remember the last id seen
 * per URL and put it in the `lastEventId` query parameter of every reconnect.
 * Load it after htmx and before the SSE extension connects.
 *
 * Every URL it opens carries `sseResume=1` (RESUME_MARK): the live stream
 * route refuses an htmx 2 connection without it, so a page that forgot the
 * script fails loudly instead of losing events on its first reconnect.
 */
export const RESUME_MARK = 'sseResume'

export const RESUME_SCRIPT = `(function () {
  'use strict';
  if (typeof htmx === 'undefined') return;
  var lastIds = {};
  function withLastId(url) {
    var id = lastIds[url];
    var u = new URL(url, document.baseURI);
    u.searchParams.set('${RESUME_MARK}', '1');
    if (id !== undefined) u.searchParams.set('lastEventId', id);
    return u.toString();
  }
  htmx.createEventSource = function (url) {
    var source = new EventSource(withLastId(url), { withCredentials: true });
    var remember = function (e) { if (e.lastEventId) lastIds[url] = e.lastEventId; };
    var add = source.addEventListener.bind(source);
    // htmx adds one listener per sse-swap name; adding the same 'remember'
    // function for each name keeps the id current without wrapping htmx's
    // listeners, so its removeEventListener calls still work.
    source.addEventListener = function (type, fn, opts) {
      add(type, remember);
      return add(type, fn, opts);
    };
    add('message', remember);
    add('reset', function (e) {
      remember(e);
      // History no longer covers what this page missed: reload its state
      // unless the page handles 'sse:reset' itself (preventDefault).
      if (htmx.trigger(document.body, 'sse:reset', { lastEventId: e.lastEventId })) location.reload();
    });
    return source;
  };
})();
`
