'use strict';
// The harness's side of the IPC protocol with worker.js (see there): waiting for a message.

/** Resolves with the worker's next `want` message; rejects on its error, exit or timeout. */
function expect(child, want, ms, onSample) {
  return new Promise((resolve, reject) => {
    const finish = (err, m) => {
      clearTimeout(timer);
      child.off('message', onMsg);
      child.off('exit', onExit);
      if (err) reject(err);
      else resolve(m);
    };
    const timer = setTimeout(() => finish(new Error(`timed out after ${ms / 1000} s waiting for ${want}`)), ms);
    const onMsg = (m) => {
      if (m.cmd === 'sample' && onSample) onSample(m.sample);
      else if (m.cmd === want) finish(null, m);
      else if (m.cmd === 'error') finish(new Error(m.error));
    };
    const onExit = (code, sig) => finish(new Error(`worker exited (${sig || code}) before ${want}`));
    child.on('message', onMsg);
    child.on('exit', onExit);
  });
}

module.exports = { expect };
