/**
 * The attribute of the hidden sink the fragment helpers (views/fragments.tsx)
 * give every out-of-band delete a target in: `head > template[data-sse-sink]`.
 * It is part of the wire format, so the test helpers (plugin/testing) that
 * parse fragments back read it here, below the views.
 */
export const FRAGMENT_SINK_ATTR = 'data-sse-sink'
