'use strict';
// What the platform's TypeScript publisher does before touching a store (COMPAT.md §1-2),
// shared by both reference publishers so they differ only in how they write the row.
const { createId } = require('@paralleldrive/cuid2'); // v3, as the platform uses

const MAXLEN = '2592000'; // the platform's retention: 30 days at 1 event/s

function buildEvent(type, data, context) {
  return {
    id: createId(),
    type,
    source: context.source || 'platform',
    timestamp: new Date().toISOString(),
    correlationId: context.correlationId || createId(),
    tenantId: context.tenantId,
    userId: context.userId,
    version: '1.0',
    data,
  };
}

function xaddArgs(stream, event) {
  return [stream, 'MAXLEN', '~', MAXLEN, '*', 'event', JSON.stringify(event)];
}

/** Pipeline results of ioredis are [err, value] pairs: the stream ids, or the first error. */
function streamIds(results) {
  return results.map(([err, id]) => {
    if (err) throw err;
    return id;
  });
}

module.exports = { buildEvent, xaddArgs, streamIds };
