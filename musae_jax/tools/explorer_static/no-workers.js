// Loaded just before Tone.js. Tone.js starts its clock in a Web Worker made from a blob: URL,
// which this page's Content-Security-Policy (default-src 'self') refuses; without a Worker
// constructor Tone.js falls back to its timer clock. explorer.js puts the constructor back.
"use strict";
window.musaeSavedWorker = window.Worker;
window.Worker = function Worker() { throw new Error("Web Workers are off while Tone.js loads"); };
